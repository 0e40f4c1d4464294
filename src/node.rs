//! The nodes of a source's list: one header shared by every kind of observer,
//! and the four kinds (callback, waker, blocked thread, link to a child).
//!
//! A node's `status` says who may touch it:
//!
//! ```text
//!  IDLE ──attach──▶ LINKED ──canceller pops──▶ RUNNING ──callback returns──▶ DONE
//!                     │                  (callbacks only)
//!                     │                 └─────────────────────────────────▶ DONE
//!                     └──owner unlinks──▶ DETACHED             (other kinds)
//! ```
//!
//! Every transition happens under the source's bit lock. Once a node is DONE
//! the canceller never touches it again, so its owner may free or reuse it.
//! A RUNNING callback's owner that will not wait either orphans a boxed node
//! (ORPHAN: the canceller frees it after the call), or, when it runs on the
//! cancelling thread itself (inside the callback, so the canceller is past
//! every read of the node), abandons it: it sets the flag on the canceller's
//! stack that the node points to and frees or reuses the node at once; the
//! canceller checks its own flag before touching the node again.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use core::task::Waker;

use alloc::boxed::Box;

use crate::list::Links;
use crate::state::State;
use crate::sync::{AtomicU8, Ordering, UnsafeCell};

pub(crate) const IDLE: u8 = 0;
pub(crate) const LINKED: u8 = 1;
pub(crate) const RUNNING: u8 = 2;
pub(crate) const DONE: u8 = 3;
pub(crate) const DETACHED: u8 = 4;
pub(crate) const STATE_MASK: u8 = 0b111;
/// A boxed callback's owner let go of it while it ran on another thread
/// (without waiting): the canceller frees the node when the call returns.
pub(crate) const ORPHAN: u8 = 1 << 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Callback,
    Waiter,
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Thread,
    Link,
    Timer,
}

/// The header every node starts with (`repr(C)`, so a `*mut Links` popped
/// from the list is also a `*mut Node` and a pointer to the whole node).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Node {
    pub(crate) links: Links,
    pub(crate) status: AtomicU8,
    pub(crate) kind: Kind,
    /// Link nodes: this is the child's last link.
    pub(crate) last: bool,
    /// Link nodes: position in the child's link array.
    pub(crate) index: u32,
}

impl Node {
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            links: Links::new(),
            status: AtomicU8::new(IDLE),
            kind,
            last: false,
            index: 0,
        }
    }

    /// Status bits without flags. Callers that race with nothing (they hold
    /// the lock, or the node is theirs alone) may use `Relaxed`.
    pub(crate) fn state(&self, order: Ordering) -> u8 {
        self.status.load(order) & STATE_MASK
    }

    /// Sets the state bits, keeping flags. Only under the source's lock.
    /// `Release`, so an owner that reads DONE with `Acquire` outside the lock
    /// sees everything the canceller did to the node before.
    pub(crate) fn set_state(&self, state: u8) {
        let old = self.status.load(Ordering::Relaxed);
        self.status
            .store((old & !STATE_MASK) | state, Ordering::Release);
    }

    /// `set_state(DONE)` for a kind that never carries flags (waiters): one
    /// store instead of a load and a store. Same lock and ordering rules.
    #[inline]
    pub(crate) fn set_done_unflagged(&self) {
        debug_assert_eq!(self.status.load(Ordering::Relaxed) & !STATE_MASK, 0);
        self.status.store(DONE, Ordering::Release);
    }
}

// ---------------------------------------------------------------- callbacks

/// Type-erased operations on a `CallbackNode<F>`.
pub(crate) struct CallbackVTable {
    /// The node lives inside its owner (never freed by the crate).
    pub(crate) inline: bool,
    /// Moves the closure out and calls it. The node keeps no closure after.
    call: unsafe fn(NonNull<CallbackHeader>),
    /// Moves the closure out and drops it without calling it.
    drop_closure: unsafe fn(NonNull<CallbackHeader>),
    dealloc: unsafe fn(NonNull<CallbackHeader>),
}

/// The part of a callback node that does not depend on the closure's type.
#[repr(C)]
pub(crate) struct CallbackHeader {
    pub(crate) node: Node,
    vtable: &'static CallbackVTable,
    /// While RUNNING: the canceller's stack flag, set by an owner that
    /// abandons the node (guarded by the lock).
    pub(crate) abandon: UnsafeCell<*const AtomicU8>,
    /// `thread_key()` of the thread running the callback; set with RUNNING.
    #[cfg(feature = "std")]
    pub(crate) runner: UnsafeCell<usize>,
    /// A thread waiting in `Registration::drop` for the callback to finish.
    #[cfg(feature = "std")]
    pub(crate) parker: UnsafeCell<Option<crate::sync::park::Thread>>,
}

/// A callback node: header and closure in one block, on the heap
/// (`register`) or pinned inside its owner (`PinnedRegistration`).
#[repr(C)]
pub(crate) struct CallbackNode<F> {
    header: CallbackHeader,
    f: UnsafeCell<MaybeUninit<F>>,
}

struct Ops<F>(F);

impl<F: FnOnce() + Send + 'static> Ops<F> {
    const BOXED: CallbackVTable = CallbackVTable {
        inline: false,
        call: Self::call,
        drop_closure: Self::drop_closure,
        dealloc: Self::dealloc,
    };
    /// An inline node's memory belongs to its owner: nothing to free.
    #[cfg(feature = "std")]
    const INLINE: CallbackVTable = CallbackVTable {
        inline: true,
        call: Self::call,
        drop_closure: Self::drop_closure,
        dealloc: Self::keep,
    };
    #[cfg(feature = "std")]
    unsafe fn keep(_: NonNull<CallbackHeader>) {}
    unsafe fn take(h: NonNull<CallbackHeader>) -> F {
        let node = h.cast::<CallbackNode<F>>();
        // SAFETY: the vtable was chosen for a CallbackNode<F>, so `h` is
        // one; the caller guarantees the closure is still there and that it
        // has exclusive use of it; reading it out leaves it moved.
        unsafe { (*node.as_ptr()).f.with(|p| (*p).assume_init_read()) }
    }
    unsafe fn call(h: NonNull<CallbackHeader>) {
        // SAFETY: forwarded contract of `CallbackVTable::call`.
        let f = unsafe { Self::take(h) };
        f();
    }
    unsafe fn drop_closure(h: NonNull<CallbackHeader>) {
        // SAFETY: forwarded contract of `CallbackVTable::drop_closure`.
        drop(unsafe { Self::take(h) });
    }
    unsafe fn dealloc(h: NonNull<CallbackHeader>) {
        // SAFETY: a BOXED node was made by `Box::leak` of a CallbackNode<F>
        // in `alloc`, and the caller gives up its last use of it. The
        // closure is `MaybeUninit`, so this does not drop it again.
        drop(unsafe { Box::from_raw(h.cast::<CallbackNode<F>>().as_ptr()) });
    }
}

impl<F: FnOnce() + Send + 'static> CallbackNode<F> {
    fn with_vtable(f: F, vtable: &'static CallbackVTable) -> Self {
        CallbackNode {
            header: CallbackHeader {
                node: Node::new(Kind::Callback),
                vtable,
                abandon: UnsafeCell::new(core::ptr::null()),
                #[cfg(feature = "std")]
                runner: UnsafeCell::new(0),
                #[cfg(feature = "std")]
                parker: UnsafeCell::new(None),
            },
            f: UnsafeCell::new(MaybeUninit::new(f)),
        }
    }

    #[cfg(feature = "std")]
    /// A node to be pinned inside its owner (no allocation, never freed by
    /// the crate).
    pub(crate) fn inline(f: F) -> Self {
        Self::with_vtable(f, &Ops::<F>::INLINE)
    }

    #[cfg(feature = "std")]
    /// The header pointer of a pinned inline node, with provenance over the
    /// whole node (closure included).
    pub(crate) fn header(&self) -> NonNull<CallbackHeader> {
        NonNull::from(self).cast::<CallbackHeader>()
    }
}

impl CallbackHeader {
    /// Allocates a node holding `f`: the one allocation of `register`.
    pub(crate) fn alloc<F: FnOnce() + Send + 'static>(f: F) -> NonNull<CallbackHeader> {
        let node = Box::new(CallbackNode::with_vtable(f, &Ops::<F>::BOXED));
        // `Box::leak` keeps provenance over the whole node.
        NonNull::from(Box::leak(node)).cast::<CallbackHeader>()
    }

    /// Calls and consumes the closure.
    ///
    /// # Safety
    /// `h` is a live callback node whose closure is still there, and the
    /// caller has exclusive use of the closure (it set RUNNING under the lock,
    /// or it never published the node).
    pub(crate) unsafe fn call(h: NonNull<CallbackHeader>) {
        // SAFETY: caller's contract; the vtable matches the node's type.
        unsafe { ((*h.as_ptr()).vtable.call)(h) }
    }

    /// Drops the closure without calling it.
    ///
    /// # Safety
    /// As for [`call`](Self::call).
    pub(crate) unsafe fn drop_closure(h: NonNull<CallbackHeader>) {
        // SAFETY: caller's contract; the vtable matches the node's type.
        unsafe { ((*h.as_ptr()).vtable.drop_closure)(h) }
    }

    /// Whether the node lives inside its owner.
    ///
    /// # Safety
    /// `h` is a live callback node.
    pub(crate) unsafe fn is_inline(h: NonNull<CallbackHeader>) -> bool {
        // SAFETY: caller's contract; the vtable pointer is immutable.
        unsafe { (*h.as_ptr()).vtable.inline }
    }

    /// Frees the node (its closure must already be called or dropped).
    ///
    /// # Safety
    /// `h` is a live callback node that no list and no other thread can reach.
    pub(crate) unsafe fn dealloc(h: NonNull<CallbackHeader>) {
        // SAFETY: caller's contract; the vtable matches the node's type.
        unsafe { ((*h.as_ptr()).vtable.dealloc)(h) }
    }

    /// Calls the closure, then frees the node, also when the call panics
    /// (the closure is consumed either way: its captures are dropped by the
    /// unwind).
    ///
    /// # Safety
    /// As for [`call`](Self::call) and then [`dealloc`](Self::dealloc).
    pub(crate) unsafe fn call_then_free(h: NonNull<CallbackHeader>) {
        let _free = FreeOnDrop(h);
        // SAFETY: caller's contract.
        unsafe { Self::call(h) }
    }

    /// Drops the closure unrun, then frees the node, also when a capture's
    /// `Drop` panics.
    ///
    /// # Safety
    /// As for [`drop_closure`](Self::drop_closure) and then
    /// [`dealloc`](Self::dealloc).
    pub(crate) unsafe fn drop_closure_then_free(h: NonNull<CallbackHeader>) {
        let _free = FreeOnDrop(h);
        // SAFETY: caller's contract.
        unsafe { Self::drop_closure(h) }
    }

    /// Whether the node is in its source's list, waiting to be run: a
    /// snapshot (`Acquire`, paired with the canceller's `Release` stores).
    ///
    /// # Safety
    /// `h` is a live callback node.
    pub(crate) unsafe fn is_linked(h: NonNull<CallbackHeader>) -> bool {
        // SAFETY: caller's contract; the status is atomic.
        unsafe { h.as_ref().node.state(Ordering::Acquire) == LINKED }
    }
}

/// Frees a callback node when dropped: after its closure was called or
/// dropped, whether or not that panicked.
struct FreeOnDrop(NonNull<CallbackHeader>);

impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        // SAFETY: made only by `call_then_free` and `drop_closure_then_free`,
        // whose callers own the node and give up their last use of it; the
        // closure is moved out (consumed) before this runs.
        unsafe { CallbackHeader::dealloc(self.0) }
    }
}

// ------------------------------------------------------------------ wakers

/// A future's node: lives inside the pinned future, holds one waker slot,
/// guarded by the source's bit lock like the node's links. (The future keeps
/// a private copy of the stored waker's identity, so a re-poll with the same
/// waker needs neither the slot nor the lock; see `waiter.rs`.)
#[repr(C)]
pub(crate) struct WaiterNode {
    pub(crate) node: Node,
    waker: UnsafeCell<Option<Waker>>,
}

impl WaiterNode {
    pub(crate) fn new() -> Self {
        Self {
            node: Node::new(Kind::Waiter),
            waker: UnsafeCell::new(None),
        }
    }

    /// Replaces the waker; returns the old one, to be dropped after the
    /// lock is released.
    ///
    /// # Safety
    /// The node is IDLE and owned by the caller, or the caller holds the lock
    /// of the list the node is in (or was in).
    pub(crate) unsafe fn replace_waker(&self, waker: Option<Waker>) -> Option<Waker> {
        // SAFETY: exclusive access to the slot (caller's contract).
        self.waker
            .with_mut(|p| unsafe { core::mem::replace(&mut *p, waker) })
    }
}

// ---------------------------------------------------------- blocked threads

/// A blocked thread's node: lives on the waiting thread's stack.
#[cfg(feature = "std")]
#[repr(C)]
pub(crate) struct ThreadNode {
    pub(crate) node: Node,
    thread: UnsafeCell<Option<crate::sync::park::Thread>>,
}

#[cfg(feature = "std")]
impl ThreadNode {
    pub(crate) fn new() -> Self {
        Self {
            node: Node::new(Kind::Thread),
            thread: UnsafeCell::new(Some(crate::sync::park::current())),
        }
    }

    /// Moves the thread handle out; the caller unparks it after unlocking.
    ///
    /// # Safety
    /// The caller holds the lock and has just popped this node.
    pub(crate) unsafe fn take_thread(&self) -> Option<crate::sync::park::Thread> {
        // SAFETY: under the lock, the canceller has exclusive use of the slot.
        self.thread.with_mut(|p| unsafe { (*p).take() })
    }
}

// ------------------------------------------------------------------- timers

/// A source's timeout: kept at the front of the source's list (new nodes go
/// behind it), so it is found in O(1) and popped first by `cancel()`, which
/// disarms it. It lives in an `Arc`: the list holds one count (taken with
/// `Arc::into_raw` when linked), the clock's queue one while armed, and a
/// re-arming thread one for the duration of the call. It does not keep the
/// source alive: `state` is not a counted reference. The clock's queue holds
/// a node only while its status is LINKED (a popper removes it under the
/// clock's lock after marking it DONE), and the state is freed only after
/// that removal, so the clock may read `state` under its lock while armed.
#[repr(C)]
pub(crate) struct TimerNode {
    pub(crate) node: Node,
    pub(crate) clock: alloc::sync::Arc<crate::timer::ClockShared>,
    pub(crate) state: NonNull<State>,
    /// Position in the clock's queue, or `NOT_QUEUED`; only changed under
    /// the clock's lock (atomic so that reads elsewhere are not races).
    pub(crate) queue_index: crate::sync::AtomicUsize,
}

pub(crate) const NOT_QUEUED: usize = usize::MAX;

// SAFETY: `state` is only dereferenced under the clock's lock while the node
// is queued (see above); everything else is atomic or immutable.
unsafe impl Send for TimerNode {}
// SAFETY: as above.
unsafe impl Sync for TimerNode {}

// -------------------------------------------------------------------- links

/// A child's node in one parent's list. It lives in the child's allocation,
/// right after the child's `State`, and holds a counted reference to the
/// parent, released when the child is destroyed.
#[repr(C)]
pub(crate) struct LinkNode {
    pub(crate) node: Node,
    pub(crate) parent: NonNull<State>,
}
