//! Shutdown that waits: a scope that owns a cancellation source and counts
//! the work in flight (tokio-util's `CancellationToken` plus `TaskTracker`,
//! async-shutdown's manager, Kotlin's `Job.join`, Trio's cancel scope).

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::future::WaitForCancellationOwned;
use crate::raw::{Reason, TrackerRef};
use crate::token::CancellationToken;
use crate::work_guard::{Tracked, WorkGuard};

/// A scope of work that can be shut down and waited for: signal, stop
/// taking work, let the work in flight finish (within a deadline), and
/// learn what did not.
///
/// - [`enter`](Self::enter) counts a unit of work in and returns a
///   [`WorkGuard`]: move it into the task or thread doing the work; its
///   drop counts the work out. Each guard gives the scope's
///   [`token`](WorkGuard::token), cancelled when shutdown begins.
/// - [`shutdown`](Self::shutdown) (or [`shutdown_with`](Self::shutdown_with)
///   a cause) begins shutdown: the token is cancelled, and once it
///   returns `enter` is refused with [`ShutdownStarted`]. Callbacks on the
///   token run first, while the scope is still open: work they enter (a
///   flush the cancellation starts) is counted and waited for.
/// - [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout),
///   [`finished`](Self::finished) (a future, no runtime needed) wait until
///   shutdown has begun and every guard is gone.
/// - [`child`](Self::child) nests a scope: the parent's shutdown reaches
///   it, and the parent's wait includes its work.
///
/// The completion is a cancellation of the core (a source cancelled when
/// the scope closes with no work in flight), so waiting costs what waiting
/// on a token costs. Entering and leaving are one atomic read-modify-write
/// each. If every handle of a scope is dropped, nothing can enter it any
/// more: it completes when its last guard leaves, as if shut down.
///
/// Clones are handles to one scope.
///
/// ```
/// # #[cfg(feature = "std")] { // `wait` blocks a thread: std only
/// use std::thread;
/// use cancel_core::Shutdown;
///
/// let scope = Shutdown::new();
/// let workers: Vec<_> = (0..4)
///     .map(|_| {
///         let guard = scope.enter().unwrap();
///         thread::spawn(move || {
///             let token = guard.token();
///             while !token.is_cancelled() {
///                 thread::yield_now(); // work until shutdown begins
///             }
///             // ... finish the work in flight, then the guard drops
///         })
///     })
///     .collect();
/// scope.shutdown();
/// scope.wait(); // returns when every worker has dropped its guard
/// assert_eq!(scope.in_flight(), 0);
/// assert!(scope.enter().is_err(), "no new work after shutdown began");
/// for w in workers {
///     w.join().unwrap();
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Shutdown {
    tracker: TrackerRef,
}

/// `enter` or `child` after the scope's shutdown began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownStarted;

/// A wait for completion that ran out of time: how much work was still in
/// flight when it gave up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Guards still alive when the wait gave up.
    pub count: usize,
}

impl Shutdown {
    /// A new scope, open, with no work in flight. Four allocations (the
    /// scope, its two sources, and the callback linking them).
    pub fn new() -> Self {
        match TrackerRef::new(None) {
            Some(tracker) => Self { tracker },
            None => unreachable!("a scope without a parent is never refused"),
        }
    }

    /// A nested scope: the parent's shutdown reaches it (its token is a
    /// child of the parent's), and the parent's wait includes its work (it
    /// counts as one unit of the parent's work until it completes).
    /// Refused once the parent's shutdown has begun.
    ///
    /// ```
    /// use cancel_core::Shutdown;
    ///
    /// let server = Shutdown::new();
    /// let connection = server.child().unwrap();
    /// let request = connection.enter().unwrap();
    /// server.shutdown();
    /// assert!(request.token().is_cancelled(), "the parent's shutdown reached it");
    /// assert_eq!(server.in_flight(), 1, "the connection counts in the server");
    /// drop(request);
    /// assert!(server.is_finished(), "the connection completed, and with it the server");
    /// ```
    pub fn child(&self) -> Result<Shutdown, ShutdownStarted> {
        TrackerRef::new(Some(&self.tracker))
            .map(|tracker| Shutdown { tracker })
            .ok_or(ShutdownStarted)
    }

    /// Counts one unit of work in; refused once shutdown has begun. One
    /// atomic read-modify-write (and its drop, one more).
    ///
    /// ```
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let guard = scope.enter().expect("open");
    /// assert_eq!(scope.in_flight(), 1);
    /// drop(guard);
    /// scope.shutdown();
    /// assert!(scope.enter().is_err());
    /// ```
    #[inline]
    pub fn enter(&self) -> Result<WorkGuard, ShutdownStarted> {
        match self.tracker.enter() {
            Some(work) => Ok(WorkGuard::new(work)),
            None => Err(ShutdownStarted),
        }
    }

    /// Stops taking work without signalling it (tokio-util's
    /// `TaskTracker::close`): from now on `enter` and `child` are refused,
    /// the token is *not* cancelled, and the work in flight runs to its end;
    /// the scope finishes when its last guard leaves. For draining: close,
    /// wait with a deadline, then [`shutdown`](Self::shutdown) to cancel what
    /// is left. Nested scopes are work of this one: they keep taking their
    /// own work until they are closed or shut down (a parent's `shutdown`
    /// reaches them, its `close` does not). True for the call that closed it
    /// (and `false` once shut down).
    ///
    /// ```
    /// # #[cfg(feature = "std")] { // `wait_timeout`: std only
    /// use std::time::Duration;
    /// use cancel_core::Shutdown;
    ///
    /// let server = Shutdown::new();
    /// let request = server.enter().unwrap();
    /// assert!(server.close());
    /// assert!(server.enter().is_err(), "no new work");
    /// assert!(!request.is_cancelled(), "the work in flight is not told to stop");
    /// // Drain for a while, then cancel what is left.
    /// if server.wait_timeout(Duration::from_millis(10)).is_err() {
    ///     server.shutdown();
    /// }
    /// assert!(request.is_cancelled());
    /// drop(request);
    /// server.wait();
    /// # }
    /// ```
    pub fn close(&self) -> bool {
        self.tracker.close()
    }

    /// Counts a future in as one unit of work until it is dropped
    /// (tokio-util's `TaskTracker::track_future`): `tokio::spawn(scope.track(f)?)`.
    /// Refused once shutdown has begun.
    ///
    /// ```
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let job = scope.track(async { 6 * 7 }).unwrap();
    /// assert_eq!(scope.in_flight(), 1);
    /// assert_eq!(futures::executor::block_on(job), 42);
    /// assert_eq!(scope.in_flight(), 0, "counted out when the future was dropped");
    /// ```
    pub fn track<F: Future>(&self, future: F) -> Result<Tracked<F>, ShutdownStarted> {
        Ok(Tracked::new(future, self.enter()?))
    }

    /// Begins shutdown: the scope's token is cancelled with reason
    /// `Requested` (so are nested scopes), and once this returns `enter` on
    /// this scope is refused. The token's callbacks run before the scope
    /// closes: work they enter is counted. A nested scope closes when the
    /// cancellation reaches it: before this returns, unless that nested
    /// scope's own shutdown is running its callbacks on another thread
    /// (then when they return; work it takes meanwhile is still counted
    /// in this scope's wait).
    /// True if this call cancelled the token (false if an earlier shutdown,
    /// here or in a parent, did). Does not wait: see
    /// [`wait`](Self::wait) and [`finished`](Self::finished).
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// assert!(scope.shutdown());
    /// assert!(!scope.shutdown(), "begun once");
    /// assert!(scope.token().is_cancelled());
    /// ```
    pub fn shutdown(&self) -> bool {
        self.tracker.shutdown(Reason::Requested)
    }

    /// Begins shutdown with a cause of the caller's own, which the work's
    /// tokens report as their reason.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// scope.shutdown_with(std::io::Error::other("SIGTERM"));
    /// assert_eq!(scope.token().reason().unwrap().cause().unwrap().to_string(), "SIGTERM");
    /// ```
    pub fn shutdown_with<E: core::error::Error + Send + Sync + 'static>(&self, cause: E) -> bool {
        self.tracker.shutdown(Reason::custom(cause))
    }

    /// Whether shutdown (or [`close`](Self::close)) has begun: `enter` is
    /// refused. The token says whether the work was told to stop.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// assert!(!scope.is_shutting_down());
    /// scope.shutdown();
    /// assert!(scope.is_shutting_down());
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.tracker.is_shutdown()
    }

    /// Whether the scope is finished: shutdown (or `close`) has begun, or
    /// every handle is gone, and every guard is gone.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let guard = scope.enter().unwrap();
    /// scope.shutdown();
    /// assert!(!scope.is_finished());
    /// drop(guard);
    /// assert!(scope.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.tracker.done().is_cancelled()
    }

    /// The work in flight now: guards alive, nested scopes not completed.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let (_a, _b) = (scope.enter().unwrap(), scope.enter().unwrap());
    /// assert_eq!(scope.in_flight(), 2);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    /// The scope's token: cancelled when shutdown begins (here or in a
    /// parent). For work that is not counted, and to link further sources.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let token = scope.token();
    /// scope.shutdown();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        CancellationToken::from_state(self.tracker.signal().clone())
    }

    /// A future that completes when shutdown has begun and every guard is
    /// gone. Needs no runtime; `'static`, so it can be spawned.
    ///
    /// ```
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let guard = scope.enter().unwrap();
    /// let finished = scope.finished();
    /// let worker = std::thread::spawn(move || drop(guard));
    /// scope.shutdown();
    /// futures::executor::block_on(finished);
    /// worker.join().unwrap();
    /// ```
    pub fn finished(&self) -> ShutdownFinished {
        ShutdownFinished {
            inner: CancellationToken::from_state(self.tracker.done().clone()).cancelled_owned(),
        }
    }

    /// A future that completes when the scope is finished, or with
    /// `Err(InFlight)` once `timeout` has passed (`std`: the default timer,
    /// no runtime). The time runs from this call, not from the first poll.
    /// The future holds a handle of the scope while it lives.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let stuck = scope.enter().unwrap();
    /// scope.shutdown();
    /// let late = futures::executor::block_on(scope.finished_timeout(Duration::from_millis(10)));
    /// assert_eq!(late.unwrap_err().count, 1);
    /// drop(stuck);
    /// let on_time = futures::executor::block_on(scope.finished_timeout(Duration::from_secs(60)));
    /// assert!(on_time.is_ok());
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn finished_timeout(&self, timeout: std::time::Duration) -> ShutdownFinishedWithin {
        let done = CancellationToken::from_state(self.tracker.done().clone());
        // Cancelled by whichever comes first: completion (the link) or the
        // timer; the output then asks which.
        let either = crate::CancellationSource::linked([&done]);
        either.cancel_after(timeout);
        ShutdownFinishedWithin {
            inner: either.token().cancelled_owned(),
            done,
            scope: self.tracker.clone(),
            // Dropped before either came, it cancels the private source,
            // which disarms the timer (no entry left in the timer's queue).
            _disarm: either.drop_guard(),
        }
    }

    /// As [`finished_timeout`](Self::finished_timeout), with a point in time.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let scope = cancel_core::Shutdown::new();
    /// scope.shutdown();
    /// let deadline = Instant::now() + Duration::from_secs(5);
    /// assert!(futures::executor::block_on(scope.finished_deadline(deadline)).is_ok());
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn finished_deadline(&self, deadline: std::time::Instant) -> ShutdownFinishedWithin {
        self.finished_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    }

    /// Blocks until shutdown has begun and every guard is gone (`std`).
    /// Never returns if shutdown never begins: begin it first, or from
    /// another thread.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// scope.shutdown();
    /// scope.wait();
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait(&self) {
        self.tracker.done().wait(None);
    }

    /// Blocks until the scope is finished or `timeout` has passed;
    /// `Err(InFlight)` says how much work was still in flight then.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let stuck = scope.enter().unwrap();
    /// scope.shutdown();
    /// let late = scope.wait_timeout(Duration::from_millis(10)).unwrap_err();
    /// assert_eq!(late.count, 1);
    /// drop(stuck);
    /// assert!(scope.wait_timeout(Duration::from_secs(60)).is_ok());
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Result<(), InFlight> {
        self.wait_until(std::time::Instant::now().checked_add(timeout))
    }

    /// Blocks until the scope is finished or `deadline` is reached; see
    /// [`wait_timeout`](Self::wait_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// let scope = cancel_core::Shutdown::new();
    /// scope.shutdown();
    /// assert!(scope.wait_deadline(Instant::now() + Duration::from_secs(5)).is_ok());
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_deadline(&self, deadline: std::time::Instant) -> Result<(), InFlight> {
        self.wait_until(Some(deadline))
    }

    #[cfg(feature = "std")]
    fn wait_until(&self, deadline: Option<std::time::Instant>) -> Result<(), InFlight> {
        if self.tracker.done().wait(deadline) {
            Ok(())
        } else {
            Err(InFlight {
                count: self.in_flight(),
            })
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// By identity: two handles of one scope are equal.
impl PartialEq for Shutdown {
    fn eq(&self, other: &Self) -> bool {
        self.tracker.addr() == other.tracker.addr()
    }
}

impl Eq for Shutdown {}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("shutting_down", &self.is_shutting_down())
            .field("in_flight", &self.in_flight())
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl fmt::Display for ShutdownStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the scope is shutting down: no new work is accepted")
    }
}

impl core::error::Error for ShutdownStarted {}

impl fmt::Display for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shutdown timed out with {} unit(s) of work in flight",
            self.count
        )
    }
}

impl core::error::Error for InFlight {}

pin_project_lite::pin_project! {
    /// The future of [`Shutdown::finished`]: completes when the scope's
    /// shutdown has begun and every guard is gone. `!Unpin`, as the crate's
    /// other futures: pin it to poll it by hand.
    ///
    /// ```
    /// use cancel_core::Shutdown;
    ///
    /// let scope = Shutdown::new();
    /// let finished = std::pin::pin!(scope.finished());
    /// scope.shutdown();
    /// futures::executor::block_on(finished);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct ShutdownFinished {
        #[pin]
        inner: WaitForCancellationOwned,
    }
}

impl Future for ShutdownFinished {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

impl fmt::Debug for ShutdownFinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownFinished").finish_non_exhaustive()
    }
}

#[cfg(feature = "std")]
pin_project_lite::pin_project! {
    /// The future of [`Shutdown::finished_timeout`] and
    /// [`Shutdown::finished_deadline`]: `Ok(())` when the scope finished in
    /// time, `Err(InFlight)` with the work still in flight when time ran
    /// out.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let scope = cancel_core::Shutdown::new();
    /// let finished = scope.finished_timeout(Duration::from_secs(60));
    /// scope.shutdown();
    /// assert_eq!(futures::executor::block_on(finished), Ok(()));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    #[must_use = "futures do nothing unless polled"]
    pub struct ShutdownFinishedWithin {
        #[pin]
        inner: WaitForCancellationOwned,
        done: CancellationToken,
        scope: TrackerRef,
        _disarm: crate::DropGuard,
    }
}

#[cfg(feature = "std")]
impl Future for ShutdownFinishedWithin {
    type Output = Result<(), InFlight>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if this.inner.poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Completion wins a tie with the timer.
        Poll::Ready(if this.done.is_cancelled() {
            Ok(())
        } else {
            Err(InFlight {
                count: this.scope.in_flight(),
            })
        })
    }
}

#[cfg(feature = "std")]
impl fmt::Debug for ShutdownFinishedWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownFinishedWithin")
            .finish_non_exhaustive()
    }
}
