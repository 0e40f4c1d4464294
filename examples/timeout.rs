//! Recipe 10.3: a timeout is just one more reason to cancel. The code being
//! cancelled neither knows nor cares that the source is a timer; the reason
//! tells a timeout from a request. Last, the same timeout in a test: on a
//! `ManualClock`, which fires when the test advances it (tokio's paused clock
//! does not move cancel-core's timer thread).
//! Run: `cargo run --example timeout`

use std::time::{Duration, Instant};

use cancel_core::{CancelReason, CancellationSource, CancellationToken, ManualClock};

fn slow_work(token: &CancellationToken) -> Result<(), CancelReason> {
    // Waits for at most a second of "work"; returns early if cancelled.
    if token.wait_timeout(Duration::from_secs(1)) {
        return Err(token.reason().expect("cancelled tokens have a reason"));
    }
    Ok(())
}

fn main() {
    let started = Instant::now();
    let source = CancellationSource::with_timeout(Duration::from_millis(30));
    let outcome = slow_work(&source.token());
    println!("after {:?}: {:?}", started.elapsed(), outcome);

    // Re-arming: the last call wins; an explicit cancel before the deadline
    // wins over the timer and disarms it.
    let source = CancellationSource::with_timeout(Duration::from_secs(3600));
    source.cancel_after(Duration::from_millis(10));
    println!(
        "deadline in about {:?}",
        source.token().deadline().unwrap().remaining()
    );
    source.cancel();
    println!("reason: {:?}", source.token().reason());

    manual_clock();
}

/// Deterministic timeouts for tests: arm on a `ManualClock`, advance it.
/// Nothing sleeps; the timeout fires inside `advance`, on this thread.
fn manual_clock() {
    let clock = ManualClock::new();
    let server = CancellationSource::new();
    let request = server.child();
    clock.cancel_after(&request, Duration::from_secs(30));
    let task = std::thread::spawn({
        let request = request.clone();
        move || futures::executor::block_on(request.cancelled()) // any executor
    });

    clock.advance(Duration::from_secs(29));
    assert!(!request.is_cancelled());
    clock.advance(Duration::from_secs(1)); // fires here, before advance returns
    task.join().unwrap();
    assert_eq!(request.reason(), Some(CancelReason::TimedOut));
    assert!(!server.is_cancelled());
    println!(
        "manual clock at {:?}: request reason {:?}, server cancelled: {}, timeouts armed: {}",
        clock.now(),
        request.reason(),
        server.is_cancelled(),
        clock.armed()
    );
}
