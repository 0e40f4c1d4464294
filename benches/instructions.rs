//! A fixed-count driver for instruction counts under
//! `valgrind --tool=callgrind` (a second opinion beside criterion's wall
//! times, immune to the noise of a shared machine).
//!
//! `instructions <op> <impl> <count>` runs `op` `count` times on one thread;
//! `scripts/bench.sh` runs it twice with different counts and divides the
//! difference in instructions by the difference in counts, which cancels
//! start-up and set-up. Ops: `is_cancelled`, `child_new_drop`,
//! `cancelled_future_poll_drop`, `work_enter_leave` (with impl
//! `arc-clone-drop`, the floor the issue sets); for profiling (`count` rounds, set-up
//! included), `cancel_pending_1`, `cancel_pending_1000` and
//! `cancel_children_10000` (cancel-core and tokio-util only). Impls: `cancel-core`, `tokio-util`,
//! `atomic-bool+event-listener` (`is_cancelled` only), `cancellation-token`.
//! Under `cargo bench` (no such arguments) it does nothing.

use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};

use cancel_core::CancellationSource;
use cancellation_token::CancellationTokenSource as CtSource;
use tokio_util::sync::CancellationToken as TokioToken;

#[inline(never)]
fn poll_once<F: std::future::Future + ?Sized>(future: Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    future.poll(&mut cx).is_ready()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, imp, count) = match args.as_slice() {
        [op, imp, count] if !op.starts_with('-') => match count.parse::<u64>() {
            Ok(count) => (op.as_str(), imp.as_str(), count),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    match (op, imp) {
        ("is_cancelled", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(black_box(&t).is_cancelled());
            }
        }
        ("is_cancelled", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                black_box(black_box(&t).is_cancelled());
            }
        }
        ("is_cancelled", "atomic-bool+event-listener") => {
            let flag = AtomicBool::new(false);
            for _ in 0..count {
                black_box(black_box(&flag).load(Ordering::Acquire));
            }
        }
        ("is_cancelled", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(black_box(&t).is_canceled());
            }
        }
        ("work_enter_leave", "cancel-core") => {
            let scope = cancel_core::Shutdown::new();
            for _ in 0..count {
                drop(black_box(black_box(&scope).enter()));
            }
        }
        ("work_enter_leave", "tokio-util") => {
            let tracker = tokio_util::task::TaskTracker::new();
            for _ in 0..count {
                drop(black_box(black_box(&tracker).token()));
            }
        }
        ("work_enter_leave", "arc-clone-drop") => {
            let arc = std::sync::Arc::new(0u64);
            for _ in 0..count {
                drop(black_box(black_box(&arc).clone()));
            }
        }
        ("child_new_drop", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(black_box(&t).child()));
            }
        }
        ("child_new_drop", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                drop(black_box(black_box(&t).child_token()));
            }
        }
        ("child_new_drop", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(CtSource::with_parent(black_box(&t))));
            }
        }
        ("cancelled_future_poll_drop", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).cancelled());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                let f = pin!(black_box(&t).cancelled());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).wait());
                black_box(poll_once(f));
            }
        }
        // Profiling drivers (`count` rounds of set-up + cancel); use a
        // profiler's per-function view to separate the cancel from the set-up.
        ("cancel_pending_1", "cancel-core") => cancel_pending_ours(1, count),
        ("cancel_pending_1", "tokio-util") => cancel_pending_tokio(1, count),
        ("cancel_pending_1000", "cancel-core") => cancel_pending_ours(1000, count),
        ("cancel_pending_1000", "tokio-util") => cancel_pending_tokio(1000, count),
        ("cancel_children_10000", "cancel-core") => {
            for _ in 0..count {
                let parent = CancellationSource::new();
                let token = parent.token();
                let children: Vec<_> = (0..10_000).map(|_| token.child()).collect();
                black_box(parent.cancel());
                drop(children);
            }
        }
        ("cancel_children_10000", "tokio-util") => {
            for _ in 0..count {
                let parent = TokioToken::new();
                let children: Vec<_> = (0..10_000).map(|_| parent.child_token()).collect();
                parent.cancel();
                drop(children);
            }
        }
        _ => {
            eprintln!("instructions: unknown op/impl {op} {imp}");
            std::process::exit(2);
        }
    }
}

/// `rounds` times: a source with `n` pending (polled) futures, cancelled.
fn cancel_pending_ours(n: usize, rounds: u64) {
    for _ in 0..rounds {
        let source = CancellationSource::new();
        let futures: Vec<_> = (0..n)
            .map(|_| {
                let mut f = Box::pin(source.token().cancelled_owned());
                assert!(!poll_once(f.as_mut()));
                f
            })
            .collect();
        black_box(source.cancel());
        drop(futures);
    }
}

fn cancel_pending_tokio(n: usize, rounds: u64) {
    for _ in 0..rounds {
        let token = TokioToken::new();
        let futures: Vec<_> = (0..n)
            .map(|_| {
                let mut f = Box::pin(token.clone().cancelled_owned());
                assert!(!poll_once(f.as_mut()));
                f
            })
            .collect();
        token.cancel();
        drop(futures);
    }
}

fn usage() {
    println!(
        "instructions: a driver for callgrind (scripts/bench.sh); \
         usage: instructions <op> <impl> <count>"
    );
}
