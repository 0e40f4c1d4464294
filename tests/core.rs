//! Issue-2 semantics of sources, tokens, registrations and callbacks.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, Cancelled, Registration};

fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

fn bump(c: &Arc<AtomicUsize>) -> impl FnOnce() + Send + 'static {
    let c = c.clone();
    move || {
        c.fetch_add(1, SeqCst);
    }
}

#[test]
fn api_traits() {
    static_assertions::assert_impl_all!(CancellationSource: Clone, Send, Sync, std::fmt::Debug, Default);
    static_assertions::assert_impl_all!(CancellationToken: Clone, Send, Sync, std::fmt::Debug, Default, Eq, std::hash::Hash);
    static_assertions::assert_impl_all!(Cancelled: std::error::Error, Clone, Send, Sync, std::fmt::Display, std::fmt::Debug);
    static_assertions::assert_impl_all!(Registration: Send, Sync, std::fmt::Debug);
    assert_eq!(size_of::<CancellationToken>(), size_of::<usize>());
    assert_eq!(size_of::<Option<CancellationToken>>(), size_of::<usize>());
}

#[test]
fn none_is_const_and_never_cancelled() {
    const NONE: CancellationToken = CancellationToken::none();
    static ALSO: CancellationToken = CancellationToken::none();
    assert!(!NONE.is_cancelled());
    assert!(!NONE.can_be_cancelled());
    assert!(NONE.check().is_ok());
    assert!(NONE.reason().is_none());
    assert_eq!(NONE, ALSO.clone());
    assert_eq!(CancellationToken::default(), NONE);
    // Registering on none() stores nothing and never runs.
    let ran = counter();
    let r = NONE.register(bump(&ran));
    assert!(!r.is_pending());
    assert!(!r.unregister());
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn tokens_compare_by_identity() {
    let a = CancellationSource::new();
    let b = CancellationSource::new();
    assert_eq!(a.token(), a.token());
    assert_eq!(a.token(), a.token().clone());
    assert_eq!(a.token(), a.clone().token());
    assert_ne!(a.token(), b.token());
    assert_ne!(a.token(), CancellationToken::none());
    let set: HashSet<CancellationToken> = [a.token(), a.token(), b.token()].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn cancel_is_idempotent_and_exactly_one_wins() {
    for _ in 0..if cfg!(miri) { 3 } else { 200 } {
        let source = CancellationSource::new();
        let threads = 4;
        let barrier = Arc::new(Barrier::new(threads));
        let wins = counter();
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (s, b, w) = (source.clone(), barrier.clone(), wins.clone());
                thread::spawn(move || {
                    b.wait();
                    if s.cancel() {
                        w.fetch_add(1, SeqCst);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(wins.load(SeqCst), 1);
        assert!(!source.cancel());
        assert!(source.is_cancelled());
    }
}

#[test]
fn writes_before_cancel_are_visible_after_is_cancelled() {
    let source = CancellationSource::new();
    let token = source.token();
    let data = Arc::new(AtomicUsize::new(0));
    let d = data.clone();
    let reader = thread::spawn(move || {
        while !token.is_cancelled() {
            std::hint::spin_loop();
        }
        d.load(std::sync::atomic::Ordering::Relaxed)
    });
    data.store(42, std::sync::atomic::Ordering::Relaxed);
    source.cancel();
    assert_eq!(reader.join().unwrap(), 42);
}

#[test]
fn callbacks_run_once_lifo_on_the_cancelling_thread_before_cancel_returns() {
    let source = CancellationSource::new();
    let token = source.token();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut regs = Vec::new();
    for i in 0..5 {
        let (o, t) = (order.clone(), token.clone());
        regs.push(token.register(move || {
            // The cancelled bit is visible to the callback.
            assert!(t.is_cancelled());
            o.lock().unwrap().push((i, thread::current().id()));
        }));
    }
    let canceller = thread::spawn(move || {
        assert!(source.cancel());
        thread::current().id()
    });
    let id = canceller.join().unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![4, 3, 2, 1, 0]
    );
    assert!(order.iter().all(|(_, t)| *t == id));
    for r in regs {
        assert!(
            !r.unregister(),
            "a callback that ran cannot be unregistered"
        );
    }
}

#[test]
fn register_after_cancel_runs_inline() {
    let source = CancellationSource::new();
    source.cancel();
    let ran = counter();
    let r = source.token().register(bump(&ran));
    assert_eq!(ran.load(SeqCst), 1, "ran before register returned");
    assert!(!r.is_pending());
    assert!(!r.unregister());
}

#[test]
fn unregister_before_cancel_prevents_the_callback() {
    let source = CancellationSource::new();
    let ran = counter();
    let r = source.token().register(bump(&ran));
    assert!(r.is_pending());
    assert!(r.unregister());
    source.cancel();
    assert_eq!(ran.load(SeqCst), 0);
    // Dropping also unregisters.
    let source = CancellationSource::new();
    drop(source.token().register(bump(&ran)));
    source.cancel();
    assert_eq!(ran.load(SeqCst), 0);
}

// Without `std` a drop never waits (threads cannot be told apart).
#[cfg(feature = "std")]
#[test]
fn drop_waits_for_a_callback_running_on_another_thread() {
    for _ in 0..if cfg!(miri) { 2 } else { 20 } {
        let source = CancellationSource::new();
        let entered = Arc::new(Barrier::new(2));
        let release = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(AtomicBool::new(false));
        let (e, rel, fin) = (entered.clone(), release.clone(), finished.clone());
        let reg = source.token().register(move || {
            e.wait();
            while !rel.load(SeqCst) {
                thread::yield_now();
            }
            fin.store(true, SeqCst);
        });
        let s = source.clone();
        let canceller = thread::spawn(move || s.cancel());
        entered.wait(); // the callback is now running on the canceller
        let dropper = {
            let finished = finished.clone();
            thread::spawn(move || {
                drop(reg);
                // After the drop returns the callback has returned.
                finished.load(SeqCst)
            })
        };
        release.store(true, SeqCst);
        assert!(
            dropper.join().unwrap(),
            "drop returned before the callback finished"
        );
        assert!(canceller.join().unwrap());
    }
}

#[test]
fn unregister_never_waits_for_a_running_callback() {
    let source = CancellationSource::new();
    let entered = Arc::new(Barrier::new(2));
    let release = Arc::new(AtomicBool::new(false));
    let (e, rel) = (entered.clone(), release.clone());
    let reg = source.token().register(move || {
        e.wait();
        while !rel.load(SeqCst) {
            thread::yield_now();
        }
    });
    let s = source.clone();
    let canceller = thread::spawn(move || s.cancel());
    entered.wait();
    // Returns at once (false) while the callback is still blocked.
    assert!(!reg.unregister());
    release.store(true, SeqCst);
    assert!(canceller.join().unwrap());
}

#[test]
fn dropping_a_registration_inside_its_own_callback_returns() {
    let source = CancellationSource::new();
    let slot: Arc<Mutex<Option<Registration>>> = Arc::new(Mutex::new(None));
    let ran = counter();
    let (s2, r2) = (slot.clone(), ran.clone());
    let reg = source.token().register(move || {
        let me = s2.lock().unwrap().take();
        drop(me); // self-drop: must not wait for itself
        r2.fetch_add(1, SeqCst);
    });
    *slot.lock().unwrap() = Some(reg);
    assert!(source.cancel());
    assert_eq!(ran.load(SeqCst), 1);
}

#[test]
fn dropping_a_registration_whose_callback_runs_on_the_same_cancelling_thread_returns() {
    // Callback B drops A's registration while A is... A is not running; and a
    // nested cancel of another source inside a callback drops the outer one.
    let outer = CancellationSource::new();
    let inner = CancellationSource::new();
    let outer_reg: Arc<Mutex<Option<Registration>>> = Arc::new(Mutex::new(None));
    let ran = counter();
    let (slot, r) = (outer_reg.clone(), ran.clone());
    let inner_reg = inner.token().register(move || {
        // Runs on the thread that is running `outer`'s callback: dropping the
        // registration of that running callback must not deadlock.
        drop(slot.lock().unwrap().take());
        r.fetch_add(1, SeqCst);
    });
    let inner2 = inner.clone();
    *outer_reg.lock().unwrap() = Some(outer.token().register(move || {
        inner2.cancel();
    }));
    assert!(outer.cancel());
    assert_eq!(ran.load(SeqCst), 1);
    drop(inner_reg);
}

#[test]
fn reentrancy_from_callbacks() {
    let source = CancellationSource::new();
    let token = source.token();
    let other = CancellationSource::new();
    let ran = counter();
    let later = counter();
    // Registered first, so it runs last: the earlier callback unregisters it.
    let victim: Arc<Mutex<Option<Registration>>> = Arc::new(Mutex::new(None));
    *victim.lock().unwrap() = Some(token.register(bump(&later)));
    let (s, t, o, r, v) = (
        source.clone(),
        token.clone(),
        other.clone(),
        ran.clone(),
        victim.clone(),
    );
    let _reg = token.register(move || {
        assert!(!s.cancel(), "re-entrant cancel returns false");
        let inline = Arc::new(AtomicBool::new(false));
        let i2 = inline.clone();
        let _late = t.register(move || i2.store(true, SeqCst));
        assert!(
            inline.load(SeqCst),
            "registering inside a callback runs inline"
        );
        assert!(v.lock().unwrap().take().unwrap().unregister());
        let fresh = CancellationSource::new();
        let child = t.child();
        assert!(child.is_cancelled());
        fresh.cancel();
        o.cancel();
        r.fetch_add(1, SeqCst);
    });
    assert!(source.cancel());
    assert_eq!(ran.load(SeqCst), 1);
    assert_eq!(
        later.load(SeqCst),
        0,
        "unregistered from a callback: never runs"
    );
    assert!(other.is_cancelled());
}

// Panic isolation between callbacks and wakers needs the `std` feature.
#[cfg(feature = "std")]
#[test]
fn a_later_panic_whose_payload_panics_when_dropped_does_not_stop_the_drain() {
    // The drain keeps the first panic and drops later payloads. A payload
    // whose own `Drop` panics must not escape mid-drain: the callbacks after
    // it, and the children, still run.
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("payload drop");
        }
    }
    let source = CancellationSource::new();
    let token = source.token();
    let ran = counter();
    let _a = token.register(bump(&ran));
    let child = token.child();
    let _in_child = child.token().register(bump(&ran));
    let _b = token.register(|| std::panic::panic_any(PanicsOnDrop));
    let _c = token.register(|| panic!("first"));
    let s = source.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.cancel()));
    let payload = result.expect_err("cancel resumes the first panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"first"));
    assert_eq!(ran.load(SeqCst), 2, "the callbacks after it ran");
    assert!(child.is_cancelled());
}

// Panic isolation between callbacks and wakers needs the `std` feature.
#[cfg(feature = "std")]
#[test]
fn a_panicking_callback_does_not_stop_the_others() {
    let source = CancellationSource::new();
    let token = source.token();
    let ran = counter();
    let _a = token.register(bump(&ran));
    let _b = token.register(|| panic!("first"));
    let _c = token.register(bump(&ran));
    let _d = token.register(|| panic!("second"));
    let s = source.clone();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.cancel()));
    let payload = result.expect_err("cancel resumes the first panic");
    // LIFO: "second" runs first.
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"second"));
    assert_eq!(ran.load(SeqCst), 2);
    assert!(token.is_cancelled());
    assert!(!source.cancel());
    // Nothing poisoned: new registrations run inline, new sources work.
    let r = token.register(bump(&ran));
    assert_eq!(ran.load(SeqCst), 3);
    drop(r);
    let fresh = CancellationSource::new();
    let _e = fresh.token().register(bump(&ran));
    assert!(fresh.cancel());
    assert_eq!(ran.load(SeqCst), 4);
}

#[test]
fn dropping_every_handle_drops_pending_closures_unrun() {
    struct OnDrop(Arc<AtomicUsize>);
    impl Drop for OnDrop {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let dropped = counter();
    let ran = counter();
    let source = CancellationSource::new();
    let token = source.token();
    let guard = OnDrop(dropped.clone());
    let r = ran.clone();
    let reg = token.register(move || {
        let _g = &guard;
        r.fetch_add(1, SeqCst);
    });
    drop(source);
    drop(token);
    assert_eq!(dropped.load(SeqCst), 0);
    drop(reg);
    assert_eq!(dropped.load(SeqCst), 1);
    assert_eq!(ran.load(SeqCst), 0);
}

#[test]
fn can_be_cancelled_follows_source_handles() {
    let source = CancellationSource::new();
    let token = source.token();
    assert!(token.can_be_cancelled());
    let clone = source.clone();
    drop(source);
    assert!(token.can_be_cancelled());
    drop(clone);
    assert!(
        !token.can_be_cancelled(),
        "every source handle gone, never cancelled"
    );
    // A registration on such a token stores nothing.
    let ran = counter();
    let r = token.register(bump(&ran));
    assert!(!r.is_pending());
    // Once cancelled, always true.
    let source = CancellationSource::new();
    let token = source.token();
    source.cancel();
    drop(source);
    assert!(token.can_be_cancelled());
}

#[test]
fn check_and_cancelled_error() {
    let source = CancellationSource::new();
    let token = source.token();
    assert!(token.check().is_ok());
    source.cancel();
    let err = token.check().unwrap_err();
    assert!(matches!(err.reason(), CancelReason::Requested));
    assert!(err.to_string().contains("cancellation was requested"));
    // `From<Cancelled> for io::Error` needs the crate's `std` feature.
    #[cfg(feature = "std")]
    {
        let io: std::io::Error = err.into();
        assert_ne!(io.kind(), std::io::ErrorKind::Interrupted);
        assert!(io.get_ref().unwrap().is::<Cancelled>());
    }
    fn uses_question_mark(t: &CancellationToken) -> Result<(), Cancelled> {
        t.check()?;
        Ok(())
    }
    assert!(uses_question_mark(&token).is_err());
}

#[test]
fn debug_output_names_the_state() {
    let source = CancellationSource::new();
    assert!(format!("{source:?}").contains("is_cancelled: false"));
    let reg = source.token().register(|| ());
    assert!(format!("{reg:?}").contains("is_pending: true"));
    source.cancel();
    assert!(format!("{:?}", source.token()).contains("is_cancelled: true"));
}
