//! `CancellationToken`: the observing side. Cheap to clone, one pointer wide.

use core::fmt;
use core::hash::{Hash, Hasher};

use crate::raw::{HoldsState, StateRef};
use crate::reason::{CancelOrigin, CancelReason, Cancelled};

/// Observes a [`CancellationSource`](crate::CancellationSource): poll it,
/// register callbacks on it, await it or block on it. A token cannot cancel
/// anything; hand tokens, not sources, to the code you want to be able to stop.
///
/// Clones share one state; tokens compare and hash by that state's identity.
///
/// ```
/// use cancel_core::{CancellationSource, CancellationToken};
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// assert_eq!(token, token.clone());
/// assert!(!token.is_cancelled());
/// source.cancel();
/// assert!(token.is_cancelled());
/// assert!(!CancellationToken::none().can_be_cancelled());
/// ```
#[derive(Clone)]
pub struct CancellationToken {
    state: StateRef,
}

impl CancellationToken {
    /// A token that is never cancelled, for APIs that take a token when the
    /// caller has none. Allocates nothing; usable in `const` and `static`
    /// (.NET's `CancellationToken.None`, C++'s `std::nostopstate` token; the
    /// role of C++26's `never_stop_token`).
    ///
    /// Pass it where a function takes a token and nothing should ever stop
    /// the call: a test, a command-line tool, a caller that does not
    /// support cancellation yet. Registering on it, or linking to it, costs
    /// nothing.
    ///
    /// ```
    /// use cancel_core::{CancellationToken, Cancelled};
    ///
    /// fn sum(values: &[u64], token: &CancellationToken) -> Result<u64, Cancelled> {
    ///     token.check()?;
    ///     Ok(values.iter().sum())
    /// }
    ///
    /// static NEVER: CancellationToken = CancellationToken::none();
    /// assert_eq!(sum(&[1, 2, 3], &NEVER), Ok(6));
    /// assert!(!NEVER.can_be_cancelled());
    /// assert_eq!(CancellationToken::default(), CancellationToken::none());
    /// ```
    #[cfg(not(loom))]
    pub const fn none() -> Self {
        Self {
            state: StateRef::none(),
        }
    }

    /// A token that is never cancelled (loom build: not `const`).
    #[cfg(loom)]
    pub fn none() -> Self {
        Self {
            state: StateRef::none(),
        }
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn from_state(state: StateRef) -> Self {
        Self { state }
    }

    pub(crate) fn state(&self) -> &StateRef {
        &self.state
    }

    /// Whether the source has been cancelled. One `Acquire` load, wait-free:
    /// cheap enough to call in a tight loop. When it returns `true`, everything
    /// the cancelling thread wrote before `cancel()` is visible to the caller.
    ///
    /// Poll it in processing loops that can stop at any iteration and want
    /// to decide themselves what to return; to leave with an error, use
    /// [`check`](Self::check) and `?`.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let mut done = Vec::new();
    /// for item in 0..100 {
    ///     if token.is_cancelled() {
    ///         break; // keep what is done so far
    ///     }
    ///     done.push(item);
    ///     if item == 9 {
    ///         source.cancel(); // e.g. another thread asks us to stop
    ///     }
    /// }
    /// assert_eq!(done.len(), 10);
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.state.is_cancelled()
    }

    /// Whether this token is, or may still become, cancelled: `false` for
    /// [`none()`](Self::none) and for a token whose every source handle was
    /// dropped without cancelling, with no timeout armed on it and no
    /// cancellable parent linked to it. An armed timeout counts as a
    /// canceller: the token of `CancellationSource::with_timeout(d)` can be
    /// cancelled after the source is dropped, until the timeout fires.
    /// Lets code skip setting up cancellation work that could never fire:
    /// when it is `false`, `register` drops its closure unrun and a future
    /// stores no waker.
    ///
    /// A `false` is exact; a `true` may be conservative on one kind of
    /// graph: the walk up the links branches into each extra parent, and
    /// after 64 such branchings it stops and answers `true` (a graph of
    /// stacked diamonds has exponentially many paths; .NET answers `true`
    /// for every linked token). A tree, a chain, or a few diamonds is always
    /// judged exactly.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// assert!(token.can_be_cancelled());
    /// drop(source); // the last source handle, never cancelled
    /// assert!(!token.can_be_cancelled(), "nothing could cancel it now: skip the set-up");
    /// assert!(!token.is_cancelled());
    /// ```
    pub fn can_be_cancelled(&self) -> bool {
        self.state.can_be_cancelled()
    }

    /// `Err(Cancelled)` once cancelled, for `?` at the points where an
    /// operation may stop (the `ThrowIfCancellationRequested` of .NET).
    ///
    /// Use it between the steps of an operation that returns a `Result`:
    /// the error carries the [`reason`](Cancelled::reason), so callers can
    /// tell a timeout from a request. In a very tight loop, check every N
    /// iterations.
    ///
    /// ```
    /// use cancel_core::{CancellationSource, CancellationToken, Cancelled};
    ///
    /// fn copy(src: &[u8], dst: &mut Vec<u8>, token: &CancellationToken) -> Result<(), Cancelled> {
    ///     for chunk in src.chunks(4) {
    ///         token.check()?;
    ///         dst.extend_from_slice(chunk);
    ///     }
    ///     Ok(())
    /// }
    ///
    /// let source = CancellationSource::new();
    /// let mut out = Vec::new();
    /// assert!(copy(b"hello world", &mut out, &source.token()).is_ok());
    /// source.cancel();
    /// let err = copy(b"hello world", &mut out, &source.token()).unwrap_err();
    /// assert!(err.reason().is_requested());
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(self.cancelled_error())
        } else {
            Ok(())
        }
    }

    /// Why the source was cancelled; `None` while it is not. Never `None`
    /// once [`is_cancelled`](Self::is_cancelled) has returned `true`.
    ///
    /// Use it where the outcome is reported: to tell a timeout
    /// ([`is_timed_out`](CancelReason::is_timed_out)) from a request, or to
    /// recover the cause a canceller gave to
    /// [`cancel_with`](crate::CancellationSource::cancel_with). A linked
    /// token reports the reason of the parent that cancelled it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancelReason, CancellationSource, ManualClock};
    ///
    /// let clock = ManualClock::new(); // a test clock: no waiting
    /// let user = CancellationSource::new();
    /// let call = CancellationSource::linked([&user]);
    /// clock.cancel_after(&call, Duration::from_secs(5));
    /// let token = call.token();
    /// assert_eq!(token.reason(), None);
    ///
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(token.reason(), Some(CancelReason::TimedOut));
    /// assert_eq!(user.reason(), None, "the timeout was the call's own");
    /// ```
    pub fn reason(&self) -> Option<CancelReason> {
        self.state.reason().map(CancelReason::from_raw)
    }

    /// Where the cancellation came from, `None` while not cancelled: the
    /// source's own `cancel`, its own timeout, or a parent through a link.
    /// See [`CancelOrigin`]; [`reason`](Self::reason) says why.
    ///
    /// ```
    /// use cancel_core::{CancelOrigin, CancellationSource};
    /// let parent = CancellationSource::new();
    /// let child = parent.child();
    /// assert_eq!(child.token().origin(), None);
    /// parent.cancel();
    /// assert_eq!(child.token().origin(), Some(CancelOrigin::Parent));
    /// assert_eq!(parent.token().origin(), Some(CancelOrigin::Cancel));
    /// ```
    pub fn origin(&self) -> Option<CancelOrigin> {
        self.state.origin().map(CancelOrigin::from_raw)
    }

    #[cold]
    pub(crate) fn cancelled_error(&self) -> Cancelled {
        cancelled_error(&self.state)
    }
}

/// The error of a `check()` (or a `run_until_cancelled`) that found `state`
/// cancelled: its reason, `Requested` if it has none yet.
#[cold]
pub(crate) fn cancelled_error(state: &StateRef) -> Cancelled {
    Cancelled::new(
        state
            .reason()
            .map_or(CancelReason::Requested, CancelReason::from_raw),
    )
}

impl HoldsState for CancellationToken {
    fn state(&self) -> &StateRef {
        &self.state
    }
}

impl HoldsState for &CancellationToken {
    fn state(&self) -> &StateRef {
        &self.state
    }
}

impl Default for CancellationToken {
    /// [`CancellationToken::none()`].
    fn default() -> Self {
        Self::none()
    }
}

impl PartialEq for CancellationToken {
    fn eq(&self, other: &Self) -> bool {
        self.state.addr() == other.state.addr()
    }
}

impl Eq for CancellationToken {}

impl Hash for CancellationToken {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.state.addr().hash(state);
    }
}

impl CancellationToken {
    /// The fields both `Debug` forms show: the state, the reason when it is
    /// cancelled, the deadline when one is armed (`std`).
    pub(crate) fn debug_fields(&self, d: &mut fmt::DebugStruct<'_, '_>) {
        d.field("is_cancelled", &self.is_cancelled());
        if let Some(reason) = self.reason() {
            d.field("reason", &reason);
        } else {
            d.field("can_be_cancelled", &self.can_be_cancelled());
            #[cfg(feature = "std")]
            if let Some(deadline) = self.deadline() {
                d.field("deadline", &deadline);
            }
        }
    }
}

/// Shows whether it is cancelled, and why, or else whether it can be and
/// its deadline, if any.
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// assert!(format!("{:?}", source.token()).contains("can_be_cancelled: true"));
/// source.cancel();
/// assert!(format!("{:?}", source.token()).contains("reason: Requested"));
/// ```
impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CancellationToken");
        self.debug_fields(&mut d);
        d.finish()
    }
}

/// The identity conversion, so that APIs taking
/// `impl AsRef<CancellationToken>` take tokens as well as sources.
impl AsRef<CancellationToken> for CancellationToken {
    fn as_ref(&self) -> &CancellationToken {
        self
    }
}
