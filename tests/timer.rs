//! Issue-5 semantics: timeouts and deadlines, on the manual clock (never on
//! wall-clock sleeps that could flake), plus the default timer's bookkeeping.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, Deadline, ManualClock};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const SEC: Duration = Duration::from_secs(1);

/// The deadline at a manual clock's time `at`.
#[cfg_attr(not(feature = "std"), allow(dead_code))]
fn clock_deadline(clock: &ManualClock, at: Duration) -> Option<Deadline> {
    Some(clock.timer().deadline_in(at - clock.now()))
}

fn timed_out(t: &CancellationToken) -> bool {
    matches!(t.reason(), Some(CancelReason::TimedOut))
}

#[test]
fn a_timeout_cancels_with_timed_out_and_children_inherit_it() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    let child = source.token().child();
    let grandchild = child.token().child();
    clock.advance(9 * SEC);
    assert!(!source.is_cancelled());
    clock.advance(SEC);
    assert!(timed_out(&source.token()));
    assert!(timed_out(&child.token()));
    assert!(timed_out(&grandchild.token()));
    assert_eq!(clock.armed(), 0);
}

#[test]
fn an_explicit_cancel_before_the_deadline_wins_and_disarms() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(10 * SEC);
    assert_eq!(clock.armed(), 1);
    source.cancel();
    assert_eq!(clock.armed(), 0, "cancel disarms the timer");
    clock.advance(20 * SEC);
    assert!(matches!(
        source.token().reason(),
        Some(CancelReason::Requested)
    ));
}

#[cfg(feature = "std")]
#[test]
fn the_last_cancel_after_wins() {
    let clock = ManualClock::new();
    // Long then short: fires at the short one.
    let source = clock.with_timeout(100 * SEC);
    source.cancel_after(5 * SEC);
    assert_eq!(clock.armed(), 1, "re-arming moves the one entry");
    clock.advance(5 * SEC);
    assert!(timed_out(&source.token()));
    // Short then long: fires at the long one.
    let source = clock.with_timeout(5 * SEC);
    source.cancel_after(100 * SEC);
    clock.advance(50 * SEC);
    assert!(!source.is_cancelled());
    clock.advance(50 * SEC);
    assert!(timed_out(&source.token()));
}

#[cfg(feature = "std")]
#[test]
fn zero_past_and_huge_durations() {
    let clock = ManualClock::new();
    let zero = clock.with_timeout(Duration::ZERO);
    assert!(timed_out(&zero.token()));
    assert_eq!(clock.armed(), 0, "no timer for a zero timeout");
    let zero = CancellationSource::with_timeout(Duration::ZERO);
    assert!(timed_out(&zero.token()));
    let past = CancellationSource::with_deadline(Instant::now() - Duration::from_millis(1));
    assert!(timed_out(&past.token()));
    // Too large to add to Instant::now(): never, not a panic.
    let never = CancellationSource::with_timeout(Duration::MAX);
    assert!(!never.is_cancelled());
    assert!(never.token().deadline().is_none());
    let source = clock.with_timeout(SEC);
    clock.cancel_after(&source, Duration::MAX);
    assert_eq!(clock.armed(), 0, "a never deadline disarms");
    clock.advance(Duration::MAX);
    assert!(!source.is_cancelled());
}

#[cfg(feature = "std")]
#[test]
fn deadline_reflects_rearming_and_links() {
    let clock = ManualClock::new();
    let plain = CancellationSource::new();
    assert!(plain.token().deadline().is_none());
    assert!(CancellationToken::none().deadline().is_none());

    let parent = clock.with_timeout(60 * SEC);
    let d1 = parent.token().deadline().unwrap();
    parent.cancel_after(30 * SEC);
    let d2 = parent.token().deadline().unwrap();
    assert_eq!(d1.since_epoch() - d2.since_epoch(), 30 * SEC);

    let child = parent.token().child();
    assert_eq!(
        child.token().deadline(),
        Some(d2.clone()),
        "inherited from the parent"
    );
    clock.cancel_after(&child, 10 * SEC);
    assert_eq!(
        child.token().deadline(),
        clock_deadline(&clock, d2.since_epoch() - 20 * SEC),
        "its own, earlier"
    );
    clock.cancel_after(&child, 100 * SEC);
    assert_eq!(
        child.token().deadline(),
        Some(d2.clone()),
        "the parent's is earlier now"
    );

    let other = CancellationSource::new();
    let both = CancellationSource::linked([&other.token(), &child.token()]);
    assert_eq!(both.token().deadline(), Some(d2));
    clock.advance(30 * SEC);
    assert!(both.is_cancelled());
}

#[test]
fn callbacks_of_a_timeout_run_on_the_advancing_thread() {
    let clock = ManualClock::new();
    let source = clock.with_timeout(SEC);
    let seen = Arc::new(Mutex::new(None));
    let s = seen.clone();
    let _r = source.token().register(move || {
        *s.lock().unwrap() = Some(std::thread::current().id());
    });
    clock.advance(SEC);
    assert_eq!(*seen.lock().unwrap(), Some(std::thread::current().id()));
}

#[cfg(feature = "std")]
#[test]
fn timeouts_fire_in_deadline_order_and_a_callback_may_arm_another() {
    let clock = ManualClock::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let sources: Vec<_> = [3u64, 1, 2]
        .iter()
        .map(|&s| {
            let src = clock.with_timeout(Duration::from_secs(s));
            let o = order.clone();
            let reg = src.token().register(move || o.lock().unwrap().push(s));
            (src, reg)
        })
        .collect();
    let late = CancellationSource::new();
    let (l, c) = (late.clone(), clock.clone());
    let _arm = sources[1]
        .0
        .token()
        .register(move || c.cancel_after(&l, SEC));
    clock.advance(10 * SEC);
    assert_eq!(*order.lock().unwrap(), [1, 2, 3]);
    // The callback ran while the clock read 10s, so it armed for 11s.
    assert!(!late.is_cancelled());
    assert_eq!(late.token().deadline(), clock_deadline(&clock, 11 * SEC));
    clock.advance(SEC);
    assert!(timed_out(&late.token()));
}

#[test]
fn dropping_the_last_handle_removes_the_timer_entry_at_once() {
    let clock = ManualClock::new();
    let fired = Arc::new(AtomicUsize::new(0));
    let source = clock.with_timeout(SEC);
    let f = fired.clone();
    let token = source.token();
    let reg = token.register(move || {
        f.fetch_add(1, SeqCst);
    });
    drop(source);
    assert_eq!(
        clock.armed(),
        1,
        "the token and registration still hold the state"
    );
    drop(reg);
    drop(token);
    assert_eq!(clock.armed(), 0, "the timer does not keep the source alive");
    clock.advance(2 * SEC);
    assert_eq!(fired.load(SeqCst), 0);
}

#[cfg(feature = "std")]
#[test]
fn a_million_one_hour_timeouts_created_and_dropped_leave_nothing_behind() {
    let n = if cfg!(miri) { 200 } else { 1_000_000 };
    // Warm up: the timer thread and its queue's first allocation.
    drop(CancellationSource::with_timeout(Duration::from_secs(3600)));
    let (armed_before, capacity_before) = cancel_core::default_timer_armed();
    let live_before = counting::live();
    for _ in 0..n {
        drop(CancellationSource::with_timeout(Duration::from_secs(3600)));
    }
    assert_eq!(
        counting::live(),
        live_before,
        "live allocations are back where they started"
    );
    let (armed, capacity) = cancel_core::default_timer_armed();
    assert!(armed <= armed_before, "no entry left behind by this test");
    assert!(
        capacity <= capacity_before.max(64),
        "the queue did not grow"
    );
}

#[cfg(feature = "std")]
#[test]
fn the_default_timer_fires_without_a_runtime() {
    let source = CancellationSource::with_timeout(Duration::from_millis(1));
    assert!(
        source.token().wait_timeout(Duration::from_secs(60)),
        "fired"
    );
    assert!(timed_out(&source.token()));
    let deadline = Instant::now() + Duration::from_millis(1);
    let source = CancellationSource::with_deadline(deadline);
    source.token().wait();
    assert!(Instant::now() >= deadline, "never early");
}

#[test]
fn seeds_get_with_timeout_user_token_plus_per_call_timeout() {
    // Recipe 10.8: one combined token from the caller's token and a timeout.
    let clock = ManualClock::new();
    let user = CancellationSource::new();
    let get = |user_token: &CancellationToken| -> Result<&'static str, CancelReason> {
        let call = CancellationSource::linked([user_token]);
        clock.cancel_after(&call, 2 * SEC);
        let token = call.token();
        clock.advance(3 * SEC); // the "download" takes three seconds
        token
            .check()
            .map(|()| "body")
            .map_err(|e| e.reason().clone())
    };
    assert!(matches!(get(&user.token()), Err(CancelReason::TimedOut)));
    user.cancel();
    assert!(matches!(get(&user.token()), Err(CancelReason::Requested)));
}

#[test]
fn seeds_retry_loop_with_per_attempt_timeouts_under_a_master() {
    let clock = ManualClock::new();
    let master = CancellationSource::new();
    let mut attempts = 0;
    let outcome = loop {
        attempts += 1;
        let attempt = CancellationSource::linked([&master.token()]);
        clock.cancel_after(&attempt, SEC);
        if attempts == 4 {
            master.cancel();
        }
        clock.advance(SEC); // every attempt runs into its timeout
        match attempt.token().check() {
            Err(_) if master.is_cancelled() => break "master cancelled",
            Err(e) => assert!(matches!(e.reason(), CancelReason::TimedOut)),
            Ok(()) => break "done",
        }
    };
    assert_eq!(outcome, "master cancelled");
    assert_eq!(attempts, 4);
}
