//! Operation benchmarks: cancel-core beside its peers, one criterion group per
//! operation, so that one run gives the ratios (issue #6).
//!
//! Peers in every group where they have the operation:
//! - `tokio-util`: `tokio_util::sync::CancellationToken`;
//! - `atomic-bool+event-listener`: the hand-rolled idiom, an `AtomicBool`
//!   flag beside an `event_listener::Event` (no children, no callbacks);
//! - `cancellation-token`: frozenlib's `cancellation-token` 0.1 (a mutex
//!   around a slab of callbacks).
//!
//! `CANCEL_CORE_BENCH_QUICK=1` shortens warm-up, measurement and sample
//! counts (see `scripts/bench.sh --quick`). Multi-threaded groups report wall
//! time divided by the per-thread iteration count: each thread runs `iters`
//! operations, all threads at once.

mod common;

use common::Flag;

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Barrier;

use std::task::{Context, Waker};
use std::thread;
use std::time::{Duration, Instant};

use cancel_core::{CancellationSource, Shutdown, WaitForCancellationOwned};
use cancellation_token::{
    CancelCallback, CancellationToken as CtToken, CancellationTokenSource as CtSource,
};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use event_listener::EventListener;
use tokio_util::sync::{CancellationToken as TokioToken, WaitForCancellationFutureOwned};
use tokio_util::task::TaskTracker;

const OURS: &str = "cancel-core";
const TOKIO: &str = "tokio-util";
const FLAG: &str = "atomic-bool+event-listener";
const CT: &str = "cancellation-token";
/// The baseline of `work_enter_leave`: `Arc<u64>` clone + drop.
const ARC: &str = "arc-clone-drop";

fn quick() -> bool {
    std::env::var("CANCEL_CORE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn config() -> Criterion {
    let c = Criterion::default().without_plots();
    if quick() {
        c.warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600))
            .sample_size(10)
            .nresamples(2_000)
    } else {
        c.warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .sample_size(60)
            .nresamples(20_000)
    }
}

/// Groups whose single iteration is large (thousands of nodes): flat
/// sampling, few samples, so the setup cost stays bounded.
fn heavy(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
    if quick() {
        group.sample_size(10);
        group.measurement_time(Duration::from_millis(200));
    } else {
        group.sample_size(20);
        group.measurement_time(Duration::from_secs(3));
    }
}

fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    future.poll(&mut cx).is_ready()
}

/// cancellation-token's waiter future (an `async fn` borrowing its token),
/// made `'static` by owning the token.
async fn ct_wait_owned(token: CtToken) {
    token.wait().await
}

/// Runs `op` `iters` times on each of `threads` threads, all released at
/// once by a barrier; returns the wall time from the first start to the last
/// end.
fn run_threads<S: Sync>(
    threads: usize,
    iters: u64,
    shared: &S,
    op: impl Fn(&S) + Sync,
) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        op(shared);
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let start = spans.iter().map(|s| s.0).min().unwrap();
    let end = spans.iter().map(|s| s.1).max().unwrap();
    end - start
}

fn is_cancelled_1t(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_cancelled_1t");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| b.iter(|| black_box(&ours_token).is_cancelled()));
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| b.iter(|| black_box(&tokio).is_cancelled()));
    let flag = Flag::new();
    g.bench_function(FLAG, |b| b.iter(|| black_box(&flag).is_cancelled()));
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| b.iter(|| black_box(&ct_token).is_canceled()));
    g.finish();
}

fn is_cancelled_2t(c: &mut Criterion) {
    let mut g = c.benchmark_group("is_cancelled_2t");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, &ours_token, |t| {
                black_box(black_box(t).is_cancelled());
            })
        })
    });
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, &tokio, |t| {
                black_box(black_box(t).is_cancelled());
            })
        })
    });
    let flag = Flag::new();
    g.bench_function(FLAG, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, &flag, |f| {
                black_box(black_box(f).is_cancelled());
            })
        })
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, &ct_token, |t| {
                black_box(black_box(t).is_canceled());
            })
        })
    });
    g.finish();
}

fn token_clone_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("token_clone_drop");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter(|| drop(black_box(black_box(&ours_token).clone())))
    });
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| {
        b.iter(|| drop(black_box(black_box(&tokio).clone())))
    });
    let flag = std::sync::Arc::new(Flag::new());
    g.bench_function(FLAG, |b| {
        b.iter(|| drop(black_box(black_box(&flag).clone())))
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter(|| drop(black_box(black_box(&ct_token).clone())))
    });
    g.finish();
}

/// Issue 17: a unit of work entering and leaving a shutdown scope, beside
/// tokio-util's `TaskTracker::token()` + drop and, as the floor the issue
/// sets (≤ 1.5× in instructions), an `Arc` clone + drop.
fn work_enter_leave(c: &mut Criterion) {
    let mut g = c.benchmark_group("work_enter_leave");
    let scope = Shutdown::new();
    g.bench_function(OURS, |b| {
        b.iter(|| drop(black_box(black_box(&scope).enter())))
    });
    let tracker = TaskTracker::new();
    g.bench_function(TOKIO, |b| {
        b.iter(|| drop(black_box(black_box(&tracker).token())))
    });
    let arc = std::sync::Arc::new(0u64);
    g.bench_function(ARC, |b| b.iter(|| drop(black_box(black_box(&arc).clone()))));
    g.finish();
}

fn source_new_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("source_new_drop");
    g.bench_function(OURS, |b| {
        b.iter(|| drop(black_box(CancellationSource::new())))
    });
    g.bench_function(TOKIO, |b| b.iter(|| drop(black_box(TokioToken::new()))));
    g.bench_function(FLAG, |b| {
        b.iter(|| drop(black_box(std::sync::Arc::new(Flag::new()))))
    });
    g.bench_function(CT, |b| b.iter(|| drop(black_box(CtSource::new()))));
    g.finish();
}

fn child_new_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("child_new_drop");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter(|| drop(black_box(black_box(&ours_token).child())))
    });
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| {
        b.iter(|| drop(black_box(black_box(&tokio).child_token())))
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter(|| drop(black_box(CtSource::with_parent(black_box(&ct_token)))))
    });
    g.finish();
}

fn register_unregister(c: &mut Criterion) {
    // tokio-util and the flag idiom have no callbacks.
    let mut g = c.benchmark_group("register_unregister");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let x = black_box(7u64);
            drop(black_box(&ours_token).register(move || {
                black_box(x);
            }))
        })
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter(|| {
            let x = black_box(7u64);
            drop(
                black_box(&ct_token).register(CancelCallback::FnOnce(Box::new(move || {
                    black_box(x);
                }))),
            )
        })
    });
    g.finish();
}

fn cancelled_future(c: &mut Criterion) {
    let mut g = c.benchmark_group("cancelled_future_poll_drop");
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter(|| {
            let f = pin!(black_box(&ours_token).cancelled());
            poll_once(f)
        })
    });
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| {
        b.iter(|| {
            let f = pin!(black_box(&tokio).cancelled());
            poll_once(f)
        })
    });
    let flag = Flag::new();
    g.bench_function(FLAG, |b| {
        b.iter(|| match black_box(&flag).listen() {
            Some(mut listener) => poll_once(Pin::new(&mut listener)),
            None => true,
        })
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter(|| {
            let f = pin!(black_box(&ct_token).wait());
            poll_once(f)
        })
    });
    g.finish();
}

fn cancel_pending(c: &mut Criterion, n: usize) {
    let mut g = c.benchmark_group(format!("cancel_pending_{n}"));
    g.throughput(Throughput::Elements(n as u64));
    let batch = if n == 1 {
        BatchSize::SmallInput
    } else {
        heavy(&mut g);
        BatchSize::PerIteration
    };
    g.bench_function(OURS, |b| {
        b.iter_batched(
            || {
                let source = CancellationSource::new();
                let futures: Vec<Pin<Box<WaitForCancellationOwned>>> = (0..n)
                    .map(|_| {
                        let mut f = Box::pin(source.token().cancelled_owned());
                        assert!(!poll_once(f.as_mut()));
                        f
                    })
                    .collect();
                (source, futures)
            },
            |input| {
                input.0.cancel();
                input
            },
            batch,
        )
    });
    g.bench_function(TOKIO, |b| {
        b.iter_batched(
            || {
                let token = TokioToken::new();
                let futures: Vec<Pin<Box<WaitForCancellationFutureOwned>>> = (0..n)
                    .map(|_| {
                        let mut f = Box::pin(token.clone().cancelled_owned());
                        assert!(!poll_once(f.as_mut()));
                        f
                    })
                    .collect();
                (token, futures)
            },
            |input| {
                input.0.cancel();
                input
            },
            batch,
        )
    });
    g.bench_function(FLAG, |b| {
        b.iter_batched(
            || {
                let flag = std::sync::Arc::new(Flag::new());
                let listeners: Vec<EventListener> = (0..n)
                    .map(|_| {
                        let mut l = flag.listen().unwrap();
                        assert!(!poll_once(Pin::new(&mut l)));
                        l
                    })
                    .collect();
                (flag, listeners)
            },
            |input| {
                input.0.cancel();
                input
            },
            batch,
        )
    });
    g.bench_function(CT, |b| {
        b.iter_batched(
            || {
                let source = CtSource::new();
                let futures: Vec<_> = (0..n)
                    .map(|_| {
                        let mut f = Box::pin(ct_wait_owned(source.token()));
                        assert!(!poll_once(f.as_mut()));
                        f
                    })
                    .collect();
                (source, futures)
            },
            |input| {
                input.0.cancel();
                input
            },
            batch,
        )
    });
    g.finish();
}

fn cancel_pending_all(c: &mut Criterion) {
    for n in [1, 1_000, 100_000] {
        cancel_pending(c, n);
    }
}

const CHILDREN: usize = 10_000;

fn cancel_children(c: &mut Criterion) {
    let mut g = c.benchmark_group("cancel_children_10000");
    g.throughput(Throughput::Elements(CHILDREN as u64));
    heavy(&mut g);
    g.bench_function(OURS, |b| {
        b.iter_batched(
            || {
                let parent = CancellationSource::new();
                let token = parent.token();
                let children: Vec<CancellationSource> =
                    (0..CHILDREN).map(|_| token.child()).collect();
                (parent, children)
            },
            |input| {
                input.0.cancel();
                input
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(TOKIO, |b| {
        b.iter_batched(
            || {
                let parent = TokioToken::new();
                let children: Vec<TokioToken> =
                    (0..CHILDREN).map(|_| parent.child_token()).collect();
                (parent, children)
            },
            |input| {
                input.0.cancel();
                input
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(CT, |b| {
        b.iter_batched(
            || {
                let parent = CtSource::new();
                let token = parent.token();
                let children: Vec<CtSource> = (0..CHILDREN)
                    .map(|_| CtSource::with_parent(&token))
                    .collect();
                (parent, children)
            },
            |input| {
                input.0.cancel();
                input
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

const DEPTH: usize = 100_000;

fn cancel_chain(c: &mut Criterion) {
    // cancellation-token cancels children by recursion (one native frame
    // per level): a 100,000-deep chain overflows the 8 MiB main stack, so it
    // is left out of this group.
    let mut g = c.benchmark_group("cancel_chain_100000");
    g.throughput(Throughput::Elements(DEPTH as u64));
    heavy(&mut g);
    g.bench_function(OURS, |b| {
        b.iter_batched(
            || {
                let mut chain = Vec::with_capacity(DEPTH);
                chain.push(CancellationSource::new());
                for i in 1..DEPTH {
                    let child = chain[i - 1].token().child();
                    chain.push(child);
                }
                chain
            },
            |chain| {
                chain[0].cancel();
                assert!(chain[DEPTH - 1].is_cancelled());
                chain
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function(TOKIO, |b| {
        b.iter_batched(
            || {
                let mut chain = Vec::with_capacity(DEPTH);
                chain.push(TokioToken::new());
                for i in 1..DEPTH {
                    let child = chain[i - 1].child_token();
                    chain.push(child);
                }
                chain
            },
            |chain| {
                chain[0].cancel();
                assert!(chain[DEPTH - 1].is_cancelled());
                chain
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn children_threads(c: &mut Criterion, threads: usize) {
    let mut g = c.benchmark_group(format!("child_new_drop_{threads}t"));
    let ours = CancellationSource::new();
    let ours_token = ours.token();
    g.bench_function(OURS, |b| {
        b.iter_custom(|iters| {
            run_threads(threads, iters, &ours_token, |t| {
                drop(black_box(black_box(t).child()));
            })
        })
    });
    let tokio = TokioToken::new();
    g.bench_function(TOKIO, |b| {
        b.iter_custom(|iters| {
            run_threads(threads, iters, &tokio, |t| {
                drop(black_box(black_box(t).child_token()));
            })
        })
    });
    let ct = CtSource::new();
    let ct_token = ct.token();
    g.bench_function(CT, |b| {
        b.iter_custom(|iters| {
            run_threads(threads, iters, &ct_token, |t| {
                drop(black_box(CtSource::with_parent(black_box(t))));
            })
        })
    });
    g.finish();
}

fn children_2t(c: &mut Criterion) {
    children_threads(c, 2);
}

fn children_8t(c: &mut Criterion) {
    children_threads(c, 8);
}

criterion_group! {
    name = benches;
    config = config();
    targets = is_cancelled_1t, is_cancelled_2t, token_clone_drop, work_enter_leave, source_new_drop,
        child_new_drop, register_unregister, cancelled_future, cancel_pending_all,
        cancel_children, cancel_chain, children_2t, children_8t
}
criterion_main!(benches);
