//! Timers and lifetimes: an armed timeout is a canceller in its own right.
//! A token whose every source handle is gone can still be cancelled by its
//! armed timer (as a token of Go's `WithTimeout` context is), so every
//! observer attached to it is kept and runs or wakes when the timer fires;
//! once nothing at all can cancel it, `can_be_cancelled()` says so and
//! nothing new is kept.
//!
//! The tests marked "review finding" failed on `a8d10ee`, before their fix.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::task::Context;
use std::thread;
use std::time::Duration;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, ManualClock};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const SEC: Duration = Duration::from_secs(1);

#[path = "common/count_waker.rs"]
mod count_waker;
use count_waker::count_waker;

fn timed_out(t: &CancellationToken) -> bool {
    matches!(t.reason(), Some(CancelReason::TimedOut))
}

/// Review finding 2: once the last source handle of a timed source was
/// dropped, `can_be_cancelled()` said `false` although the armed timer still
/// cancelled the token: `register` dropped its callback unrun and a future
/// stored no waker (pending forever).
#[test]
fn an_armed_timer_keeps_a_sourceless_token_cancellable() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    let token = source.token();
    drop(source);
    assert!(
        token.can_be_cancelled(),
        "the armed timer can still cancel it"
    );
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let reg = token.register(move || {
        r.fetch_add(1, SeqCst);
    });
    assert!(reg.is_pending(), "the callback is kept");
    let (wakes, waker) = count_waker();
    let mut fut = pin!(token.cancelled());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(
        Arc::strong_count(&wakes),
        3,
        "the future stored a waker clone"
    );
    clock.advance(10 * SEC);
    assert!(timed_out(&token));
    assert_eq!(ran.load(SeqCst), 1, "the callback ran");
    assert_eq!(wakes.0.load(SeqCst), 1, "the future was woken");
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
    assert_eq!(clock.armed(), 0);
}

/// Review finding 2, for children: a child of such a parent (with no source
/// of its own either) is cancelled through its parent's timer.
#[test]
fn a_child_of_a_sourceless_timed_parent_stays_cancellable() {
    let clock = ManualClock::new();
    let parent = clock.with_timeout(10 * SEC);
    let parent_token = parent.token();
    drop(parent);
    let child = parent_token.child().token();
    assert!(child.can_be_cancelled());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = child.register(move || {
        r.fetch_add(1, SeqCst);
    });
    drop(parent_token);
    assert!(
        child.can_be_cancelled(),
        "the child's link keeps the timed parent"
    );
    clock.advance(10 * SEC);
    assert_eq!(ran.load(SeqCst), 1);
    assert!(timed_out(&child));
}

/// Review finding 2, for blocked threads: `wait()` parked forever, and
/// `wait_timeout` slept through its whole timeout although the token was
/// cancelled at 50 ms. (The 30 s limit turns that sleep into a failure; the
/// timer fires on its own thread, so nothing here waits for a race.)
#[cfg(feature = "std")]
#[test]
fn a_thread_blocked_on_a_sourceless_timed_token_wakes_when_it_fires() {
    let token = CancellationSource::with_timeout(Duration::from_millis(50)).token();
    let start = std::time::Instant::now();
    assert!(token.wait_timeout(Duration::from_secs(30)));
    assert!(
        start.elapsed() < Duration::from_secs(25),
        "woken by the timeout's cancel"
    );
    let token = CancellationSource::with_timeout(Duration::from_millis(50)).token();
    token.wait();
    assert!(timed_out(&token));
    // The same on a manual clock advanced by another thread.
    let clock = ManualClock::new();
    let token = clock.with_timeout(10 * SEC).token();
    let c = clock.clone();
    let advancer = thread::spawn(move || c.advance(10 * SEC));
    token.wait();
    advancer.join().unwrap();
    assert!(timed_out(&token));
}

/// With the default timer: the token of `with_timeout(d)` times out even
/// when the source is a temporary, as Go's `WithTimeout` context does.
#[cfg(feature = "std")]
#[test]
fn the_token_of_a_temporary_timed_source_times_out() {
    let token = CancellationSource::with_timeout(Duration::from_millis(5)).token();
    assert!(token.can_be_cancelled());
    token.wait();
    assert!(timed_out(&token));
}

/// Disarming the timer of a source whose other handles are gone leaves
/// nothing that can cancel: `can_be_cancelled` turns `false` exactly then,
/// and a registration made afterwards keeps nothing.
#[test]
fn disarming_the_last_canceller_makes_the_token_uncancellable() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    let token = source.token();
    let keep = source.clone();
    drop(source);
    assert!(token.can_be_cancelled());
    clock.cancel_after(&keep, Duration::MAX); // "never": disarms
    assert_eq!(clock.armed(), 0);
    assert!(token.can_be_cancelled(), "`keep` is still a source");
    drop(keep);
    assert!(!token.can_be_cancelled(), "no source, no armed timer");
    let reg = token.register(|| unreachable!("never cancelled"));
    assert!(
        !reg.is_pending(),
        "nothing is kept for a token nothing can cancel"
    );
    clock.advance(20 * SEC);
    assert!(!token.is_cancelled());
}

/// Re-arming moves the one timer; the armed count never reaches zero while
/// it is armed, so a sourceless token stays cancellable through re-arms.
#[test]
fn rearming_keeps_exactly_one_canceller() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    for secs in [20, 5, 30, 1] {
        clock.cancel_after(&source, Duration::from_secs(secs));
        assert_eq!(clock.armed(), 1);
    }
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled());
    clock.advance(SEC);
    assert!(timed_out(&token));
    assert_eq!(clock.armed(), 0);
}

/// A timer on another clock replaces the first one: still one canceller.
#[test]
fn moving_a_timer_to_another_clock_keeps_one_canceller() {
    let a = ManualClock::new();
    let b = ManualClock::new();
    let source = a.with_timeout(10 * SEC);
    b.cancel_after(&source, 5 * SEC);
    assert_eq!((a.armed(), b.armed()), (0, 1));
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled());
    a.advance(20 * SEC);
    assert!(
        !token.is_cancelled(),
        "the first clock's timer was replaced"
    );
    b.advance(5 * SEC);
    assert!(timed_out(&token));
}

/// A `ManualClock` whose every handle is gone can never fire: its armed
/// timers are disarmed with it, and a token that only it could cancel says
/// so (nothing hangs on a clock nobody can advance).
#[test]
fn dropping_the_last_clock_handle_disarms_its_timers() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled());
    let (wakes, waker) = count_waker();
    let mut fut = pin!(token.cancelled());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(clock);
    assert!(!token.can_be_cancelled(), "nothing can cancel it any more");
    assert!(!token.is_cancelled());
    assert_eq!(wakes.0.load(SeqCst), 0);
    // Nothing new is kept for it.
    let reg = token.register(|| unreachable!());
    assert!(!reg.is_pending());
}

/// The last handles of a timed source and of its clock go: nothing leaks
/// (the timer's node, the queue entry and the state are all freed).
#[test]
fn timed_sources_and_clocks_dropped_in_any_order_leak_nothing() {
    for order in 0..6 {
        let before = counting::live();
        {
            let clock = ManualClock::new();
            let source = clock.with_timeout(10 * SEC);
            let token = source.token();
            let child = token.child();
            let mut parts: Vec<Box<dyn std::any::Any>> = vec![
                Box::new(clock),
                Box::new(source),
                Box::new(token),
                Box::new(child),
            ];
            parts.rotate_left(order % 4);
            if order >= 4 {
                parts.reverse();
            }
            for p in parts {
                drop(p);
            }
        }
        assert_eq!(counting::live(), before, "order {order}");
    }
}

/// Review finding 6: two threads advancing one `ManualClock` at once. Each
/// `advance` must return only when every source due at its time is
/// cancelled, even if the other thread took that source off the queue.
#[test]
fn concurrent_advances_each_return_with_everything_due_cancelled() {
    let rounds = if cfg!(miri) { 4 } else { 300 };
    for _ in 0..rounds {
        let clock = ManualClock::new();
        let sources: Arc<Vec<CancellationSource>> =
            Arc::new((0..8).map(|_| clock.with_timeout(SEC)).collect());
        let start = Arc::new(Barrier::new(2));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (c, s, b) = (clock.clone(), sources.clone(), start.clone());
                thread::spawn(move || {
                    b.wait();
                    c.advance(SEC);
                    s.iter().filter(|s| !s.is_cancelled()).count()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(
                t.join().unwrap(),
                0,
                "advance returned before a due source was cancelled"
            );
        }
    }
}

/// Second review, finding 1: `advance` claimed every due source before
/// running any of their observers. A timeout callback that cancelled a
/// parent of another due source then saw `cancel()` return `true` with that
/// source's subtree neither run nor cancelled (it was claimed, waiting for
/// this thread to drain it after the callback returned), breaking
/// `cancel()`'s promise; a `wait()` there hung.
#[test]
fn cancel_inside_a_timeout_callback_finishes_a_due_descendant() {
    let clock = ManualClock::new();
    let parent = CancellationSource::new();
    let middle = parent.token().child();
    clock.cancel_after(&middle, 10 * SEC);
    let grandchild = middle.token().child();
    let middle_ran = Arc::new(AtomicUsize::new(0));
    let m = middle_ran.clone();
    let _reg_middle = middle.token().register(move || {
        m.fetch_add(1, SeqCst);
    });
    let other = clock.with_timeout(5 * SEC);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let (p, g, m, s) = (
        parent.clone(),
        grandchild.token(),
        middle_ran.clone(),
        seen.clone(),
    );
    let _reg_other = other.token().register(move || {
        let performed = p.cancel();
        *s.lock().unwrap() = Some((performed, m.load(SeqCst), g.is_cancelled()));
    });
    clock.advance(10 * SEC);
    let (performed, middle_runs, grandchild_cancelled) = seen.lock().unwrap().unwrap();
    assert!(performed, "parent.cancel() made the cancellation");
    assert_eq!(
        middle_runs, 1,
        "middle's callback ran before parent.cancel() returned"
    );
    assert!(
        grandchild_cancelled,
        "the grandchild was cancelled before it returned"
    );
    assert_eq!(middle_ran.load(SeqCst), 1, "and only once");
}

/// Second review, finding 2: `cancel_after` checked "already due?" without
/// the queue's lock and queued the timeout later; an `advance` in between
/// moved the clock past the deadline and found nothing to fire, leaving a
/// timeout due at 1 s armed and unfired with the clock at 10 s. The advance
/// runs here at the timer node's allocation, inside that window.
#[test]
fn a_timeout_armed_during_an_advance_is_not_left_overdue() {
    let clock = ManualClock::new();
    let source = CancellationSource::new();
    let c = clock.clone();
    counting::on_next_alloc(move || c.advance(10 * SEC));
    clock.cancel_after(&source, SEC);
    assert_eq!(clock.now(), 10 * SEC);
    assert!(
        source.is_cancelled(),
        "due at 1 s with the clock at 10 s: fired, not left armed"
    );
    assert_eq!(clock.armed(), 0);
}

/// Second review, finding 5: after the last handle of the `ManualClock` a
/// source was armed on had gone, `source.cancel_after(d)` re-armed on that
/// stopped clock, which arms nothing: the timeout silently never fired. It
/// now goes to the default timer.
#[cfg(feature = "std")]
#[test]
fn cancel_after_on_a_source_whose_manual_clock_is_gone_uses_the_default_timer() {
    let source = CancellationSource::new();
    {
        let clock = ManualClock::new();
        clock.cancel_after(&source, 3600 * SEC);
    }
    source.cancel_after(3600 * SEC);
    assert!(
        source.token().deadline().is_some(),
        "armed, on the default timer"
    );
    source.cancel_after(Duration::from_millis(20));
    assert!(
        source.token().wait_timeout(Duration::from_secs(60)),
        "fired"
    );
    assert!(timed_out(&source.token()));
}
