//! Issue 16: timeouts on embassy-time (`time::embassy::timer`), run on the
//! host over embassy-time's mock driver, whose time the test advances, and
//! `futures`' local executor standing in for embassy's.

#![cfg(not(miri))]

use std::time::Duration;

use cancel_core::CancellationSource;
use cancel_core::time::embassy;
use embassy_time::MockDriver;
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn advance(pool: &mut LocalPool, by: Duration) {
    MockDriver::get().advance(embassy_time::Duration::from_micros(by.as_micros() as u64));
    pool.run_until_stalled();
}

/// One test: the mock driver's time is global to the process. Run off the
/// test's thread with a hang guard: a driver that spins (review 7.4) never
/// lets `run_until_stalled` return.
#[test]
fn embassy_time_drives_timeouts_stops_with_its_driver_and_leaks_nothing() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        body();
        tx.send(()).unwrap();
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(()) => {}
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("the test failed (above)"),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("hung: the driver spins"),
    }
}

fn body() {
    MockDriver::get().reset();
    let mut pool = LocalPool::new();
    let (timer, driver) = embassy::timer();
    let handle = pool
        .spawner()
        .spawn_local_with_handle(driver.run())
        .unwrap();
    pool.run_until_stalled();

    // Fires at its deadline, in order, an earlier arming waking the driver.
    let late = timer.with_timeout(Duration::from_secs(60));
    pool.run_until_stalled();
    let early = timer.with_timeout(Duration::from_millis(500));
    pool.run_until_stalled();
    advance(&mut pool, Duration::from_millis(499));
    assert!(!early.is_cancelled());
    advance(&mut pool, Duration::from_millis(1));
    assert!(early.reason().unwrap().is_timed_out());
    assert!(!late.is_cancelled());
    assert_eq!(timer.now(), Duration::from_millis(500));

    // Review 7.4: a deadline that is not a whole tick was rounded down, so
    // the driver woke before it, found nothing due, and slept "until" an
    // instant already reached: it spun without yielding.
    let odd = timer.with_timeout(Duration::from_nanos(1500));
    pool.run_until_stalled();
    advance(&mut pool, Duration::from_micros(1));
    assert!(!odd.is_cancelled(), "1 µs in: not yet due");
    advance(&mut pool, Duration::from_micros(1));
    assert!(odd.is_cancelled(), "2 µs in: due");

    // No leak: a million armed, then dropped.
    let (_, _, live, ()) = counting::measure(|| {
        let sources: Vec<_> = (0..1_000_000u64)
            .map(|i| timer.with_timeout(Duration::from_secs(3600 + i)))
            .collect();
        drop(sources);
    });
    assert_eq!(timer.armed(), 1, "only `late`");
    assert!(live <= 1, "{live} allocations left live");

    // The driver dropped (its executor gone): the timer stops.
    let token = late.token();
    drop(late);
    drop(handle);
    drop(pool);
    assert!(timer.is_stopped());
    assert!(!token.is_cancelled() && !token.can_be_cancelled());
    let fresh = CancellationSource::new();
    timer.cancel_after(&fresh, Duration::from_secs(1));
    assert_eq!(timer.armed(), 0);
}
