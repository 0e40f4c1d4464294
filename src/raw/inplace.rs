//! A source's state in place: inside the caller's own value (a `static`,
//! a runtime's task struct), not on the heap. It is the same `State`, word
//! and list as a heap source's, observed by the same node kinds through an
//! uncounted [`StateView`]; only its lifetime differs:
//!
//! - **Nothing counts it.** Its count of references starts at one (its own,
//!   never given back), so the clones and drops of counted references that
//!   some paths take and give back in pairs can never reach zero: an
//!   in-place state is never freed by `lifetime.rs`.
//! - **Borrows keep it alive.** Every observer (token, future, pinned
//!   registration) borrows it for `'a`, so the borrow checker forbids
//!   moving or dropping it while any is alive; a drop (`&mut self`) sees
//!   no live observer and no canceller in the middle of a call (`cancel`
//!   borrows it too).
//! - **What a leak leaves behind.** An observer leaked with `mem::forget`
//!   (a `Box::pin`ned future or registration) ends the borrow without
//!   leaving the list. Its node is leaked memory, valid forever, and a
//!   callback's closure is `'static`: if the source is then moved its list
//!   still works (no node points at the head: `list.rs`), a cancel wakes
//!   or runs the leaked node as usual, and a drop leaves it there, as a
//!   heap state's death does (`lifetime::retire`).
//! - **A timeout pins it.** A clock's queue keeps a timer node that points
//!   at the state, beyond any borrow, so arming one takes the source
//!   pinned (`Pin<&InplaceSource>`): it is never moved again, and its drop
//!   runs before its memory goes. The drop retires the timer (out of the
//!   list under the state's lock, out of the queue under the queue's), then
//!   waits for a fire that took a counted reference before that (under the
//!   queue's lock) to give it back: the fire's drain is then over.
//!
//! A drop (`&mut self`) finds no observer borrowing the state and no call
//! of its owner inside it; a clock's fire is the one outside user left.

use super::cancel;
#[cfg(feature = "alloc")]
use super::kinds::timer::{self, Ticks, Timeline};
use super::lifetime::StateView;
#[cfg(feature = "alloc")]
use super::reason::CustomCause;
use super::reason::Reason;
use super::state::State;
use super::word::{Origin, SOURCE_ONE};

/// The state of an in-place source, with its own uncounted reference.
pub(crate) struct InplaceState {
    state: State,
}

impl InplaceState {
    /// A new state: not cancelled, one canceller (the owner), one reference
    /// that is never given back.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: State::with_word(SOURCE_ONE, 1),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: State::with_word(SOURCE_ONE, 1),
        }
    }

    /// The state, borrowed for as long as `self` is.
    #[inline(always)]
    pub(crate) fn view(&self) -> StateView<'_> {
        StateView::borrow(&self.state)
    }

    /// Cancels with `reason`, as a heap source's `cancel` does: the same
    /// claim and drain, over an uncounted reference that the borrow of
    /// `self` keeps valid for the whole call.
    pub(crate) fn cancel(&self, reason: Reason) -> bool {
        cancel::cancel(self.view().as_state_ref(), reason, Origin::Cancel)
    }

    /// Arms this state's timeout on `timeline` (see
    /// `StateRef::arm_timeout`; `NEVER` disarms). The caller holds the
    /// source pinned, so the state never moves while a queue points at it.
    #[cfg(feature = "alloc")]
    pub(crate) fn arm_timeout(
        &self,
        timeline: &alloc::sync::Arc<Timeline>,
        deadline: Ticks,
        cause: Option<alloc::sync::Arc<CustomCause>>,
    ) {
        // The owner is the state's one source handle (SOURCE_ONE).
        self.view()
            .as_state_ref()
            .arm_timeout(timeline, deadline, cause);
    }

    /// Disarms this state's timeout; whether it was armed.
    #[cfg(feature = "alloc")]
    pub(crate) fn disarm_timeout(&self) -> bool {
        timer::disarm_source(&self.state)
    }
}

#[cfg(feature = "alloc")]
impl Drop for InplaceState {
    fn drop(&mut self) {
        let st = &self.state;
        // Under the lock: a fire may be claiming the state meanwhile.
        let guard = st.word.lock();
        // SAFETY: we hold the lock.
        let node = unsafe { timer::retire(st) };
        drop(guard);
        // Out of the queue: after this no fire can take a reference.
        let taken = node.as_ref().and_then(|node| Timeline::disarm(node));
        // A fire that took one before gives it back when its drain ends,
        // also when that drain already took the timer node out of the list
        // (so `node` is `None`). Acquire pairs with that release's
        // `Release` decrement: the drain happens-before the memory goes.
        // Never armed: the count is one already (observers borrow).
        let backoff = crate::sync::Backoff::new();
        while st.refs().load(crate::sync::Ordering::Acquire) != 1 {
            backoff.snooze();
        }
        // User code (a cause's `Drop`, the clock's last handle), last.
        drop((taken, node));
    }
}
