//! Recipe 10.4: async code. Await cancellation, or race any future against a
//! token; no runtime is needed (here `futures::executor`, but tokio, smol or
//! any executor works the same). Last, a `select` loop: the `!Unpin`
//! cancellation future is made once, pinned, and passed by reference.
//! Run: `cargo run --example async_cancellation`

use std::pin::pin;
use std::thread;
use std::time::Duration;

use cancel_core::{CancellationFutureExt, CancellationSource, CancellationToken, Cancelled};
use futures::StreamExt;
use futures::channel::mpsc;
use futures::future::{Either, select};

async fn download(token: &CancellationToken) -> Result<&'static str, Cancelled> {
    // A "download" that never finishes by itself.
    std::future::pending::<&'static str>()
        .with_cancellation(token)
        .await
}

fn main() {
    let source = CancellationSource::new();
    let token = source.token();
    let task = thread::spawn(move || {
        futures::executor::block_on(async {
            let result = download(&token).await;
            token.cancelled().await; // already complete
            result
        })
    });
    thread::sleep(Duration::from_millis(10));
    source.cancel();
    println!(
        "download: {:?}",
        task.join().unwrap().map_err(|e| e.to_string())
    );

    // An already-cancelled token never polls the inner future, even a ready
    // one (after the first poll the inner future goes first).
    let out = futures::executor::block_on(source.token().run_until_cancelled(async { 42 }));
    println!("on a cancelled token: {:?}", out.map_err(|e| e.to_string()));

    select_loop();
}

/// A consumer loop that ends on cancellation. The future is made once,
/// outside the loop, and pinned (it is `!Unpin`: it holds the node the token
/// wakes it through); each iteration passes `cancelled.as_mut()`. With
/// `futures::select!` or `tokio::select!` the recipe is the same (see the
/// guide, "Pinning and `select!` loops").
fn select_loop() {
    let source = CancellationSource::new();
    let token = source.token();
    let (tx, mut rx) = mpsc::unbounded::<u32>();
    let producer = thread::spawn(move || {
        for n in 1.. {
            if tx.unbounded_send(n).is_err() {
                break; // the consumer is gone
            }
            thread::sleep(Duration::from_millis(1));
        }
    });

    let (received, cancelled_seen) = futures::executor::block_on(async {
        let mut cancelled = pin!(token.cancelled()); // once, before the loop
        let mut received = 0;
        loop {
            match select(cancelled.as_mut(), rx.next()).await {
                Either::Left(((), _)) => break (received, true),
                Either::Right((Some(_), _)) => {
                    received += 1;
                    if received == 5 {
                        source.cancel(); // in a real program: another task, a signal
                    }
                }
                Either::Right((None, _)) => break (received, false),
            }
        }
    });
    drop(rx);
    producer.join().unwrap();
    println!("select loop: {received} messages, then stopped by cancellation: {cancelled_seen}");
}
