//! A five-second tour of cancel-core: `cargo run --example tour`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, Cancelled, FutureExt};

fn main() {
    // 1. A source signals; tokens observe. Hand out tokens, keep the source.
    let source = CancellationSource::new();
    let token = source.token();
    println!("1. token cancelled? {}", token.is_cancelled());

    // 2. A callback runs on the cancelling thread, before cancel() returns.
    let registration = token.register(|| println!("2. callback: the source was cancelled"));
    println!(
        "   cancel() performed the cancellation: {}",
        source.cancel()
    );
    println!("   cancel() again: {}", source.cancel());
    drop(registration);

    // 3. A linked source with a timeout: cancelled by its parent, by itself
    //    or by its timer, never the other way round. Its reason says which.
    let app = CancellationSource::new();
    let request = app.token().child();
    request.cancel_after(Duration::from_millis(15));
    request.token().wait();
    println!(
        "3. request cancelled: {}, app cancelled: {}, reason: {}",
        request.is_cancelled(),
        app.is_cancelled(),
        request.token().reason().unwrap()
    );
    let other = app.token().child();
    other.cancel_with(std::io::Error::other("client went away"));
    println!("   another request: {}", other.token().reason().unwrap());

    // 4. A retry loop under a master token: each attempt has its own linked
    //    source; an attempt's cancellation is retried, the master's ends it.
    let master = CancellationSource::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let outcome = retry(&master.token(), &attempts, &master);
    println!(
        "4. retry loop ended after {} attempts: {:?}",
        attempts.load(Ordering::SeqCst),
        outcome.map_err(|e| e.to_string())
    );

    // 5. Async: await cancellation, or race any future against a token.
    let source = CancellationSource::new();
    let token = source.token();
    let waiter = thread::spawn(move || {
        futures::executor::block_on(async {
            let result = std::future::pending::<()>().with_cancellation(&token).await;
            token.cancelled().await;
            result
        })
    });
    thread::sleep(Duration::from_millis(20));
    source.cancel();
    println!(
        "5. async wait returned {:?}",
        waiter.join().unwrap().map_err(|e| e.to_string())
    );

    // 6. A blocking wait parks the thread until another thread cancels.
    let source = CancellationSource::new();
    let token = source.token();
    let blocked = thread::spawn(move || {
        token.wait();
        token.reason()
    });
    thread::sleep(Duration::from_millis(20));
    source.cancel();
    println!(
        "6. blocking wait woke with reason {:?}",
        blocked.join().unwrap()
    );

    // 7. none(): for APIs that take a token when the caller has nothing to cancel.
    const NEVER: CancellationToken = CancellationToken::none();
    println!("7. none() can be cancelled? {}", NEVER.can_be_cancelled());
}

fn retry(
    master: &CancellationToken,
    attempts: &AtomicUsize,
    master_source: &CancellationSource,
) -> Result<(), Cancelled> {
    loop {
        let attempt = CancellationSource::linked([master]);
        let n = attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 3 {
            master_source.cancel(); // the user gives up during attempt 3
        }
        attempt.cancel(); // stands in for this attempt's timeout
        match attempt.token().check() {
            Err(e) if master.is_cancelled() => return Err(e),
            Err(e) => {
                assert!(matches!(e.reason(), CancelReason::Requested));
                println!("   attempt {n} was cancelled on its own; retrying");
            }
            Ok(()) => return Ok(()),
        }
    }
}
