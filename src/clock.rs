//! Clocks: what time it is, and when due timeouts fire. The default timer
//! thread (with `std`) serves one process-wide time line; a
//! [`ManualClock`] is a time line the caller advances (deterministic tests;
//! `no_std` builds). Safe code: queues, arming and firing are the core's
//! (`raw/kinds/timer.rs`, `raw/cancel.rs`); a clock only reads the time and
//! calls them.
//!
//! A timeout is one more reason to cancel: when it comes due the clock
//! cancels with [`CancelReason::TimedOut`](crate::CancelReason::TimedOut).
//! An armed timeout is a canceller of its own (see `raw/kinds/timer.rs`):
//! the token of a timed source can be cancelled after the source's last
//! handle is gone, until the timeout fires.

use alloc::sync::Arc;
use core::fmt;
use core::time::Duration;

use crate::raw::{self, NEVER, Ticks, Timeline};
use crate::source::CancellationSource;
use crate::sync::{AtomicUsize, Ordering};

fn to_ticks(d: Duration) -> Ticks {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

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
        let now = self.timeline().advance(to_ticks(by));
        #[cfg(feature = "std")]
        {
            let mut first = None;
            raw::fire_due(self.timeline(), now, &mut |payload| {
                crate::unwind::keep_first(&mut first, payload)
            });
            if let Some(payload) = first {
                std::panic::resume_unwind(payload);
            }
        }
        #[cfg(not(feature = "std"))]
        raw::fire_due(self.timeline(), now, &mut |never| match never {});
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
    pub fn cancel_after(&self, source: &CancellationSource, delay: Duration) {
        let deadline = self.timeline().now().saturating_add(to_ticks(delay));
        source.state().arm_timeout(self.timeline(), deadline);
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
            self.timeline().stop();
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

#[cfg(feature = "std")]
mod system {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::raw::StateRef;
    use crate::token::CancellationToken;

    /// The process-wide time line, and its thread: started with it, it
    /// sleeps until the earliest deadline, fires what is due, repeats.
    fn system_clock() -> &'static Arc<Timeline> {
        static CLOCK: OnceLock<Arc<Timeline>> = OnceLock::new();
        CLOCK.get_or_init(|| {
            let timeline = Arc::new(Timeline::system());
            let driver = timeline.clone();
            let thread = std::thread::Builder::new()
                .name("cancel-core-timer".into())
                .spawn(move || run(&driver))
                .expect("cancel-core: could not start the timer thread");
            timeline.set_driver(thread.thread().clone());
            timeline
        })
    }

    /// The timer thread. A callback that blocks delays the timeouts after
    /// it (they fire late, never early); keep callbacks short. A callback
    /// that panics has been reported by the panic hook, on this thread; the
    /// payload is dropped and the thread goes on.
    fn run(timeline: &Timeline) -> ! {
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

    fn ticks_at(timeline: &Timeline, at: Instant) -> Ticks {
        to_ticks(at.saturating_duration_since(timeline.epoch()))
    }

    /// Number of timeouts armed on the default timer and its queue's
    /// capacity (for tests and diagnostics).
    #[doc(hidden)]
    pub fn default_timer_armed() -> (usize, usize) {
        system_clock().armed_and_capacity()
    }

    impl CancellationSource {
        /// A new source cancelled with reason `TimedOut` once `timeout` has
        /// passed, by the default timer thread. A zero timeout gives a source
        /// that is already cancelled, with no timer; a timeout too large to
        /// add to `Instant::now()` never fires.
        ///
        /// The armed timer is a canceller of its own: a token of the source
        /// times out even after every source handle is dropped (as the
        /// context of Go's `WithTimeout` does), so
        /// `CancellationSource::with_timeout(d).token()` is a timed token.
        ///
        /// Use it to bound an operation in time without a runtime: pass the
        /// token to the operation, and it ends with reason
        /// [`TimedOut`](crate::CancelReason::TimedOut) like any other
        /// cancellation. In tests, use [`ManualClock::with_timeout`]
        /// instead, which fires only when the test advances it.
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

        /// A new source cancelled with reason `TimedOut` at `deadline`. A
        /// deadline already reached gives a source that is already cancelled.
        ///
        /// Use it when the limit is a point in time that several steps
        /// share (a request's deadline received from a client, a batch that
        /// must end by a set time) rather than a duration for each step.
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        /// use cancel_core::CancellationSource;
        ///
        /// let end_of_batch = Instant::now() + Duration::from_secs(3600);
        /// let step = CancellationSource::with_deadline(end_of_batch);
        /// assert_eq!(step.token().deadline(), Some(end_of_batch));
        /// assert!(!step.is_cancelled());
        ///
        /// let too_late = CancellationSource::with_deadline(Instant::now());
        /// assert!(too_late.reason().unwrap().is_timed_out());
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub fn with_deadline(deadline: Instant) -> CancellationSource {
            let source = CancellationSource::new();
            let clock = system_clock();
            source.state().arm_timeout(clock, ticks_at(clock, deadline));
            source
        }

        /// Arms (or re-arms) this source to be cancelled with reason
        /// `TimedOut` after `delay`; the last call wins. A zero delay cancels
        /// now. A delay too large to add to `Instant::now()` means "never"
        /// and disarms. Does nothing once the source is cancelled; an
        /// explicit `cancel()` before the deadline disarms the timer.
        ///
        /// The timer runs on the source's clock: the default timer thread,
        /// or the [`ManualClock`] it was armed on; if every handle of that
        /// manual clock is gone (it can never move again), the default timer.
        ///
        /// Use it to give a timeout to a source made some other way (a
        /// [`child`](Self::child), a [`linked`](Self::linked) source), to
        /// extend a timeout, or to time out now with
        /// `Duration::ZERO`. Without `std`, use
        /// [`ManualClock::cancel_after`].
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
            if self.is_cancelled() {
                return;
            }
            // Now and never need no clock (nor the default timer's thread).
            if delay.is_zero() {
                self.cancel_reason(crate::raw::Reason::TimedOut);
                return;
            }
            if Instant::now().checked_add(delay).is_none() {
                self.state().disarm_timeout();
                return;
            }
            // The source's clock, unless it has none or it stopped (a
            // `ManualClock` whose handles are all gone can never fire): then
            // the default timer.
            let timeline = match self.state().timeline() {
                Some(timeline) if !timeline.is_stopped() => timeline,
                _ => system_clock().clone(),
            };
            let deadline = timeline.now().saturating_add(to_ticks(delay));
            self.state().arm_timeout(&timeline, deadline);
        }
    }

    impl CancellationToken {
        /// The earliest armed deadline of this token's source and of every
        /// source it is linked to, directly or through other links (Go's
        /// `Deadline`). `None` when no timer is armed anywhere up the links.
        ///
        /// Use it to hand the remaining time to something that takes a
        /// timeout of its own (a socket's read timeout, a deadline header
        /// of an RPC), or to skip work that cannot finish in time.
        ///
        /// ```
        /// use std::time::{Duration, Instant};
        /// use cancel_core::CancellationSource;
        ///
        /// let parent = CancellationSource::with_timeout(Duration::from_secs(60));
        /// let child = parent.token().child();
        /// child.cancel_after(Duration::from_secs(3600));
        /// let deadline = child.token().deadline().unwrap();
        /// assert!(deadline <= Instant::now() + Duration::from_secs(60));
        /// ```
        #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
        pub fn deadline(&self) -> Option<Instant> {
            deadline_walk(self, &mut || {})
        }
    }

    /// The walk behind `deadline()`: each state up the links is visited
    /// once (a diamond's shared ancestors too), so the work is linear in the
    /// states and links; `step` is called once per state looked at.
    pub(super) fn deadline_walk(
        token: &CancellationToken,
        step: &mut dyn FnMut(),
    ) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut todo: alloc::vec::Vec<StateRef> = alloc::vec![token.state().clone()];
        let mut seen = std::collections::HashSet::new();
        while let Some(state) = todo.pop() {
            step();
            if !seen.insert(state.addr()) {
                continue;
            }
            if let Some((ticks, timeline)) = state.armed_deadline() {
                let at = timeline.epoch() + Duration::from_nanos(ticks);
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
            state.for_each_parent(|parent| todo.push(parent));
        }
        earliest
    }

    #[cfg(all(test, not(loom)))]
    mod tests {
        use super::*;

        fn steps(token: &CancellationToken) -> (Option<Instant>, usize) {
            let mut n = 0;
            let deadline = deadline_walk(token, &mut || n += 1);
            (deadline, n)
        }

        /// Review finding 5: the walk deduplicated with `Vec::contains`,
        /// quadratic on a chain (4.5 s for 100,000 links). It now looks at
        /// each state once per link that leads to it: linear.
        #[test]
        fn the_deadline_walk_is_linear_in_the_links() {
            let n = if cfg!(miri) { 50 } else { 100_000 };
            let clock = crate::ManualClock::new();
            let root = clock.with_timeout(Duration::from_secs(60));
            let mut chain = alloc::vec![root.token().child()];
            for _ in 1..n {
                let next = chain.last().unwrap().token().child();
                chain.push(next);
            }
            let (deadline, count) = steps(&chain.last().unwrap().token());
            assert!(deadline.is_some(), "the root's deadline is found");
            assert_eq!(count, n + 1, "one step per state on a chain");

            // Stacked diamonds: 2^layers paths, 4 links per layer.
            let layers = if cfg!(miri) { 4 } else { 40 };
            let mut top = root.token().child();
            let mut keep = alloc::vec::Vec::new();
            for _ in 0..layers {
                let left = top.token().child();
                let right = top.token().child();
                let bottom = CancellationSource::linked([&left.token(), &right.token()]);
                keep.push((top, left, right));
                top = bottom;
            }
            let (deadline, count) = steps(&top.token());
            assert!(deadline.is_some());
            assert!(
                count <= 4 * layers + 2,
                "{count} steps for {layers} diamonds"
            );
        }
    }
}

#[cfg(feature = "std")]
pub use system::default_timer_armed;
