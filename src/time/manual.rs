//! [`ManualClock`]: a time line the caller advances, for deterministic
//! tests of code with timeouts and for `no_std` programs that drive time
//! themselves. Its time is kept under its queue's lock (`advance` moves it),
//! so a deadline already reached when armed cancels at once.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use super::{Timer, to_ticks};
use crate::raw::Timeline;
use crate::source::CancellationSource;
use crate::sync::{AtomicUsize, Ordering};

/// A clock that moves only when told to, for deterministic tests of code
/// with timeouts, and for `no_std` builds. Advancing it fires every timeout
/// that has come due, on the advancing thread, in deadline order.
///
/// Sources are armed on it with [`ManualClock::with_timeout`] or
/// [`ManualClock::cancel_after`]; once armed on this clock, a source's
/// [`CancellationSource::cancel_after`] re-arms it here too.
///
/// Clones are handles to one clock. When the last handle is dropped the
/// clock can never move again: its armed timeouts are disarmed (a token
/// that only such a timeout could cancel then reports
/// [`can_be_cancelled`](crate::CancellationToken::can_be_cancelled)
/// `false`), and re-arming a source on it arms nothing.
///
/// ```
/// use std::time::Duration;
/// use cancel_core::{CancelReason, ManualClock};
///
/// let clock = ManualClock::new();
/// let source = clock.with_timeout(Duration::from_secs(30));
/// clock.advance(Duration::from_secs(29));
/// assert!(!source.is_cancelled());
/// clock.advance(Duration::from_secs(1));
/// assert!(matches!(source.token().reason(), Some(CancelReason::TimedOut)));
/// ```
pub struct ManualClock {
    shared: Arc<Manual>,
}

/// What the handles of one manual clock share.
struct Manual {
    timeline: Arc<Timeline>,
    /// Live handles; the last one's drop stops the clock.
    handles: AtomicUsize,
}

impl ManualClock {
    /// A clock at time zero, with nothing armed.
    ///
    /// Make one per test that involves timeouts, and pass it (or a clone)
    /// to the code under test in place of the default timer; in `no_std`
    /// builds, make one per time line the program drives itself.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// assert_eq!(clock.now(), Duration::ZERO);
    /// assert_eq!(clock.armed(), 0);
    /// ```
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Manual {
                timeline: Arc::new(Timeline::manual()),
                handles: AtomicUsize::new(1),
            }),
        }
    }

    fn timeline(&self) -> &Arc<Timeline> {
        &self.shared.timeline
    }

    /// Time elapsed on this clock since it was made: the sum of every
    /// [`advance`](Self::advance) so far, on any handle.
    ///
    /// Use it where the code under test reads the time itself (to log an
    /// elapsed time, to compute a remaining budget), so that it reads the
    /// same clock that fires its timeouts.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let handle = clock.clone();
    /// handle.advance(Duration::from_millis(1500));
    /// assert_eq!(clock.now(), Duration::from_millis(1500));
    /// ```
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.timeline().now())
    }

    /// Moves the clock forward by `by` and cancels every source whose
    /// timeout is now due, in deadline order, before returning; their
    /// callbacks run here. Saturates at the end of the clock's range (about
    /// 584 years).
    ///
    /// When it returns, every source due at the clock's new time is
    /// cancelled, also one that another thread's concurrent `advance` took
    /// first; that thread runs the observers of what it took, and may still
    /// be running them (as with a [`cancel`](CancellationSource::cancel)
    /// that another thread reached first).
    ///
    /// With `std`, a panicking callback costs no other source its timeout:
    /// every due source is cancelled and its observers run, then the first
    /// panic is resumed here (later ones are dropped).
    ///
    /// Call it in a test at the point where time should pass: the timeouts
    /// fire on the test's own thread, in order, so what follows sees their
    /// effects at once, with no sleep and no race.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let short = clock.with_timeout(Duration::from_secs(1));
    /// let long = clock.with_timeout(Duration::from_secs(10));
    ///
    /// clock.advance(Duration::from_secs(5));
    /// assert!(short.is_cancelled());
    /// assert!(!long.is_cancelled());
    /// clock.advance(Duration::from_secs(5));
    /// assert!(long.reason().unwrap().is_timed_out());
    /// ```
    pub fn advance(&self, by: Duration) {
        self.timeline().advance(to_ticks(by));
        // Fires what is due at the new time (or later: a concurrent advance).
        let _ = self.timer().fire_due();
    }

    /// A new source that this clock cancels once `timeout` has elapsed on it.
    /// A zero timeout gives a source that is already cancelled.
    ///
    /// The test-clock form of `CancellationSource::with_timeout` (`std`):
    /// write the code under test to take its timed source (or the clock)
    /// from its caller, and make it here in tests.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancellationToken, ManualClock};
    ///
    /// fn poll_job(token: &CancellationToken, steps: &mut u32) -> bool {
    ///     *steps += 1;
    ///     token.is_cancelled()
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let budget = clock.with_timeout(Duration::from_millis(300));
    /// let mut steps = 0;
    /// while !poll_job(&budget.token(), &mut steps) {
    ///     clock.advance(Duration::from_millis(100)); // each step "takes" 100 ms
    /// }
    /// assert_eq!(steps, 4);
    /// assert!(clock.with_timeout(Duration::ZERO).is_cancelled());
    /// ```
    pub fn with_timeout(&self, timeout: Duration) -> CancellationSource {
        let source = CancellationSource::new();
        self.cancel_after(&source, timeout);
        source
    }

    /// Arms `source` to be cancelled once `delay` has elapsed on this clock,
    /// replacing any timeout it had (on any clock): the last call wins. A
    /// zero delay cancels at once; a delay past the clock's range disarms.
    ///
    /// Use it to give a timeout to a source made some other way (a
    /// [`child`](CancellationSource::child), a
    /// [`linked`](CancellationSource::linked) source), or to extend one.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancellationSource, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let server = CancellationSource::new();
    /// let request = server.child();
    /// clock.cancel_after(&request, Duration::from_secs(5));
    /// clock.cancel_after(&request, Duration::from_secs(8)); // more time: the last call wins
    ///
    /// clock.advance(Duration::from_secs(5));
    /// assert!(!request.is_cancelled());
    /// clock.advance(Duration::from_secs(3));
    /// assert!(request.reason().unwrap().is_timed_out());
    /// assert!(!server.is_cancelled());
    /// ```
    pub fn cancel_after(&self, source: impl super::TimeoutTarget, delay: Duration) {
        let deadline = self.timeline().now().saturating_add(to_ticks(delay));
        super::sealed_arm(&source, self.timeline(), deadline);
    }

    /// A [`Timer`] handle on this clock's queue: for code written against
    /// any clock (it takes a `Timer`), and for what only a `Timer` offers
    /// (causes, deadlines). It does not keep the clock running: when the
    /// last `ManualClock` handle is dropped the clock stops anyway.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// use cancel_core::time::Timer;
    ///
    /// fn start_job(timer: &Timer) -> cancel_core::CancellationSource {
    ///     timer.with_timeout(Duration::from_secs(10))
    /// }
    ///
    /// let clock = ManualClock::new();
    /// let job = start_job(&clock.timer());
    /// clock.advance(Duration::from_secs(10));
    /// assert!(job.is_cancelled());
    /// ```
    pub fn timer(&self) -> Timer {
        Timer::from_timeline(self.timeline().clone())
    }

    /// Number of timeouts armed on this clock.
    ///
    /// Use it in tests to check that code disarms what it armed: a timeout
    /// leaves the clock when it fires, when its source is cancelled some
    /// other way, or when the source's state is gone.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let a = clock.with_timeout(Duration::from_secs(1));
    /// let b = clock.with_timeout(Duration::from_secs(2));
    /// assert_eq!(clock.armed(), 2);
    /// clock.advance(Duration::from_secs(1)); // `a` fires
    /// b.cancel(); // `b` is cancelled before its deadline
    /// assert_eq!(clock.armed(), 0);
    /// # drop(a);
    /// ```
    pub fn armed(&self) -> usize {
        self.timeline().armed()
    }
}

impl Clone for ManualClock {
    fn clone(&self) -> Self {
        // Relaxed, as an `Arc` clone: the caller holds a handle.
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for ManualClock {
    fn drop(&mut self) {
        // AcqRel: the last handle's drop sees every other handle's arming.
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.timer().stop();
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .field("armed", &self.armed())
            .finish()
    }
}
