//! `CancellationSource`: the side that can cancel.

use core::fmt;

use crate::raw::{Reason, StateRef};
use crate::token::CancellationToken;

/// Signals cancellation to every [`CancellationToken`] made from it.
///
/// Clones are handles to the same source. Dropping every handle does not
/// cancel (use [`drop_guard`](Self::drop_guard) for that); it makes the
/// tokens report [`can_be_cancelled`](CancellationToken::can_be_cancelled)
/// `false` unless something else can still cancel them: an armed timeout
/// (see [`with_timeout`](Self::with_timeout)) or a parent.
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// let worker = std::thread::spawn(move || {
///     let mut spins = 0u64;
///     while !token.is_cancelled() {
///         spins += 1;
///         std::hint::spin_loop();
///     }
///     spins
/// });
/// assert!(source.cancel());
/// assert!(!source.cancel(), "only the first call performs the cancellation");
/// worker.join().unwrap();
/// ```
pub struct CancellationSource {
    state: StateRef,
}

impl CancellationSource {
    /// A new, uncancelled source. One allocation.
    pub fn new() -> Self {
        Self {
            state: StateRef::new_source(),
        }
    }

    pub(crate) fn from_state(state: StateRef) -> Self {
        Self { state }
    }

    pub(crate) fn state(&self) -> &StateRef {
        &self.state
    }

    /// A token observing this source. No allocation.
    pub fn token(&self) -> CancellationToken {
        CancellationToken::from_state(self.state.clone())
    }

    /// Cancels the source with reason [`CancelReason::Requested`](crate::CancelReason::Requested).
    ///
    /// Returns `true` only for the call that performed the cancellation; any
    /// number of threads may call it at once. Before it returns, every
    /// callback registered on the source and on its linked descendants has
    /// run on this thread, every waiting future and thread has been woken,
    /// and every descendant is cancelled. The one exception is a part of the
    /// subtree that another thread cancelled first: that thread runs it, and
    /// this call does not wait for it (a `cancel()` that returns `false` does
    /// not wait either), as with .NET's `Cancel` and C++'s `request_stop`.
    /// Waiting there could deadlock a callback that cancels another source.
    ///
    /// With `std`, a panicking callback does not stop the others: all of them
    /// run, the source ends fully cancelled, and then the first panic resumes
    /// here.
    pub fn cancel(&self) -> bool {
        self.state.cancel(Reason::Requested)
    }

    pub(crate) fn cancel_reason(&self, reason: Reason) -> bool {
        self.state.cancel(reason)
    }

    /// Whether the source has been cancelled (one `Acquire` load).
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }
}

impl Clone for CancellationSource {
    fn clone(&self) -> Self {
        self.state.add_source();
        Self {
            state: self.state.clone(),
        }
    }
}

impl Drop for CancellationSource {
    fn drop(&mut self) {
        self.state.remove_source();
    }
}

impl Default for CancellationSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancellationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationSource")
            .field("is_cancelled", &self.is_cancelled())
            .finish()
    }
}
