//! Recipe 10.5: parallel work. Every worker observes the same token; the
//! first failure cancels the rest, which stop at their next check.
//! Run: `cargo run --example parallel`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use cancel_core::CancellationSource;

fn main() {
    let source = CancellationSource::new();
    let processed = AtomicUsize::new(0);
    thread::scope(|scope| {
        for worker in 0..4 {
            let token = source.token();
            let (source, processed) = (&source, &processed);
            scope.spawn(move || {
                for item in 0..1_000_000u64 {
                    if token.is_cancelled() {
                        return;
                    }
                    if worker == 2 && item == 1_000 {
                        // This worker fails: stop everyone.
                        source.cancel();
                        return;
                    }
                    processed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    println!(
        "stopped early: {} of 4,000,000 items processed",
        processed.load(Ordering::Relaxed)
    );
}
