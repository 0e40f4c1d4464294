//! Callbacks: the callback node (header and closure in one block), the
//! boxed registration behind `CancellationToken::register`, the protocols
//! that attach and detach a callback node (shared with the pinned one,
//! `pinned.rs`), and the callback's step in the drain.
//!
//! ```text
//!  IDLE ──attach──▶ LINKED ──drain pops──▶ RUNNING ──returns──▶ DONE
//!                     │                      │ └─owner on the running thread─▶ abandoned (owner frees it)
//!                     │                      └─owner lets go elsewhere─▶ ORPHAN (the canceller frees it)
//!                     └──owner unlinks──▶ DETACHED
//! ```
//!
//! While RUNNING the canceller has moved the closure out and is calling it
//! with no lock held. Its owner then either waits for DONE (a drop, with
//! `std`), abandons the node if the callback runs on the owner's own thread
//! (inside its own callback or another callback of the same cancel: the
//! canceller is past every read of the node, and checks the flag on its own
//! stack that the owner sets before touching the node again), or lets go of
//! a boxed node (ORPHAN: the canceller frees it after the call).
//!
//! **Panics.** The owner's state changes before any user code runs on its
//! behalf: attaching never calls the closure (the caller marks itself done,
//! then calls it); detaching never drops the closure of a node it removed
//! (the owner does, after recording the removal), and a boxed node is freed
//! by a guard even if that drop panics. In the drain the call runs under
//! `catch_unwind` (with `std`) and the first panic is kept for the end.

use core::mem::MaybeUninit;
use core::ptr::{self, NonNull};

#[cfg(feature = "alloc")]
use alloc::boxed::Box;

use super::link;
use super::{Drain, Next};
use crate::raw::lifetime::StateRef;
use crate::raw::list;
use crate::raw::node::{DETACHED, DONE, Kind, LINKED, Node, RUNNING};
use crate::raw::state::State;
use crate::raw::word::WordGuard;
use crate::sync::{AtomicU8, Ordering, UnsafeCell};

mod waiting;
#[cfg(feature = "std")]
pub(crate) use waiting::{PolledDetach, Waiting, poll_detach};

/// Type-erased operations on a `CallbackNode<F>`.
pub(crate) struct CallbackVTable {
    /// The node lives inside its owner (never freed by the crate).
    inline: bool,
    /// Moves the closure out and calls it. The node keeps no closure after.
    call: unsafe fn(NonNull<CallbackHeader>),
    /// Moves the closure out and drops it without calling it.
    drop_closure: unsafe fn(NonNull<CallbackHeader>),
    dealloc: unsafe fn(NonNull<CallbackHeader>),
}

/// The part of a callback node that does not depend on the closure's type.
#[repr(C)]
pub(crate) struct CallbackHeader {
    node: Node,
    vtable: &'static CallbackVTable,
    /// While RUNNING: the canceller's [`Running`] record, on its stack for
    /// the call (guarded by the lock; null otherwise). What only a running
    /// node needs lives there, not in every node.
    running: UnsafeCell<*const Running>,
}

/// What the canceller keeps on its stack while a callback runs, reached by
/// the owner through the node under the lock while it is RUNNING.
pub(crate) struct Running {
    /// Set by an owner that abandons the node while it runs.
    abandoned: AtomicU8,
    /// `thread_key()` of the thread running the callback.
    #[cfg(feature = "std")]
    runner: usize,
    /// The owner waiting for the callback to finish: a thread in a drop,
    /// or a task in `unregister_async`.
    #[cfg(feature = "std")]
    parker: UnsafeCell<Option<Waiting>>,
}

impl CallbackHeader {
    /// The running record.
    ///
    /// # Safety
    /// The node is RUNNING and the caller holds its state's lock (so the
    /// canceller's frame holding the record is live: it takes the lock
    /// before it leaves).
    #[cfg(feature = "std")]
    #[inline]
    unsafe fn running(&self) -> &Running {
        // SAFETY: caller's contract; set with RUNNING under the lock.
        unsafe { &*self.running.with(|p| *p) }
    }
}

/// A callback node: header and closure in one block, on the heap
/// (`register`) or pinned inside its owner (`PinnedRegistration`).
#[repr(C)]
pub(crate) struct CallbackNode<F> {
    header: CallbackHeader,
    f: UnsafeCell<MaybeUninit<F>>,
}

struct Ops<F>(F);

impl<F: FnOnce() + Send> Ops<F> {
    #[cfg(feature = "alloc")]
    const BOXED: CallbackVTable = CallbackVTable {
        inline: false,
        call: Self::call,
        drop_closure: Self::drop_closure,
        dealloc: Self::dealloc,
    };
    /// An inline node's memory belongs to its owner: nothing to free.
    const INLINE: CallbackVTable = CallbackVTable {
        inline: true,
        call: Self::call,
        drop_closure: Self::drop_closure,
        dealloc: Self::keep,
    };
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
    #[cfg(feature = "alloc")]
    unsafe fn dealloc(h: NonNull<CallbackHeader>) {
        // SAFETY: a BOXED node was made by `Box::leak` of a CallbackNode<F>
        // in `alloc`, and the caller gives up its last use of it. The
        // closure is `MaybeUninit`, so this does not drop it again.
        drop(unsafe { Box::from_raw(h.cast::<CallbackNode<F>>().as_ptr()) });
    }
}

impl<F: FnOnce() + Send> CallbackNode<F> {
    fn with_vtable(f: F, vtable: &'static CallbackVTable) -> Self {
        CallbackNode {
            header: CallbackHeader {
                node: Node::new(Kind::Callback),
                vtable,
                running: UnsafeCell::new(ptr::null()),
            },
            f: UnsafeCell::new(MaybeUninit::new(f)),
        }
    }

    /// A node to be pinned inside its owner (no allocation, never freed by
    /// the crate).
    pub(crate) fn inline(f: F) -> Self {
        Self::with_vtable(f, &Ops::<F>::INLINE)
    }

    /// The header pointer of a pinned inline node, with provenance over the
    /// whole node (closure included).
    pub(crate) fn header(&self) -> NonNull<CallbackHeader> {
        NonNull::from(self).cast::<CallbackHeader>()
    }
}

impl CallbackHeader {
    /// Allocates a node holding `f`: the one allocation of `register`.
    #[cfg(feature = "alloc")]
    pub(crate) fn alloc<F: FnOnce() + Send>(f: F) -> NonNull<CallbackHeader> {
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
    #[cfg(feature = "alloc")]
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
    #[cfg(feature = "alloc")]
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

    /// The node as a list node.
    #[inline(always)]
    pub(crate) fn node(h: NonNull<CallbackHeader>) -> NonNull<Node> {
        h.cast()
    }
}

/// Frees a callback node when dropped: after its closure was called or
/// dropped, whether or not that panicked.
#[cfg(feature = "alloc")]
struct FreeOnDrop(NonNull<CallbackHeader>);

#[cfg(feature = "alloc")]
impl Drop for FreeOnDrop {
    fn drop(&mut self) {
        // SAFETY: made only by `call_then_free` and `drop_closure_then_free`,
        // whose callers own the node and give up their last use of it; the
        // closure is moved out (consumed) before this runs.
        unsafe { CallbackHeader::dealloc(self.0) }
    }
}

// ------------------------------------------- attach and detach, both kinds

/// What `attach_pinned` did with a node that is not attached yet. It never
/// runs the closure: the caller records its own state first, so that a
/// panic of the closure finds the owner consistent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attached {
    /// Linked: it runs on cancel, or until detached.
    Linked,
    /// The source is cancelled: nothing linked; the caller runs the closure.
    Cancelled,
    /// Nothing can cancel the source: nothing stored, the closure kept.
    Never,
}

/// Links a callback node the caller owns and keeps pinned (the inline,
/// allocation-free registration).
///
/// # Safety
/// `cb` is an unattached callback node with its closure, at a stable
/// address until `detach` has returned for it.
pub(crate) unsafe fn attach_pinned(state: &StateRef, cb: NonNull<CallbackHeader>) -> Attached {
    if state.get().is_cancelled() {
        return Attached::Cancelled;
    }
    // SAFETY: we hold a reference.
    if !unsafe { link::can_be_cancelled(state.ptr()) } {
        return Attached::Never;
    }
    // SAFETY: caller's contract.
    match unsafe { state.get().attach(CallbackHeader::node(cb), || {}) } {
        true => Attached::Linked,
        false => Attached::Cancelled,
    }
}

/// What `detach` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detached {
    /// Removed before it started: it never runs. The closure is still in the
    /// node: the owner drops it (and frees a boxed node).
    Removed,
    /// It ran (or runs and will be freed by the canceller); the owner is done.
    NotRemoved,
    /// An inline node running on another thread, left attached.
    StillRunning,
}

/// Takes a callback node out of `st`'s list, or out of the canceller's hands.
/// - LINKED: unlinked (`Removed`); the closure is still in the node, and the
///   caller drops it and frees the node (no user code runs in here);
/// - DONE: the callback ran; the node freed;
/// - RUNNING on this thread (inside its own callback, or inside any callback
///   of this thread's cancel; `std` only): abandoned: the canceller's flag is
///   set, so it never touches the node again, and the node freed now. The
///   canceller is past every read of the node (it moved the closure out
///   before calling it), so this is safe;
/// - RUNNING on another thread, `wait` (a drop, `std`): waits until it
///   returns, spinning briefly and then parking; the node freed;
/// - RUNNING on another thread without waiting: a boxed node is orphaned
///   (the canceller frees it after the call); an inline node stays attached
///   (`StillRunning`: its owner's drop will wait). Without `std`, an
///   inline node's owner that waits spins until it is DONE (it cannot tell
///   its own thread from another: see `PinnedRegistration`); where
///   threads cannot be told apart, a RUNNING boxed node is always orphaned.
///
/// # Safety
/// `cb` is attached to `st` and owned by the caller.
pub(crate) unsafe fn detach(st: &State, cb: NonNull<CallbackHeader>, wait: bool) -> Detached {
    // SAFETY: forwarded.
    unsafe { detach_as(st, cb, wait, true) }
}

/// `detach` without waiting that never orphans: a boxed node running on
/// another thread stays attached and the owner's (`StillRunning`), as an
/// inline node does, for an owner that must wait for it later (a borrowing
/// callback's scope, whose end waits: `scoped.rs`).
///
/// # Safety
/// As `detach`.
#[cfg(feature = "std")]
pub(crate) unsafe fn detach_keeping(st: &State, cb: NonNull<CallbackHeader>) -> Detached {
    // SAFETY: forwarded.
    unsafe { detach_as(st, cb, false, false) }
}

/// `detach`, with `orphan` false for `detach_keeping`.
///
/// # Safety
/// As `detach`.
unsafe fn detach_as(st: &State, cb: NonNull<CallbackHeader>, wait: bool, orphan: bool) -> Detached {
    let guard = st.word.lock();
    // SAFETY: our node stays allocated until we free it; status, links
    // and the running record change only under the lock we hold.
    unsafe {
        let header = cb.as_ref();
        match header.node.state(Ordering::Relaxed) {
            LINKED => {
                list::remove(&st.head, cb.cast());
                header.node.set_state_unflagged(DETACHED);
                drop(guard);
                Detached::Removed
            }
            RUNNING => {
                #[cfg(feature = "std")]
                {
                    let running = header.running();
                    if running.runner == crate::sync::park::thread_key() {
                        running.abandoned.store(1, Ordering::Relaxed);
                        // A waker an earlier `unregister_async` poll left in
                        // the record is the owner's, dropped here after the
                        // unlock: the canceller never touches the record
                        // of an abandoned node again.
                        let stored = running.parker.with_mut(|p| (*p).take());
                        drop(guard);
                        CallbackHeader::dealloc(cb);
                        drop(stored);
                        return Detached::NotRemoved;
                    }
                    if wait {
                        drop(guard);
                        waiting::wait_done(st, cb);
                        return Detached::NotRemoved;
                    }
                }
                #[cfg(not(feature = "std"))]
                if wait && CallbackHeader::is_inline(cb) {
                    drop(guard);
                    waiting::spin_done(st, cb);
                    return Detached::NotRemoved;
                }
                let _ = wait;
                if !orphan || CallbackHeader::is_inline(cb) {
                    drop(guard);
                    return Detached::StillRunning;
                }
                header.node.mark_orphan();
                // A task that awaited `unregister_async` and gave up: its
                // waker is dropped here, not by the canceller.
                #[cfg(feature = "std")]
                let ours = header.running().parker.with_mut(|p| (*p).take());
                drop(guard);
                #[cfg(feature = "std")]
                drop(ours);
                Detached::NotRemoved
            }
            state => {
                debug_assert!(state == DONE, "unexpected node state {state}");
                drop(guard);
                CallbackHeader::dealloc(cb);
                Detached::NotRemoved
            }
        }
    }
}

// ----------------------------------------------------------- in the drain

/// Without `std`: finishes a callback node whose closure unwound (the drain
/// stops there, as a panic without `std` does): what the step's end does,
/// under the lock, but no more. Forgotten when the call returns.
#[cfg(not(feature = "std"))]
struct FinishOnUnwind<'a> {
    st: &'a State,
    cb: NonNull<CallbackHeader>,
    running: &'a Running,
}

#[cfg(not(feature = "std"))]
impl Drop for FinishOnUnwind<'_> {
    fn drop(&mut self) {
        let guard = self.st.word.lock();
        // The lock orders an abandoning owner's store before this load.
        if self.running.abandoned.load(Ordering::Relaxed) != 0 {
            return;
        }
        // SAFETY: not abandoned: the node is live and RUNNING, and ours
        // until DONE (or, orphaned, ours to free), as at the step's end.
        unsafe {
            let header = self.cb.as_ref();
            if header.node.is_orphan() {
                drop(guard);
                CallbackHeader::dealloc(self.cb);
                return;
            }
            header.running.with_mut(|p| *p = ptr::null());
            header.node.set_state(DONE);
        }
        drop(guard);
    }
}

/// The drain's step for a popped callback: marks it RUNNING (pointing the
/// node at its running record on this frame), unlocks,
/// calls the closure (under `catch_unwind` with `std`), relocks; then, if
/// the owner abandoned the node, leaves it; if orphaned, frees it; else
/// marks it DONE and unparks a waiting dropper after the unlock.
///
/// # Safety
/// The front node of `st`'s list is a callback and `guard` holds its lock.
#[inline]
pub(crate) unsafe fn step<'a>(st: &'a State, guard: WordGuard<'a>, ctx: &mut Drain) -> Next<'a> {
    // SAFETY: caller's contract.
    let cb = unsafe { st.pop_front() }.cast::<CallbackHeader>();
    // The node's record for the call, here on this frame: an owner that
    // abandons the node sets its flag; a waiting owner leaves its parker.
    let running = Running {
        abandoned: AtomicU8::new(0),
        #[cfg(feature = "std")]
        runner: crate::sync::park::thread_key(),
        #[cfg(feature = "std")]
        parker: UnsafeCell::new(None),
    };
    // SAFETY: popped under the lock; until we mark it DONE the owner frees
    // it only after setting `abandoned`, under the lock, which we check
    // before touching the node again. The record outlives every use of it
    // through the node: the owner uses it under the lock, while RUNNING,
    // and we take the lock (and clear the pointer, or leave an abandoned
    // node) before this frame ends.
    unsafe {
        let header = cb.as_ref();
        header.node.set_state(RUNNING);
        header.running.with_mut(|p| *p = &running);
    }
    drop(guard);

    // SAFETY: RUNNING gives us the closure.
    #[cfg(feature = "std")]
    ctx.panics.catch(|| unsafe { CallbackHeader::call(cb) });
    #[cfg(not(feature = "std"))]
    {
        let _ = &ctx;
        // Without `std` a panic unwinds out of the drain: the node is then
        // finished by this guard, so that an owner waiting for it (a
        // pinned registration's drop) is not left spinning.
        let unwinding = FinishOnUnwind {
            st,
            cb,
            running: &running,
        };
        // SAFETY: as above.
        unsafe { CallbackHeader::call(cb) };
        core::mem::forget(unwinding);
    }

    let guard = st.word.lock();
    // The lock orders the owner's store before this load.
    if running.abandoned.load(Ordering::Relaxed) != 0 {
        // The node is gone. The owner that abandoned it took anything it
        // had left in the record; the record is dropped with this frame,
        // so it must hold no user data to drop under the lock.
        #[cfg(feature = "std")]
        // SAFETY: we hold the lock; the record is ours.
        debug_assert!(running.parker.with_mut(|p| unsafe { (*p).is_none() }));
        // Keep the lock for the next pop.
        return Next::Locked(guard);
    }
    // SAFETY: not abandoned: the node is live and RUNNING, and ours until
    // DONE (or, orphaned, ours to free).
    unsafe {
        let header = cb.as_ref();
        if header.node.is_orphan() {
            drop(guard);
            CallbackHeader::dealloc(cb);
            return Next::Unlocked;
        }
        header.running.with_mut(|p| *p = ptr::null());
        #[cfg(feature = "std")]
        let parker = running.parker.with_mut(|p| (*p).take());
        header.node.set_state(DONE);
        #[cfg(feature = "std")]
        if let Some(waiting) = parker {
            drop(guard);
            ctx.panics.catch(|| waiting.notify());
            return Next::Unlocked;
        }
    }
    // Keep the lock for the next pop.
    Next::Locked(guard)
}
