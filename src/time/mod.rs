//! Time: clocks that drive timeouts, the [`Timer`] that holds one clock's
//! armed timeouts, [`Deadline`] values, and gRPC's `grpc-timeout` encoding.
//!
//! Every clock keeps one shared queue of armed timeouts (a [`Timer`]): no
//! thread and no task per timeout. The clocks:
//!
//! | clock | made with | fires on | feature |
//! |---|---|---|---|
//! | the default timer thread | [`Timer::system`], `CancellationSource::with_timeout` | its own thread | `std` |
//! | [`ManualClock`] | `ManualClock::new()` | the thread calling `advance` | none |
//! | tokio's timer | `Timer::tokio(&handle)` | one task on that runtime; follows a paused clock | `tokio` |
//! | embassy-time | `time::embassy::timer()` | the driver task you spawn | `embassy-time` |
//! | your own | [`Timer::new`] with a [`Clock`] | whoever calls [`Timer::fire_due`] | none |
//!
//! **A clock that stops** (a dropped `ManualClock`, a runtime shut down, a
//! [`Timer::stop`]) disarms every timeout armed on it: their sources stay
//! uncancelled, a token that only such a timeout could cancel reports
//! [`can_be_cancelled`](crate::CancellationToken::can_be_cancelled) `false`,
//! and arming on the stopped clock arms nothing (`cancel_after` on a
//! source whose clock stopped uses the default timer, with `std`).
//! Stopping never blocks and runs no callback. Code that waits on such a
//! token is in the position of any token whose last canceller is gone: a
//! new `wait()` or `cancelled()` sees `can_be_cancelled() == false`
//! (`wait()` then blocks for good, as documented there: use
//! `wait_timeout`), and one already waiting stays waiting until its owner
//! drops it, which a runtime's shutdown does for its tasks.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::error::Error;
use core::fmt;
use core::time::Duration;

use crate::inplace::InplaceSource;
use crate::raw::{self, CustomCause, NEVER, Reason, Ticks, TimeSource, Timeline};
use crate::source::CancellationSource;

/// What a clock can arm a timeout on: a heap source (`&CancellationSource`)
/// or an in-place source pinned where it lives (`Pin<&InplaceSource>`: the
/// clock's queue points at it until the timeout fires or the source drops,
/// so it must never move; a `static` is pinned with `Pin::static_ref`, a
/// local with `core::pin::pin!`). Sealed.
///
/// ```
/// use std::pin::pin;
/// use std::time::Duration;
/// use cancel_core::{InplaceSource, ManualClock};
///
/// let clock = ManualClock::new();
/// let source = pin!(InplaceSource::new());
/// clock.cancel_after(source.as_ref(), Duration::from_secs(5));
/// clock.advance(Duration::from_secs(5));
/// assert!(source.token().reason().unwrap().is_timed_out());
/// ```
///
/// An unpinned in-place source is refused:
///
/// ```compile_fail,E0277
/// use std::time::Duration;
/// use cancel_core::{InplaceSource, ManualClock};
///
/// let clock = ManualClock::new();
/// let source = InplaceSource::new();
/// clock.cancel_after(&source, Duration::from_secs(5)); // error: not a TimeoutTarget
/// ```
pub trait TimeoutTarget: sealed::Arm {}

mod sealed {
    use super::*;

    /// Arms the target's state on a time line.
    pub trait Arm {
        fn is_cancelled(&self) -> bool;
        #[allow(private_interfaces)]
        fn arm(&self, timeline: &Arc<Timeline>, deadline: Ticks, cause: Option<Arc<CustomCause>>);
    }

    impl Arm for &CancellationSource {
        fn is_cancelled(&self) -> bool {
            CancellationSource::is_cancelled(self)
        }
        #[allow(private_interfaces)]
        fn arm(&self, timeline: &Arc<Timeline>, deadline: Ticks, cause: Option<Arc<CustomCause>>) {
            self.state().arm_timeout(timeline, deadline, cause);
        }
    }

    impl Arm for core::pin::Pin<&InplaceSource> {
        fn is_cancelled(&self) -> bool {
            InplaceSource::is_cancelled(self)
        }
        #[allow(private_interfaces)]
        fn arm(&self, timeline: &Arc<Timeline>, deadline: Ticks, cause: Option<Arc<CustomCause>>) {
            self.get_ref().raw().arm_timeout(timeline, deadline, cause);
        }
    }
}

/// Arms `source` at `deadline` on `timeline`, with no cause.
pub(crate) fn sealed_arm(source: &impl TimeoutTarget, timeline: &Arc<Timeline>, deadline: Ticks) {
    sealed::Arm::arm(source, timeline, deadline, None);
}

impl TimeoutTarget for &CancellationSource {}
impl TimeoutTarget for core::pin::Pin<&InplaceSource> {}

mod deadline;
#[cfg(any(feature = "tokio", feature = "embassy-time"))]
mod drive;
#[cfg(feature = "embassy-time")]
#[cfg_attr(docsrs, doc(cfg(feature = "embassy-time")))]
pub mod embassy;
pub mod grpc;
mod manual;
#[cfg(feature = "std")]
mod system;
#[cfg(feature = "tokio")]
mod tokio;

pub use deadline::Deadline;
pub use manual::ManualClock;
#[cfg(feature = "std")]
pub use system::default_timer_armed;

pub(crate) fn to_ticks(d: Duration) -> Ticks {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

/// A source of time for timeouts: what time it is, and a call when the
/// earliest armed deadline moves earlier. Implement it to run timeouts on
/// your own timer (a runtime's wheel, a hardware alarm), then make a
/// [`Timer`] over it with [`Timer::new`].
///
/// Both methods are called with no lock held, from whatever thread arms a
/// timeout; a panic in either propagates to that caller, after the
/// timeout is armed (the queue stays consistent).
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use std::time::Duration;
/// use cancel_core::time::{Clock, Timer};
///
/// /// Time set by hand, with the earliest deadline recorded for a driver.
/// #[derive(Clone, Default)]
/// struct Ticker(Arc<(AtomicU64, AtomicU64)>);
///
/// impl Clock for Ticker {
///     fn now(&self) -> Duration {
///         Duration::from_millis(self.0.0.load(Ordering::SeqCst))
///     }
///     fn wake_at(&self, at: Duration) {
///         self.0.1.store(at.as_millis() as u64, Ordering::SeqCst);
///     }
/// }
///
/// let ticker = Ticker::default();
/// let timer = Timer::new(ticker.clone());
/// let source = timer.with_timeout(Duration::from_millis(40));
/// assert_eq!(ticker.0.1.load(Ordering::SeqCst), 40, "the driver was told when");
///
/// ticker.0.0.store(40, Ordering::SeqCst); // time passes...
/// assert_eq!(timer.fire_due(), None); // ...and the driver fires what is due
/// assert!(source.reason().unwrap().is_timed_out());
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since this clock's epoch (any fixed point: its
    /// creation, the boot). Must never go backwards.
    fn now(&self) -> Duration;

    /// The earliest armed deadline is now `at` (on [`now`](Self::now)'s
    /// scale): it was armed earlier than every other, or the queue was
    /// empty. Arrange for [`Timer::fire_due`] to be called once `now()`
    /// reaches `at`; a call made early only fires nothing.
    fn wake_at(&self, at: Duration);
}

/// A `Clock` as the core's time source.
struct ClockSource<C>(C);

impl<C: Clock> TimeSource for ClockSource<C> {
    fn now(&self) -> Ticks {
        to_ticks(self.0.now())
    }

    fn wake_at(&self, at: Ticks) {
        self.0.wake_at(Duration::from_nanos(at));
    }
}

/// One clock's queue of armed timeouts, shared by every source armed on
/// it: arm, re-arm and disarm cost O(log n) and no thread or task per
/// timeout. Clones are handles to the same queue.
///
/// Get one from [`Timer::new`] (your own [`Clock`]), [`Timer::system`]
/// (the default timer thread, `std`), [`ManualClock::timer`],
/// `Timer::tokio` (feature `tokio`) or `time::embassy::timer` (feature
/// `embassy-time`).
#[derive(Clone)]
pub struct Timer {
    timeline: Arc<Timeline>,
}

impl Timer {
    /// A timer over `clock`: `clock.wake_at` is told when the earliest
    /// deadline moves earlier, and whoever drives the clock calls
    /// [`fire_due`](Self::fire_due) when it is reached.
    ///
    /// ```
    /// # use std::time::Duration;
    /// use cancel_core::time::{Clock, Timer};
    /// struct Frozen;
    /// impl Clock for Frozen {
    ///     fn now(&self) -> Duration { Duration::ZERO }
    ///     fn wake_at(&self, _: Duration) {}
    /// }
    /// let timer = Timer::new(Frozen);
    /// assert_eq!(timer.armed(), 0);
    /// ```
    pub fn new<C: Clock>(clock: C) -> Timer {
        Timer {
            timeline: Arc::new(Timeline::with_source(Box::new(ClockSource(clock)))),
        }
    }

    pub(crate) fn from_timeline(timeline: Arc<Timeline>) -> Timer {
        Timer { timeline }
    }

    pub(crate) fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }

    /// The clock's current time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(2));
    /// assert_eq!(clock.timer().now(), Duration::from_secs(2));
    /// ```
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.timeline.now())
    }

    /// Cancels every source whose deadline is reached at the clock's
    /// current time, in deadline order, on this thread (their callbacks run
    /// here), and returns the earliest deadline still armed: the time to
    /// call it again. The driver of a [`Clock`] calls it.
    ///
    /// With `std`, a panicking callback (or timeout cause's `Drop`) costs
    /// no other source its timeout: everything due is cancelled, then the
    /// first panic is resumed here.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let timer = clock.timer();
    /// let _a = timer.with_timeout(Duration::from_secs(5));
    /// assert_eq!(timer.fire_due(), Some(Duration::from_secs(5)), "not yet due");
    /// ```
    pub fn fire_due(&self) -> Option<Duration> {
        let now = self.timeline.now();
        #[cfg(feature = "std")]
        let next = {
            let mut first = None;
            let next = raw::fire_due(&self.timeline, now, &mut |payload| {
                crate::unwind::keep_first(&mut first, payload)
            });
            if let Some(payload) = first {
                std::panic::resume_unwind(payload);
            }
            next
        };
        #[cfg(not(feature = "std"))]
        let next = raw::fire_due(&self.timeline, now, &mut |never| match never {});
        next.map(Duration::from_nanos)
    }

    /// Stops the clock for good: every armed timeout is disarmed (its
    /// source stays uncancelled) and nothing is armed on it again. A driver
    /// that can no longer run (its runtime shut down) calls it; see the
    /// [module docs](self) for what its sources then do.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let timer = clock.timer();
    /// let source = timer.with_timeout(Duration::from_secs(1));
    /// timer.stop();
    /// assert_eq!(timer.armed(), 0);
    /// clock.advance(Duration::from_secs(2));
    /// assert!(!source.is_cancelled());
    /// ```
    pub fn stop(&self) {
        let taken = self.timeline.stop();
        // Causes' `Drop`s, after every count is given back: each on its
        // own, so that a second panic is not raised during the first's
        // unwind (an abort); with `std` the first is resumed at the end.
        #[cfg(feature = "std")]
        {
            let mut first = None;
            for one in taken {
                crate::unwind::catch(&mut first, move || drop(one));
            }
            crate::unwind::resume(first);
        }
        #[cfg(not(feature = "std"))]
        drop(taken);
    }

    /// Whether the clock stopped (see [`stop`](Self::stop)).
    ///
    /// ```
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let timer = clock.timer();
    /// assert!(!timer.is_stopped());
    /// drop(clock); // its last handle: it can never move again
    /// assert!(timer.is_stopped());
    /// ```
    pub fn is_stopped(&self) -> bool {
        self.timeline.is_stopped()
    }

    /// Number of timeouts armed on this timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let timer = clock.timer();
    /// let source = timer.with_timeout(Duration::from_secs(1));
    /// assert_eq!(timer.armed(), 1);
    /// source.disarm();
    /// assert_eq!(timer.armed(), 0);
    /// ```
    pub fn armed(&self) -> usize {
        self.timeline.armed()
    }

    /// The deadline `timeout` from now on this clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_secs(3));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(deadline.remaining(), Duration::from_secs(2));
    /// ```
    pub fn deadline_in(&self, timeout: Duration) -> Deadline {
        let at = self.timeline.now().saturating_add(to_ticks(timeout));
        Deadline::new(at, self.clone())
    }

    /// A new source that this timer cancels (reason `TimedOut`) once
    /// `timeout` has elapsed on its clock. A zero timeout gives a source
    /// that is already cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let source = clock.timer().with_timeout(Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(source.reason().unwrap().is_timed_out());
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> CancellationSource {
        let source = CancellationSource::new();
        self.cancel_after(&source, timeout);
        source
    }

    /// A new source that this timer cancels with `cause` as its reason
    /// (`CancelReason::Custom`) once `timeout` has elapsed: Go's
    /// `WithTimeoutCause`. [`origin`](CancellationSource::origin) tells it
    /// was the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancelOrigin, ManualClock};
    ///
    /// #[derive(Debug)]
    /// struct SlowBackend;
    /// impl std::fmt::Display for SlowBackend {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    ///         f.write_str("the backend took more than 2 s")
    ///     }
    /// }
    /// impl std::error::Error for SlowBackend {}
    ///
    /// let clock = ManualClock::new();
    /// let call = clock.timer().with_timeout_cause(Duration::from_secs(2), SlowBackend);
    /// clock.advance(Duration::from_secs(2));
    /// let reason = call.reason().unwrap();
    /// assert!(reason.downcast_cause::<SlowBackend>().is_some());
    /// assert_eq!(call.origin(), Some(CancelOrigin::Timeout));
    /// ```
    pub fn with_timeout_cause<E>(&self, timeout: Duration, cause: E) -> CancellationSource
    where
        E: Error + Send + Sync + 'static,
    {
        let source = CancellationSource::new();
        self.cancel_after_with(&source, timeout, cause);
        source
    }

    /// Arms `source` to be cancelled (reason `TimedOut`) once `delay` has
    /// elapsed on this clock, replacing any timeout it had, on any clock:
    /// the last call wins. A zero delay cancels at once; a delay past the
    /// clock's range (about 584 years) disarms.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancellationSource, ManualClock};
    /// let clock = ManualClock::new();
    /// let request = CancellationSource::new();
    /// clock.timer().cancel_after(&request, Duration::from_secs(5));
    /// clock.advance(Duration::from_secs(5));
    /// assert!(request.is_cancelled());
    /// ```
    pub fn cancel_after(&self, source: impl TimeoutTarget, delay: Duration) {
        self.arm(&source, delay, None);
    }

    /// Like [`cancel_after`](Self::cancel_after), with `cause` as the
    /// reason on expiry (`CancelReason::Custom`) instead of `TimedOut`.
    /// Re-arming replaces the cause too.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancellationSource, ManualClock};
    /// let clock = ManualClock::new();
    /// let job = CancellationSource::new();
    /// clock.timer().cancel_after_with(&job, Duration::from_secs(1), std::fmt::Error);
    /// clock.advance(Duration::from_secs(1));
    /// assert!(job.reason().unwrap().downcast_cause::<std::fmt::Error>().is_some());
    /// ```
    pub fn cancel_after_with<E>(&self, source: impl TimeoutTarget, delay: Duration, cause: E)
    where
        E: Error + Send + Sync + 'static,
    {
        if sealed::Arm::is_cancelled(&source) {
            return;
        }
        self.arm(&source, delay, Reason::custom(cause).into_cause());
    }

    /// Arms `source` for `delay` from now, with `cause` as the reason on
    /// expiry (`TimedOut` if none).
    pub(crate) fn arm(
        &self,
        source: &impl TimeoutTarget,
        delay: Duration,
        cause: Option<Arc<CustomCause>>,
    ) {
        let deadline = self.timeline.now().saturating_add(to_ticks(delay));
        sealed::Arm::arm(source, &self.timeline, deadline, cause);
    }

    /// Arms `source` for `at` on this timer (`NEVER` disarms).
    pub(crate) fn arm_at(&self, source: &CancellationSource, at: Ticks) {
        source.state().arm_timeout(&self.timeline, at, None);
    }

    pub(crate) fn same(&self, other: &Timer) -> bool {
        Arc::ptr_eq(&self.timeline, &other.timeline)
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("now", &self.now())
            .field("armed", &self.armed())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}
