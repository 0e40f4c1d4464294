//! Recipe 10.2: responding by polling. `is_cancelled()` is one atomic load,
//! cheap enough for every iteration; a very tight loop may still check only
//! every N iterations.
//! Run: `cargo run --example poll_loop`

use std::thread;

use cancel_core::{CancellationSource, CancellationToken, Cancelled};

/// Sums until done or cancelled, checking every 4,096 iterations.
fn sum_squares(limit: u64, token: &CancellationToken) -> Result<u64, Cancelled> {
    let mut total: u64 = 0;
    for i in 0..limit {
        if i % 4_096 == 0 {
            token.check()?;
        }
        total = total.wrapping_add(i * i);
    }
    Ok(total)
}

fn main() {
    let source = CancellationSource::new();
    println!("uncancelled: {:?}", sum_squares(100_000, &source.token()));

    let token = source.token();
    let worker = thread::spawn(move || sum_squares(u64::MAX, &token));
    source.cancel();
    println!(
        "cancelled:   {:?}",
        worker.join().unwrap().map_err(|e| e.to_string())
    );
}
