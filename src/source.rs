//! `CancellationSource`: the side that can cancel.

use core::fmt;
use core::hash::{Hash, Hasher};

use crate::future::WaitForCancellation;
use crate::raw::{Reason, StateRef};
use crate::reason::{CancelOrigin, CancelReason};
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
///
/// # Observing a source directly
/// A source answers what its tokens answer ([`is_cancelled`](Self::is_cancelled),
/// [`reason`](Self::reason), [`can_be_cancelled`](Self::can_be_cancelled)),
/// makes linked children ([`child`](Self::child)), and can be awaited
/// ([`cancelled`](Self::cancelled)) or waited on ([`wait`](Self::wait)),
/// as tokio-util users expect of their token. Callbacks and everything else
/// an observer does are on the token: [`token()`](Self::token), or
/// `source.as_ref()` to lend the source as a `&CancellationToken`; hand
/// tokens, not sources, to code that should only observe. Sources and
/// their tokens compare equal and hash alike: by the identity of the state
/// they share.
pub struct CancellationSource {
    // A token's handle to the state, plus one count of source handles (see
    // `Clone` and `Drop`): so a source can lend itself as a token.
    token: CancellationToken,
}

impl CancellationSource {
    /// A new, uncancelled source. One allocation.
    ///
    /// Make one wherever something may have to stop: an operation, a
    /// request, a whole service. Keep the source where the decision to
    /// cancel is made and hand [`token`](Self::token)s to the code that
    /// does the work. To make a source that follows another one, use
    /// [`child`](Self::child) or [`linked`](Self::linked) instead.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let shutdown = CancellationSource::new();
    /// assert!(!shutdown.is_cancelled());
    /// assert!(shutdown.can_be_cancelled());
    /// ```
    pub fn new() -> Self {
        Self::from_state(StateRef::new_source())
    }

    pub(crate) fn from_state(state: StateRef) -> Self {
        Self {
            token: CancellationToken::from_state(state),
        }
    }

    pub(crate) fn state(&self) -> &StateRef {
        self.token.state()
    }

    /// A token observing this source. No allocation.
    ///
    /// Call it to hand out the right to observe, not to cancel: a worker,
    /// a library call or a callback gets a token; code that holds only a
    /// token cannot cancel anything. Each call gives a handle to the same
    /// state (a reference count, no allocation).
    ///
    /// ```
    /// use cancel_core::{CancellationSource, CancellationToken};
    ///
    /// fn worker(token: CancellationToken) -> u32 {
    ///     let mut steps = 0;
    ///     while !token.is_cancelled() {
    ///         steps += 1;
    ///         std::thread::yield_now();
    ///     }
    ///     steps
    /// }
    ///
    /// let source = CancellationSource::new();
    /// let workers: Vec<_> = (0..2)
    ///     .map(|_| {
    ///         let token = source.token();
    ///         std::thread::spawn(move || worker(token))
    ///     })
    ///     .collect();
    /// source.cancel();
    /// for w in workers {
    ///     w.join().unwrap();
    /// }
    /// assert_eq!(source.token(), source.token(), "one source, one state");
    /// ```
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Why the source was cancelled; `None` while it is not (see
    /// [`CancellationToken::reason`]). Use it where the source's owner
    /// reports the outcome: a timeout, a user's request, or a cause of
    /// its own.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// assert!(source.reason().is_none());
    /// source.cancel();
    /// assert!(source.reason().unwrap().is_requested());
    /// ```
    pub fn reason(&self) -> Option<CancelReason> {
        self.token.reason()
    }

    /// Where the cancellation came from; see
    /// [`CancellationToken::origin`]. Ask the source when its owner must
    /// tell its own timeout from a parent's cancellation.
    ///
    /// ```
    /// use cancel_core::{CancelOrigin, CancellationSource};
    /// let source = CancellationSource::new();
    /// source.cancel();
    /// assert_eq!(source.origin(), Some(CancelOrigin::Cancel));
    /// ```
    pub fn origin(&self) -> Option<CancelOrigin> {
        self.token.origin()
    }

    /// Stops this source's armed timeout without cancelling it; returns
    /// whether one was armed. The source stays usable: a later
    /// `cancel_after` arms it again. (There is nothing to disarm once it
    /// is cancelled.)
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let source = clock.with_timeout(Duration::from_secs(1));
    /// assert!(source.disarm());
    /// assert!(!source.disarm(), "nothing armed any more");
    /// clock.advance(Duration::from_secs(5));
    /// assert!(!source.is_cancelled());
    /// ```
    #[doc(alias = "disarm_timeout")]
    pub fn disarm(&self) -> bool {
        self.state().disarm_timeout()
    }

    /// Readies the source for an unrelated operation (.NET 6's
    /// `TryReset`, for pooling): if it is not cancelled, disarms its
    /// timeout and returns `true`; if it is cancelled (by any means,
    /// its timeout included) returns `false`, and it must not be reused.
    ///
    /// A timeout racing the reset either fires first (then `false`) or is
    /// disarmed and never fires (then `true`). Registrations are not
    /// touched: each belongs to its own handle, to drop with the operation
    /// that made it (.NET's `TryReset` unregisters them instead).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let pooled = clock.with_timeout(Duration::from_secs(1));
    /// assert!(pooled.try_reset(), "not cancelled: reusable");
    /// clock.advance(Duration::from_secs(2));
    /// assert!(!pooled.is_cancelled(), "the old timeout is gone");
    ///
    /// clock.cancel_after(&pooled, Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!pooled.try_reset(), "timed out: not reusable");
    /// ```
    pub fn try_reset(&self) -> bool {
        // Disarm first: a fire claims under the queue's lock, so after the
        // disarm either the fire happened (cancelled: seen below) or never
        // will.
        self.state().disarm_timeout();
        !self.is_cancelled()
    }

    /// Whether the source is, or may still become, cancelled (C++'s
    /// `stop_possible`): always `true` while this handle lives; see
    /// [`CancellationToken::can_be_cancelled`].
    ///
    /// ```
    /// let source = cancel_core::CancellationSource::new();
    /// assert!(source.can_be_cancelled());
    /// ```
    pub fn can_be_cancelled(&self) -> bool {
        self.token.can_be_cancelled()
    }

    /// A new source cancelled whenever this one is (tokio-util's
    /// `child_token`); the same as `self.token().child()`. Use it for a
    /// sub-operation that must stop with its parent but can also be
    /// cancelled (or time out) alone; for more than one parent, see
    /// [`linked`](Self::linked).
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let parent = CancellationSource::new();
    /// let child = parent.child();
    /// parent.cancel();
    /// assert!(child.is_cancelled());
    /// ```
    #[must_use = "the child source is dropped at once"]
    pub fn child(&self) -> CancellationSource {
        self.token.child()
    }

    /// A future that completes when this source is cancelled, borrowing
    /// the source as [`CancellationToken::cancelled`] borrows a token (no
    /// reference count touched); for a `'static` future to spawn, use
    /// `source.token().cancelled_owned()`. Like every future of the crate it
    /// is `!Unpin`: see [`WaitForCancellation`](crate::WaitForCancellation)
    /// for awaiting it in a `select!` loop.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let waiting = source.cancelled();
    /// source.cancel();
    /// futures::executor::block_on(waiting);
    /// ```
    pub fn cancelled(&self) -> WaitForCancellation<'_> {
        self.token.cancelled()
    }

    /// Blocks until this source is cancelled, as
    /// [`CancellationToken::wait`] does (`std`); for a thread that holds the
    /// source but leaves cancelling to another handle of it.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let canceller = source.clone();
    /// let thread = std::thread::spawn(move || canceller.cancel());
    /// source.wait();
    /// assert!(source.is_cancelled());
    /// thread.join().unwrap();
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait(&self) {
        self.token.wait();
    }

    /// Blocks until this source is cancelled or `timeout` has passed; see
    /// [`CancellationToken::wait_timeout`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// assert!(!source.wait_timeout(Duration::from_millis(1)));
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> bool {
        self.token.wait_timeout(timeout)
    }

    /// Blocks until this source is cancelled or `deadline` is reached; see
    /// [`CancellationToken::wait_deadline`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// source.cancel();
    /// assert!(source.wait_deadline(Instant::now() + Duration::from_secs(60)));
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_deadline(&self, deadline: std::time::Instant) -> bool {
        self.token.wait_deadline(deadline)
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
    /// here. To get every panic instead of the first, use
    /// `cancel_catching` (`std`).
    ///
    /// Call it when the work is no longer wanted: the user pressed stop,
    /// the service shuts down, another part of the work failed. To say
    /// why, use [`cancel_with`](Self::cancel_with); for a timeout,
    /// `cancel_after` or [`ManualClock`](crate::ManualClock).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let stopped = Arc::new(AtomicBool::new(false));
    /// let s = stopped.clone();
    /// let _registration = source.token().register(move || s.store(true, Ordering::SeqCst));
    ///
    /// assert!(source.cancel(), "this call cancelled");
    /// assert!(stopped.load(Ordering::SeqCst), "callbacks ran before cancel() returned");
    /// assert!(!source.cancel(), "already cancelled: nothing more happens");
    /// ```
    pub fn cancel(&self) -> bool {
        self.state().cancel(Reason::Requested)
    }

    pub(crate) fn cancel_reason(&self, reason: Reason) -> bool {
        self.state().cancel(reason)
    }

    /// Whether the source has been cancelled (one `Acquire` load), by
    /// [`cancel`](Self::cancel), a timeout, or a parent it is linked to.
    ///
    /// Ask the source rather than a token when the code that owns it needs
    /// to know how an operation ended: after a linked call failed, whether
    /// *this* source (say, its timeout) or a parent was cancelled.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let user = CancellationSource::new();
    /// let call = user.child();
    /// call.cancel(); // e.g. the call's own timeout
    /// assert!(call.is_cancelled());
    /// assert!(!user.is_cancelled(), "cancelling a child never cancels its parent");
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

impl Clone for CancellationSource {
    fn clone(&self) -> Self {
        self.state().add_source();
        Self {
            token: self.token.clone(),
        }
    }
}

impl Drop for CancellationSource {
    fn drop(&mut self) {
        self.state().remove_source();
    }
}

/// Lends the source as a token: for APIs that take `&CancellationToken`
/// or `impl AsRef<CancellationToken>` (such as
/// [`linked`](Self::linked)).
impl AsRef<CancellationToken> for CancellationSource {
    fn as_ref(&self) -> &CancellationToken {
        &self.token
    }
}

impl From<&CancellationSource> for CancellationToken {
    /// The same as [`source.token()`](CancellationSource::token).
    fn from(source: &CancellationSource) -> Self {
        source.token()
    }
}

/// By identity: two handles of one source are equal.
impl PartialEq for CancellationSource {
    fn eq(&self, other: &Self) -> bool {
        self.token == other.token
    }
}

impl Eq for CancellationSource {}

/// A source equals its tokens.
impl PartialEq<CancellationToken> for CancellationSource {
    fn eq(&self, other: &CancellationToken) -> bool {
        &self.token == other
    }
}

impl PartialEq<CancellationSource> for CancellationToken {
    fn eq(&self, other: &CancellationSource) -> bool {
        self == &other.token
    }
}

/// Hashes as its tokens do, so a set of tokens can be queried with a source.
impl Hash for CancellationSource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.token.hash(state);
    }
}

impl Default for CancellationSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CancellationSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("CancellationSource");
        self.token.debug_fields(&mut d);
        d.finish()
    }
}
