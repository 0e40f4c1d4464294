//! A `static` shutdown source: one `InplaceSource` for the whole program,
//! no allocation, no handle to pass around. Workers poll it or await it;
//! a pinned callback runs when it fires; whoever decides to stop (here a
//! "signal handler" thread) cancels it.
//!
//! `cargo run --example static_shutdown`

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cancel_core::{InplaceSource, PinnedRegistration};

static SHUTDOWN: InplaceSource = InplaceSource::new();
static FLUSHED: AtomicUsize = AtomicUsize::new(0);

fn worker(id: usize) -> usize {
    let token = SHUTDOWN.token();
    let mut steps = 0;
    // Polling: one load per check.
    while token.check().is_ok() {
        steps += 1;
        std::thread::sleep(Duration::from_millis(1));
    }
    println!(
        "worker {id}: stopped after {steps} steps ({})",
        token.reason().unwrap()
    );
    steps
}

fn main() {
    // A callback in place: runs on the cancelling thread, before cancel()
    // returns; unregistered when `flush` goes out of scope.
    let mut flush = pin!(PinnedRegistration::new(SHUTDOWN.token(), || {
        FLUSHED.fetch_add(1, Ordering::SeqCst);
        println!("callback: flushing logs");
    }));
    flush.as_mut().register();

    std::thread::scope(|s| {
        let workers: Vec<_> = (0..2).map(|id| s.spawn(move || worker(id))).collect();
        // An async task waits on the same static.
        let waiter = s.spawn(|| {
            futures::executor::block_on(SHUTDOWN.cancelled());
            println!("task: saw the shutdown");
        });
        // The "signal handler".
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            println!("signal: shutting down");
            assert!(SHUTDOWN.cancel());
        });
        for w in workers {
            w.join().unwrap();
        }
        waiter.join().unwrap();
    });
    assert_eq!(FLUSHED.load(Ordering::SeqCst), 1);
    assert!(SHUTDOWN.is_cancelled());
}
