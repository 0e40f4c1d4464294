//! Allocation budgets, counted per thread by a wrapping global allocator
//! (per thread, so the test harness's own allocations never leak in).

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use cancel_core::{CancellationSource, CancellationToken};

#[path = "common/counting.rs"]
mod counting;
use counting::measure;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

fn allocs<R>(f: impl FnOnce() -> R) -> usize {
    measure(f).0
}

#[test]
fn token_operations_allocate_nothing() {
    let source = CancellationSource::new();
    let token = source.token();
    assert_eq!(allocs(CancellationToken::none), 0);
    assert_eq!(allocs(|| drop(token.clone())), 0);
    assert_eq!(allocs(|| drop(source.token())), 0);
    assert_eq!(allocs(|| token.is_cancelled()), 0);
    assert_eq!(allocs(|| token.check().is_ok()), 0);
    assert_eq!(allocs(|| CancellationToken::none().check().is_ok()), 0);
}

#[test]
fn new_source_is_one_allocation_and_register_is_one() {
    let (n, bytes, _, source) = measure(CancellationSource::new);
    assert_eq!(n, 1);
    println!("bytes per source: {bytes}");
    let token = source.token();
    let big = [7u8; 64];
    let (n, _, _, reg) = measure(|| {
        token.register(move || {
            std::hint::black_box(big);
        })
    });
    assert_eq!(n, 1, "node and closure together");
    drop(reg);
}

#[test]
fn cancel_allocates_nothing_whatever_the_number_of_callbacks() {
    for count in [1usize, 10, 1_000] {
        let source = CancellationSource::new();
        let token = source.token();
        let regs: Vec<_> = (0..count)
            .map(|i| {
                token.register(move || {
                    std::hint::black_box(i);
                })
            })
            .collect();
        assert_eq!(allocs(|| source.cancel()), 0, "{count} callbacks");
        drop(regs);
    }
}

#[test]
fn child_with_one_parent_is_one_allocation_of_at_most_64_bytes() {
    let parent = CancellationSource::new();
    let token = parent.token();
    let (n, bytes, _, child) = measure(|| token.child());
    assert_eq!(n, 1);
    assert!(bytes <= 64, "bytes per child: {bytes}");
    println!("bytes per child: {bytes}");
    drop(child);
    let (n, _, _, child) = measure(|| CancellationSource::linked([&token]));
    assert_eq!(n, 1);
    drop(child);
    // Several parents: still one allocation (state + one link per parent).
    let others: Vec<_> = (0..5).map(|_| CancellationSource::new()).collect();
    let tokens: Vec<_> = others.iter().map(|s| s.token()).collect();
    let (n, _, _, child) = measure(|| CancellationSource::linked(tokens.iter()));
    assert_eq!(n, 1);
    drop(child);
}

#[test]
fn a_million_children_created_and_dropped_leave_nothing_behind() {
    let parent = CancellationSource::new();
    let token = parent.token();
    let n = if cfg!(miri) { 1_000 } else { 1_000_000 };
    let (_, _, live, ()) = measure(|| {
        for _ in 0..n {
            let child = token.child();
            let t = child.token();
            drop(child);
            drop(t);
        }
    });
    assert_eq!(live, 0);
    // The parent's list is empty: a registration is the only node and
    // cancelling runs exactly it.
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = token.register(move || {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    });
    parent.cancel();
    assert_eq!(ran.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn children_churned_from_two_threads_leave_nothing_behind() {
    let parent = CancellationSource::new();
    let n = if cfg!(miri) { 200 } else { 500_000 };
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let token = parent.token();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let (_, _, live, ()) = measure(|| {
                    for _ in 0..n {
                        drop(token.child());
                    }
                });
                live
            })
        })
        .collect();
    let live: isize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(live, 0);
    assert!(parent.cancel());
}

#[test]
fn cancelled_future_allocates_nothing() {
    let source = CancellationSource::new();
    let token = source.token();
    let waker = Waker::noop();
    let n = allocs(|| {
        let mut fut = pin!(token.cancelled());
        for _ in 0..10 {
            assert!(
                fut.as_mut()
                    .poll(&mut Context::from_waker(waker))
                    .is_pending()
            );
        }
    });
    assert_eq!(n, 0);
    let n = allocs(|| {
        let mut fut = pin!(token.clone().cancelled_owned());
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
    });
    assert_eq!(n, 0);
    let mut fut = Box::pin(token.cancelled());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(waker))
            .is_pending()
    );
    let n = allocs(|| source.cancel());
    assert_eq!(n, 0);
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(waker)),
        Poll::Ready(())
    );
}

#[cfg(feature = "std")]
#[test]
fn blocking_wait_allocates_nothing() {
    let source = CancellationSource::new();
    let token = source.token();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let b = barrier.clone();
    let waiter = std::thread::spawn(move || {
        b.wait();
        allocs(|| token.wait())
    });
    barrier.wait();
    source.cancel();
    assert_eq!(waiter.join().unwrap(), 0);
    assert_eq!(
        allocs(|| source
            .token()
            .wait_timeout(std::time::Duration::from_secs(1))),
        0
    );
}

#[cfg(feature = "std")]
#[test]
fn pinned_registration_allocates_nothing() {
    let source = CancellationSource::new();
    let token = source.token();
    let n = allocs(|| {
        for _ in 0..10 {
            let mut r = std::pin::pin!(cancel_core::PinnedRegistration::new(token.clone(), || {
                std::hint::black_box(1);
            }));
            assert!(r.as_mut().register());
        }
        let mut kept = std::pin::pin!(cancel_core::PinnedRegistration::new(token.clone(), || {
            std::hint::black_box(2);
        }));
        kept.as_mut().register();
        source.cancel();
    });
    assert_eq!(n, 0);
}

#[cfg(feature = "tokio-util")]
#[test]
fn tokio_util_bridges_leak_nothing() {
    let (_, _, live, ()) = measure(|| {
        for cancel_first in [false, true] {
            let source = CancellationSource::new();
            let bridge = source.token().to_tokio();
            if cancel_first {
                source.cancel();
            }
            drop(bridge);
            drop(source);
            let tokio_token = tokio_util::sync::CancellationToken::new();
            let bridge = CancellationSource::from_tokio(&tokio_token);
            if cancel_first {
                tokio_token.cancel();
            }
            drop(bridge);
            drop(tokio_token);
        }
    });
    assert_eq!(live, 0);
}

/// Issue 14's memory budgets (64-bit targets): a pending `cancelled()`
/// future is at most 56 bytes, all inline; a boxed callback is at most 48
/// bytes of heap with a closure of one word (40 of node); a child source is
/// one allocation of at most 64 bytes.
#[cfg(target_pointer_width = "64")]
#[test]
fn memory_budgets() {
    use cancel_core::{WaitForCancellation, WaitForCancellationOwned};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    assert!(size_of::<WaitForCancellation<'static>>() <= 56);
    assert!(size_of::<WaitForCancellationOwned>() <= 56);
    let source = CancellationSource::new();
    let token = source.token();
    let (n, bytes, _, ()) = measure(|| {
        let mut future = pin!(token.cancelled());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
    });
    assert_eq!(
        (n, bytes),
        (0, 0),
        "a pending cancelled() allocates nothing"
    );

    let (n, bytes, _, reg) = measure(|| token.register(|| {}));
    assert_eq!(n, 1);
    assert!(bytes <= 40, "a boxed callback node is {bytes} bytes");
    drop(reg);
    let hits = Arc::new(AtomicUsize::new(0));
    let (n, bytes, _, reg) = measure(|| {
        let hits = hits.clone();
        token.register(move || {
            hits.fetch_add(1, Ordering::Relaxed);
        })
    });
    assert_eq!(n, 1);
    assert!(
        bytes <= 48,
        "a boxed callback capturing an Arc is {bytes} bytes"
    );
    source.cancel();
    assert_eq!(hits.load(Ordering::Relaxed), 1);
    drop(reg);

    let parent = CancellationSource::new();
    let (n, bytes, _, child) = measure(|| parent.token().child());
    assert_eq!(n, 1);
    assert!(bytes <= 64, "a child is {bytes} bytes");
    drop(child);
}
