//! Issue 16: clocks as a trait, timeouts with causes, disarm, try_reset,
//! where a cancellation came from, and timeouts that leak nothing on any
//! clock. Everything runs on clocks the test drives (a `ManualClock`, a
//! clock of the test's own), never on sleeps.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cancel_core::time::{Clock, Timer};
use cancel_core::{CancelOrigin, CancelReason, CancellationSource, CancellationToken, ManualClock};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const SEC: Duration = Duration::from_secs(1);

/// Runs `f` with a silent panic hook: the default hook captures a
/// backtrace, whose lazily filled caches would count as live allocations.
fn silently<R>(f: impl FnOnce() -> R) -> R {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f();
    std::panic::set_hook(previous);
    r
}

fn n(full: usize) -> usize {
    if cfg!(miri) { 64 } else { full }
}

/// A cause that counts its drops, and can panic in `Drop`.
#[derive(Debug)]
struct Cause {
    drops: Arc<AtomicUsize>,
    panic_on_drop: bool,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("test cause")
    }
}

impl std::error::Error for Cause {}

impl Drop for Cause {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.panic_on_drop && !std::thread::panicking() {
            panic!("cause drop");
        }
    }
}

fn cause(drops: &Arc<AtomicUsize>) -> Cause {
    Cause {
        drops: drops.clone(),
        panic_on_drop: false,
    }
}

fn panicking_cause(drops: &Arc<AtomicUsize>) -> Cause {
    Cause {
        drops: drops.clone(),
        panic_on_drop: true,
    }
}

/// A clock the test sets by hand, recording every `wake_at`, optionally
/// panicking in it or in `now`.
#[derive(Clone, Default)]
struct TestClock(Arc<TestClockState>);

#[derive(Default)]
struct TestClockState {
    now_ms: AtomicU64,
    wakes: Mutex<Vec<Duration>>,
    panic_in_wake_at: std::sync::atomic::AtomicBool,
    panic_in_now: std::sync::atomic::AtomicBool,
}

impl TestClock {
    fn set(&self, ms: u64) {
        self.0.now_ms.store(ms, SeqCst);
    }
    fn wakes(&self) -> Vec<Duration> {
        self.0.wakes.lock().unwrap().clone()
    }
}

impl Clock for TestClock {
    fn now(&self) -> Duration {
        if self.0.panic_in_now.load(SeqCst) {
            panic!("clock now");
        }
        Duration::from_millis(self.0.now_ms.load(SeqCst))
    }
    fn wake_at(&self, at: Duration) {
        self.0.wakes.lock().unwrap().push(at);
        if self.0.panic_in_wake_at.load(SeqCst) {
            panic!("clock wake_at");
        }
    }
}

#[test]
fn a_clock_of_your_own_is_told_the_earliest_deadline_and_fires_on_fire_due() {
    let clock = TestClock::default();
    let timer = Timer::new(clock.clone());
    let late = timer.with_timeout(Duration::from_millis(50));
    let early = timer.with_timeout(Duration::from_millis(20));
    let later = timer.with_timeout(Duration::from_millis(90));
    assert_eq!(
        clock.wakes(),
        [Duration::from_millis(50), Duration::from_millis(20)],
        "told only when the earliest moves earlier"
    );
    assert_eq!(
        timer.fire_due(),
        Some(Duration::from_millis(20)),
        "nothing due"
    );
    clock.set(50);
    assert_eq!(timer.fire_due(), Some(Duration::from_millis(90)));
    assert!(early.is_cancelled() && late.is_cancelled() && !later.is_cancelled());
    assert_eq!(early.origin(), Some(CancelOrigin::Timeout));
    clock.set(90);
    assert_eq!(timer.fire_due(), None);
    assert!(later.reason().unwrap().is_timed_out());
    assert_eq!(timer.armed(), 0);
}

#[test]
fn a_panicking_wake_at_leaves_the_timeout_armed_and_firing() {
    let clock = TestClock::default();
    let timer = Timer::new(clock.clone());
    clock.0.panic_in_wake_at.store(true, SeqCst);
    let source = CancellationSource::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        timer.cancel_after(&source, Duration::from_millis(10))
    }));
    assert!(result.is_err(), "the clock's panic reaches the caller");
    assert_eq!(timer.armed(), 1, "armed before the clock was told");
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled(), "the armed timer still counts");
    clock.0.panic_in_wake_at.store(false, SeqCst);
    clock.set(10);
    timer.fire_due();
    assert!(token.reason().unwrap().is_timed_out());
}

#[test]
fn a_panicking_now_arms_nothing() {
    let clock = TestClock::default();
    let timer = Timer::new(clock.clone());
    clock.0.panic_in_now.store(true, SeqCst);
    let source = CancellationSource::new();
    let result = catch_unwind(AssertUnwindSafe(|| timer.cancel_after(&source, SEC)));
    assert!(result.is_err());
    clock.0.panic_in_now.store(false, SeqCst);
    assert_eq!(timer.armed(), 0);
    assert!(!source.is_cancelled());
    assert!(!source.disarm());
    // Still usable.
    timer.cancel_after(&source, SEC);
    assert_eq!(timer.armed(), 1);
}

#[test]
fn a_timeout_with_a_cause_cancels_with_it_and_children_inherit_it() {
    let drops = Arc::new(AtomicUsize::new(0));
    let clock = ManualClock::new();
    let timer = clock.timer();
    let source = timer.with_timeout_cause(10 * SEC, cause(&drops));
    let child = source.child();
    clock.advance(10 * SEC);
    let reason = source.reason().unwrap();
    assert!(reason.downcast_cause::<Cause>().is_some());
    assert!(!reason.is_timed_out(), "the reason is the cause");
    assert_eq!(child.reason(), Some(reason), "shared with the child");
    assert_eq!(source.origin(), Some(CancelOrigin::Timeout));
    assert_eq!(child.origin(), Some(CancelOrigin::Parent));
    assert_eq!(drops.load(SeqCst), 0, "kept as the reason");
    drop((source, child));
    assert_eq!(drops.load(SeqCst), 1, "dropped once, with the last state");
}

#[test]
fn re_arming_replaces_the_cause_and_a_plain_re_arm_drops_it() {
    let first = Arc::new(AtomicUsize::new(0));
    let second = Arc::new(AtomicUsize::new(0));
    let clock = ManualClock::new();
    let timer = clock.timer();
    let source = CancellationSource::new();
    timer.cancel_after_with(&source, 5 * SEC, cause(&first));
    timer.cancel_after_with(&source, 6 * SEC, cause(&second));
    assert_eq!(first.load(SeqCst), 1, "the replaced cause is dropped");
    timer.cancel_after(&source, 7 * SEC);
    assert_eq!(second.load(SeqCst), 1, "a plain re-arm drops the cause");
    clock.advance(7 * SEC);
    assert_eq!(source.reason(), Some(CancelReason::TimedOut));

    // A cause armed with a deadline already reached cancels at once.
    let third = Arc::new(AtomicUsize::new(0));
    let now = CancellationSource::new();
    timer.cancel_after_with(&now, Duration::ZERO, cause(&third));
    assert!(now.reason().unwrap().downcast_cause::<Cause>().is_some());
    assert_eq!(now.origin(), Some(CancelOrigin::Timeout));
    // On a cancelled source arming does nothing: the cause is dropped.
    let fourth = Arc::new(AtomicUsize::new(0));
    timer.cancel_after_with(&now, SEC, cause(&fourth));
    assert_eq!(fourth.load(SeqCst), 1);
    assert_eq!(timer.armed(), 0);
}

#[test]
fn an_unfired_cause_is_dropped_once_on_every_way_out() {
    let clock = ManualClock::new();
    let timer = clock.timer();
    // cancel() first: the drain disarms, the cause goes.
    let d = Arc::new(AtomicUsize::new(0));
    let a = timer.with_timeout_cause(SEC, cause(&d));
    a.cancel();
    assert_eq!(
        (d.load(SeqCst), a.origin()),
        (1, Some(CancelOrigin::Cancel))
    );
    // disarm().
    let d = Arc::new(AtomicUsize::new(0));
    let b = timer.with_timeout_cause(SEC, cause(&d));
    assert!(b.disarm());
    assert_eq!(d.load(SeqCst), 1);
    // The source's state dies armed: a token keeps it (the armed timer is
    // a canceller), and with the token gone nobody can observe it.
    let d = Arc::new(AtomicUsize::new(0));
    let c = timer.with_timeout_cause(SEC, cause(&d));
    let token = c.token();
    drop(c);
    assert_eq!((d.load(SeqCst), timer.armed()), (0, 1), "still armed");
    drop(token);
    assert_eq!(timer.armed(), 0);
    assert_eq!(d.load(SeqCst), 1);
    // The clock stops.
    let d = Arc::new(AtomicUsize::new(0));
    let e = timer.with_timeout_cause(SEC, cause(&d));
    timer.stop();
    assert_eq!((d.load(SeqCst), e.is_cancelled()), (1, false));
}

#[test]
fn a_panicking_cause_drop_costs_nothing_else() {
    let clock = ManualClock::new();
    let timer = clock.timer();

    // Replaced by a re-arm: the panic reaches the re-arming caller, the
    // new arming holds.
    let d = Arc::new(AtomicUsize::new(0));
    let s = CancellationSource::new();
    timer.cancel_after_with(&s, SEC, panicking_cause(&d));
    let r = catch_unwind(AssertUnwindSafe(|| timer.cancel_after(&s, 2 * SEC)));
    assert!(r.is_err());
    assert_eq!((d.load(SeqCst), timer.armed()), (1, 1));
    clock.advance(2 * SEC);
    assert!(s.reason().unwrap().is_timed_out());

    // disarm(): the count is given back before the panic.
    let d = Arc::new(AtomicUsize::new(0));
    let s = timer.with_timeout_cause(SEC, panicking_cause(&d));
    let t = s.token();
    assert!(catch_unwind(AssertUnwindSafe(|| s.disarm())).is_err());
    drop(s);
    assert!(!t.can_be_cancelled(), "no canceller is left counted");
    assert_eq!(d.load(SeqCst), 1);

    // cancel(): every observer still runs, then the panic is resumed.
    let d = Arc::new(AtomicUsize::new(0));
    let s = timer.with_timeout_cause(SEC, panicking_cause(&d));
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    let _reg = s.token().register(move || {
        r2.fetch_add(1, SeqCst);
    });
    assert!(catch_unwind(AssertUnwindSafe(|| s.cancel())).is_err());
    assert_eq!((ran.load(SeqCst), d.load(SeqCst)), (1, 1));
    assert_eq!(timer.armed(), 0);

    // Fired: the source is cancelled with it and keeps it; the panic comes
    // when its state is freed, after the rest of the chain is freed.
    let d = Arc::new(AtomicUsize::new(0));
    let s = timer.with_timeout_cause(SEC, panicking_cause(&d));
    let other = timer.with_timeout(SEC);
    clock.advance(SEC);
    assert!(s.is_cancelled() && other.is_cancelled());
    assert!(catch_unwind(AssertUnwindSafe(move || drop(s))).is_err());
    assert_eq!(d.load(SeqCst), 1);

    // Freed armed with its state: caught, the chain is freed, then resumed.
    let run = || {
        let d = Arc::new(AtomicUsize::new(0));
        let parent = CancellationSource::new();
        let child = parent.child();
        timer.cancel_after_with(&parent, SEC, panicking_cause(&d));
        drop(parent);
        assert!(catch_unwind(AssertUnwindSafe(move || drop(child))).is_err());
        assert_eq!(d.load(SeqCst), 1);
    };
    run(); // the panic machinery's own first allocations
    let (_, _, live, ()) = silently(|| counting::measure(run));
    assert_eq!(live, 0, "both states freed");
    assert_eq!(timer.armed(), 0);

    // The clock stops (the last handle's drop): every entry is taken out
    // first, then the causes are dropped.
    let d = Arc::new(AtomicUsize::new(0));
    let s = timer.with_timeout_cause(SEC, panicking_cause(&d));
    let plain = timer.with_timeout(SEC);
    drop(timer);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(clock))).is_err());
    assert_eq!(d.load(SeqCst), 1);
    assert!(!s.is_cancelled() && !plain.is_cancelled());
    assert!(!plain.disarm(), "disarmed by the stop");
}

#[test]
fn disarm_stops_the_timer_without_cancelling() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(SEC);
    let token = source.token();
    assert!(source.disarm());
    assert!(!source.disarm());
    clock.advance(2 * SEC);
    assert!(!token.is_cancelled());
    drop(source);
    assert!(
        !token.can_be_cancelled(),
        "no source, no timer: nothing can cancel it"
    );
    // Re-armed after a disarm, it fires.
    let again = clock.with_timeout(SEC);
    again.disarm();
    clock.cancel_after(&again, SEC);
    clock.advance(SEC);
    assert!(again.is_cancelled());
    assert!(!again.disarm(), "nothing to disarm once cancelled");
}

#[test]
fn try_reset_readies_an_uncancelled_source_and_refuses_a_cancelled_one() {
    let clock = ManualClock::new();
    let pooled = clock.with_timeout(SEC);
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    let _reg = pooled.token().register(move || {
        s2.fetch_add(1, SeqCst);
    });
    assert!(pooled.try_reset());
    clock.advance(5 * SEC);
    assert!(!pooled.is_cancelled(), "the old timeout is gone");
    assert!(pooled.try_reset(), "reset twice: still fine");
    // The registrations stay: they belong to their handles.
    pooled.cancel();
    assert_eq!(seen.load(SeqCst), 1);
    assert!(!pooled.try_reset());

    let timed = clock.with_timeout(SEC);
    clock.advance(SEC);
    assert!(!timed.try_reset(), "timed out: not reusable");
    let child = {
        let parent = CancellationSource::new();
        let child = parent.child();
        parent.cancel();
        child
    };
    assert!(!child.try_reset(), "inherited: not reusable");
}

#[test]
fn origin_tells_own_cancel_own_timeout_and_parent_apart() {
    let clock = ManualClock::new();
    let server = clock.with_timeout(10 * SEC);
    let request = server.child();
    clock.cancel_after(&request, 30 * SEC);
    assert_eq!(request.origin(), None);
    clock.advance(10 * SEC);
    assert_eq!(server.reason(), request.reason(), "both say TimedOut");
    assert_eq!(server.origin(), Some(CancelOrigin::Timeout));
    assert_eq!(request.origin(), Some(CancelOrigin::Parent));
    assert!(request.origin().unwrap().is_inherited());

    // Its own timeout, under a live parent.
    let server = CancellationSource::new();
    let request = server.child();
    clock.cancel_after(&request, SEC);
    clock.advance(SEC);
    assert_eq!(request.origin(), Some(CancelOrigin::Timeout));
    assert_eq!(server.origin(), None);

    // Born from a cancelled parent; linked; explicit cancels.
    let gone = CancellationSource::new();
    gone.cancel_with(std::fmt::Error);
    assert_eq!(gone.origin(), Some(CancelOrigin::Cancel));
    let late_child = gone.child();
    assert_eq!(late_child.origin(), Some(CancelOrigin::Parent));
    let (a, b) = (CancellationSource::new(), CancellationSource::new());
    let both = CancellationSource::linked([&a, &b]);
    b.cancel();
    assert_eq!(both.token().origin(), Some(CancelOrigin::Parent));
    both.cancel();
    assert_eq!(
        both.origin(),
        Some(CancelOrigin::Parent),
        "the first cancellation stays"
    );
    assert_eq!(CancellationToken::none().origin(), None);
}

/// A chain of `n(1000)` children below `top`, and the allocations and the
/// result of `deadline()` on its last token.
fn deadline_below_a_chain(top: &CancellationSource) -> (usize, Option<cancel_core::Deadline>) {
    let mut chain = vec![top.child()];
    for _ in 0..n(1000) {
        let next = chain.last().unwrap().child();
        chain.push(next);
    }
    let token = chain.last().unwrap().token();
    let (allocs, _, _, deadline) = counting::measure(|| token.deadline());
    // Dropped leaf first: each drop frees one state, with no recursion.
    while chain.pop().is_some() {}
    (allocs, deadline)
}

#[test]
fn the_deadline_of_a_chain_allocates_nothing() {
    let clock = ManualClock::new();
    let root = clock.with_timeout(60 * SEC);
    let (allocs, deadline) = deadline_below_a_chain(&root);
    assert_eq!(allocs, 0);
    assert_eq!(deadline.unwrap().remaining(), 60 * SEC);
}

/// Arms `count` timeouts on `timer`, then drops every source: the queue is
/// empty and nothing this thread allocated stays live but the queue's
/// buffer.
fn arm_and_drop(timer: &Timer, count: usize, allowed: isize) {
    let (_, _, live, ()) = counting::measure(|| {
        let sources: Vec<_> = (0..count)
            .map(|i| timer.with_timeout(Duration::from_secs(3600 + i as u64)))
            .collect();
        assert_eq!(timer.armed(), count);
        drop(sources);
        assert_eq!(timer.armed(), 0);
    });
    assert!(live <= allowed, "{live} allocations left live");
}

#[test]
fn a_million_timeouts_armed_then_dropped_leak_nothing_on_the_manual_clock() {
    let clock = ManualClock::new();
    arm_and_drop(&clock.timer(), n(1_000_000), 1);
}

#[test]
fn a_million_timeouts_armed_then_dropped_leak_nothing_on_a_clock_of_your_own() {
    // One more: the test clock's own record of `wake_at` calls.
    arm_and_drop(&Timer::new(TestClock::default()), n(1_000_000), 2);
}

#[cfg(not(miri))] // the timer thread: Miri runs the manual clock's twin
#[test]
fn a_million_timeouts_armed_then_dropped_leak_nothing_on_the_default_timer() {
    let timer = Timer::system();
    let before = timer.armed();
    let (_, _, live, ()) = counting::measure(|| {
        let sources: Vec<_> = (0..1_000_000)
            .map(|i| CancellationSource::with_timeout(Duration::from_secs(3600 + i)))
            .collect();
        drop(sources);
    });
    assert_eq!(timer.armed(), before);
    assert!(live <= 1, "{live} allocations left live");
}

#[test]
fn a_stopped_clock_leaves_its_sources_uncancelled_and_arms_nothing() {
    let timer = Timer::new(TestClock::default());
    let source = timer.with_timeout(SEC);
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled());
    timer.stop();
    assert!(timer.is_stopped());
    assert!(
        !token.can_be_cancelled(),
        "its only canceller was the timer"
    );
    let fresh = CancellationSource::new();
    timer.cancel_after(&fresh, SEC);
    assert_eq!(timer.armed(), 0, "nothing armed on a stopped clock");
    assert!(!fresh.is_cancelled());
    assert_eq!(timer.fire_due(), None);
}

#[test]
fn cancel_at_carries_a_deadline_onto_a_new_source() {
    let clock = ManualClock::new();
    let timer = clock.timer();
    let incoming = timer.deadline_in(5 * SEC);
    let server = CancellationSource::new();
    let request = server.child();
    request.cancel_at(&incoming);
    assert_eq!(request.deadline(), Some(incoming.clone()));
    clock.advance(2 * SEC);
    assert_eq!(request.token().deadline().unwrap().remaining(), 3 * SEC);
    clock.advance(3 * SEC);
    assert!(request.reason().unwrap().is_timed_out());
    assert!(incoming.is_expired());
    assert!(
        incoming.source().is_cancelled(),
        "already reached: born cancelled"
    );
}

// The seventh review (of the clocks work): a clock's `Drop` and a cause's
// `Drop` are user code too.

/// A clock whose `Drop` panics.
struct PanicDropClock;

impl Clock for PanicDropClock {
    fn now(&self) -> Duration {
        Duration::ZERO
    }
    fn wake_at(&self, _: Duration) {}
}

impl Drop for PanicDropClock {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("clock drop");
        }
    }
}

/// Review 7.1: a re-arm to an earlier deadline over a cause whose `Drop`
/// panics skipped `wake_at`: the driver slept on to the old deadline.
#[test]
fn a_rearm_over_a_panicking_cause_still_tells_the_clock() {
    let clock = TestClock::default();
    let timer = Timer::new(clock.clone());
    let drops = Arc::new(AtomicUsize::new(0));
    let source = timer.with_timeout_cause(Duration::from_millis(100), panicking_cause(&drops));
    let r = catch_unwind(AssertUnwindSafe(|| {
        timer.cancel_after(&source, Duration::from_millis(10))
    }));
    assert!(r.is_err(), "the cause's panic reaches the re-arming caller");
    assert_eq!(
        source.deadline().unwrap().since_epoch(),
        Duration::from_millis(10)
    );
    assert_eq!(clock.wakes().last(), Some(&Duration::from_millis(10)));
}

/// Review 7.1, the due path: on a manual clock a re-arm whose deadline is
/// already reached cancels at once; a panicking old cause must not skip
/// that.
#[test]
fn a_due_rearm_over_a_panicking_cause_still_cancels() {
    let clock = ManualClock::new();
    let timer = clock.timer();
    let drops = Arc::new(AtomicUsize::new(0));
    let source = timer.with_timeout_cause(SEC, panicking_cause(&drops));
    let r = catch_unwind(AssertUnwindSafe(|| {
        timer.cancel_after(&source, Duration::ZERO)
    }));
    assert!(r.is_err());
    assert!(source.reason().unwrap().is_timed_out());
    assert_eq!(timer.armed(), 0);
}

/// Review 7.2: the drain dropped the timer node outside its catch; the node
/// can own the last handle of its clock, whose `Drop` panicked out of the
/// drain with the rest of the list unrun.
#[test]
fn a_clock_whose_drop_panics_inside_a_drain_loses_no_observer() {
    let timer = Timer::new(PanicDropClock);
    let source = timer.with_timeout(Duration::from_secs(3600));
    assert!(source.disarm()); // the node stays first in the list
    drop(timer); // the node now owns the clock alone
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    let _reg = source.token().register(move || {
        r2.fetch_add(1, SeqCst);
    });
    let child = source.child();
    assert!(catch_unwind(AssertUnwindSafe(|| source.cancel())).is_err());
    assert!(source.is_cancelled());
    assert!(child.is_cancelled(), "the child's cancellation was lost");
    assert_eq!(ran.load(SeqCst), 1, "the callback never ran");
}

/// Review 7.3: destroying a state dropped its timer node (and so its
/// clock, whose `Drop` panicked) outside the catch: the state and its
/// parent's reference leaked.
#[test]
fn a_clock_whose_drop_panics_when_its_last_source_dies_leaks_nothing() {
    let parent = CancellationSource::new();
    let run = || {
        let timer = Timer::new(PanicDropClock);
        let child = parent.child();
        timer.cancel_after(&child, Duration::from_secs(3600));
        assert!(child.disarm());
        drop(timer);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(child))).is_err());
    };
    run(); // the panic machinery's own first allocations
    let (_, _, live, ()) = silently(|| counting::measure(run));
    assert_eq!(live, 0, "{live} allocations leaked");
}

/// Review, minor: `Timer::stop` dropped every taken entry at once; two
/// causes that panic in `Drop` then aborted the process (a panic during
/// the first one's unwind). Each is dropped on its own now, the first
/// panic resumed after all of them.
#[test]
fn stopping_a_clock_with_two_panicking_causes_drops_both() {
    let drops = Arc::new(AtomicUsize::new(0));
    let clock = ManualClock::new();
    let timer = clock.timer();
    let a = timer.with_timeout_cause(SEC, panicking_cause(&drops));
    let b = timer.with_timeout_cause(2 * SEC, panicking_cause(&drops));
    assert!(catch_unwind(AssertUnwindSafe(|| timer.stop())).is_err());
    assert_eq!(drops.load(SeqCst), 2);
    assert_eq!(timer.armed(), 0);
    assert!(!a.is_cancelled() && !b.is_cancelled());
}

/// The furthest deadline a clock can hold (about 584 years) converts to an
/// `Instant` without a panic, on any clock.
#[test]
fn the_furthest_deadline_converts_to_an_instant() {
    let clock = ManualClock::new();
    let far = clock.timer().deadline_in(Duration::MAX);
    assert!(far.to_instant() > std::time::Instant::now());
    assert!(far.remaining() > Duration::from_secs(86_400 * 365 * 500));
    // The default clock's thread outlives the test: not under Miri's leak
    // checker (tests/timer.rs runs it there).
    if !cfg!(miri) {
        let far = Timer::system().deadline_in(Duration::MAX);
        assert!(far.to_instant() > std::time::Instant::now());
    }
}

/// A linked source with a short ancestry (a diamond over a timed root) and
/// a chain below it: `deadline()` allocates nothing.
#[test]
fn the_deadline_past_a_small_fan_in_allocates_nothing() {
    let clock = ManualClock::new();
    let root = clock.with_timeout(60 * SEC);
    let (a, b) = (root.child(), root.child());
    clock.cancel_after(&b, 30 * SEC);
    let both = CancellationSource::linked([&a, &b]);
    let (allocs, deadline) = deadline_below_a_chain(&both);
    assert_eq!(allocs, 0);
    assert_eq!(
        deadline.unwrap().remaining(),
        30 * SEC,
        "b's, through the diamond"
    );
}
