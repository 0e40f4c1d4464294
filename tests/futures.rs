//! Issue-4 semantics: futures, adapters, blocking waits, runtimes.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
#[cfg(feature = "std")]
use std::sync::Barrier;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

use cancel_core::{
    CancellationFutureExt, CancellationSource, CancellationToken, RunUntilCancelled,
    RunUntilCancelledOwned, WaitForCancellation, WaitForCancellationOwned,
};

#[path = "common/count_waker.rs"]
mod count_waker;
use count_waker::count_waker;
#[path = "common/leak.rs"]
mod leak;
use leak::leak_reachably;

fn poll_once<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

#[test]
fn types_are_nameable_send_sync_and_must_use() {
    static_assertions::assert_impl_all!(WaitForCancellation<'static>: Send, Sync, Future<Output = ()>);
    static_assertions::assert_impl_all!(WaitForCancellationOwned: Send, Sync, Future<Output = ()>);
    static_assertions::assert_impl_all!(RunUntilCancelled<'static, std::future::Ready<u8>>: Send, Sync);
    static_assertions::assert_impl_all!(RunUntilCancelledOwned<std::future::Ready<u8>>: Send, Sync);
    fn _static(t: CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        t.cancelled_owned()
    }
}

#[test]
fn pending_future_is_woken_exactly_once_and_unpolled_one_is_ready() {
    let source = CancellationSource::new();
    let token = source.token();
    let (count, waker) = count_waker();
    let mut polled = pin!(token.cancelled());
    let mut never_polled = pin!(token.cancelled());
    assert!(poll_once(polled.as_mut(), &waker).is_pending());
    assert!(poll_once(polled.as_mut(), &waker).is_pending());
    source.cancel();
    assert_eq!(count.0.load(SeqCst), 1);
    assert!(poll_once(polled.as_mut(), &waker).is_ready());
    assert!(poll_once(never_polled.as_mut(), &waker).is_ready());
    assert_eq!(count.0.load(SeqCst), 1);
}

#[test]
fn a_new_waker_replaces_the_old_one_and_only_it_is_woken() {
    let source = CancellationSource::new();
    let token = source.token();
    let (c1, w1) = count_waker();
    let (c2, w2) = count_waker();
    let mut fut = pin!(token.cancelled());
    assert!(poll_once(fut.as_mut(), &w1).is_pending());
    for _ in 0..100 {
        assert!(poll_once(fut.as_mut(), &w2).is_pending());
    }
    // Strong count tells the slot holds one clone of w2 and none of w1.
    assert_eq!(Arc::strong_count(&c1), 2, "old waker dropped");
    assert_eq!(
        Arc::strong_count(&c2),
        3,
        "one stored clone, never a growing list"
    );
    source.cancel();
    assert_eq!(c1.0.load(SeqCst), 0);
    assert_eq!(c2.0.load(SeqCst), 1);
    assert_eq!(Arc::strong_count(&c2), 2, "the woken waker was consumed");
}

#[test]
fn dropping_pending_futures_empties_the_list() {
    let source = CancellationSource::new();
    let token = source.token();
    let (_c, waker) = count_waker();
    for _ in 0..if cfg!(miri) { 1_000 } else { 1_000_000 } {
        let mut fut = pin!(token.cancelled());
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
    }
    // The list is empty again: a single callback is the only thing cancel runs
    // (a leftover node would be a dangling pointer, which Miri would catch).
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = token.register(move || {
        r.fetch_add(1, SeqCst);
    });
    source.cancel();
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn none_token_future_stays_pending_without_storing_a_waker() {
    let token = CancellationToken::none();
    let (c, waker) = count_waker();
    let mut fut = pin!(token.cancelled());
    assert!(poll_once(fut.as_mut(), &waker).is_pending());
    assert_eq!(Arc::strong_count(&c), 2, "no waker stored");
}

struct ReentrantWaker {
    token: CancellationToken,
    woke: AtomicUsize,
}
impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Re-enter the token from inside wake(): no lock may be held here.
        assert!(self.token.is_cancelled());
        let child = self.token.child();
        assert!(child.is_cancelled());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let _reg = self.token.register(move || {
            r.fetch_add(1, SeqCst);
        });
        assert_eq!(ran.load(SeqCst), 1);
        self.woke.fetch_add(1, SeqCst);
    }
}

#[test]
fn a_waker_may_reenter_the_token() {
    let source = CancellationSource::new();
    let token = source.token();
    let rw = Arc::new(ReentrantWaker {
        token: token.clone(),
        woke: AtomicUsize::new(0),
    });
    let waker = Waker::from(rw.clone());
    let mut fut = pin!(token.cancelled());
    assert!(poll_once(fut.as_mut(), &waker).is_pending());
    let child = token.child();
    let mut child_fut = pin!(child.token().cancelled_owned());
    assert!(poll_once(child_fut.as_mut(), &waker).is_pending());
    source.cancel();
    assert_eq!(rw.woke.load(SeqCst), 2);
}

#[test]
fn run_until_cancelled_already_cancelled_never_polls_the_inner_future() {
    let source = CancellationSource::new();
    source.cancel();
    let polled = Arc::new(AtomicUsize::new(0));
    let p = polled.clone();
    let inner = std::future::poll_fn(move |_| {
        p.fetch_add(1, SeqCst);
        Poll::Ready(5)
    });
    let (_c, waker) = count_waker();
    let token = source.token();
    let mut fut = pin!(token.run_until_cancelled(inner));
    assert!(matches!(
        poll_once(fut.as_mut(), &waker),
        Poll::Ready(Err(_))
    ));
    assert_eq!(polled.load(SeqCst), 0);
}

#[test]
fn run_until_cancelled_is_biased_to_the_inner_future_and_drops_it_when_cancelled() {
    struct Flag(Arc<AtomicUsize>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let source = CancellationSource::new();
    let token = source.token();
    let (count, waker) = count_waker();
    // Inner future pending on first poll, ready on the second: the bias
    // gives Ok even though cancel happened in between.
    let mut ready = false;
    let inner = std::future::poll_fn(move |_| {
        if ready {
            Poll::Ready(1)
        } else {
            ready = true;
            Poll::Pending
        }
    });
    let racing = CancellationSource::new();
    let racing_token = racing.token();
    let mut fut = pin!(racing_token.run_until_cancelled(inner));
    assert!(poll_once(fut.as_mut(), &waker).is_pending());
    racing.cancel();
    // Both are ready at the second poll: the inner future wins.
    assert!(matches!(
        poll_once(fut.as_mut(), &waker),
        Poll::Ready(Ok(1))
    ));

    let dropped = Arc::new(AtomicUsize::new(0));
    let flag = Flag(dropped.clone());
    let inner = async move {
        let _flag = flag;
        std::future::pending::<()>().await
    };
    let mut fut = pin!(inner.with_cancellation(&token));
    assert!(poll_once(fut.as_mut(), &waker).is_pending());
    source.cancel();
    assert!(count.0.load(SeqCst) >= 1);
    assert!(matches!(
        poll_once(fut.as_mut(), &waker),
        Poll::Ready(Err(_))
    ));
    assert_eq!(
        dropped.load(SeqCst),
        1,
        "inner future dropped when cancellation won"
    );
}

#[test]
fn owned_adapters() {
    let source = CancellationSource::new();
    let out = futures::executor::block_on(async { 3 }.with_cancellation_owned(source.token()));
    assert_eq!(out.unwrap(), 3);
    let t = source.token();
    let h = thread::spawn(move || {
        futures::executor::block_on(t.run_until_cancelled_owned(std::future::pending::<()>()))
    });
    source.cancel();
    assert!(h.join().unwrap().is_err());
}

#[test]
fn cancel_wakes_a_hundred_thousand_waiters() {
    let source = CancellationSource::new();
    let token = source.token();
    let (count, waker) = count_waker();
    let n = if cfg!(miri) { 100 } else { 100_000 };
    let mut futs: Vec<_> = (0..n).map(|_| Box::pin(token.cancelled())).collect();
    for f in &mut futs {
        assert!(poll_once(f.as_mut(), &waker).is_pending());
    }
    source.cancel();
    assert_eq!(count.0.load(SeqCst), n);
    assert!(
        futs.iter_mut()
            .all(|f| poll_once(f.as_mut(), &waker).is_ready())
    );
}

#[cfg(feature = "std")]
#[test]
fn blocking_wait_returns_when_another_thread_cancels_and_times_out_otherwise() {
    let source = CancellationSource::new();
    let token = source.token();
    assert!(!token.wait_timeout(Duration::from_millis(5)));
    assert!(!token.wait_deadline(Instant::now()));
    assert!(!CancellationToken::none().wait_timeout(Duration::from_millis(1)));
    let barrier = Arc::new(Barrier::new(2));
    let (t, b) = (token.clone(), barrier.clone());
    let waiter = thread::spawn(move || {
        b.wait();
        t.wait_timeout(Duration::from_secs(3600))
    });
    barrier.wait();
    source.cancel();
    assert!(waiter.join().unwrap());
    token.wait();
    assert!(
        token.wait_timeout(Duration::MAX),
        "a huge timeout does not panic"
    );
}

#[cfg(feature = "std")]
#[test]
fn blocking_wait_absorbs_spurious_unparks() {
    let source = CancellationSource::new();
    let token = source.token();
    let t = token.clone();
    let waiter = thread::spawn(move || {
        t.wait();
        t.is_cancelled()
    });
    for _ in 0..100 {
        waiter.thread().unpark();
        thread::yield_now();
    }
    assert!(!waiter.is_finished() || source.is_cancelled());
    source.cancel();
    assert!(waiter.join().unwrap());
}

#[cfg(not(miri))]
#[test]
fn works_on_tokio_multi_thread_with_cancel_from_a_plain_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let source = CancellationSource::new();
    let token = source.token();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let t = token.clone();
            rt.spawn(async move {
                t.cancelled().await;
                let r = t.run_until_cancelled(std::future::pending::<()>()).await;
                r.is_err()
            })
        })
        .collect();
    let canceller = thread::spawn(move || source.cancel());
    assert!(canceller.join().unwrap());
    rt.block_on(async {
        for t in tasks {
            assert!(t.await.unwrap());
        }
    });
}

#[cfg(not(miri))]
#[test]
fn works_on_smol() {
    let source = CancellationSource::new();
    let token = source.token();
    let task = smol::spawn(async move {
        token.clone().cancelled_owned().await;
        token.is_cancelled()
    });
    let canceller = thread::spawn(move || source.cancel());
    assert!(smol::block_on(task));
    assert!(canceller.join().unwrap());
}

#[test]
fn works_on_futures_executor_across_threads() {
    let source = CancellationSource::new();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let t = source.token();
            thread::spawn(move || futures::executor::block_on(t.cancelled()))
        })
        .collect();
    source.cancel();
    for w in waiters {
        w.join().unwrap();
    }
}

#[cfg(feature = "stream")]
#[test]
fn take_until_cancelled_ends_the_stream_and_drops_nothing_yielded() {
    use cancel_core::CancellationStreamExt;
    use futures::StreamExt;

    struct Item(u32, Arc<AtomicUsize>);
    impl Drop for Item {
        fn drop(&mut self) {
            self.1.fetch_add(1, SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    let source = CancellationSource::new();
    let stream = futures::stream::iter(0..).map(move |i| Item(i, d.clone()));
    let mut stream = Box::pin(stream.take_until_cancelled(source.token()));
    futures::executor::block_on(async {
        let a = stream.next().await.unwrap();
        let b = stream.next().await.unwrap();
        assert_eq!((a.0, b.0), (0, 1));
        assert_eq!(
            dropped.load(SeqCst),
            0,
            "yielded items belong to the consumer"
        );
        source.cancel();
        assert!(stream.next().await.is_none());
        assert!(stream.next().await.is_none(), "stays ended");
        assert_eq!(dropped.load(SeqCst), 0, "nothing pulled after cancellation");
        drop((a, b));
    });
    // A pending stream is woken and ended by cancel from another thread.
    let source = CancellationSource::new();
    let mut pending =
        Box::pin(futures::stream::pending::<u8>().take_until_cancelled(source.token()));
    let h = thread::spawn(move || futures::executor::block_on(pending.next()));
    source.cancel();
    assert!(h.join().unwrap().is_none());
}

#[test]
fn a_leaked_borrowing_future_does_not_break_the_last_drop() {
    // `mem::forget` of a pinned box keeps the pin promise (never freed); the
    // source's state must still be destroyed cleanly, with or without a timer.
    for timed in [false, true] {
        let clock = cancel_core::ManualClock::new();
        let source = if timed {
            clock.with_timeout(Duration::from_secs(5))
        } else {
            CancellationSource::new()
        };
        let token = source.token();
        let (_c, waker) = count_waker();
        let mut fut = Box::pin(token.cancelled());
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
        leak_reachably(fut);
        drop(token);
        drop(source);
        assert_eq!(clock.armed(), 0);
    }
}

#[cfg(feature = "std")]
struct PanicWaker;
#[cfg(feature = "std")]
impl Wake for PanicWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panics");
    }
}

// Panic isolation between callbacks and wakers needs the `std` feature.
#[cfg(feature = "std")]
#[test]
fn a_panicking_waker_does_not_strand_the_other_observers() {
    let source = CancellationSource::new();
    let token = source.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = token.register(move || {
        r.fetch_add(1, SeqCst);
    });
    let child = token.child();
    let (good, good_waker) = count_waker();
    let mut good_fut = pin!(token.cancelled());
    assert!(poll_once(good_fut.as_mut(), &good_waker).is_pending());
    let bad_waker = Waker::from(Arc::new(PanicWaker));
    let mut bad_fut = pin!(token.cancelled());
    assert!(poll_once(bad_fut.as_mut(), &bad_waker).is_pending());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.cancel()));
    assert!(
        result.is_err(),
        "the waker's panic is resumed after the drain"
    );
    assert_eq!(good.0.load(SeqCst), 1);
    assert_eq!(ran.load(SeqCst), 1);
    assert!(child.is_cancelled());
}

// Panic isolation between callbacks and wakers needs the `std` feature.
#[cfg(feature = "std")]
#[test]
fn long_mixed_lists_wake_every_waiter_once_across_batches_and_panics() {
    // Runs of waiters longer than one wake batch (32), broken up by
    // callbacks and children, with waiters dropped from the middle of a run
    // before the cancel and two panicking wakers inside one batch: every
    // live waiter is woken exactly once, every observer runs, and every
    // waker clone the crate took is released.
    let source = CancellationSource::new();
    let token = source.token();
    let (good, good_waker) = count_waker();
    let bad = Arc::new(PanicWaker);
    let bad_waker = Waker::from(bad.clone());
    let ran = Arc::new(AtomicUsize::new(0));
    let mut futures = Vec::new();
    let mut regs = Vec::new();
    let mut children = Vec::new();
    let mut live = 0;
    for i in 0..200usize {
        match i % 50 {
            40 => {
                let r = ran.clone();
                regs.push(token.register(move || {
                    r.fetch_add(1, SeqCst);
                }));
            }
            45 => children.push(token.child()),
            _ => {
                let mut f = Box::pin(token.clone().cancelled_owned());
                let waker = if i == 7 || i == 20 {
                    &bad_waker
                } else {
                    &good_waker
                };
                assert!(poll_once(f.as_mut(), waker).is_pending());
                futures.push((i, f));
            }
        }
    }
    // Drop some waiters from the middle and the ends of runs.
    futures.retain(|(i, _)| i % 13 != 0 && *i != 199);
    for (i, _) in &futures {
        if *i != 7 && *i != 20 {
            live += 1;
        }
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.cancel()));
    assert!(result.is_err(), "the first waker panic is resumed");
    assert_eq!(good.0.load(SeqCst), live);
    assert_eq!(ran.load(SeqCst), regs.len());
    assert!(children.iter().all(|c| c.is_cancelled()));
    for (_, f) in &mut futures {
        assert!(poll_once(f.as_mut(), &good_waker).is_ready());
    }
    drop(futures);
    assert_eq!(Arc::strong_count(&good), 2, "only our own waker is left");
    assert_eq!(Arc::strong_count(&bad), 2, "only our own waker is left");
}

#[cfg(feature = "tokio-util")]
#[test]
fn tokio_util_bridges_both_ways_without_leaks() {
    // cancel-core -> tokio-util
    let source = CancellationSource::new();
    let bridge = source.token().to_tokio();
    let tokio_token = bridge.token().clone();
    assert!(!tokio_token.is_cancelled());
    source.cancel();
    assert!(tokio_token.is_cancelled());
    drop(bridge);

    // Dropping the bridge first removes the registration: no closure left.
    let source = CancellationSource::new();
    let bridge = source.token().to_tokio();
    let tokio_token = bridge.token().clone();
    drop(bridge);
    source.cancel();
    assert!(!tokio_token.is_cancelled(), "the bridge was dropped");

    // tokio-util -> cancel-core, cancelled from another thread.
    let tokio_token = tokio_util::sync::CancellationToken::new();
    let bridge = CancellationSource::from_tokio(&tokio_token);
    let token = bridge.source().token();
    let t = tokio_token.clone();
    thread::spawn(move || t.cancel()).join().unwrap();
    assert!(token.is_cancelled());
    drop(bridge);

    // Already cancelled: born cancelled.
    let bridge = CancellationSource::from_tokio(&tokio_token);
    assert!(bridge.source().is_cancelled());

    // Dropping the bridge before the tokio token is cancelled: the tokio
    // side keeps only a weak waker; the source no longer follows.
    let tokio_token = tokio_util::sync::CancellationToken::new();
    let bridge = CancellationSource::from_tokio(&tokio_token);
    let token = bridge.source().token();
    drop(bridge);
    tokio_token.cancel();
    assert!(!token.is_cancelled());
}
