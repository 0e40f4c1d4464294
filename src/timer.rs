//! Timeouts without a runtime: a queue of armed timeouts per clock, the
//! process-wide default timer thread (with `std`), and [`ManualClock`], a
//! clock the caller advances (deterministic tests; `no_std` builds).
//!
//! A timeout is one more reason to cancel: when it comes due the clock calls
//! `cancel` with [`CancelReason::TimedOut`](crate::CancelReason::TimedOut).
//! Each source has at most one timer node, at the front of its list; the
//! clock's queue is a binary min-heap of those nodes, so arming, re-arming
//! and disarming cost O(log n) in the number of armed timeouts.
//!
//! The queue's lock is held for heap operations only: timeouts that came due
//! are taken out under it and cancelled after it is released, so no callback
//! ever runs while it is held.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use crate::node::{LINKED, NOT_QUEUED, TimerNode};
use crate::reason::Reason;
use crate::source::CancellationSource;
use crate::state::StateRef;
use crate::sync::Ordering;
use crate::word::SpinLock;

/// Nanoseconds since a clock's epoch; `u64::MAX` stands for "never".
type Ticks = u64;
const NEVER: Ticks = u64::MAX;

fn to_ticks(d: Duration) -> Ticks {
    u64::try_from(d.as_nanos()).unwrap_or(NEVER)
}

struct Entry {
    deadline: Ticks,
    node: Arc<TimerNode>,
}

/// A clock's armed timeouts: a binary min-heap ordered by deadline, each
/// node knowing its own index so it can be removed in O(log n).
pub(crate) struct Queue {
    entries: Vec<Entry>,
    /// The manual clock's current time (unused by the system clock).
    now: Ticks,
}

impl Queue {
    /// Whether `node` is the entry at `index`.
    pub(crate) fn holds(&self, index: usize, node: &TimerNode) -> bool {
        self.entries
            .get(index)
            .is_some_and(|e| core::ptr::eq(Arc::as_ptr(&e.node), node))
    }

    fn set_index(&self, i: usize) {
        self.entries[i].node.queue_index.store(i, Ordering::Relaxed);
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.entries.swap(a, b);
        self.set_index(a);
        self.set_index(b);
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.entries[parent].deadline <= self.entries[i].deadline {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < self.entries.len() && self.entries[l].deadline < self.entries[min].deadline {
                min = l;
            }
            if r < self.entries.len() && self.entries[r].deadline < self.entries[min].deadline {
                min = r;
            }
            if min == i {
                return;
            }
            self.swap(i, min);
            i = min;
        }
    }

    /// Removes the entry at `index`; returns it so the caller drops it after
    /// releasing the lock.
    fn remove(&mut self, index: usize) -> Entry {
        let last = self.entries.len() - 1;
        if index != last {
            self.swap(index, last);
        }
        let entry = self.entries.pop().expect("index is in the heap");
        entry.node.queue_index.store(NOT_QUEUED, Ordering::Relaxed);
        if index < self.entries.len() {
            self.sift_down(index);
            self.sift_up(index);
        }
        // Give memory back after a burst, as a long-lived process expects.
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        entry
    }

    /// Queues `node` at `deadline`, or moves it there. Returns whether it is
    /// now the earliest (the timer thread must re-plan its sleep).
    fn arm(&mut self, node: &Arc<TimerNode>, deadline: Ticks) -> (bool, Option<Entry>) {
        let index = node.queue_index.load(Ordering::Relaxed);
        let old = self.holds(index, node).then(|| self.remove(index));
        // A node that left its source's list (DONE) must not be queued
        // again: its source may be freed without looking at this queue.
        if node.node.state(Ordering::Acquire) != LINKED {
            return (false, old);
        }
        self.entries.push(Entry {
            deadline,
            node: node.clone(),
        });
        let i = self.entries.len() - 1;
        self.set_index(i);
        self.sift_up(i);
        (node.queue_index.load(Ordering::Relaxed) == 0, old)
    }

    #[cfg(feature = "std")]
    fn deadline_of(&self, node: &TimerNode) -> Option<Ticks> {
        let index = node.queue_index.load(Ordering::Relaxed);
        self.holds(index, node)
            .then(|| self.entries[index].deadline)
    }

    /// Takes every entry due at `now`, upgrading each to its source.
    fn take_due(&mut self, now: Ticks, due: &mut Vec<StateRef>, dropped: &mut Vec<Entry>) {
        while let Some(first) = self.entries.first() {
            if first.deadline > now {
                break;
            }
            if let Some(state) = first.node.upgrade(self) {
                due.push(state);
            }
            dropped.push(self.remove(0));
        }
    }

    fn next_deadline(&self) -> Option<Ticks> {
        self.entries.first().map(|e| e.deadline)
    }
}

/// One time line with its queue. Shared by the sources armed on it.
pub(crate) struct ClockShared {
    queue: SpinLock<Queue>,
    kind: ClockKind,
}

enum ClockKind {
    Manual {
        #[cfg(feature = "std")]
        epoch: std::time::Instant,
    },
    #[cfg(feature = "std")]
    System {
        epoch: std::time::Instant,
        thread: std::sync::OnceLock<std::thread::Thread>,
    },
}

impl ClockShared {
    fn new(kind: ClockKind) -> Self {
        Self {
            queue: SpinLock::new(Queue {
                entries: Vec::new(),
                now: 0,
            }),
            kind,
        }
    }

    fn now(&self) -> Ticks {
        match &self.kind {
            ClockKind::Manual { .. } => self.queue.with(|q| q.now),
            #[cfg(feature = "std")]
            ClockKind::System { epoch, .. } => to_ticks(epoch.elapsed()),
        }
    }

    #[cfg(feature = "std")]
    fn epoch(&self) -> std::time::Instant {
        match &self.kind {
            ClockKind::Manual { epoch } | ClockKind::System { epoch, .. } => *epoch,
        }
    }

    /// Cancels, with reason `TimedOut`, every source whose timeout is due.
    /// Runs on the advancing (or timer) thread, with the queue unlocked.
    fn fire_due(&self, now: Ticks) -> Option<Ticks> {
        let mut due = Vec::new();
        let mut dropped = Vec::new();
        loop {
            let next = self.queue.with(|q| {
                q.take_due(now, &mut due, &mut dropped);
                q.next_deadline()
            });
            if due.is_empty() {
                return next;
            }
            // Timer entries and source references are dropped, and user
            // callbacks run, after the queue's lock is released.
            dropped.clear();
            for state in due.drain(..) {
                state.cancel(Reason::TimedOut);
            }
        }
    }

    fn arm(self: &Arc<Self>, node: &Arc<TimerNode>, deadline: Ticks) {
        let (earliest, old) = self.queue.with(|q| q.arm(node, deadline));
        drop(old);
        if earliest {
            self.wake_driver();
        }
    }

    fn wake_driver(self: &Arc<Self>) {
        #[cfg(feature = "std")]
        if let ClockKind::System { thread, .. } = &self.kind {
            thread
                .get_or_init(|| {
                    let clock = self.clone();
                    std::thread::Builder::new()
                        .name("cancel-core-timer".into())
                        .spawn(move || clock.run_system())
                        .expect("cancel-core: could not start the timer thread")
                        .thread()
                        .clone()
                })
                .unpark();
        }
    }

    /// The default timer thread: sleeps until the earliest deadline, fires
    /// what is due, repeats. A callback that blocks delays the timeouts after
    /// it (they fire late, never early); keep callbacks short.
    #[cfg(feature = "std")]
    fn run_system(self: Arc<Self>) {
        loop {
            match self.fire_due(self.now()) {
                None => std::thread::park(),
                Some(next) => {
                    let now = self.now();
                    if next > now {
                        std::thread::park_timeout(Duration::from_nanos(next - now));
                    }
                }
            }
        }
    }
}

/// Removes `node` from its clock's queue if it is there.
pub(crate) fn disarm(node: &Arc<TimerNode>) {
    let entry = node.clock.queue.with(|q| {
        let index = node.queue_index.load(Ordering::Relaxed);
        q.holds(index, node).then(|| q.remove(index))
    });
    drop(entry);
}

/// Arms `source` to be cancelled (reason `TimedOut`) at `deadline` on
/// `clock`, replacing any earlier arming: the last call wins. A deadline that
/// has passed cancels at once; `NEVER` only disarms.
fn arm_source(clock: &Arc<ClockShared>, source: &StateRef, deadline: Ticks) {
    if deadline <= clock.now() {
        source.cancel(Reason::TimedOut);
        return;
    }
    if deadline == NEVER {
        if let Some(timer) = source.timer() {
            disarm(&timer);
        }
        return;
    }
    if let Some(timer) = source.timer_on(clock) {
        clock.arm(&timer, deadline);
    }
}

/// A clock that moves only when told to, for deterministic tests of code
/// with timeouts, and for `no_std` builds. Advancing it fires every timeout
/// that has come due, on the advancing thread, in deadline order.
///
/// Sources are armed on it with [`ManualClock::with_timeout`] or
/// [`ManualClock::cancel_after`]; once armed on this clock, a source's
/// [`CancellationSource::cancel_after`] re-arms it here too.
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
#[derive(Clone)]
pub struct ManualClock {
    shared: Arc<ClockShared>,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(ClockShared::new(ClockKind::Manual {
                #[cfg(feature = "std")]
                epoch: std::time::Instant::now(),
            })),
        }
    }

    /// Time elapsed on this clock since it was made.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.shared.now())
    }

    /// Moves the clock forward by `by` and cancels every source whose
    /// timeout is now due, before returning (so their callbacks run here).
    /// Saturates at the end of the clock's range (about 584 years).
    pub fn advance(&self, by: Duration) {
        let now = self.shared.queue.with(|q| {
            q.now = q.now.saturating_add(to_ticks(by)).min(NEVER - 1);
            q.now
        });
        self.shared.fire_due(now);
    }

    /// A new source that this clock cancels once `timeout` has elapsed on it.
    /// A zero timeout gives a source that is already cancelled.
    pub fn with_timeout(&self, timeout: Duration) -> CancellationSource {
        let source = CancellationSource::new();
        self.cancel_after(&source, timeout);
        source
    }

    /// Arms `source` to be cancelled once `delay` has elapsed on this clock,
    /// replacing any timeout it had (on any clock): the last call wins. A
    /// zero delay cancels at once; a delay past the clock's range disarms.
    pub fn cancel_after(&self, source: &CancellationSource, delay: Duration) {
        let deadline = self.shared.now().saturating_add(to_ticks(delay));
        arm_source(&self.shared, source.state(), deadline);
    }

    /// Number of timeouts armed on this clock.
    pub fn armed(&self) -> usize {
        self.shared.queue.with(|q| q.entries.len())
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
    use crate::token::CancellationToken;

    /// The process-wide timer: one background thread, started on first use.
    fn system_clock() -> &'static Arc<ClockShared> {
        static CLOCK: OnceLock<Arc<ClockShared>> = OnceLock::new();
        CLOCK.get_or_init(|| {
            Arc::new(ClockShared::new(ClockKind::System {
                epoch: Instant::now(),
                thread: OnceLock::new(),
            }))
        })
    }

    fn ticks_at(clock: &ClockShared, at: Instant) -> Ticks {
        to_ticks(at.saturating_duration_since(clock.epoch()))
    }

    /// Number of timeouts armed on the default timer (for tests and
    /// diagnostics).
    #[doc(hidden)]
    pub fn default_timer_armed() -> (usize, usize) {
        system_clock()
            .queue
            .with(|q| (q.entries.len(), q.entries.capacity()))
    }

    impl CancellationSource {
        /// A new source cancelled with reason `TimedOut` once `timeout` has
        /// passed, by the default timer thread. A zero timeout gives a source
        /// that is already cancelled, with no timer; a timeout too large to
        /// add to `Instant::now()` never fires.
        ///
        /// ```
        /// use std::time::Duration;
        /// use cancel_core::CancellationSource;
        ///
        /// let source = CancellationSource::with_timeout(Duration::from_millis(10));
        /// source.token().wait();
        /// assert!(source.is_cancelled());
        /// ```
        pub fn with_timeout(timeout: Duration) -> CancellationSource {
            let source = CancellationSource::new();
            source.cancel_after(timeout);
            source
        }

        /// A new source cancelled with reason `TimedOut` at `deadline`. A
        /// deadline already reached gives a source that is already cancelled.
        pub fn with_deadline(deadline: Instant) -> CancellationSource {
            let source = CancellationSource::new();
            let clock = system_clock();
            arm_source(clock, source.state(), ticks_at(clock, deadline));
            source
        }

        /// Arms (or re-arms) this source to be cancelled with reason
        /// `TimedOut` after `delay`; the last call wins. A zero delay cancels
        /// now. A delay too large to add to `Instant::now()` means "never"
        /// and disarms. Does nothing once the source is cancelled; an
        /// explicit `cancel()` before the deadline disarms the timer.
        ///
        /// The timer runs on the source's clock: the default timer thread,
        /// or the [`ManualClock`] it was armed on.
        pub fn cancel_after(&self, delay: Duration) {
            if self.is_cancelled() {
                return;
            }
            let clock = match self.state().timer() {
                Some(timer) => timer.clock.clone(),
                None => system_clock().clone(),
            };
            let deadline = if delay.is_zero() {
                0
            } else {
                match Instant::now().checked_add(delay) {
                    Some(_) => clock.now().saturating_add(to_ticks(delay)),
                    None => NEVER,
                }
            };
            arm_source(&clock, self.state(), deadline);
        }
    }

    impl CancellationToken {
        /// The earliest armed deadline of this token's source and of every
        /// source it is linked to, directly or through other links (Go's
        /// `Deadline`). `None` when no timer is armed anywhere up the links.
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
        pub fn deadline(&self) -> Option<Instant> {
            let mut earliest: Option<Instant> = None;
            let mut todo = alloc::vec![self.state().clone()];
            let mut seen: Vec<usize> = Vec::new();
            while let Some(state) = todo.pop() {
                if seen.contains(&state.addr()) {
                    continue;
                }
                seen.push(state.addr());
                if let Some(timer) = state.timer() {
                    let ticks = timer.clock.queue.with(|q| q.deadline_of(&timer));
                    if let Some(ticks) = ticks {
                        let at = timer.clock.epoch() + Duration::from_nanos(ticks);
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                    }
                }
                todo.extend(state.parents());
            }
            earliest
        }
    }
}

#[cfg(feature = "std")]
pub use system::default_timer_armed;
