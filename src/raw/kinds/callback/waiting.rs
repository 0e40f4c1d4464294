//! How an owner waits for its callback running on another thread. With
//! `std`: parked in a registration's drop (`wait_done`), or as a task
//! awaiting `unregister_async` (`poll_detach`). Either way the owner leaves
//! its `Waiting` in the `parker` slot of the node's running record (on the
//! canceller's stack) under the state's lock, and the canceller, once the
//! call has returned, takes it, marks the node DONE and notifies it
//! (`step`, in `mod.rs`). Without `std` only an inline node's owner waits,
//! and it spins (`spin_done`): a boxed node's drop orphans it instead.

use core::ptr::NonNull;

use super::CallbackHeader;
#[cfg(feature = "std")]
use crate::raw::list;
use crate::raw::node::DONE;
#[cfg(feature = "std")]
use crate::raw::node::{DETACHED, LINKED, RUNNING};
use crate::raw::state::State;
use crate::sync::Ordering;
#[cfg(feature = "std")]
use crate::sync::park::Thread;

/// Without `std`: spins until the canceller marks the running callback
/// DONE. The canceller needs no help from us to finish (it holds no lock
/// while the callback runs, and takes only the state's lock after it), so
/// this ends once the callback returns; a wait from the callback's own
/// thread or from an interrupt that preempted it never does (documented on
/// `PinnedRegistration`).
///
/// # Safety
/// `cb` is an inline node RUNNING in `st`'s drain, owned by the caller.
#[cfg(not(feature = "std"))]
pub(super) unsafe fn spin_done(st: &State, cb: NonNull<CallbackHeader>) {
    let backoff = crate::sync::Backoff::new();
    // SAFETY: the node is RUNNING or DONE and stays allocated (it is the
    // caller's); its status is atomic.
    while unsafe { cb.as_ref() }.node.state(Ordering::Acquire) != DONE {
        backoff.snooze();
    }
    // As in `wait_done`: the canceller stores DONE under the lock; pass
    // through it so that it has returned before the node's memory goes.
    drop(st.word.lock());
}

/// Who waits for a running callback to return.
#[cfg(feature = "std")]
pub(crate) enum Waiting {
    /// A thread parked in a registration's drop (`wait_done`).
    Thread(Thread),
    /// A task awaiting `unregister_async` (`poll_detach`).
    Task(core::task::Waker),
}

#[cfg(feature = "std")]
impl Waiting {
    /// Tells the owner the callback returned. A task's waker is user code:
    /// its panic is the caller's to keep.
    pub(super) fn notify(self) {
        match self {
            Waiting::Thread(thread) => thread.unpark(),
            Waiting::Task(waker) => waker.wake(),
        }
    }
}

/// Waits until the canceller marks the running callback DONE, spinning
/// briefly and then parking, and frees the node.
///
/// # Safety
/// `cb` is RUNNING on another thread in `st`'s drain and owned by the caller.
#[cfg(feature = "std")]
pub(super) unsafe fn wait_done(st: &State, cb: NonNull<CallbackHeader>) {
    use crate::sync::{Backoff, park};
    // SAFETY: the node is RUNNING or DONE and ours to free once DONE; its
    // running record is guarded by the state's lock, like its status, and
    // live while it is RUNNING.
    unsafe {
        let header = cb.as_ref();
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if header.node.state(Ordering::Acquire) == DONE {
                // See below: let the canceller leave the lock first.
                drop(st.word.lock());
                CallbackHeader::dealloc(cb);
                return;
            }
            backoff.snooze();
        }
        // Get the handle outside the lock: it may allocate.
        let me = park::current();
        let guard = st.word.lock();
        if header.node.state(Ordering::Relaxed) == DONE {
            drop(guard);
            drop(me);
            CallbackHeader::dealloc(cb);
            return;
        }
        // Not DONE, under the lock: RUNNING, with its record.
        let old = header
            .running()
            .parker
            .with_mut(|p| (*p).replace(Waiting::Thread(me)));
        drop(guard);
        drop(old);
        // Acquire pairs with the canceller's Release store of DONE; park
        // may return spuriously, hence the loop.
        while header.node.state(Ordering::Acquire) != DONE {
            park::park();
        }
        // The canceller stores DONE while holding the lock and is still
        // inside that store's call when we may see it: pass through the
        // lock so it has returned before the node is freed.
        drop(st.word.lock());
        CallbackHeader::dealloc(cb);
    }
}

/// What an asynchronous detach found (`poll_detach`).
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolledDetach {
    /// Removed before it started: the closure is still in the node; the
    /// owner drops it and frees the node.
    Removed,
    /// It ran (or ran on this very thread and was abandoned): the node is
    /// freed.
    Finished,
    /// It is running on another thread: the task's waker is stored in the
    /// node, and the canceller wakes it once the call returns.
    Pending,
}

/// Wakers an asynchronous detach did not keep, for the caller to drop (user
/// code) once its own state is settled.
#[cfg(feature = "std")]
pub(crate) struct Leftovers {
    /// This poll's clone, unless stored.
    pub(crate) clone: Option<core::task::Waker>,
    /// An earlier poll's, taken from a node freed by this one.
    pub(crate) stored: Option<Waiting>,
}

/// One poll of an asynchronous detach of a boxed node (.NET's
/// `CancellationTokenRegistration.DisposeAsync`): like `detach` with
/// waiting, except that a callback running on another thread leaves the
/// task's waker in the node (the canceller wakes it after the call
/// returns) instead of parking the thread.
///
/// # Safety
/// `cb` is a boxed callback node attached to `st`, owned by the caller, not
/// detached yet (or only `Pending` so far). After `Removed` or `Finished`
/// the caller never touches it again but as said there; after `Pending` it
/// polls again or gives up with `detach` without waiting (which orphans a
/// running node and drops the task's waker).
#[cfg(feature = "std")]
pub(crate) unsafe fn poll_detach(
    st: &State,
    cb: NonNull<CallbackHeader>,
    waker: &core::task::Waker,
) -> (PolledDetach, Leftovers) {
    // Cloned outside the lock: a waker clone is user code. Unless stored,
    // the clone goes back to the caller, which drops it (user code again,
    // which may panic) only once it has settled its own state; so does a
    // waker an earlier poll stored in a node freed here.
    let waker = waker.clone();
    let guard = st.word.lock();
    // SAFETY: as in `detach`: our node stays allocated until we free it;
    // its status, links and running record change only under the lock we
    // hold, and the record is live while it is RUNNING.
    unsafe {
        let header = cb.as_ref();
        match header.node.state(Ordering::Relaxed) {
            LINKED => {
                list::remove(&st.head, cb.cast());
                header.node.set_state_unflagged(DETACHED);
                drop(guard);
                let left = Leftovers {
                    clone: Some(waker),
                    stored: None,
                };
                (PolledDetach::Removed, left)
            }
            RUNNING if header.running().runner == crate::sync::park::thread_key() => {
                // Inside its own callback, on the cancelling thread: abandon
                // it, as `detach` does.
                let running = header.running();
                running.abandoned.store(1, Ordering::Relaxed);
                // Stored by an earlier poll, on another thread.
                let stored = running.parker.with_mut(|p| (*p).take());
                drop(guard);
                CallbackHeader::dealloc(cb);
                let left = Leftovers {
                    clone: Some(waker),
                    stored,
                };
                (PolledDetach::Finished, left)
            }
            RUNNING => {
                let old = header
                    .running()
                    .parker
                    .with_mut(|p| (*p).replace(Waiting::Task(waker)));
                drop(guard);
                drop(old);
                let left = Leftovers {
                    clone: None,
                    stored: None,
                };
                (PolledDetach::Pending, left)
            }
            state => {
                debug_assert!(state == DONE, "unexpected node state {state}");
                // Seen under the lock: the canceller is done with it, and
                // took any stored waker (from its record, before DONE) to
                // wake it: the free below runs no user code.
                let stored = None;
                drop(guard);
                CallbackHeader::dealloc(cb);
                let left = Leftovers {
                    clone: Some(waker),
                    stored,
                };
                (PolledDetach::Finished, left)
            }
        }
    }
}
