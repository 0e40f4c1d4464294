//! How promptly a blocked thread returns from `token.wait()` when another
//! thread cancels (issue #4 item 7), beside the same measure for a future
//! parked in `futures::executor::block_on(token.cancelled())`; and (issue
//! 17) how promptly a shutdown waiter returns when the last guard of its
//! scope leaves, blocked in `scope.wait()` or parked on `scope.finished()`,
//! beside tokio-util's `TaskTracker::wait()` woken by its last token's drop.
//!
//! Each round: a waiter thread blocks; once it is parked (it announces
//! itself through a barrier, then the canceller yields briefly so it is
//! really asleep), the canceller records `t0` and calls `cancel()`; the waiter
//! records `t1` as soon as it returns. Latency = `t1 - t0`: the unpark plus
//! the scheduling of the woken thread. For the shutdown rows, `t0` is taken
//! just before the last guard (token) is dropped. Writes
//! `$CARGO_TARGET_DIR/cancel-core-bench/wake_latency.json`.

mod common;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use cancel_core::{CancellationSource, Shutdown};
use tokio_util::task::TaskTracker;

fn quick() -> bool {
    std::env::var("CANCEL_CORE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

#[derive(Clone, Copy)]
enum Waiter {
    TokenWait,
    TokenFuture,
    ScopeWait,
    ScopeFuture,
    TaskTrackerFuture,
}

fn measure(rounds: usize, kind: Waiter) -> Vec<u64> {
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let barrier = Arc::new(Barrier::new(2));
        let b = barrier.clone();
        // What the waiter waits on, and what the measured step is (the
        // cancel, or the last guard's drop).
        let (waiter, step): (_, Box<dyn FnOnce()>) = match kind {
            Waiter::TokenWait | Waiter::TokenFuture => {
                let source = CancellationSource::new();
                let token = source.token();
                let waiter = std::thread::spawn(move || {
                    b.wait();
                    match kind {
                        Waiter::TokenWait => token.wait(),
                        _ => futures::executor::block_on(token.cancelled()),
                    }
                    Instant::now()
                });
                (
                    waiter,
                    Box::new(move || {
                        source.cancel();
                    }),
                )
            }
            Waiter::ScopeWait | Waiter::ScopeFuture => {
                let scope = Shutdown::new();
                let guard = scope.enter().unwrap();
                scope.shutdown();
                let waiter = std::thread::spawn(move || {
                    b.wait();
                    match kind {
                        Waiter::ScopeWait => scope.wait(),
                        _ => futures::executor::block_on(scope.finished()),
                    }
                    Instant::now()
                });
                (waiter, Box::new(move || drop(guard)))
            }
            Waiter::TaskTrackerFuture => {
                let tracker = TaskTracker::new();
                let token = tracker.token();
                tracker.close();
                let waiter = std::thread::spawn(move || {
                    b.wait();
                    futures::executor::block_on(tracker.wait());
                    Instant::now()
                });
                (waiter, Box::new(move || drop(token)))
            }
        };
        barrier.wait();
        std::thread::sleep(Duration::from_micros(200));
        let t0 = Instant::now();
        step();
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
    let kinds = [
        ("thread: token.wait()", Waiter::TokenWait),
        ("future: block_on(token.cancelled())", Waiter::TokenFuture),
        ("shutdown, thread: scope.wait()", Waiter::ScopeWait),
        (
            "shutdown, future: block_on(scope.finished())",
            Waiter::ScopeFuture,
        ),
        (
            "shutdown, tokio-util: block_on(tracker.wait())",
            Waiter::TaskTrackerFuture,
        ),
    ];
    for (i, (name, kind)) in kinds.into_iter().enumerate() {
        let v = measure(rounds, kind);
        let (min, med, p99, max) = (pct(&v, 0.0), pct(&v, 0.5), pct(&v, 0.99), pct(&v, 1.0));
        println!(
            "  {name:48} min {min:8.1} µs  median {med:8.1} µs  p99 {p99:8.1} µs  max {max:8.1} µs"
        );
        json.push_str(&format!(
            "    {{\"waiter\": \"{name}\", \"rounds\": {rounds}, \"min_us\": {min:.2}, \"median_us\": {med:.2}, \"p99_us\": {p99:.2}, \"max_us\": {max:.2}}}{}\n",
            if i + 1 < kinds.len() { "," } else { "" }
        ));
    }
    json.push_str("  ]\n}\n");
    common::write_result("wake_latency.json", json);
}
