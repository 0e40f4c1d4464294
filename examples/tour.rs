//! A short tour of cancel-core, one numbered step per feature, with printed
//! output: `cargo run --example tour`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use cancel_core::{
    CancelReason, CancellationFutureExt, CancellationSource, CancellationToken, Cancelled,
};

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
    println!("4. retries: each attempt gets its own source, linked to a master token");
    let master = CancellationSource::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let outcome = retry(&master.token(), &attempts, &master);
    println!(
        "   retry() returned {} after {} attempts",
        describe(&outcome),
        attempts.load(Ordering::SeqCst)
    );

    // 5. Async: await cancellation, or race any future against a token. No
    //    runtime is needed: here futures::executor::block_on on a thread.
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
    let result = waiter.join().unwrap();
    println!("5. async, no runtime (futures::executor::block_on), cancelled by another thread:");
    println!(
        "   a never-ready future raced with .with_cancellation(&token): {}",
        describe(&result)
    );
    println!("   then token.cancelled().await completed at once");

    // 6. A blocking wait parks the thread until another thread cancels.
    let source = CancellationSource::new();
    let token = source.token();
    let blocked = thread::spawn(move || {
        token.wait();
        token.reason()
    });
    thread::sleep(Duration::from_millis(20));
    source.cancel();
    let reason = blocked.join().unwrap();
    println!("6. blocking, no async: a thread parked in token.wait() woke when another");
    println!("   thread cancelled; then token.reason() = {reason:?}");

    // 7. none(): for APIs that take a token when the caller has nothing to cancel.
    const NEVER: CancellationToken = CancellationToken::none();
    println!("7. CancellationToken::none(), for APIs that take a token when the caller has");
    println!(
        "   nothing to cancel (a const, no allocation): can_be_cancelled() = {}",
        NEVER.can_be_cancelled()
    );
}

/// `Ok`, or `Err` with the cancellation's reason, for printing.
fn describe(outcome: &Result<(), Cancelled>) -> String {
    match outcome {
        Ok(()) => "Ok".to_string(),
        Err(e) => format!("Err({})", e.reason()),
    }
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
            Err(e) if master.is_cancelled() => {
                println!("   attempt {n}: the master was cancelled (the user gave up): stop");
                return Err(e);
            }
            Err(e) => {
                assert!(matches!(e.reason(), CancelReason::Requested));
                println!("   attempt {n}: cancelled on its own (as by its timeout): retry");
            }
            Ok(()) => return Ok(()),
        }
    }
}
