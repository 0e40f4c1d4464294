//! Blocked threads (`std`): the node on the waiting thread's stack, the wait
//! itself, and its step in the drain.
//!
//! ```text
//!  IDLE ──wait (not cancelled)──▶ LINKED ──drain pops──▶ DONE (thread unparked after the unlock)
//!                                   └──deadline passes──▶ DETACHED
//! ```
//!
//! The thread parks until its node is DONE (`Acquire`, pairing with the
//! canceller's `Release` store), absorbing spurious unparks. Seeing DONE, it
//! passes through the lock once before its frame (and the node in it) goes
//! away: the canceller stores DONE while holding the lock and may still be
//! inside that store's call. A token nothing can cancel is not waited on:
//! the thread sleeps out its deadline, or forever.

use core::ptr::NonNull;
use std::time::Instant;

use super::{Next, link};
use crate::raw::lifetime::StateRef;
use crate::raw::node::{DONE, Kind, Node};
use crate::raw::state::State;
use crate::raw::word::WordGuard;
use crate::sync::park::{self, Thread};
use crate::sync::{Ordering, UnsafeCell};

/// A blocked thread's node: lives on the waiting thread's stack.
#[repr(C)]
struct ThreadNode {
    node: Node,
    thread: UnsafeCell<Option<Thread>>,
}

/// Parks until `deadline` (or forever); returns whether it passed.
fn sleep(deadline: Option<Instant>) -> bool {
    match deadline {
        None => park::park(),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            park::park_timeout(deadline - now);
        }
    }
    false
}

/// Blocks the calling thread until `state` is cancelled or `deadline`
/// passes; true if cancelled.
pub(crate) fn wait(state: &StateRef, deadline: Option<Instant>) -> bool {
    let st = state.get();
    if st.is_cancelled() {
        return true;
    }
    // SAFETY: we hold a reference.
    if !unsafe { link::can_be_cancelled(state.ptr()) } {
        // Nothing can cancel it: sleep out the deadline, or forever.
        while !sleep(deadline) {}
        return st.is_cancelled();
    }
    let node = ThreadNode {
        node: Node::new(Kind::Thread),
        thread: UnsafeCell::new(Some(park::current())),
    };
    let ptr = NonNull::from(&node).cast::<Node>();
    // SAFETY: the node is new, on our stack, and outlives its listing: we
    // return only after it is DONE or we unlinked it.
    if !unsafe { st.attach(ptr, || {}) } {
        return true;
    }
    loop {
        // Acquire pairs with the canceller's Release store of DONE.
        if node.node.state(Ordering::Acquire) == DONE {
            // Let the canceller leave the lock before this frame goes.
            drop(st.word.lock());
            return true;
        }
        if sleep(deadline) {
            break;
        }
    }
    // SAFETY: attached above; ours.
    let linked = unsafe { st.detach(ptr, |linked| linked) };
    // Not linked means the canceller popped it (it is DONE).
    !linked
}

/// The drain's step for a popped thread node: takes the handle, marks it
/// DONE, unlocks, unparks.
///
/// # Safety
/// The front node of `st`'s list is a thread node and `guard` holds its
/// lock.
#[inline]
pub(crate) unsafe fn step<'a>(st: &State, guard: WordGuard<'a>) -> Next<'a> {
    // SAFETY: caller's contract.
    let popped = unsafe { st.pop_front() };
    // SAFETY: popped under the lock; the handle is moved out before DONE,
    // after which the waiting thread may return (and its frame go).
    let thread = unsafe {
        let node = popped.cast::<ThreadNode>().as_ref();
        let thread = node.thread.with_mut(|p| (*p).take());
        node.node.set_state(DONE);
        thread
    };
    drop(guard);
    if let Some(thread) = thread {
        thread.unpark();
    }
    Next::Unlocked
}
