//! How promptly a blocked thread returns from `token.wait()` when another
//! thread cancels (issue #4 item 7), beside the same measure for a future
//! parked in `futures::executor::block_on(token.cancelled())`.
//!
//! Each round: a waiter thread blocks; once it is parked (it announces
//! itself through a barrier, then the canceller yields briefly so it is
//! really asleep), the canceller records `t0` and calls `cancel()`; the waiter
//! records `t1` as soon as it returns. Latency = `t1 - t0`: the unpark plus
//! the scheduling of the woken thread. Writes
//! `$CARGO_TARGET_DIR/cancel-core-bench/wake_latency.json`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cancel_core::CancellationSource;

fn quick() -> bool {
    std::env::var("CANCEL_CORE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn measure(rounds: usize, future: bool) -> Vec<u64> {
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let source = CancellationSource::new();
        let token = source.token();
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        let waiter = std::thread::spawn(move || {
            b.wait();
            if future {
                futures::executor::block_on(token.cancelled());
            } else {
                token.wait();
            }
            Instant::now()
        });
        barrier.wait();
        std::thread::sleep(Duration::from_micros(200));
        let t0 = Instant::now();
        source.cancel();
        let t1 = waiter.join().unwrap();
        out.push(t1.saturating_duration_since(t0).as_nanos() as u64);
    }
    out.sort_unstable();
    out
}

fn pct(v: &[u64], p: f64) -> f64 {
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = if quick() { 200 } else { 2_000 };
    let mut json = String::from("{\n  \"runs\": [\n");
    println!("wake latency ({rounds} rounds each)");
    for (i, (name, future)) in [
        ("thread: token.wait()", false),
        ("future: block_on(token.cancelled())", true),
    ]
    .into_iter()
    .enumerate()
    {
        let v = measure(rounds, future);
        let (min, med, p99, max) = (pct(&v, 0.0), pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0));
        println!(
            "  {name:40} min {min:8.1} µs  median {med:8.1} µs  p99 {p99:8.1} µs  max {max:8.1} µs"
        );
        json.push_str(&format!(
            "    {{\"waiter\": \"{name}\", \"rounds\": {rounds}, \"min_us\": {min:.2}, \"median_us\": {med:.2}, \"p99_us\": {p99:.2}, \"max_us\": {max:.2}}}{}\n",
            if i == 0 { "," } else { "" }
        ));
    }
    json.push_str("  ]\n}\n");
    common::write_result("wake_latency.json", json);
}
