//! `InplaceSource` / `InplaceToken`: the in-place source's behaviour, its
//! size, and that nothing in its life allocates (counted per thread by the
//! shared counting allocator). Runs under Miri (scripts/miri.sh).

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use cancel_core::{
    CancelOrigin, CancellationSource, InplaceSource, InplaceToken, PinnedRegistration, Token,
};

#[path = "common/count_waker.rs"]
mod count_waker;
#[path = "common/counting.rs"]
mod counting;

/// A waker counting its wakes, and the count.
fn counting_waker() -> (Waker, Arc<count_waker::CountWaker>) {
    let (count, waker) = count_waker::count_waker();
    (waker, count)
}
use counting::measure;
#[path = "common/leak.rs"]
mod leak;
use leak::leak_reachably;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Allocations made by this thread in `f`, and its result.
fn allocs<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let (n, _, _, r) = measure(f);
    (n, r)
}

#[test]
fn sizes() {
    #[cfg(target_pointer_width = "64")]
    assert!(
        size_of::<InplaceSource>() <= 32,
        "{}",
        size_of::<InplaceSource>()
    );
    assert_eq!(size_of::<InplaceToken<'_>>(), size_of::<usize>());
    assert_eq!(size_of::<Option<InplaceToken<'_>>>(), size_of::<usize>());
    // The same future type as a heap token's.
    assert_eq!(
        size_of::<cancel_core::WaitForCancellation<'static>>(),
        size_of_val(&InplaceSource::new().token().cancelled())
    );
}

static STATIC_SOURCE: InplaceSource = InplaceSource::new();

#[test]
fn a_static_source_works_and_allocates_nothing() {
    let (n, token) = allocs(|| STATIC_SOURCE.token());
    assert_eq!(n, 0);
    assert!(!token.is_cancelled());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut registration = pin!(PinnedRegistration::new(token, move || {
        r.store(true, Ordering::SeqCst)
    }));
    let (n, pending) = allocs(|| registration.as_mut().register());
    assert_eq!(n, 0);
    assert!(pending);
    let (n, cancelled) = allocs(|| STATIC_SOURCE.cancel());
    assert_eq!(n, 0);
    assert!(cancelled && ran.load(Ordering::SeqCst));
    assert!(token.check().is_err() && STATIC_SOURCE.is_cancelled());
}

/// Every operation of the in-place source, counted: none allocates.
#[test]
fn every_operation_allocates_nothing() {
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let (n, ()) = allocs(|| {
        let source = InplaceSource::new();
        let token = source.token();
        let copy = token;
        assert!(!copy.is_cancelled() && copy.can_be_cancelled());
        assert!(copy.check().is_ok());
        assert_eq!((copy.reason(), copy.origin()), (None, None));
        assert!(!Token::is_cancelled(&copy));
        assert_eq!(copy, source.token());

        // A future: created, polled (linked), polled again, dropped.
        {
            let mut waiting = pin!(token.cancelled());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
            assert!(waiting.as_mut().poll(&mut cx).is_pending());
        }
        // A callback: registered and unregistered, then registered and
        // dropped (unlinks), then registered and left to run.
        {
            let mut unregistered = pin!(PinnedRegistration::new(token, || unreachable!()));
            assert!(unregistered.as_mut().register());
            assert!(unregistered.as_mut().unregister());
        }
        {
            let mut dropped = pin!(PinnedRegistration::new(token, || unreachable!()));
            assert!(dropped.as_mut().register());
        }
        static RAN: AtomicUsize = AtomicUsize::new(0);
        let mut runs = pin!(PinnedRegistration::new(token, || {
            RAN.fetch_add(1, Ordering::SeqCst);
        }));
        runs.as_mut().register();
        // run_until_cancelled, pending, then the cancel wakes the rest.
        let mut job = pin!(token.run_until_cancelled(std::future::pending::<()>()));
        assert!(job.as_mut().poll(&mut cx).is_pending());
        let mut waiting = pin!(source.cancelled());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());

        assert!(source.cancel());
        assert!(!source.cancel());
        assert_eq!(RAN.load(Ordering::SeqCst), 1);
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert!(job.as_mut().poll(&mut cx).is_ready());
        assert!(token.check().unwrap_err().reason().is_requested());
        assert_eq!(token.origin(), Some(CancelOrigin::Cancel));
        // On a cancelled source: a callback runs inline, a future is ready.
        let mut late = pin!(PinnedRegistration::new(token, || {
            RAN.fetch_add(1, Ordering::SeqCst);
        }));
        assert!(!late.as_mut().register());
        assert_eq!(RAN.load(Ordering::SeqCst), 2);
        assert!(pin!(token.cancelled()).poll(&mut cx).is_ready());
        assert!(token.wait_timeout(std::time::Duration::ZERO));
    });
    assert_eq!(n, 0, "an in-place source's life allocated");
}

#[test]
fn callbacks_run_lifo_then_futures_wake() {
    let source = InplaceSource::new();
    let token = source.token();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (a, b) = (order.clone(), order.clone());
    let mut first = pin!(PinnedRegistration::new(token, move || {
        a.lock().unwrap().push(1)
    }));
    let mut second = pin!(PinnedRegistration::new(token, move || {
        b.lock().unwrap().push(2)
    }));
    first.as_mut().register();
    second.as_mut().register();
    let (waker, woken) = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let mut waiting = pin!(token.cancelled());
    assert!(waiting.as_mut().poll(&mut cx).is_pending());
    source.cancel();
    assert_eq!(*order.lock().unwrap(), [2, 1]);
    assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
}

#[test]
fn another_thread_cancels_a_blocked_waiter_and_a_future() {
    let source = InplaceSource::new();
    let token = source.token();
    std::thread::scope(|s| {
        let blocked = s.spawn(move || token.wait());
        let awaiting = s.spawn(move || futures::executor::block_on(token.cancelled()));
        source.cancel();
        blocked.join().unwrap();
        awaiting.join().unwrap();
    });
    assert!(source.is_cancelled());
}

#[test]
fn cancel_with_a_cause_is_its_reason() {
    let source = InplaceSource::new();
    assert!(source.cancel_with(std::io::Error::other("disk full")));
    let reason = source.token().reason().unwrap();
    assert!(reason.is_custom());
    assert_eq!(reason.to_string(), "cancelled: disk full");
    assert!(!source.cancel(), "the first reason stays");
}

/// A registration dropped while its callback runs on another thread waits
/// for it to return (the callback borrows nothing, but its registration's
/// memory is the node the canceller is using).
#[test]
fn a_registration_dropped_while_its_callback_runs_waits_for_it() {
    let source = InplaceSource::new();
    let token = source.token();
    let entered = Arc::new(std::sync::Barrier::new(2));
    let release = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let (e, r, d) = (entered.clone(), release.clone(), done.clone());
    let mut registration = Box::pin(PinnedRegistration::new(token, move || {
        e.wait();
        while !r.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        d.store(true, Ordering::SeqCst);
    }));
    registration.as_mut().register();
    std::thread::scope(|s| {
        let canceller = s.spawn(|| source.cancel());
        entered.wait();
        let dropper = s.spawn(move || {
            drop(registration);
            done.load(Ordering::SeqCst)
        });
        release.store(true, Ordering::SeqCst);
        assert!(
            dropper.join().unwrap(),
            "the drop returned before the callback"
        );
        assert!(canceller.join().unwrap());
    });
}

/// A panicking callback does not stop the others (`std`): all run, the
/// source ends cancelled, and the panic resumes from `cancel`.
#[test]
fn a_panicking_callback_loses_nothing() {
    let source = InplaceSource::new();
    let token = source.token();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let mut quiet = pin!(PinnedRegistration::new(token, move || {
        r.fetch_add(1, Ordering::SeqCst);
    }));
    quiet.as_mut().register();
    let mut loud = pin!(PinnedRegistration::new(token, || panic!("callback")));
    loud.as_mut().register();
    let (waker, woken) = counting_waker();
    let mut waiting = pin!(token.cancelled());
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.cancel()));
    assert!(caught.is_err());
    assert!(source.is_cancelled());
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    assert!(!loud.is_pending() && !quiet.is_pending());
}

/// A closure whose drop panics, dropped unrun by `unregister`: the
/// registration is finished, nothing runs or drops twice.
#[test]
fn a_closure_drop_that_panics_on_unregister() {
    struct Loud;
    impl Drop for Loud {
        fn drop(&mut self) {
            panic!("closure drop");
        }
    }
    let source = InplaceSource::new();
    let loud = Loud;
    let mut registration = pin!(PinnedRegistration::new(source.token(), move || {
        let _keep = &loud;
        unreachable!()
    }));
    registration.as_mut().register();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        registration.as_mut().unregister()
    }));
    assert!(caught.is_err());
    assert!(!registration.is_pending());
    assert!(
        !registration.as_mut().unregister(),
        "finished: nothing left"
    );
    source.cancel();
}

/// Observers leaked (as with `mem::forget`) end the borrow without leaving the
/// list: the source may then move and cancel (the leaked callback runs,
/// the leaked future's waker is woken) and drop, soundly (Miri checks).
#[test]
fn leaked_observers_then_a_moved_source() {
    let source = InplaceSource::new();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let mut registration = Box::pin(PinnedRegistration::new(source.token(), move || {
        r.store(true, Ordering::SeqCst)
    }));
    registration.as_mut().register();
    leak_reachably(registration);
    let (waker, woken) = counting_waker();
    let mut waiting = Box::pin(source.token().cancelled());
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    leak_reachably(waiting);
    let moved = source;
    let boxed = Box::new(moved); // moved again, to the heap
    assert!(boxed.cancel());
    assert!(ran.load(Ordering::SeqCst));
    assert_eq!(woken.0.load(Ordering::SeqCst), 1);
    drop(boxed);
}

/// A source dropped, never cancelled, with a leaked registration in its
/// list: the leaked node is never touched again.
#[test]
fn a_source_dropped_with_a_leaked_registration() {
    let source = Box::new(InplaceSource::new());
    let mut registration = Box::pin(PinnedRegistration::new(source.token(), || unreachable!()));
    registration.as_mut().register();
    leak_reachably(registration);
    drop(source);
}

#[test]
fn tokens_compare_by_source() {
    let (a, b) = (InplaceSource::new(), InplaceSource::new());
    assert_eq!(a.token(), a.token());
    assert_ne!(a.token(), b.token());
    let set: std::collections::HashSet<_> = [a.token(), a.token(), b.token()].into();
    assert_eq!(set.len(), 2);
    assert!(format!("{:?}", a.token()).contains("is_cancelled: false"));
    assert!(format!("{a:?}").contains("InplaceSource"));
}

/// The heap source's observers and the in-place source's are the same
/// types: one function takes both futures.
#[test]
fn the_same_future_type_for_both() {
    fn is_ready(f: Pin<&mut cancel_core::WaitForCancellation<'_>>) -> bool {
        f.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }
    let heap = CancellationSource::new();
    let inplace = InplaceSource::new();
    heap.cancel();
    inplace.cancel();
    let token = heap.token();
    assert!(is_ready(pin!(token.cancelled())));
    assert!(is_ready(pin!(inplace.token().cancelled())));
}

// ---------------------------------------------------------------- timeouts

/// A clock's timeout on an in-place source, which it takes pinned: it
/// fires as on a heap source (reason `TimedOut`, origin `Timer`).
#[test]
fn a_pinned_source_times_out_on_a_manual_clock() {
    use std::time::Duration;
    let clock = cancel_core::ManualClock::new();
    let source = pin!(InplaceSource::new());
    clock.cancel_after(source.as_ref(), Duration::from_secs(5));
    assert_eq!(clock.armed(), 1);
    clock.advance(Duration::from_secs(4));
    assert!(!source.is_cancelled());
    clock.advance(Duration::from_secs(1));
    assert!(source.token().reason().unwrap().is_timed_out());
    assert_eq!(source.token().origin(), Some(CancelOrigin::Timeout));
    assert_eq!(clock.armed(), 0);
}

/// Arming allocates the source's timer node once (the clock's queue keeps
/// it: the one allocation of an in-place source's life, with a custom
/// cause's); re-arming allocates nothing, nor does firing.
#[test]
fn arming_a_timeout_allocates_the_timer_node_once() {
    use std::time::Duration;
    let clock = cancel_core::ManualClock::new();
    // The queue's storage, grown once beforehand.
    let warm = pin!(InplaceSource::new());
    clock.cancel_after(warm.as_ref(), Duration::from_secs(100));
    let source = pin!(InplaceSource::new());
    let (n, ()) = allocs(|| clock.cancel_after(source.as_ref(), Duration::from_secs(5)));
    assert_eq!(n, 1, "the timer node");
    let (n, ()) = allocs(|| clock.cancel_after(source.as_ref(), Duration::from_secs(6)));
    assert_eq!(n, 0, "re-arming");
    let (n, ()) = allocs(|| clock.advance(Duration::from_secs(6)));
    assert_eq!(n, 0, "firing");
    assert!(source.is_cancelled());
}

/// A source dropped while armed disarms its timeout: the clock forgets it
/// and a later advance touches nothing (Miri checks).
#[test]
fn dropping_an_armed_source_disarms_it() {
    use std::time::Duration;
    let clock = cancel_core::ManualClock::new();
    {
        let source = pin!(InplaceSource::new());
        clock.cancel_after(source.as_ref(), Duration::from_secs(5));
        assert_eq!(clock.armed(), 1);
    }
    assert_eq!(clock.armed(), 0);
    clock.advance(Duration::from_secs(10));
    let boxed = Box::pin(InplaceSource::new());
    clock.cancel_after(boxed.as_ref(), Duration::from_secs(1));
    assert!(boxed.disarm());
    assert!(!boxed.disarm());
    drop(boxed);
    assert_eq!(clock.armed(), 0);
}

/// The drop races a fire on another thread: whichever comes first, the
/// drop returns only once the fire is done with the state (Miri checks
/// the memory; the assertion checks the outcome).
#[test]
fn a_drop_racing_a_fire() {
    use std::time::Duration;
    for _ in 0..if cfg!(miri) { 4 } else { 200 } {
        let clock = cancel_core::ManualClock::new();
        let source = Box::pin(InplaceSource::new());
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        // A leaked callback: the fire's drain runs it while the owner drops.
        let mut registration = Box::pin(PinnedRegistration::new(source.token(), move || {
            r.fetch_add(1, Ordering::SeqCst);
        }));
        registration.as_mut().register();
        leak_reachably(registration);
        clock.cancel_after(source.as_ref(), Duration::from_secs(1));
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                clock.advance(Duration::from_secs(1));
            });
            barrier.wait();
            drop(source);
        });
        assert!(ran.load(Ordering::SeqCst) <= 1);
        assert_eq!(clock.armed(), 0);
    }
}

/// A timeout's cause whose `Drop` panics, dropped with the armed source:
/// the panic comes out of the source's drop, after the timeout is out of
/// the clock (nothing left armed, nothing leaked: Miri).
#[test]
fn a_cause_drop_that_panics_when_an_armed_source_drops() {
    use std::time::Duration;
    #[derive(Debug)]
    struct Loud;
    impl std::fmt::Display for Loud {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("loud")
        }
    }
    impl std::error::Error for Loud {}
    impl Drop for Loud {
        fn drop(&mut self) {
            panic!("cause drop");
        }
    }
    let clock = cancel_core::ManualClock::new();
    let source = Box::pin(InplaceSource::new());
    clock
        .timer()
        .cancel_after_with(source.as_ref(), Duration::from_secs(1), Loud);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(source)));
    assert!(caught.is_err());
    assert_eq!(clock.armed(), 0);
    clock.advance(Duration::from_secs(2));
}

// ------------------------------------------- an in-place child of a heap parent

use cancel_core::InplaceChild;

/// The parent's cancel reaches the in-place child through a real link:
/// with the parent's reason and origin `Parent`, its callbacks run and its
/// waiters wake before the parent's `cancel` returns; nothing allocates.
#[test]
fn a_heap_parent_cancels_its_inplace_child() {
    let parent = CancellationSource::new();
    let parent_token = parent.token();
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let (n, ()) = allocs(|| {
        let child = pin!(InplaceChild::new(&parent_token));
        let token = child.as_ref().token();
        let mut registration = pin!(PinnedRegistration::new(token, move || {
            r.store(true, Ordering::SeqCst)
        }));
        registration.as_mut().register();
        let mut waiting = pin!(token.cancelled());
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(!token.is_cancelled());
        parent.cancel_with(std::fmt::Error);
        assert!(
            ran.load(Ordering::SeqCst),
            "ran before the parent's cancel returned"
        );
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert_eq!(token.origin(), Some(CancelOrigin::Parent));
        assert_eq!(token.reason(), parent.reason(), "the parent's own cause");
    });
    // `cancel_with` boxes its cause (two allocations); nothing else does.
    assert_eq!(n, 2);
}

#[test]
fn an_inplace_childs_own_cancel_stays_its_own() {
    let parent = CancellationSource::new();
    let child = pin!(InplaceChild::new(&parent.token()));
    assert!(!child.as_ref().is_cancelled());
    assert!(child.as_ref().cancel());
    assert!(!child.as_ref().cancel());
    assert!(!parent.is_cancelled());
    assert_eq!(child.as_ref().token().origin(), Some(CancelOrigin::Cancel));
    // Its link left the parent's list: the parent's cancel finds nothing.
    parent.cancel();
}

#[test]
fn a_child_of_a_cancelled_parent_or_of_none() {
    let parent = CancellationSource::new();
    parent.cancel();
    let child = pin!(InplaceChild::new(&parent.token()));
    assert!(child.as_ref().is_cancelled(), "cancelled at its first use");
    assert_eq!(child.as_ref().token().origin(), Some(CancelOrigin::Parent));
    let orphan = pin!(InplaceChild::new(&cancel_core::CancellationToken::none()));
    assert!(!orphan.as_ref().is_cancelled());
    assert!(orphan.as_ref().cancel());
}

/// The child's link holds the parent's state: the parent's last handle may
/// go first, and the child's drop frees it (Miri's leak check, and the
/// counting allocator, see it freed).
#[test]
fn an_inplace_child_keeps_its_parent_alive_until_it_drops() {
    let live = counting::live();
    {
        let parent = CancellationSource::new();
        let child = pin!(InplaceChild::new(&parent.token()));
        let token = child.as_ref().token();
        drop(parent);
        assert!(!token.is_cancelled());
        assert!(
            token.can_be_cancelled(),
            "its own handle can still cancel it"
        );
    }
    assert_eq!(counting::live(), live, "the parent's state was not freed");
}

/// A child dropped while the parent's cancel, on another thread, may be
/// working on it (descended into it to run a leaked callback): the drop
/// waits. Miri checks the memory.
#[test]
fn an_inplace_child_dropped_racing_the_parents_cancel() {
    for _ in 0..if cfg!(miri) { 4 } else { 200 } {
        let parent = CancellationSource::new();
        let child = Box::pin(InplaceChild::new(&parent.token()));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let mut registration =
            Box::pin(PinnedRegistration::new(child.as_ref().token(), move || {
                r.fetch_add(1, Ordering::SeqCst);
            }));
        registration.as_mut().register();
        leak_reachably(registration);
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                barrier.wait();
                parent.cancel();
            });
            barrier.wait();
            drop(child);
        });
        assert!(ran.load(Ordering::SeqCst) <= 1);
    }
}

/// The child's drop gives back the last reference to its parent, whose
/// cause's `Drop` panics: the panic comes out of the child's drop, after
/// the child is unlinked and the parent freed (Miri: nothing leaked or
/// used after free).
#[test]
fn an_inplace_child_freeing_a_parent_whose_cause_drop_panics() {
    #[derive(Debug)]
    struct Loud;
    impl std::fmt::Display for Loud {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("loud")
        }
    }
    impl std::error::Error for Loud {}
    static DROPPED: AtomicBool = AtomicBool::new(false);
    impl Drop for Loud {
        fn drop(&mut self) {
            DROPPED.store(true, Ordering::SeqCst);
            panic!("cause drop");
        }
    }
    let parent = CancellationSource::new();
    let child = Box::pin(InplaceChild::new(&parent.token()));
    let token = child.as_ref().token();
    parent.cancel_with(Loud);
    assert!(token.reason().unwrap().is_custom());
    drop(parent);
    assert!(
        !DROPPED.load(Ordering::SeqCst),
        "the child's link keeps the parent"
    );
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(child)));
    assert!(caught.is_err(), "the cause's panic comes out of the drop");
    assert!(
        DROPPED.load(Ordering::SeqCst),
        "the parent's state was freed"
    );
}

/// The in-place types cross threads like the heap ones (an operation
/// struct holding them may be moved to, or shared with, another thread).
#[test]
fn send_and_sync() {
    static_assertions::assert_impl_all!(InplaceSource: Send, Sync, Default, std::fmt::Debug);
    static_assertions::assert_impl_all!(InplaceToken<'static>: Send, Sync, Copy, Eq, std::hash::Hash);
    static_assertions::assert_impl_all!(InplaceChild: Send, Sync, std::fmt::Debug);
    static_assertions::assert_impl_all!(PinnedRegistration<fn(), InplaceToken<'static>>: Send, Sync);
    static_assertions::assert_impl_all!(cancel_core::NeverToken: Send, Sync, Copy, Default);
    static_assertions::assert_not_impl_any!(InplaceSource: Unpin);
}

// ------------------------------- dropped inside its own cancellation (abort)

/// Runs `scenario` in a child process (this test binary, this test alone)
/// and returns its exit status and standard error; a child still running
/// after 60 s (a hang) is killed and reported as such.
#[cfg(all(unix, not(miri)))]
fn in_a_child_process(
    test: &str,
    scenario: impl FnOnce(),
) -> Option<(std::process::ExitStatus, String)> {
    const CHILD: &str = "CANCEL_CORE_INPLACE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        scenario();
        return None; // not reached when it aborts
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A watchdog for a hang, not a wait for a race: the child either exits
    // at once or never.
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("{test}: the child hung");
        }
        std::thread::yield_now();
    }
    let out = child.wait_with_output().unwrap();
    Some((
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The child process aborted (SIGABRT) with the crate's message.
#[cfg(all(unix, not(miri)))]
fn assert_aborted_saying_why(status: std::process::ExitStatus, stderr: &str) {
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(6),
        "SIGABRT, got {status:?}: {stderr}"
    );
    assert!(
        stderr.contains("dropped inside its own cancellation"),
        "the message says why: {stderr}"
    );
}

/// A task that owns an in-place source (pinned in an `Arc`, as a timeout
/// needs), woken inline by its own timeout's fire, drops the source there.
/// The fire holds a counted reference for its drain, further up this very
/// stack: the drop can neither wait for it (it never comes back) nor go
/// on (the drain would use freed memory). It aborts, saying why, where it
/// hung before (review of issue 15, finding 1).
#[cfg(all(unix, not(miri)))]
#[test]
fn dropped_inside_its_own_timeouts_drain_aborts_with_a_message() {
    use std::time::Duration;
    let test = "dropped_inside_its_own_timeouts_drain_aborts_with_a_message";
    let Some((status, stderr)) = in_a_child_process(test, || {
        let clock = cancel_core::ManualClock::new();
        let source = Arc::pin(InplaceSource::new());
        clock.cancel_after(source.as_ref(), Duration::from_secs(1));
        let slot: Arc<std::sync::Mutex<Option<Pin<Arc<InplaceSource>>>>> =
            Arc::new(std::sync::Mutex::new(Some(source.clone())));
        drop(source);
        let s = slot.clone();
        // The waker is the owner: its wake drops the last handle.
        struct DropOnWake(Arc<std::sync::Mutex<Option<Pin<Arc<InplaceSource>>>>>);
        impl std::task::Wake for DropOnWake {
            fn wake(self: Arc<Self>) {
                drop(self.0.lock().unwrap().take());
            }
        }
        let waker = Waker::from(Arc::new(DropOnWake(s)));
        let held = slot.lock().unwrap().as_ref().unwrap().clone();
        let mut waiting = Box::pin(held.token().cancelled());
        assert!(
            waiting
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        leak_reachably(waiting);
        drop(held);
        clock.advance(Duration::from_secs(1));
    }) else {
        return;
    };
    assert_aborted_saying_why(status, &stderr);
}

/// The same for an in-place child dropped by a callback its parent's
/// cancel runs (the parent's drain descended into the child, holding a
/// counted reference).
#[cfg(all(unix, not(miri)))]
#[test]
fn a_child_dropped_inside_its_parents_drain_aborts_with_a_message() {
    let test = "a_child_dropped_inside_its_parents_drain_aborts_with_a_message";
    let Some((status, stderr)) = in_a_child_process(test, || {
        let parent = CancellationSource::new();
        let slot: Arc<std::sync::Mutex<Option<Pin<Box<InplaceChild>>>>> = Arc::new(
            std::sync::Mutex::new(Some(Box::pin(InplaceChild::new(&parent.token())))),
        );
        let s = slot.clone();
        let guard = slot.lock().unwrap();
        let token = guard.as_ref().unwrap().as_ref().token();
        let mut registration = Box::pin(PinnedRegistration::new(token, move || {
            drop(s.lock().unwrap().take());
        }));
        registration.as_mut().register();
        leak_reachably(registration);
        drop(guard);
        parent.cancel();
    }) else {
        return;
    };
    assert_aborted_saying_why(status, &stderr);
}

/// Firing allocates nothing, also after a burst emptied a grown queue, and
/// frees only the fired timeouts' nodes (the queue used to shrink itself as
/// entries left it, on the fire's path, reallocating: review of issue 15,
/// finding 4); the next arming gives the memory back instead.
#[test]
fn firing_after_a_burst_calls_no_allocator() {
    use std::time::Duration;
    let clock = cancel_core::ManualClock::new();
    let sources: Vec<Pin<Box<InplaceSource>>> =
        (0..200).map(|_| Box::pin(InplaceSource::new())).collect();
    for s in &sources {
        clock.cancel_after(s.as_ref(), Duration::from_secs(5));
    }
    let (n, _, live, ()) = measure(|| clock.advance(Duration::from_secs(5)));
    assert!(sources.iter().all(|s| s.is_cancelled()));
    assert_eq!(n, 0, "firing allocated");
    assert_eq!(
        live, -200,
        "firing freed anything but the fired timeouts' nodes"
    );
}
