//! Recipe 10.7: a pipeline of stages (the dataflow mesh of the recipe).
//! Every stage gets the same token; cancelling stops all of them, and each
//! stage drops its channel ends on the way out so the others unblock.
//! Run: `cargo run --example pipeline`

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cancel_core::CancellationSource;

fn main() {
    let source = CancellationSource::new();
    let (raw_tx, raw_rx) = mpsc::sync_channel::<u64>(4);
    let (sq_tx, sq_rx) = mpsc::sync_channel::<u64>(4);

    let token = source.token();
    let produce = thread::spawn(move || {
        let mut n = 0;
        while !token.is_cancelled() && raw_tx.send(n).is_ok() {
            n += 1;
        }
        n
    });
    let token = source.token();
    let square = thread::spawn(move || {
        for n in raw_rx {
            if token.is_cancelled() || sq_tx.send(n * n).is_err() {
                break;
            }
        }
    });
    let token = source.token();
    let consume = thread::spawn(move || {
        let mut last = 0;
        while !token.is_cancelled() {
            match sq_rx.recv_timeout(Duration::from_millis(5)) {
                Ok(v) => last = v,
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        last
    });

    thread::sleep(Duration::from_millis(20));
    source.cancel();
    let produced = produce.join().unwrap();
    square.join().unwrap();
    let last = consume.join().unwrap();
    println!("pipeline stopped: {produced} produced, last square seen {last}");
}
