//! Scoped callbacks: closures that borrow from the stack, sound under
//! `mem::forget` (run under Miri by scripts/miri.sh).

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use cancel_core::{CancellationSource, CancellationToken, callback_scope};

#[test]
fn a_borrowing_callback_runs_once_on_cancel() {
    let source = CancellationSource::new();
    let token = source.token();
    let runs = AtomicUsize::new(0);
    callback_scope(|scope| {
        let r = scope.register(&token, || {
            runs.fetch_add(1, SeqCst);
        });
        assert!(r.is_pending());
        assert!(source.cancel());
        assert!(!r.is_pending());
    });
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn the_scope_end_unregisters_what_is_still_registered_even_when_forgotten() {
    let source = CancellationSource::new();
    let token = source.token();
    {
        let runs = AtomicUsize::new(0);
        callback_scope(|scope| {
            let kept = scope.register(&token, || {
                runs.fetch_add(1, SeqCst);
            });
            let forgotten = scope.register(&token, || {
                runs.fetch_add(1, SeqCst);
            });
            std::mem::forget(forgotten);
            assert!(kept.is_pending());
            // `kept` is dropped here too, but the forgotten one only goes
            // when the scope ends.
        });
        assert_eq!(runs.load(SeqCst), 0);
        // `runs` dies here: a callback still registered would use it later.
    }
    assert!(
        source.cancel(),
        "nothing left that could touch the dead local"
    );
}

#[test]
fn unregister_and_drop_before_the_end() {
    let source = CancellationSource::new();
    let token = source.token();
    let runs = AtomicUsize::new(0);
    callback_scope(|scope| {
        let a = scope.register(&token, || {
            runs.fetch_add(1, SeqCst);
        });
        assert!(a.unregister(), "removed before it started");
        let b = scope.register(&token, || {
            runs.fetch_add(1, SeqCst);
        });
        drop(b);
        let _c = scope.register(&token, || {
            runs.fetch_add(10, SeqCst);
        });
        source.cancel();
    });
    assert_eq!(runs.load(SeqCst), 10);
}

#[test]
fn a_cancelled_token_runs_it_inline_and_none_drops_it() {
    let source = CancellationSource::new();
    source.cancel();
    let runs = AtomicUsize::new(0);
    callback_scope(|scope| {
        let r = scope.register(&source.token(), || {
            runs.fetch_add(1, SeqCst);
        });
        assert!(!r.is_pending());
        assert_eq!(runs.load(SeqCst), 1, "ran inline");
        let n = scope.register(&CancellationToken::none(), || {
            runs.fetch_add(1, SeqCst);
        });
        assert!(!n.is_pending());
    });
    assert_eq!(runs.load(SeqCst), 1);
}

#[test]
fn the_scope_end_waits_for_a_callback_running_on_another_thread() {
    use std::sync::atomic::AtomicBool;
    let source = CancellationSource::new();
    let token = source.token();
    let registered = Arc::new(Barrier::new(2));
    let started = Arc::new(Barrier::new(3));
    let release = Arc::new(AtomicBool::new(false));
    // The scope runs on its own thread; the callback (on the canceller's)
    // holds on until the main thread releases it, which it does once the
    // scope's thread is on its way out of the scope.
    let scoper = {
        let (registered, started, release) = (registered.clone(), started.clone(), release.clone());
        thread::spawn(move || {
            let finished = AtomicBool::new(false);
            callback_scope(|scope| {
                let (st, rel, fin) = (started.clone(), release.clone(), &finished);
                let _r = scope.register(&token, move || {
                    st.wait();
                    while !rel.load(SeqCst) {
                        thread::yield_now();
                    }
                    fin.store(true, SeqCst);
                });
                registered.wait(); // the canceller may go
                started.wait(); // the callback is running
            });
            finished.load(SeqCst)
        })
    };
    let canceller = {
        let (s, r) = (source.clone(), registered.clone());
        thread::spawn(move || {
            r.wait();
            s.cancel()
        })
    };
    started.wait();
    release.store(true, SeqCst);
    assert!(
        scoper.join().unwrap(),
        "the scope ended before its callback returned"
    );
    assert!(canceller.join().unwrap());
}

#[test]
fn a_panicking_scope_still_unregisters_on_the_way_out() {
    let source = CancellationSource::new();
    let token = source.token();
    let runs = AtomicUsize::new(0);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        callback_scope(|scope| {
            let r = scope.register(&token, || {
                runs.fetch_add(1, SeqCst);
            });
            std::mem::forget(r);
            std::panic::resume_unwind(Box::new("the scope's body panics"));
        })
    }));
    assert!(result.is_err());
    source.cancel();
    assert_eq!(runs.load(SeqCst), 0);
}
