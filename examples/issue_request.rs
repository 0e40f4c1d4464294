//! Recipe 10.1: issuing a cancellation request. The caller keeps the source
//! and hands the operation a token; the operation reports whether it was
//! cancelled, and the caller tells "cancelled" from "finished" from "failed".
//! Run: `cargo run --example issue_request`

use std::thread;
use std::time::Duration;

use cancel_core::{CancellationSource, CancellationToken, Cancelled};

fn long_operation(token: &CancellationToken) -> Result<u64, Cancelled> {
    let mut done = 0;
    for _ in 0..1_000 {
        token.check()?; // leave as soon as cancellation is requested
        thread::sleep(Duration::from_millis(1));
        done += 1;
    }
    Ok(done)
}

fn main() {
    let source = CancellationSource::new();
    let token = source.token();
    let worker = thread::spawn(move || long_operation(&token));
    thread::sleep(Duration::from_millis(20));
    source.cancel(); // the request: the worker decides when to stop
    match worker.join().unwrap() {
        Ok(n) => println!("finished after {n} steps"),
        Err(e) => println!("the operation stopped: {e}"),
    }
}
