//! Recipe 10.3: a timeout is just one more reason to cancel. The code being
//! cancelled neither knows nor cares that the source is a timer; the reason
//! tells a timeout from a request.
//! Run: `cargo run --example timeout`

use std::time::{Duration, Instant};

use cancel_core::{CancelReason, CancellationSource, CancellationToken};

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
        source
            .token()
            .deadline()
            .unwrap()
            .saturating_duration_since(Instant::now())
    );
    source.cancel();
    println!("reason: {:?}", source.token().reason());
}
