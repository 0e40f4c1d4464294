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
//!
//! No `Drop` of its own: a drop (`&mut self`) finds no observer borrowing
//! the state and no call inside it; `State`'s fields drop a custom cause.

use super::cancel;
use super::lifetime::StateView;
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
}
