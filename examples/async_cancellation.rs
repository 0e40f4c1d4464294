//! Recipe 10.4: async code. Await cancellation, or race any future against a
//! token; no runtime is needed (here `futures::executor`, but tokio, smol or
//! any executor works the same).
//! Run: `cargo run --example async_cancellation`

use std::thread;
use std::time::Duration;

use cancel_core::{CancellationFutureExt, CancellationSource, CancellationToken, Cancelled};

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
}
