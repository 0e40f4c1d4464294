//! Waiters: the node pinned inside every cancellation future, holding one
//! waker slot; the future core (`Waiter`) that attaches it on first poll and
//! detaches it on drop; and the waiters' step in the drain, which takes a
//! whole run of them off the list at once.
//!
//! ```text
//!  IDLE ──first poll (not cancelled)──▶ LINKED ──drain cuts the run──▶ DONE (waker taken, woken after the unlock)
//!   │                                     └──future dropped, or released──▶ DETACHED
//!   └──first poll, nothing can cancel──▶ (stays IDLE, no waker stored)
//! ```
//!
//! The slot is written under the source's bit lock like the node's links.
//! It holds the waker as two atomic words, so that a re-poll can compare
//! the given waker with the *stored* one (the clone: a `clone` may return a
//! new data pointer) with two loads, no lock and no write, and the future
//! needs no private copy of its identity (`WakerSlot::holds`).
//!
//! **No lost wake-up.** The canceller sets CANCELLED (in the claiming CAS)
//! before it pops anything, and every attach is "unless cancelled". A node
//! linked before the cut has its current waker taken and woken (a swap
//! happens under the same lock, before or after the take); a first poll
//! after the claim fails to attach and returns Ready; a re-poll after the
//! claim sees CANCELLED in its first load.
//!
//! **Panics.** A waker's `clone` runs before the lock (a panic changes
//! nothing); its `drop` after the unlock; its `wake` in the drain's batch,
//! after the unlock, under `catch_unwind` with `std` (the rest of the batch
//! is still woken).

use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::{self, NonNull};
use core::task::{Context, Poll, RawWakerVTable, Waker};

use super::{Drain, Next, link};
use crate::raw::lifetime::HoldsState;
use crate::raw::list::Links;
use crate::raw::node::{Kind, LINKED, Node};
use crate::raw::state::State;
use crate::raw::wake_batch::{WAKE_BATCH, WakeBatch};
use crate::raw::word::WordGuard;
use crate::sync::{AtomicPtr, Ordering};

/// A future's node: one waker slot.
#[repr(C)]
struct WaiterNode {
    node: Node,
    waker: WakerSlot,
}

impl WaiterNode {
    fn new() -> Self {
        Self {
            node: Node::new(Kind::Waiter),
            waker: WakerSlot::new(),
        }
    }

    /// Replaces the waker; returns the old one, to be dropped after the
    /// lock is released.
    ///
    /// # Safety
    /// The node is IDLE and owned by the caller, or the caller holds the lock
    /// of the list the node is in (or was in).
    #[inline]
    unsafe fn replace_waker(&self, waker: Option<Waker>) -> Option<Waker> {
        // SAFETY: forwarded.
        unsafe { self.waker.replace(waker) }
    }

    /// Takes the waker out (the owner's, detaching).
    ///
    /// # Safety
    /// As for `replace_waker`.
    #[inline]
    unsafe fn take_waker(&self) -> Option<Waker> {
        // SAFETY: forwarded.
        unsafe { self.waker.take() }
    }

    /// The canceller's take: moves the waker out of a LINKED node, which it
    /// then marks DONE.
    ///
    /// # Safety
    /// The caller holds the lock and the node is LINKED.
    #[inline(always)]
    unsafe fn move_waker_out(&self) -> Waker {
        // SAFETY: forwarded; a LINKED waiter holds a waker.
        unsafe { self.waker.move_out() }
    }
}

/// One waker, kept as its two raw parts in atomics (a null vtable: none),
/// so that the future's owner can ask "is the stored waker this one?"
/// without the lock, reading the slot itself: no private copy of its
/// identity in every future. Written only under the lock (or by the owner
/// of an unlisted node); the lock-free read is the owner's `holds`.
struct WakerSlot {
    data: AtomicPtr<()>,
    vtable: AtomicPtr<RawWakerVTable>,
}

impl WakerSlot {
    fn new() -> Self {
        Self {
            data: AtomicPtr::new(ptr::null_mut()),
            vtable: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Stores `waker` (or none), returning the old one. `Relaxed`: the lock
    /// (or exclusive ownership) orders every write and every read that
    /// rebuilds a waker.
    ///
    /// # Safety
    /// The caller has exclusive write access: it holds the lock, or owns
    /// the unlisted node.
    #[inline]
    unsafe fn replace(&self, waker: Option<Waker>) -> Option<Waker> {
        // SAFETY: forwarded.
        let old = unsafe { self.take() };
        if let Some(waker) = waker {
            // Ownership moves into the slot: rebuilt by `take`.
            let waker = core::mem::ManuallyDrop::new(waker);
            self.data.store(waker.data().cast_mut(), Ordering::Relaxed);
            let vtable: *const RawWakerVTable = waker.vtable();
            self.vtable.store(vtable.cast_mut(), Ordering::Relaxed);
        }
        old
    }

    /// Takes the waker out, leaving none. Only the vtable is written: a
    /// concurrent `holds` reads either the whole old waker or no waker,
    /// never the old vtable with another data pointer.
    ///
    /// # Safety
    /// As for `replace`.
    #[inline]
    unsafe fn take(&self) -> Option<Waker> {
        let vtable = self.vtable.load(Ordering::Relaxed);
        if vtable.is_null() {
            return None;
        }
        self.vtable.store(ptr::null_mut(), Ordering::Relaxed);
        let data = self.data.load(Ordering::Relaxed);
        // SAFETY: the two parts of a waker stored by `replace`, whose
        // ownership the slot held until this take; a vtable is 'static.
        Some(unsafe { Waker::new(data, &*vtable) })
    }

    /// Moves the stored waker out, leaving the slot as it is: stale, never
    /// rebuilt again. For the canceller, which marks the node DONE at once:
    /// a DONE node's slot is only ever compared (`holds`), never taken (the
    /// owner's detach takes the waker of a LINKED node only). One store
    /// fewer per waiter than `take`.
    ///
    /// # Safety
    /// As for `replace`, and the slot holds a waker: the node is LINKED
    /// (attaching stores one, a swap replaces it, only a detach takes it).
    #[inline(always)]
    unsafe fn move_out(&self) -> Waker {
        let vtable = self.vtable.load(Ordering::Relaxed);
        debug_assert!(!vtable.is_null(), "a LINKED waiter without a waker");
        let data = self.data.load(Ordering::Relaxed);
        // SAFETY: the two parts of a waker stored by `replace`, whose
        // ownership moves to the caller; the slot is never rebuilt again
        // (caller's contract). A vtable is 'static.
        unsafe { Waker::new(data, &*vtable) }
    }

    /// Whether `waker` is the stored waker (as `Waker::will_wake` compares:
    /// data pointer and vtable), read without the lock: by the owner only,
    /// whose own writes are not concurrent, and the canceller never writes
    /// the slot (`move_out`). So this sees the stored waker: still stored,
    /// or moved out by the canceller, which wakes it. The stored waker is a
    /// clone kept alive while stored, so no other waker can share its
    /// identity meanwhile; once the canceller moved it out (and maybe freed
    /// it), CANCELLED is set, which the poll's first load sees before any
    /// waker reusing its address could reach the poll (design.md,
    /// "Futures").
    #[inline]
    fn holds(&self, waker: &Waker) -> bool {
        let vtable: *const RawWakerVTable = waker.vtable();
        self.vtable.load(Ordering::Relaxed).cast_const() == vtable
            && self.data.load(Ordering::Relaxed).cast_const() == waker.data()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Not yet polled, or polled while nothing could ever cancel.
    Idle,
    /// The node is in the list (or was cut off it by the canceller).
    Attached,
    /// The owner is done waiting (an adapter whose inner future or stream
    /// finished): the node left the list, and no waker is kept.
    Released,
}

/// Future core: waits for the state to be cancelled. `!Unpin`: the node's
/// address is in the list while attached.
pub(crate) struct Waiter<T: HoldsState> {
    holder: T,
    node: WaiterNode,
    phase: Phase,
    /// It has returned `Ready` (for `FusedFuture`; beside `phase`, in what
    /// would be padding).
    ready: bool,
    _pinned: PhantomPinned,
}

// SAFETY: the node's waker slot and links are reached by other threads only
// under the state's bit lock (the owner's lock-free `holds` only compares
// pointers); the rest is `T`.
unsafe impl<T: HoldsState + Send> Send for Waiter<T> {}
// SAFETY: `&Waiter` gives access to nothing but `&T`; polling needs `Pin<&mut>`.
unsafe impl<T: HoldsState + Sync> Sync for Waiter<T> {}

impl<T: HoldsState> Waiter<T> {
    pub(crate) fn new(holder: T) -> Self {
        Self {
            holder,
            node: WaiterNode::new(),
            phase: Phase::Idle,
            ready: false,
            _pinned: PhantomPinned,
        }
    }

    pub(crate) fn holder(&self) -> &T {
        &self.holder
    }

    fn node(&self) -> NonNull<Node> {
        NonNull::from(&self.node).cast()
    }

    /// Ready once the state is cancelled. The first poll links the node (one
    /// lock); a later poll with the stored waker is one load; a different
    /// waker is swapped in under the lock.
    #[inline]
    pub(crate) fn poll_cancelled(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: we never move out of `this`; the node stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let poll = this.poll_inner(cx);
        this.ready |= poll.is_ready();
        poll
    }

    /// Whether a poll has returned `Ready`.
    #[cfg(feature = "futures-core")]
    pub(crate) fn has_been_ready(&self) -> bool {
        self.ready
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let this = self;
        let state = this.holder.state();
        if state.get().is_cancelled() {
            return Poll::Ready(());
        }
        match this.phase {
            Phase::Idle => {
                // SAFETY: we hold a reference.
                if !unsafe { link::can_be_cancelled(state.ptr()) } {
                    // Nothing can cancel it: store nothing.
                    return Poll::Pending;
                }
                // Clone outside the lock: a waker clone is user code.
                let waker = cx.waker().clone();
                let mut old = None;
                let node = this.node();
                let slot = &this.node;
                // SAFETY: the node is IDLE and pinned; `Drop` detaches it
                // before it moves or dies; the holder keeps the state alive.
                let attached = unsafe {
                    state
                        .get()
                        .attach(node, || old = slot.replace_waker(Some(waker)))
                };
                if attached {
                    // Recorded before any waker's drop (user code) runs.
                    this.phase = Phase::Attached;
                }
                drop(old);
                if attached {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            }
            // Done waiting: nothing is stored any more.
            Phase::Released => Poll::Pending,
            Phase::Attached => {
                let waker = cx.waker();
                if this.node.waker.holds(waker) {
                    // The stored waker wakes this task: nothing to do. If the
                    // canceller took it meanwhile, the wake is on its way.
                    return Poll::Pending;
                }
                // Clone outside the lock: a waker clone is user code.
                let waker = waker.clone();
                let slot = &this.node;
                let guard = state.get().word.lock();
                // SAFETY: we hold the lock; the node is ours and live.
                let (linked, old) = unsafe {
                    if slot.node.state(Ordering::Relaxed) == LINKED {
                        (true, slot.replace_waker(Some(waker)))
                    } else {
                        (false, Some(waker))
                    }
                };
                drop(guard);
                drop(old);
                // Not linked: the canceller took the node: cancelled.
                if linked {
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            }
        }
    }
}

impl<T: HoldsState> Waiter<T> {
    /// Stops waiting for good: the node leaves the list and its waker is
    /// dropped, so a later cancellation wakes nobody for this waiter. For
    /// adapters whose inner future or stream has finished.
    pub(crate) fn release(self: Pin<&mut Self>) {
        // SAFETY: we never move out of `this`.
        let this = unsafe { self.get_unchecked_mut() };
        let was = core::mem::replace(&mut this.phase, Phase::Released);
        if was == Phase::Attached {
            this.detach();
        }
    }

    /// Takes the node out of the list if it is still there, and drops its
    /// waker (after the unlock, with the phase already changed).
    fn detach(&mut self) {
        let slot = &self.node;
        // SAFETY: attached to this state in `poll_cancelled`; the waker slot
        // is ours under the lock.
        let waker = unsafe {
            self.holder.state().get().detach(self.node(), |linked| {
                // Not linked: DONE, its waker moved out by the canceller
                // (the slot is stale, see `WakerSlot::move_out`).
                if linked { slot.take_waker() } else { None }
            })
        };
        drop(waker);
    }
}

impl<T: HoldsState> Drop for Waiter<T> {
    fn drop(&mut self) {
        if self.phase == Phase::Attached {
            self.detach();
        }
    }
}

/// The drain's step for a run of waiters at the front of `st`'s list: up to
/// a batch of them leave the list in one cut. Per node: one read of `next`,
/// the waker moved out, one store of DONE (`next` and the waker are read
/// before it: the owner may free the node once it sees DONE); then the first
/// node after the run becomes the head. The cut nodes keep stale links:
/// they are DONE, so no owner unlinks them. After the unlock the wakers are
/// woken; with `std` a panicking `wake` is kept and the rest still woken.
///
/// # Safety
/// The front node of `st`'s list is a waiter and `guard` holds its lock.
#[inline(always)]
pub(crate) unsafe fn step<'a>(st: &State, guard: WordGuard<'a>, ctx: &mut Drain) -> Next<'a> {
    // SAFETY: caller's contract: the list is not empty.
    let front = unsafe { crate::raw::list::front(&st.head).unwrap_unchecked() };
    // SAFETY: listed, valid under the lock.
    let after = unsafe { crate::raw::list::next(front) };
    let run_of_one = after.is_null()
        // SAFETY: `after` is listed (valid under the lock); `kind` is immutable.
        || unsafe { Node::of(NonNull::new_unchecked(after)).as_ref().kind() } != Kind::Waiter;
    if run_of_one {
        // A run of one (a token with one future, the common case): the same
        // step without the batch.
        // SAFETY: as in the loop below, for one node.
        let waker = unsafe {
            let waiter = front.cast::<WaiterNode>();
            let waker = waiter.as_ref().move_waker_out();
            waiter.as_ref().node.set_done_unflagged();
            st.cut_front(after);
            waker
        };
        drop(guard);
        #[cfg(feature = "std")]
        ctx.panics.catch(|| waker.wake());
        #[cfg(not(feature = "std"))]
        {
            let _ = &ctx;
            waker.wake();
        }
        return if after.is_null() {
            Next::Empty
        } else {
            Next::Unlocked
        };
    }
    // SAFETY: forwarded.
    unsafe { step_run(st, guard, ctx, front) }
}

/// `step` for a run of more than one waiter, starting at `front`.
///
/// # Safety
/// As for `step`; `front` is the front node.
#[inline(never)]
unsafe fn step_run<'a>(
    st: &State,
    guard: WordGuard<'a>,
    ctx: &mut Drain,
    front: NonNull<Links>,
) -> Next<'a> {
    let mut batch = WakeBatch::new();
    let mut next: *mut Links = front.as_ptr();
    // Bounded by nodes, not wakers: at most WAKE_BATCH pushes, so nothing
    // between the first DONE and the cut can panic.
    let mut nodes = 0;
    loop {
        // SAFETY: `next` is a listed waiter (checked below before looping),
        // valid under the lock we hold; its waker slot is guarded by that
        // lock. `next` is read before DONE, after which the owner may free
        // the node.
        unsafe {
            let waiter = NonNull::new_unchecked(next).cast::<WaiterNode>();
            next = crate::raw::list::next(NonNull::new_unchecked(next));
            // One per node, and at most WAKE_BATCH nodes.
            batch.write_at(nodes, waiter.as_ref().move_waker_out());
            waiter.as_ref().node.set_done_unflagged();
        }
        nodes += 1;
        if nodes == WAKE_BATCH || next.is_null() {
            break;
        }
        // SAFETY: `next` is listed (valid under the lock); `kind` is immutable.
        if unsafe { Node::of(NonNull::new_unchecked(next)).as_ref().kind() } != Kind::Waiter {
            break;
        }
    }
    // SAFETY: `nodes` slots were written, one per node.
    unsafe { batch.set_len(nodes) };
    // SAFETY: we hold the lock; `next` is null or listed. The nodes cut off
    // are DONE: nobody will `remove` them.
    unsafe { st.cut_front(next) };
    let empty = next.is_null();
    drop(guard);
    #[cfg(feature = "std")]
    while let Err(payload) =
        std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| batch.wake_all()))
    {
        ctx.panics.keep(payload);
    }
    #[cfg(not(feature = "std"))]
    {
        let _ = &ctx;
        batch.wake_all();
    }
    if empty { Next::Empty } else { Next::Unlocked }
}
