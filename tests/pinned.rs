//! The allocation-free, pinned callback registration (embedding API).

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use cancel_core::{CancellationSource, CancellationToken, PinnedRegistration};

#[path = "common/leak.rs"]
mod leak;
use leak::leak_reachably;

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

#[test]
fn runs_once_in_lifo_order_with_boxed_registrations() {
    let source = CancellationSource::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    let _a = source
        .token()
        .register(move || o.lock().unwrap().push("boxed first"));
    let o = order.clone();
    let mut pinned = pin!(PinnedRegistration::new(source.token(), move || o
        .lock()
        .unwrap()
        .push("pinned")));
    assert!(!pinned.is_pending(), "not linked before register");
    assert!(pinned.as_mut().register());
    assert!(pinned.as_mut().register(), "idempotent");
    let o = order.clone();
    let _c = source
        .token()
        .register(move || o.lock().unwrap().push("boxed last"));
    source.cancel();
    assert_eq!(
        *order.lock().unwrap(),
        ["boxed last", "pinned", "boxed first"]
    );
    assert!(!pinned.is_pending());
    assert!(!pinned.as_mut().unregister(), "it ran");
}

#[test]
fn unregister_and_drop_before_cancel() {
    let source = CancellationSource::new();
    let ran = counter();
    let r = ran.clone();
    let mut pinned = pin!(PinnedRegistration::new(source.token(), move || {
        r.fetch_add(1, SeqCst);
    }));
    pinned.as_mut().register();
    assert!(pinned.as_mut().unregister());
    assert!(!pinned.as_mut().register(), "unregistered for good");
    let r = ran.clone();
    {
        let mut dropped = pin!(PinnedRegistration::new(source.token(), move || {
            r.fetch_add(1, SeqCst);
        }));
        dropped.as_mut().register();
    }
    // Never registered at all: dropped with its closure.
    let r = ran.clone();
    drop(PinnedRegistration::new(source.token(), move || {
        r.fetch_add(1, SeqCst);
    }));
    source.cancel();
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn register_on_a_cancelled_token_runs_inline_and_on_none_stores_nothing() {
    let source = CancellationSource::new();
    source.cancel();
    let ran = counter();
    let r = ran.clone();
    let mut pinned = pin!(PinnedRegistration::new(source.token(), move || {
        r.fetch_add(1, SeqCst);
    }));
    assert!(!pinned.as_mut().register());
    assert_eq!(ran.load(SeqCst), 1);
    let r = ran.clone();
    let mut never = pin!(PinnedRegistration::new(
        CancellationToken::none(),
        move || {
            r.fetch_add(1, SeqCst);
        }
    ));
    assert!(!never.as_mut().register());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn drop_waits_for_the_callback_running_on_another_thread() {
    for _ in 0..if cfg!(miri) { 2 } else { 20 } {
        let source = CancellationSource::new();
        let entered = Arc::new(Barrier::new(2));
        let release = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (e, rel, fin) = (entered.clone(), release.clone(), finished.clone());
        let mut pinned = Box::pin(PinnedRegistration::new(source.token(), move || {
            e.wait();
            while !rel.load(SeqCst) {
                thread::yield_now();
            }
            fin.store(true, SeqCst);
        }));
        pinned.as_mut().register();
        let s = source.clone();
        let canceller = thread::spawn(move || s.cancel());
        entered.wait();
        let f = finished.clone();
        let dropper = thread::spawn(move || {
            drop(pinned);
            f.load(SeqCst)
        });
        release.store(true, SeqCst);
        assert!(
            dropper.join().unwrap(),
            "the drop returned while the callback ran"
        );
        assert!(canceller.join().unwrap());
    }
}

#[test]
fn dropping_it_inside_its_own_callback_returns() {
    type Slot =
        Arc<Mutex<Option<std::pin::Pin<Box<PinnedRegistration<Box<dyn FnOnce() + Send>>>>>>>;
    let source = CancellationSource::new();
    let slot: Slot = Arc::new(Mutex::new(None));
    let ran = counter();
    let (s, r) = (slot.clone(), ran.clone());
    let f: Box<dyn FnOnce() + Send> = Box::new(move || {
        drop(s.lock().unwrap().take()); // drops the registration running us
        r.fetch_add(1, SeqCst);
    });
    let mut pinned = Box::pin(PinnedRegistration::new(source.token(), f));
    pinned.as_mut().register();
    *slot.lock().unwrap() = Some(pinned);
    assert!(source.cancel());
    assert_eq!(ran.load(SeqCst), 1);
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn a_leaked_pinned_registration_stays_safe() {
    let source = CancellationSource::new();
    let ran = counter();
    let r = ran.clone();
    let mut pinned = Box::pin(PinnedRegistration::new(source.token(), move || {
        r.fetch_add(1, SeqCst);
    }));
    pinned.as_mut().register();
    leak_reachably(pinned);
    source.cancel();
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn concurrent_unregister_vs_cancel_is_exactly_once() {
    for _ in 0..if cfg!(miri) { 3 } else { 500 } {
        let source = CancellationSource::new();
        let ran = counter();
        let r = ran.clone();
        let mut pinned = Box::pin(PinnedRegistration::new(source.token(), move || {
            r.fetch_add(1, SeqCst);
        }));
        pinned.as_mut().register();
        let barrier = Arc::new(Barrier::new(2));
        let (b, s) = (barrier.clone(), source.clone());
        let canceller = thread::spawn(move || {
            b.wait();
            s.cancel();
        });
        barrier.wait();
        let removed = pinned.as_mut().unregister();
        drop(pinned);
        canceller.join().unwrap();
        assert_eq!(usize::from(removed) + ran.load(SeqCst), 1);
    }
}

/// Review finding 7: `register()` after an `unregister()` that returned while
/// the callback was running on another thread answered `true` ("now
/// pending") while `is_pending()` said `false`. The callback is running (or
/// has run): the registration is not pending and `register` does nothing.
#[test]
fn register_after_an_unregister_that_found_the_callback_running() {
    let source = CancellationSource::new();
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(Barrier::new(2));
    let (e, r) = (entered.clone(), release.clone());
    let runs = counter();
    let n = runs.clone();
    let mut pinned = Box::pin(PinnedRegistration::new(source.token(), move || {
        n.fetch_add(1, SeqCst);
        e.wait();
        r.wait();
    }));
    assert!(pinned.as_mut().register());
    let s = source.clone();
    let canceller = thread::spawn(move || s.cancel());
    entered.wait();
    // Observed while the callback runs; asserted after it is released, so
    // that a failure cannot leave the canceller blocked.
    let removed = pinned.as_mut().unregister();
    let pending_after_unregister = pinned.is_pending();
    let registered_again = pinned.as_mut().register();
    let pending_after_register = pinned.is_pending();
    release.wait();
    assert!(!removed, "it is running: not removed");
    assert!(!pending_after_unregister);
    assert!(!registered_again, "register does nothing now");
    assert!(!pending_after_register);
    drop(pinned); // waits for the callback, if it still runs
    assert!(canceller.join().unwrap());
    assert_eq!(runs.load(SeqCst), 1);
}

/// `register()` answers whether the callback is pending now, also when
/// called again after the callback ran.
#[test]
fn register_again_after_the_callback_ran_says_not_pending() {
    let source = CancellationSource::new();
    let runs = counter();
    let n = runs.clone();
    let mut pinned = pin!(PinnedRegistration::new(source.token(), move || {
        n.fetch_add(1, SeqCst);
    }));
    assert!(pinned.as_mut().register());
    source.cancel();
    assert!(!pinned.is_pending());
    assert!(!pinned.as_mut().register());
    assert_eq!(runs.load(SeqCst), 1);
}
