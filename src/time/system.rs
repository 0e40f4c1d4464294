//! The default clock (`std`): the system's monotonic clock, and one
//! process-wide timer thread that sleeps until the earliest deadline, fires
//! what is due, and repeats. `CancellationSource::with_timeout`,
//! `cancel_after` and `with_deadline` arm on it.

use alloc::sync::Arc;
use core::error::Error;
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::{Clock, Timer, to_ticks};
use crate::raw::{self, Reason, Ticks};
use crate::source::CancellationSource;

/// The system clock, as the default timer reads it: time since `EPOCH`;
/// `wake_at` unparks the timer thread.
struct SystemClock {
    thread: Arc<OnceLock<Thread>>,
}

/// The default clock's epoch: fixed when it is first read.
pub(super) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        epoch().elapsed()
    }

    fn wake_at(&self, _: Duration) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// The process-wide timer, set when first used.
static TIMER: OnceLock<Timer> = OnceLock::new();

/// The process-wide timer, and its thread (started with it).
pub(super) fn system_timer() -> &'static Timer {
    TIMER.get_or_init(|| {
        let thread = Arc::new(OnceLock::new());
        let timer = Timer::new(SystemClock {
            thread: thread.clone(),
        });
        let driver = timer.clone();
        let handle = std::thread::Builder::new()
            .name("cancel-core-timer".into())
            .spawn(move || run(&driver))
            .expect("cancel-core: could not start the timer thread");
        let _ = thread.set(handle.thread().clone());
        timer
    })
}

/// The timer thread. A callback that blocks delays the timeouts after it
/// (they fire late, never early); keep callbacks short. A callback that
/// panics has been reported by the panic hook, on this thread; the payload
/// is dropped and the thread goes on.
fn run(timer: &Timer) -> ! {
    let timeline = timer.timeline();
    loop {
        match raw::fire_due(timeline, timeline.now(), &mut crate::unwind::drop_payload) {
            None => std::thread::park(),
            Some(next) => {
                let now = timeline.now();
                if next > now {
                    std::thread::park_timeout(Duration::from_nanos(next - now));
                }
            }
        }
    }
}

/// Ticks of the default clock at `at`.
pub(super) fn ticks_at(at: Instant) -> Ticks {
    to_ticks(at.saturating_duration_since(epoch()))
}

/// Number of timeouts armed on the default timer and its queue's capacity
/// (for tests and diagnostics).
#[doc(hidden)]
pub fn default_timer_armed() -> (usize, usize) {
    system_timer().timeline().armed_and_capacity()
}

impl Timer {
    /// The default timer: the system's monotonic clock and one
    /// process-wide thread (started on first use) that fires its timeouts.
    /// `CancellationSource::with_timeout` and `cancel_after` arm on it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::time::Timer;
    /// let source = Timer::system().with_timeout(Duration::from_millis(5));
    /// source.token().wait();
    /// assert!(source.reason().unwrap().is_timed_out());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn system() -> Timer {
        system_timer().clone()
    }

    /// Whether this is the default timer ([`Timer::system`]); does not
    /// start it.
    pub(crate) fn is_system(&self) -> bool {
        TIMER.get().is_some_and(|t| t.same(self))
    }
}

impl CancellationSource {
    /// A new source cancelled with reason `TimedOut` once `timeout` has
    /// passed, by the default timer thread. A zero timeout gives a source
    /// that is already cancelled, with no timer; a timeout too large to add
    /// to `Instant::now()` never fires.
    ///
    /// The armed timer is a canceller of its own: a token of the source
    /// times out even after every source handle is dropped (as the context
    /// of Go's `WithTimeout` does), so
    /// `CancellationSource::with_timeout(d).token()` is a timed token.
    ///
    /// Use it to bound an operation in time without a runtime: pass the
    /// token to the operation, and it ends with reason
    /// [`TimedOut`](crate::CancelReason::TimedOut) like any other
    /// cancellation. In tests, use [`ManualClock::with_timeout`](crate::ManualClock::with_timeout)
    /// instead, which fires only when the test advances it; on tokio, see
    /// `Timer::tokio` (feature `tokio`), which follows a paused clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::with_timeout(Duration::from_millis(10));
    /// source.token().wait();
    /// assert!(source.is_cancelled());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn with_timeout(timeout: Duration) -> CancellationSource {
        let source = CancellationSource::new();
        source.cancel_after(timeout);
        source
    }

    /// A new source cancelled with `cause` as its reason
    /// ([`CancelReason::Custom`](crate::CancelReason::Custom)) once
    /// `timeout` has passed, on the default timer: Go's
    /// `WithTimeoutCause`. Its [`origin`](Self::origin) says
    /// [`Timeout`](crate::CancelOrigin::Timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancelOrigin, CancellationSource};
    ///
    /// let source = CancellationSource::with_timeout_cause(Duration::ZERO, std::fmt::Error);
    /// assert!(source.reason().unwrap().downcast_cause::<std::fmt::Error>().is_some());
    /// assert_eq!(source.origin(), Some(CancelOrigin::Timeout));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn with_timeout_cause<E>(timeout: Duration, cause: E) -> CancellationSource
    where
        E: Error + Send + Sync + 'static,
    {
        let source = CancellationSource::new();
        source.cancel_after_with(timeout, cause);
        source
    }

    /// A new source cancelled with reason `TimedOut` at `deadline`. A
    /// deadline already reached gives a source that is already cancelled.
    ///
    /// Use it when the limit is a point in time that several steps share (a
    /// request's deadline received from a client, a batch that must end by
    /// a set time) rather than a duration for each step.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cancel_core::CancellationSource;
    ///
    /// let end_of_batch = Instant::now() + Duration::from_secs(3600);
    /// let step = CancellationSource::with_deadline(end_of_batch);
    /// assert_eq!(step.token().deadline().unwrap().to_instant(), end_of_batch);
    /// assert!(!step.is_cancelled());
    ///
    /// let too_late = CancellationSource::with_deadline(Instant::now());
    /// assert!(too_late.reason().unwrap().is_timed_out());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn with_deadline(deadline: Instant) -> CancellationSource {
        let source = CancellationSource::new();
        system_timer().arm_at(&source, ticks_at(deadline));
        source
    }

    /// Arms (or re-arms) this source to be cancelled with reason `TimedOut`
    /// after `delay`; the last call wins. A zero delay cancels now. A delay
    /// too large to add to `Instant::now()` means "never" and disarms. Does
    /// nothing once the source is cancelled; an explicit `cancel()` before
    /// the deadline disarms the timer.
    ///
    /// The timer runs on the source's clock: the [`Timer`] it was last
    /// armed on (a [`ManualClock`](crate::ManualClock)'s, tokio's, your
    /// own), else the default timer thread; if that clock stopped (it can
    /// never fire again), the default timer.
    ///
    /// Use it to give a timeout to a source made some other way (a
    /// [`child`](Self::child), a [`linked`](Self::linked) source), to
    /// extend a timeout, or to time out now with `Duration::ZERO`. Without
    /// `std`, use [`Timer::cancel_after`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::CancellationSource;
    ///
    /// let server = CancellationSource::new();
    /// let request = server.child();
    /// request.cancel_after(Duration::from_secs(30));
    /// request.cancel_after(Duration::from_secs(60)); // more time: the last call wins
    /// assert!(!request.is_cancelled());
    ///
    /// request.cancel_after(Duration::ZERO); // time is up now
    /// assert!(request.reason().unwrap().is_timed_out());
    /// assert!(!server.is_cancelled());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn cancel_after(&self, delay: Duration) {
        self.arm_after(delay, None);
    }

    /// Like [`cancel_after`](Self::cancel_after), with `cause` as the
    /// reason on expiry instead of `TimedOut` (Go's `WithTimeoutCause`):
    /// a caller then learns which limit it hit. Re-arming replaces the
    /// cause too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::CancellationSource;
    ///
    /// #[derive(Debug)]
    /// struct QueryBudget;
    /// impl std::fmt::Display for QueryBudget {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("the query budget ran out")
    ///     }
    /// }
    /// impl std::error::Error for QueryBudget {}
    ///
    /// let query = CancellationSource::new();
    /// query.cancel_after_with(Duration::from_millis(5), QueryBudget);
    /// query.token().wait();
    /// let error = query.token().check().unwrap_err();
    /// assert!(error.reason().downcast_cause::<QueryBudget>().is_some());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn cancel_after_with<E>(&self, delay: Duration, cause: E)
    where
        E: Error + Send + Sync + 'static,
    {
        if self.is_cancelled() {
            return;
        }
        self.arm_after(delay, Some(Reason::custom(cause)));
    }

    fn arm_after(&self, delay: Duration, cause: Option<Reason>) {
        if self.is_cancelled() {
            return;
        }
        // Now and never need no clock (nor the default timer's thread).
        if delay.is_zero() {
            self.state().expire(cause.and_then(Reason::into_cause));
            return;
        }
        if Instant::now().checked_add(delay).is_none() {
            self.disarm();
            return;
        }
        // The source's clock, unless it has none or it stopped (it can
        // never fire): then the default timer.
        let timer = match self.state().timeline() {
            Some(timeline) if !timeline.is_stopped() => Timer::from_timeline(timeline),
            _ => system_timer().clone(),
        };
        timer.arm(&self, delay, cause.and_then(Reason::into_cause));
    }
}
