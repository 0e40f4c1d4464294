//! Issue 16: timeouts on tokio's timer (`Timer::tokio`), so that a paused
//! test clock drives them; what a runtime's shutdown leaves; no leak.

#![cfg(not(miri))] // tokio's runtime: the manual clock's twins run under Miri

use std::time::Duration;

use cancel_core::CancellationSource;
use cancel_core::time::Timer;
use tokio::runtime::{Builder, Handle, Runtime};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

const HOUR: Duration = Duration::from_secs(3600);

fn paused() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// The new user's trial: under a paused clock a virtual 2 h sleep passed,
/// and a 1 h timeout on the default timer had not fired (that thread
/// knows nothing of tokio's clock). On tokio's timer it has.
#[test]
fn a_paused_clock_fires_timeouts_on_tokios_timer() {
    paused().block_on(async {
        let timer = Timer::tokio(&Handle::current());
        let on_tokio = timer.with_timeout(HOUR);
        let on_default = CancellationSource::with_timeout(HOUR);
        tokio::time::sleep(2 * HOUR).await;
        assert!(on_tokio.reason().unwrap().is_timed_out());
        assert!(
            !on_default.is_cancelled(),
            "the default timer runs on real time"
        );
        on_default.disarm();
    });
}

#[test]
fn advance_fires_in_deadline_order_and_earlier_arming_wakes_the_driver() {
    paused().block_on(async {
        let timer = Timer::tokio(&Handle::current());
        let late = timer.with_timeout(HOUR);
        tokio::time::sleep(Duration::from_secs(1)).await; // the driver sleeps for the hour
        let early = timer.with_timeout(Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        assert!(
            early.is_cancelled(),
            "the driver woke for the earlier deadline"
        );
        assert!(!late.is_cancelled());
        assert_eq!(timer.now(), Duration::from_secs(11));
        late.cancelled().await;
        assert_eq!(timer.now(), HOUR, "fired at its deadline, not later");
        assert_eq!(timer.armed(), 0);
    });
}

#[test]
fn a_timer_armed_from_a_thread_outside_the_runtime_fires_on_it() {
    let runtime = Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let timer = Timer::tokio(runtime.handle());
    let source = std::thread::spawn(move || timer.with_timeout(Duration::from_millis(5)))
        .join()
        .unwrap();
    source.token().wait();
    assert!(source.reason().unwrap().is_timed_out());
}

#[test]
fn a_runtime_shut_down_stops_its_timer() {
    let runtime = paused();
    let timer = runtime.block_on(async { Timer::tokio(&Handle::current()) });
    let source = timer.with_timeout(HOUR);
    let token = source.token();
    drop(source);
    assert!(token.can_be_cancelled());
    drop(runtime);
    assert!(timer.is_stopped(), "the driver task's drop stops it");
    assert_eq!(timer.armed(), 0);
    assert!(!token.is_cancelled());
    assert!(
        !token.can_be_cancelled(),
        "nothing can cancel it now: no wait hangs on it unknowingly"
    );
    let later = CancellationSource::new();
    timer.cancel_after(&later, HOUR);
    assert_eq!(timer.armed(), 0, "a stopped timer arms nothing");
}

#[test]
#[should_panic(expected = "timers are disabled")]
fn a_runtime_without_its_time_driver_is_refused_clearly() {
    let runtime = Builder::new_current_thread().build().unwrap();
    let _ = Timer::tokio(runtime.handle());
}

#[test]
fn a_million_timeouts_armed_then_dropped_leak_nothing_on_tokios_timer() {
    paused().block_on(async {
        let timer = Timer::tokio(&Handle::current());
        tokio::task::yield_now().await; // the driver's first poll
        let (_, _, live, ()) = counting::measure(|| {
            let sources: Vec<_> = (0..1_000_000u64)
                .map(|i| timer.with_timeout(HOUR + Duration::from_secs(i)))
                .collect();
            assert_eq!(timer.armed(), 1_000_000);
            drop(sources);
        });
        assert_eq!(timer.armed(), 0);
        assert!(live <= 1, "{live} allocations left live");
    });
}

/// Review 7.5: the longest sleep was capped from the clock's epoch, not
/// from now: 30 years after it, every sleep ended at once and the driver
/// spun without yielding. (A hang guard, not a wait for a race: the
/// runtime runs on its own thread.)
#[test]
fn the_driver_sleeps_after_thirty_years_on_a_paused_clock() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        paused().block_on(async {
            let timer = Timer::tokio(&Handle::current());
            tokio::time::advance(Duration::from_secs(86_400 * 365 * 31)).await;
            let source = timer.with_timeout(Duration::from_secs(1));
            tokio::time::sleep(Duration::from_secs(2)).await;
            tx.send(source.is_cancelled()).unwrap();
        });
    });
    let fired = rx.recv_timeout(Duration::from_secs(60));
    assert_eq!(fired, Ok(true), "the driver spun (or never fired)");
}
