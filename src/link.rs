//! Linked sources: a child cancelled by any of its parents.

use alloc::vec::Vec;
use core::error::Error;

use crate::raw::{Reason, StateRef};
use crate::source::CancellationSource;
use crate::token::CancellationToken;

/// Up to this many distinct parents are collected on the stack; more spill
/// into a temporary `Vec`.
const INLINE_PARENTS: usize = 8;

impl CancellationSource {
    /// A source that is cancelled when any of `parents` is, or when it is
    /// cancelled itself; cancelling it never cancels a parent.
    ///
    /// The parents are sources or tokens, by reference or by value: anything
    /// that is `AsRef<CancellationToken>`. To mix both kinds in one array,
    /// lend the sources as tokens: `[source.as_ref(), &token]`.
    ///
    /// [`none()`](CancellationToken::none) parents are skipped and a parent
    /// given twice counts once; with no parent left this is a plain source.
    /// If a parent is already cancelled, the new source is born cancelled with
    /// that parent's reason and links to nothing. Otherwise the source and
    /// one link node per parent take one allocation in all.
    ///
    /// The links live as long as the new source's state has any handle
    /// (source, token, registration, future); they leave the parents' lists
    /// when it is cancelled or its last handle is dropped.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let user = CancellationSource::new();
    /// let shutdown = CancellationSource::new();
    /// let request = CancellationSource::linked([&user, &shutdown]);
    /// request.cancel();
    /// assert!(!user.is_cancelled() && !shutdown.is_cancelled());
    ///
    /// let shutdown_token = shutdown.token();
    /// let request = CancellationSource::linked([user.as_ref(), &shutdown_token]);
    /// shutdown.cancel();
    /// assert!(request.is_cancelled());
    ///
    /// // Tokens by value, from any iterator.
    /// let tokens = vec![user.token(), CancellationSource::new().token()];
    /// let request = CancellationSource::linked(tokens);
    /// user.cancel();
    /// assert!(request.is_cancelled());
    /// ```
    pub fn linked<P: AsRef<CancellationToken>>(
        parents: impl IntoIterator<Item = P>,
    ) -> CancellationSource {
        // The parents are kept here while the child links to them: on the
        // stack up to INLINE_PARENTS, on the heap beyond.
        let mut inline: [Option<P>; INLINE_PARENTS] = [const { None }; INLINE_PARENTS];
        let mut count = 0;
        let mut spill: Vec<P> = Vec::new();
        for parent in parents {
            let state = parent.as_ref().state();
            if state.is_none() {
                continue;
            }
            if spill.is_empty() {
                let seen = inline[..count]
                    .iter()
                    .flatten()
                    .any(|p| p.as_ref().state().addr() == state.addr());
                if seen {
                    continue;
                }
                if count < INLINE_PARENTS {
                    inline[count] = Some(parent);
                    count += 1;
                    continue;
                }
                spill.extend(inline.iter_mut().filter_map(Option::take));
            }
            spill.push(parent);
        }
        let none = StateRef::none();
        let state = if spill.is_empty() {
            let mut states: [&StateRef; INLINE_PARENTS] = [&none; INLINE_PARENTS];
            for (slot, parent) in states.iter_mut().zip(inline.iter().flatten()) {
                *slot = parent.as_ref().state();
            }
            StateRef::new_linked(&states[..count])
        } else {
            let mut states: Vec<&StateRef> = spill.iter().map(|p| p.as_ref().state()).collect();
            states.sort_unstable_by_key(|p| p.addr());
            states.dedup_by_key(|p| p.addr());
            StateRef::new_linked(&states)
        };
        CancellationSource::from_state(state)
    }

    /// Cancels with a cause of the caller's own; `token.reason()` then
    /// returns [`CancelReason::Custom`](crate::CancelReason::Custom) holding
    /// it. Like [`cancel`](Self::cancel), returns `true` only for the call
    /// that performed the cancellation; a later cause is dropped.
    ///
    /// Use it when the canceller knows something the cancelled code should
    /// report: the client went away, a sibling task failed with an error.
    /// The cause reaches every linked descendant and is the
    /// [`source`](core::error::Error::source) of the [`Cancelled`](crate::Cancelled) errors.
    ///
    /// ```
    /// use cancel_core::{CancelReason, CancellationSource};
    ///
    /// let source = CancellationSource::new();
    /// let err = std::io::Error::other("client went away");
    /// assert!(source.cancel_with(err));
    /// match source.token().reason() {
    ///     Some(CancelReason::Custom(cause)) => assert_eq!(cause.to_string(), "client went away"),
    ///     other => panic!("{other:?}"),
    /// }
    /// ```
    pub fn cancel_with<E: Error + Send + Sync + 'static>(&self, cause: E) -> bool {
        if self.is_cancelled() {
            return false;
        }
        self.cancel_reason(Reason::custom(cause))
    }
}

impl CancellationToken {
    /// A new source cancelled whenever this token is; the same as
    /// [`CancellationSource::linked([token])`](CancellationSource::linked).
    /// One allocation.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let parent = CancellationSource::new();
    /// let child = parent.token().child();
    /// parent.cancel();
    /// assert!(child.is_cancelled());
    /// ```
    #[must_use = "the child source is dropped at once"]
    pub fn child(&self) -> CancellationSource {
        let state = self.state();
        if state.is_none() {
            return CancellationSource::new();
        }
        CancellationSource::from_state(StateRef::new_child(state))
    }
}
