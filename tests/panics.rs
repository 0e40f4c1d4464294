//! Every path that runs user code, made to panic: callbacks (inline and in
//! the drain), closure drops (run, unregistered, never run), waker
//! `clone`/`wake`/`drop`, a custom cause's `Display`/`Drop`, and timeouts
//! fired by a clock. Each test checks that nothing is lost (every other
//! observer still runs or wakes), nothing runs or drops twice, and nothing
//! leaks (the counting allocator's live count is back where it started).
//!
//! Run under Miri by `scripts/miri.sh` (Stacked and Tree Borrows).
//!
//! The tests marked "review finding" failed on `a8d10ee`, before their fix.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use cancel_core::{
    CancelReason, CancellationSource, CancellationToken, ManualClock, PinnedRegistration,
};

#[path = "common/counting.rs"]
mod counting;

#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// Panics with a message the test binary's panic hook keeps quiet about
/// (the default hook's output would be captured by the test harness, and
/// its buffer would count as live allocations).
macro_rules! deliberate {
    ($($arg:tt)*) => {
        panic!("deliberate: {}", format_args!($($arg)*))
    };
}

/// Counts drops of the closures (or values) that capture it, without
/// touching the heap, so a double drop is counted rather than a double free.
struct Probe(&'static AtomicUsize);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A capture whose `Drop` panics (after counting).
struct PanicOnDrop(&'static AtomicUsize);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
        deliberate!("capture drop");
    }
}

/// The message of a panic's payload (a `String` once caught; the panic hook
/// sees a formatted message as a `&str`).
fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    match payload.downcast_ref::<String>() {
        Some(s) => s,
        None => payload.downcast_ref::<&str>().copied().unwrap_or(""),
    }
}

fn quiet<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !message(info.payload()).starts_with("deliberate: ") {
                default_hook(info);
            }
        }));
    });
    catch_unwind(AssertUnwindSafe(f))
}

/// Asserts that `f` leaves no allocation of this thread live.
fn no_leak(f: impl FnOnce()) {
    // The first panic of a thread sets up lazily kept state (the panic
    // hook's output, the thread's name): make it before counting.
    let _ = quiet(|| deliberate!("warm-up"));
    let before = counting::live();
    f();
    assert_eq!(counting::live(), before, "live allocations after the test");
}

// ------------------------------------------------------ inline callbacks

/// Review finding 1 (undefined behaviour from safe code): on an already
/// cancelled token, `PinnedRegistration::register` runs the closure inline;
/// when it panicked, the unwinding drop saw the registration still idle and
/// dropped the (already moved-out) closure a second time: a double drop,
/// "double free" with a heap capture, a use-after-free under Miri.
#[test]
fn a_pinned_callback_panicking_inline_at_register_is_dropped_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        source.cancel();
        let probe = Probe(&DROPS);
        let heap = String::from("heap capture");
        let mut reg = Box::pin(PinnedRegistration::new(source.token(), move || {
            let _probe = &probe;
            assert_eq!(heap.len(), 12);
            RUNS.fetch_add(1, SeqCst);
            deliberate!("inline callback");
        }));
        let result = quiet(|| reg.as_mut().register());
        assert!(result.is_err(), "the callback's panic reaches the caller");
        assert_eq!(RUNS.load(SeqCst), 1);
        assert_eq!(DROPS.load(SeqCst), 1, "the closure was dropped by its run");
        assert!(!reg.is_pending());
        assert!(!reg.as_mut().register(), "it ran: register does nothing");
        drop(reg);
        assert_eq!(DROPS.load(SeqCst), 1, "and never again");
    });
}

#[test]
fn a_boxed_callback_panicking_inline_at_register_leaks_nothing() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        source.cancel();
        let probe = Probe(&DROPS);
        let result = quiet(|| {
            source.token().register(move || {
                let _probe = &probe;
                deliberate!("inline callback");
            })
        });
        assert!(result.is_err());
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

// ---------------------------------------------------- callbacks in a drain

#[test]
fn panicking_callbacks_in_a_drain_run_every_other_observer_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let root = CancellationSource::new();
        let child = root.token().child();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut regs = Vec::new();
        for i in 0..6 {
            let r = runs.clone();
            let probe = Probe(&DROPS);
            let token = if i % 2 == 0 {
                root.token()
            } else {
                child.token()
            };
            regs.push(token.register(move || {
                let _probe = &probe;
                r.fetch_add(1, SeqCst);
                if i % 3 == 0 {
                    deliberate!("callback {i}");
                }
            }));
        }
        let (wakes, waker) = count_waker();
        let child_token = child.token();
        let mut fut = Box::pin(child_token.cancelled());
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let result = quiet(|| root.cancel());
        assert!(result.is_err(), "the first panic is resumed");
        assert_eq!(runs.load(SeqCst), 6, "every callback ran once");
        assert_eq!(wakes.0.load(SeqCst), 1, "the waiter was woken once");
        assert_eq!(DROPS.load(SeqCst), 6);
        assert!(child.is_cancelled());
        assert!(regs.iter().all(|r| !r.is_pending()));
        drop(regs);
        assert_eq!(DROPS.load(SeqCst), 6, "nothing dropped twice");
    });
}

// -------------------------------------------------------- closure drops

/// Review finding 8: a closure capture whose `Drop` panics during
/// `PinnedRegistration::unregister` left the registration attached to a
/// node the core had already detached; its later drop hit a debug
/// assertion ("unexpected node state"), an abort while unwinding.
#[test]
fn a_pinned_closure_whose_drop_panics_at_unregister_stays_consistent() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let bomb = PanicOnDrop(&DROPS);
        let mut reg = Box::pin(PinnedRegistration::new(source.token(), move || {
            let _bomb = &bomb;
            unreachable!("unregistered");
        }));
        assert!(reg.as_mut().register());
        let result = quiet(|| reg.as_mut().unregister());
        assert!(result.is_err(), "the drop's panic reaches the caller");
        assert_eq!(DROPS.load(SeqCst), 1);
        assert!(!reg.is_pending());
        assert!(!reg.as_mut().register(), "unregistered for good");
        assert!(!reg.as_mut().unregister());
        drop(reg);
        source.cancel();
        assert_eq!(DROPS.load(SeqCst), 1, "dropped once, never run");
    });
}

#[test]
fn a_pinned_closure_whose_drop_panics_when_the_registration_drops() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let bomb = PanicOnDrop(&DROPS);
        let mut reg = Box::pin(PinnedRegistration::new(source.token(), move || {
            let _bomb = &bomb;
        }));
        reg.as_mut().register();
        assert!(quiet(move || drop(reg)).is_err());
        assert_eq!(DROPS.load(SeqCst), 1);
        source.cancel();
        assert_eq!(DROPS.load(SeqCst), 1);
        // Never registered at all.
        let bomb = PanicOnDrop(&DROPS);
        let reg = PinnedRegistration::new(source.token(), move || {
            let _bomb = &bomb;
        });
        assert!(quiet(move || drop(reg)).is_err());
        assert_eq!(DROPS.load(SeqCst), 2);
    });
}

/// Review finding 8 (read in the code): a boxed registration whose closure's
/// `Drop` panics skipped freeing its node.
#[test]
fn a_boxed_closure_whose_drop_panics_leaks_no_node() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let bomb = PanicOnDrop(&DROPS);
        let reg = source.token().register(move || {
            let _bomb = &bomb;
        });
        assert!(quiet(move || reg.unregister()).is_err());
        assert_eq!(DROPS.load(SeqCst), 1);
        let bomb = PanicOnDrop(&DROPS);
        let reg = source.token().register(move || {
            let _bomb = &bomb;
        });
        assert!(quiet(move || drop(reg)).is_err());
        assert_eq!(DROPS.load(SeqCst), 2);
        source.cancel();
        assert_eq!(DROPS.load(SeqCst), 2);
    });
}

#[test]
fn a_closure_whose_drop_panics_on_a_token_that_can_never_be_cancelled() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let bomb = PanicOnDrop(&DROPS);
        let result = quiet(|| {
            CancellationToken::none().register(move || {
                let _bomb = &bomb;
            })
        });
        assert!(
            result.is_err(),
            "dropped unrun, its panic reaches the caller"
        );
        assert_eq!(DROPS.load(SeqCst), 1);
        let bomb = PanicOnDrop(&DROPS);
        let mut reg = Box::pin(PinnedRegistration::new(
            CancellationToken::none(),
            move || {
                let _bomb = &bomb;
            },
        ));
        assert!(
            !reg.as_mut().register(),
            "nothing can cancel it: kept, not linked"
        );
        assert_eq!(DROPS.load(SeqCst), 1);
        assert!(quiet(move || drop(reg)).is_err());
        assert_eq!(DROPS.load(SeqCst), 2);
    });
}

/// A closure whose capture panics when dropped after the call: the panic is
/// the callback's own, caught like any other in the drain.
#[test]
fn a_closure_whose_drop_panics_after_it_ran_in_the_drain() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let bomb = PanicOnDrop(&DROPS);
        let _a = source.token().register(move || {
            let _bomb = bomb;
            RUNS.fetch_add(1, SeqCst);
        });
        let _b = source.token().register(|| {
            RUNS.fetch_add(1, SeqCst);
        });
        assert!(quiet(|| source.cancel()).is_err());
        assert_eq!(RUNS.load(SeqCst), 2);
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

// ----------------------------------------------------------------- wakers

/// A waker whose `clone`, `wake` or `drop` panics on demand; every clone
/// counts as live until dropped or consumed by `wake`.
struct Faulty {
    panic_on_clone: bool,
    panic_on_wake: bool,
    panic_on_drop: bool,
    live: AtomicUsize,
    wakes: AtomicUsize,
}

static FAULTY_VTABLE: RawWakerVTable =
    RawWakerVTable::new(faulty_clone, faulty_wake, faulty_wake_by_ref, faulty_drop);

fn faulty(f: &'static Faulty) -> Waker {
    f.live.fetch_add(1, SeqCst);
    // SAFETY: the vtable's functions treat `data` as `&'static Faulty`.
    unsafe { Waker::from_raw(RawWaker::new((f as *const Faulty).cast(), &FAULTY_VTABLE)) }
}

fn faulty_of(data: *const ()) -> &'static Faulty {
    // SAFETY: made from a `&'static Faulty` in `faulty`.
    unsafe { &*data.cast::<Faulty>() }
}

fn faulty_clone(data: *const ()) -> RawWaker {
    let f = faulty_of(data);
    if f.panic_on_clone {
        deliberate!("waker clone");
    }
    f.live.fetch_add(1, SeqCst);
    RawWaker::new(data, &FAULTY_VTABLE)
}

fn faulty_wake(data: *const ()) {
    let f = faulty_of(data);
    f.live.fetch_sub(1, SeqCst);
    f.wakes.fetch_add(1, SeqCst);
    if f.panic_on_wake {
        deliberate!("waker wake");
    }
}

fn faulty_wake_by_ref(data: *const ()) {
    let f = faulty_of(data);
    f.wakes.fetch_add(1, SeqCst);
    if f.panic_on_wake {
        deliberate!("waker wake");
    }
}

fn faulty_drop(data: *const ()) {
    let f = faulty_of(data);
    f.live.fetch_sub(1, SeqCst);
    if f.panic_on_drop {
        deliberate!("waker drop");
    }
}

const fn faults(clone: bool, wake: bool, drop: bool) -> Faulty {
    Faulty {
        panic_on_clone: clone,
        panic_on_wake: wake,
        panic_on_drop: drop,
        live: AtomicUsize::new(0),
        wakes: AtomicUsize::new(0),
    }
}

fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

#[test]
fn a_waker_whose_clone_panics_leaves_the_future_unattached() {
    static F: Faulty = faults(true, false, false);
    no_leak(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let mut fut = pin!(token.cancelled());
        let w = faulty(&F);
        assert!(quiet(|| poll(fut.as_mut(), &w)).is_err());
        drop(w);
        // Polled again with a good waker, it attaches and is woken.
        let (wakes, good) = count_waker();
        assert!(poll(fut.as_mut(), &good).is_pending());
        // A re-poll with the faulty waker panics in clone: the good one stays.
        let w = faulty(&F);
        assert!(quiet(|| poll(fut.as_mut(), &w)).is_err());
        drop(w);
        source.cancel();
        assert_eq!(wakes.0.load(SeqCst), 1);
        assert!(poll(fut.as_mut(), &good).is_ready());
        assert_eq!(F.live.load(SeqCst), 0);
    });
}

#[test]
fn a_waker_whose_wake_panics_does_not_cost_the_others_their_wake() {
    static F: Faulty = faults(false, true, false);
    no_leak(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let mut futs: Vec<_> = (0..40).map(|_| Box::pin(token.cancelled())).collect();
        let (wakes, good) = count_waker();
        let bad = faulty(&F);
        for (i, f) in futs.iter_mut().enumerate() {
            let w = if i % 7 == 0 { &bad } else { &good };
            assert!(poll(f.as_mut(), w).is_pending());
        }
        let result = quiet(|| source.cancel());
        assert!(result.is_err(), "the first wake panic is resumed");
        assert_eq!(F.wakes.load(SeqCst), 6);
        assert_eq!(wakes.0.load(SeqCst), 34);
        drop(bad);
        assert_eq!(F.live.load(SeqCst), 0, "every clone consumed or dropped");
    });
}

#[test]
fn a_waker_whose_drop_panics_when_replaced_or_detached() {
    static F: Faulty = faults(false, false, true);
    no_leak(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let mut fut = Box::pin(token.cancelled());
        let bad = faulty(&F);
        assert!(poll(fut.as_mut(), &bad).is_pending());
        // Replacing it drops the stored clone: that drop panics, after the
        // new waker is stored.
        let (wakes, good) = count_waker();
        assert!(quiet(|| poll(fut.as_mut(), &good)).is_err());
        source.cancel();
        assert_eq!(wakes.0.load(SeqCst), 1, "the replacement was stored");
        // Detaching drops the stored clone too.
        let other = CancellationSource::new();
        let other_token = other.token();
        let mut fut2 = Box::pin(other_token.cancelled());
        assert!(poll(fut2.as_mut(), &bad).is_pending());
        assert!(quiet(move || drop(fut2)).is_err());
        other.cancel();
        assert_eq!(F.wakes.load(SeqCst), 0, "a detached waiter is not woken");
        assert!(quiet(move || drop(bad)).is_err());
        assert_eq!(F.live.load(SeqCst), 0);
        drop(fut);
    });
}

// ------------------------------------------------------------ custom causes

#[derive(Debug)]
struct BadCause {
    drops: &'static AtomicUsize,
}

impl std::fmt::Display for BadCause {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        deliberate!("cause display")
    }
}

impl std::error::Error for BadCause {}

impl Drop for BadCause {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        deliberate!("cause drop");
    }
}

#[test]
fn a_cause_whose_display_panics_only_panics_the_formatter() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let source = CancellationSource::new();
    let child = source.token().child();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = child.token().register(move || {
        r.fetch_add(1, SeqCst);
    });
    assert!(source.cancel_with(BadCause { drops: &DROPS }));
    assert_eq!(ran.load(SeqCst), 1);
    let reason = child.token().reason().unwrap();
    assert!(matches!(reason, CancelReason::Custom(_)));
    assert!(quiet(|| reason.to_string()).is_err());
    // The error's own message does not format the cause (its source does).
    let err = child.token().check().unwrap_err();
    assert_eq!(err.to_string(), "operation cancelled");
    assert!(quiet(|| std::error::Error::source(&err).unwrap().to_string()).is_err());
    drop(err);
    assert!(child.token().is_cancelled());
    // Teardown runs the cause's drop, which panics: caught here.
    drop(reason);
    drop(_reg);
    drop(child);
    assert!(quiet(move || drop(source)).is_err());
    assert_eq!(DROPS.load(SeqCst), 1);
}

/// A cause's `Drop` runs when the last state holding it is freed; a panic
/// there must not stop the teardown of the rest of a chain.
#[test]
fn a_cause_whose_drop_panics_does_not_stop_a_chain_teardown() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let root = CancellationSource::new();
        let mut chain = vec![root.token().child()];
        for _ in 0..5 {
            let next = chain.last().unwrap().token().child();
            chain.push(next);
        }
        // The middle of the chain holds its own cause.
        assert!(chain[2].cancel_with(BadCause { drops: &DROPS }));
        let leaf = chain.pop().unwrap().token();
        drop(chain);
        drop(root);
        // The leaf's state holds the cause and (through its links) every
        // ancestor: dropping it frees the whole chain in one loop.
        assert!(quiet(move || drop(leaf)).is_err());
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

#[test]
fn a_late_cause_whose_drop_panics_is_refused_cleanly() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        source.cancel();
        let result = quiet(|| source.cancel_with(BadCause { drops: &DROPS }));
        assert!(result.is_err(), "the refused cause is dropped here");
        assert_eq!(DROPS.load(SeqCst), 1);
        assert!(matches!(
            source.token().reason(),
            Some(CancelReason::Requested)
        ));
    });
}

// --------------------------------------------------------- clocks firing

/// Review finding 3: a panicking callback on one timed-out source cost the
/// other sources due in the same `advance` their cancellation (they had
/// left the queue; `armed()` was 0 and they stayed uncancelled).
#[test]
fn a_panicking_timeout_callback_costs_no_other_source_its_timeout() {
    no_leak(|| {
        let clock = ManualClock::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let sources: Vec<_> = (1..=4u64)
            .map(|s| clock.with_timeout(Duration::from_secs(s)))
            .collect();
        let mut regs = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let o = order.clone();
            regs.push(s.token().register(move || {
                o.lock().unwrap().push(i);
                if i == 1 || i == 2 {
                    deliberate!("timeout callback {i}");
                }
            }));
        }
        let result = quiet(|| clock.advance(Duration::from_secs(10)));
        let payload = result.expect_err("the first panic is resumed on the advancing thread");
        assert_eq!(message(&*payload), "deliberate: timeout callback 1");
        assert_eq!(
            *order.lock().unwrap(),
            [0, 1, 2, 3],
            "every due source fired, in order"
        );
        assert!(sources.iter().all(|s| s.is_cancelled()));
        assert_eq!(clock.armed(), 0);
    });
}

// ------------------------------------------------------- tokio interop

/// Review finding 9: a panicking callback on a `from_tokio` source unwound
/// through tokio-util's waker (the bridge cancels inside `Waker::wake`), so
/// tokio's `cancel()` panicked part-way and another task waiting on the
/// tokio token was never woken.
#[cfg(feature = "tokio-util")]
#[test]
fn a_panicking_callback_on_a_bridged_source_stays_out_of_tokio() {
    let parent = tokio_util::sync::CancellationToken::new();
    let child = parent.child_token();
    let bridge = CancellationSource::from_tokio(&child);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _reg = bridge.source().token().register(move || {
        r.fetch_add(1, SeqCst);
        deliberate!("bridged callback");
    });
    let (wakes, waker) = count_waker();
    let mut other = Box::pin(parent.cancelled());
    assert!(poll(other.as_mut(), &waker).is_pending());
    let result = quiet(|| parent.cancel());
    assert!(
        result.is_ok(),
        "the callback's panic stayed out of tokio's cancel"
    );
    assert_eq!(ran.load(SeqCst), 1);
    assert!(bridge.source().is_cancelled());
    assert_eq!(wakes.0.load(SeqCst), 1, "tokio's other waiter was woken");
    assert!(child.is_cancelled());
}

// ----------------------------------------------------------------- helpers

#[path = "common/count_waker.rs"]
mod count_waker;
use count_waker::count_waker;

/// Review finding 8 (read in the code): `register` found the token cancelled
/// only when it took the lock (after its first check and the node's
/// allocation), ran the closure inline, and leaked the node when it panicked.
#[test]
fn a_callback_panicking_inline_after_a_late_cancel_leaks_no_node() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let probe = Probe(&DROPS);
        // Cancel between `register`'s first check and its lock: at the
        // allocation of its node.
        let s = source.clone();
        counting::on_next_alloc(move || {
            s.cancel();
        });
        let result = quiet(|| {
            token.register(move || {
                let _probe = &probe;
                RUNS.fetch_add(1, SeqCst);
                deliberate!("inline after a late cancel");
            })
        });
        assert!(result.is_err());
        assert!(source.is_cancelled());
        assert_eq!(RUNS.load(SeqCst), 1);
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

/// Second review, finding 6: a fired timeout's drain resumed a callback's
/// panic from inside the drop of its claim, and the claim's last reference
/// to the state was then dropped during that unwind; freeing the chain ran a
/// cause's `Drop`, which panicked, and that second panic escaped a drop
/// during unwinding: the process aborted.
#[test]
fn a_timeout_callback_panic_and_a_cause_drop_panic_do_not_abort() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let clock = ManualClock::new();
    let parent = CancellationSource::new();
    let timed = parent.token().child();
    clock.cancel_after(&timed, Duration::from_secs(1));
    let token = timed.token();
    let handles = Mutex::new(Some((parent, timed)));
    type Slot = Arc<Mutex<Option<cancel_core::Registration>>>;
    let slot: Slot = Arc::new(Mutex::new(None));
    let own = slot.clone();
    let reg = token.register(move || {
        let (parent, timed) = handles.lock().unwrap().take().unwrap();
        // The parent gets a cause of its own (the timed child is skipped:
        // already timed out); dropping every handle leaves the fire's claim
        // holding the last reference to the child, and through it the parent.
        parent.cancel_with(BadCause { drops: &DROPS });
        drop(parent);
        drop(timed);
        let own = own.lock().unwrap().take();
        drop(own);
        deliberate!("the timeout callback panics");
    });
    *slot.lock().unwrap() = Some(reg);
    drop(token);
    let result = quiet(|| clock.advance(Duration::from_secs(1)));
    let payload = result.expect_err("advance resumes a panic");
    assert_eq!(
        message(&*payload),
        "deliberate: the timeout callback panics"
    );
    assert_eq!(DROPS.load(SeqCst), 1, "the cause was dropped, once");
}

/// Second review, finding 7: a `DropGuard` dropped during an unwind caught
/// its cancel's panic and dropped the payload directly; a payload whose
/// `Drop` panics then aborted the process.
#[test]
fn a_drop_guard_unwinding_survives_a_payload_whose_drop_panics() {
    struct PayloadWhoseDropPanics;
    impl Drop for PayloadWhoseDropPanics {
        fn drop(&mut self) {
            deliberate!("the payload's Drop panics");
        }
    }
    let source = CancellationSource::new();
    let token = source.token();
    let _reg = token.register(|| std::panic::panic_any(PayloadWhoseDropPanics));
    let result = quiet(move || {
        let _guard = source.drop_guard();
        deliberate!("the scope panics; the guard cancels during the unwind");
    });
    let payload = result.expect_err("the scope's panic reaches the caller");
    assert_eq!(
        message(&*payload),
        "deliberate: the scope panics; the guard cancels during the unwind"
    );
    assert!(token.is_cancelled());
}

/// A shutdown scope's completion runs user code (the wakers of its
/// `finished` futures) inside the last guard's drop. A panicking wake is
/// resumed from that drop, once; the scope is still finished, the other
/// waiters woken, the parent scope released and woken too (its own
/// panicking waker, met while unwinding, is dropped, not an abort), and
/// nothing leaks.
#[test]
fn a_scope_whose_finished_wakers_panic_still_completes_and_releases_its_parent() {
    static F: Faulty = faults(false, true, false);
    no_leak(|| {
        let parent = cancel_core::Shutdown::new();
        let child = parent.child().unwrap();
        let guard = child.enter().unwrap();
        let (child_wakes, good) = count_waker();
        let bad = faulty(&F);
        let mut child_bad = Box::pin(child.finished());
        let mut child_good = Box::pin(child.finished());
        let mut parent_bad = Box::pin(parent.finished());
        let mut parent_good = Box::pin(parent.finished());
        assert!(poll(child_bad.as_mut(), &bad).is_pending());
        assert!(poll(child_good.as_mut(), &good).is_pending());
        assert!(poll(parent_bad.as_mut(), &bad).is_pending());
        let (parent_wakes, good2) = count_waker();
        assert!(poll(parent_good.as_mut(), &good2).is_pending());
        parent.shutdown();
        let result = quiet(|| drop(guard));
        assert!(result.is_err(), "the wake's panic is resumed from the drop");
        assert_eq!(F.wakes.load(SeqCst), 2, "each faulty waker woken once");
        assert_eq!(child_wakes.0.load(SeqCst), 1);
        assert_eq!(parent_wakes.0.load(SeqCst), 1);
        assert!(child.is_finished() && parent.is_finished());
        assert_eq!(parent.in_flight(), 0);
        assert!(poll(child_good.as_mut(), &good).is_ready());
        assert!(poll(parent_good.as_mut(), &good2).is_ready());
        drop((
            child_bad,
            child_good,
            parent_bad,
            parent_good,
            bad,
            good,
            good2,
        ));
        assert_eq!(F.live.load(SeqCst), 0);
    });
}

// ------------------------------------------- fourth review (shutdown work)

/// A waker whose clones (data non-null) panic when dropped; the original
/// (data null) does not.
static CLONE_DROP_PANICS: RawWakerVTable =
    RawWakerVTable::new(cdp_clone, cdp_noop, cdp_noop, cdp_drop);

fn cdp_clone(_: *const ()) -> RawWaker {
    RawWaker::new(std::ptr::dangling(), &CLONE_DROP_PANICS)
}

fn cdp_noop(_: *const ()) {}

fn cdp_drop(data: *const ()) {
    if !data.is_null() {
        deliberate!("a waker clone's drop");
    }
}

fn clone_drop_panics() -> Waker {
    // SAFETY: the vtable's functions never dereference `data`.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &CLONE_DROP_PANICS)) }
}

/// `unregister_async` polled, after the callback ran, with a waker whose
/// clone's drop panics: the panic comes out of that poll, and the future's
/// drop afterwards touches nothing freed. Failed before the fix (fourth
/// review): `poll_detach` freed the node, then dropped its waker clone,
/// whose panic left the future still holding the freed node (native
/// SIGSEGV; Miri: use after free in `detach`).
#[test]
fn unregister_async_after_the_callback_ran_with_a_waker_whose_clone_drop_panics() {
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let probe = Probe(&RUNS);
        let registration = source.token().register(move || drop(probe));
        source.cancel();
        assert_eq!(RUNS.load(SeqCst), 1);
        let waker = clone_drop_panics();
        let mut unregistering = registration.unregister_async();
        let polled = quiet(|| Pin::new(&mut unregistering).poll(&mut Context::from_waker(&waker)));
        assert!(polled.is_err(), "the clone's drop panicked out of the poll");
        drop(unregistering);
        assert_eq!(RUNS.load(SeqCst), 1);
    });
}

/// The same before the callback ran (the poll removes it): the closure is
/// dropped exactly once and unrun, and the future's drop is clean. Failed
/// before the fix: the node was left removed with its closure inside, and
/// the future's drop hit "unexpected node state" (debug) or leaked the
/// closure (release).
#[test]
fn unregister_async_removing_with_a_waker_whose_clone_drop_panics() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    no_leak(|| {
        let source = CancellationSource::new();
        let probe = Probe(&DROPS);
        let registration = source.token().register(move || {
            drop(probe);
            unreachable!("removed before it ran");
        });
        let waker = clone_drop_panics();
        let mut unregistering = registration.unregister_async();
        let polled = quiet(|| Pin::new(&mut unregistering).poll(&mut Context::from_waker(&waker)));
        assert!(polled.is_err(), "the clone's drop panicked out of the poll");
        assert!(quiet(|| drop(unregistering)).is_ok());
        assert_eq!(DROPS.load(SeqCst), 1, "the closure dropped once, unrun");
        source.cancel();
        assert_eq!(DROPS.load(SeqCst), 1);
    });
}

/// A cause whose `Drop` panics (when not already unwinding).
#[derive(Debug)]
struct CauseDropPanics;

impl std::fmt::Display for CauseDropPanics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cause")
    }
}

impl std::error::Error for CauseDropPanics {}

impl Drop for CauseDropPanics {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            deliberate!("cause drop");
        }
    }
}

/// A `shutdown_with` that loses the race (another shutdown's drain is still
/// running a callback) drops its unused cause, whose `Drop` panics: the
/// scope is closed all the same when the call ends. Failed before the fix
/// (fourth review): the panic left `shutdown_with` before it set SHUTDOWN,
/// and `enter` still succeeded.
#[test]
fn a_losing_shutdown_with_whose_cause_drop_panics_still_closes_the_scope() {
    use std::sync::Barrier;
    let scope = cancel_core::Shutdown::new();
    let (started, finish) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (s, f) = (started.clone(), finish.clone());
    // Runs on the first shutdown's thread, before the scope's hook.
    let _registration = scope.token().register(move || {
        s.wait();
        f.wait();
    });
    let first = {
        let scope = scope.clone();
        std::thread::spawn(move || scope.shutdown())
    };
    started.wait(); // the token is cancelled; its drain waits in our callback
    let second = quiet(|| scope.shutdown_with(CauseDropPanics));
    assert!(
        second.is_err(),
        "the cause's drop panicked out of shutdown_with"
    );
    let entered = scope.enter();
    finish.wait();
    assert!(first.join().unwrap());
    assert!(
        entered.is_err(),
        "enter refused once shutdown_with has ended"
    );
    scope.wait();
}

/// `unregister_async` polled pending (its waker, whose clones' drops
/// panic, stored in the node while the callback runs on the cancelling
/// thread), then moved into that very callback and polled there: the
/// callback is abandoned and its node freed, and the stored waker's drop
/// panics out of that poll. The future must not keep the freed node.
/// Failed before the fix (fifth review): the node's free dropped the stored
/// waker first, and its panic left the future holding the freed node
/// (native: double free; Miri: use after free in `detach`).
#[test]
fn unregister_async_abandoned_inside_the_callback_with_a_stored_waker_whose_drop_panics() {
    use std::sync::{Barrier, mpsc};
    type Unregistering = Pin<Box<dyn Future<Output = bool> + Send>>;
    let source = CancellationSource::new();
    let running = Arc::new(Barrier::new(2));
    let (send, receive) = mpsc::channel::<Unregistering>();
    let r = running.clone();
    let registration = source.token().register(move || {
        r.wait();
        let mut unregistering = receive.recv().unwrap();
        let polled = quiet(|| {
            unregistering
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        });
        assert!(polled.is_err(), "the stored waker's drop panicked");
        drop(unregistering);
    });
    let canceller = std::thread::spawn(move || source.cancel());
    running.wait();
    let mut unregistering: Unregistering = Box::pin(registration.unregister_async());
    let waker = clone_drop_panics();
    let polled = unregistering
        .as_mut()
        .poll(&mut Context::from_waker(&waker));
    assert_eq!(
        polled,
        Poll::Pending,
        "the callback runs on the other thread"
    );
    send.send(unregistering).unwrap();
    assert!(canceller.join().unwrap());
}

/// `unregister_async` polled pending on another thread (its stored waker's
/// drop panics), then dropped inside the very callback it waits for, on
/// the cancelling thread: the callback is abandoned, and the stored waker
/// must be dropped there, by the owner, as part of the callback (whose
/// panic the drain keeps), not by the canceller under the state's lock.
/// Failed before the fix (eighth review, of the running record moved to
/// the canceller's stack): the canceller dropped it with the lock held and
/// no `catch_unwind`, so its panic left the drain: the callback registered
/// before it never ran, and the state stayed locked.
#[test]
fn unregister_async_dropped_inside_the_callback_with_a_stored_waker_whose_drop_panics() {
    use std::sync::{Barrier, mpsc};
    type Unregistering = Pin<Box<dyn Future<Output = bool> + Send>>;
    let source = CancellationSource::new();
    let token = source.token();
    // Registered first: runs after the other one (LIFO).
    let ran_after = Arc::new(AtomicUsize::new(0));
    let ra = ran_after.clone();
    let earlier = token.register(move || {
        ra.fetch_add(1, SeqCst);
    });
    let running = Arc::new(Barrier::new(2));
    let (send, receive) = mpsc::channel::<Unregistering>();
    let r = running.clone();
    let registration = token.register(move || {
        r.wait();
        // On the cancelling thread, inside the callback: abandoned.
        drop(receive.recv().unwrap());
    });
    let outcome = std::thread::scope(|s| {
        let canceller = s.spawn(|| quiet(|| source.cancel()));
        running.wait();
        let mut unregistering: Unregistering = Box::pin(registration.unregister_async());
        let waker = clone_drop_panics();
        let polled = unregistering
            .as_mut()
            .poll(&mut Context::from_waker(&waker));
        assert_eq!(
            polled,
            Poll::Pending,
            "the callback runs on the other thread"
        );
        send.send(unregistering).unwrap();
        canceller.join().unwrap()
    });
    if ran_after.load(SeqCst) != 1 {
        // The drain stopped with the state locked: whatever locks it would
        // hang. Leak it all and fail.
        std::mem::forget((source, token, earlier));
        panic!("the drain stopped at the stored waker's drop: a callback never ran");
    }
    let payload = outcome.expect_err("the waker's drop panicked in the callback");
    assert!(message(&*payload).starts_with("deliberate: "));
    drop(earlier); // the state's lock is free
    drop((source, token));
}
