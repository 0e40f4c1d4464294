//! What is left without `alloc` (and without `std`): the in-place source,
//! its tokens, pinned callbacks, futures, `NeverToken`, the `Token` traits
//! and `CancellationToken::none()`. Built in every configuration; CI runs
//! it with `--no-default-features` (where the crate has no allocator to
//! call: nothing it does can allocate) and with `critical-section` (every
//! lock hold a critical section; the host's implementation is
//! critical-section's `std` one). Runs under Miri (scripts/miri.sh).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use cancel_core::{
    CallbackToken, CancelReason, CancellationToken, InplaceSource, InplaceToken, NeverToken,
    PinnedCallback, PinnedRegistration, Token,
};

static SHUTDOWN: InplaceSource = InplaceSource::new();

/// A library function generic over the token: the caller picks the kind.
fn count_to<T: CallbackToken>(token: &T, n: usize, on_cancel: fn()) -> Result<usize, usize> {
    let mut callback = pin!(token.callback(on_cancel));
    callback.as_mut().register();
    let mut done = 0;
    while done < n {
        if token.check().is_err() {
            return Err(done);
        }
        done += 1;
    }
    Ok(done)
}

#[test]
fn a_static_source_with_a_callback_and_a_future() {
    static RAN: AtomicBool = AtomicBool::new(false);
    let token: InplaceToken<'static> = SHUTDOWN.token();
    let mut registration = pin!(PinnedRegistration::new(token, || {
        RAN.store(true, Ordering::SeqCst)
    }));
    assert!(registration.as_mut().register());
    let mut waiting = pin!(token.cancelled());
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
    assert!(SHUTDOWN.cancel());
    assert!(RAN.load(Ordering::SeqCst));
    assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
    assert_eq!(token.reason(), Some(CancelReason::Requested));
    assert!(!SHUTDOWN.cancel());
}

#[test]
fn generic_code_over_every_token_kind_here() {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    fn hit() {
        HITS.fetch_add(1, Ordering::SeqCst);
    }
    assert_eq!(count_to(&NeverToken, 3, hit), Ok(3));
    assert_eq!(count_to(&CancellationToken::none(), 3, hit), Ok(3));
    let source = InplaceSource::new();
    assert_eq!(count_to(&source.token(), 3, hit), Ok(3));
    assert_eq!(HITS.load(Ordering::SeqCst), 0);
    source.cancel();
    assert_eq!(count_to(&source.token(), 3, hit), Err(0));
    assert_eq!(
        HITS.load(Ordering::SeqCst),
        1,
        "registered on a cancelled token: ran at once"
    );
    assert!(!NeverToken.can_be_cancelled() && !CancellationToken::none().can_be_cancelled());
}

#[test]
fn a_runtime_embeds_the_state_in_its_own_struct() {
    /// An operation of some executor: the stop state is a field.
    struct Operation {
        stop: InplaceSource,
        progress: AtomicUsize,
    }
    let op = Operation {
        stop: InplaceSource::new(),
        progress: AtomicUsize::new(0),
    };
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            let token = op.stop.token();
            while !token.is_cancelled() {
                op.progress.fetch_add(1, Ordering::Relaxed);
                std::hint::spin_loop();
            }
        });
        op.stop.cancel();
        worker.join().unwrap();
    });
    assert!(op.stop.is_cancelled());
}

/// Without `std` the drop of a registration whose callback runs on another
/// thread spins until it returns (it cannot park, nor tell threads apart).
#[test]
fn a_drop_waits_for_a_callback_running_elsewhere() {
    // The callback is 'static: it talks to the test through statics.
    static ENTERED: AtomicBool = AtomicBool::new(false);
    static RELEASE: AtomicBool = AtomicBool::new(false);
    static FINISHED: AtomicBool = AtomicBool::new(false);
    let source = InplaceSource::new();
    std::thread::scope(|s| {
        let mut registration = Box::pin(PinnedRegistration::new(source.token(), || {
            ENTERED.store(true, Ordering::SeqCst);
            while !RELEASE.load(Ordering::SeqCst) {
                std::hint::spin_loop();
            }
            FINISHED.store(true, Ordering::SeqCst);
        }));
        registration.as_mut().register();
        let canceller = s.spawn(|| source.cancel());
        while !ENTERED.load(Ordering::SeqCst) {
            std::hint::spin_loop();
        }
        let dropper = s.spawn(move || {
            drop(registration);
            FINISHED.load(Ordering::SeqCst)
        });
        RELEASE.store(true, Ordering::SeqCst);
        assert!(
            dropper.join().unwrap(),
            "the drop returned while the callback ran"
        );
        assert!(canceller.join().unwrap());
    });
}

#[test]
fn never_token_callbacks_are_never_linked() {
    let mut callback = pin!(NeverToken.callback(|| unreachable!()));
    assert!(!callback.as_mut().register());
    assert!(!callback.is_pending());
    assert!(!callback.as_mut().unregister());
    let mut never = pin!(NeverToken.cancelled());
    assert!(
        never
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
}

/// A callback that panics: with `std` the drain catches it and goes on;
/// without `std` the panic leaves `cancel()` (the rest of the drain is not
/// run: build with `panic = "abort"` there), but the panicked callback's
/// node is finished on the way out, so its registration's drop returns
/// instead of waiting forever for it (it did, before: review of issue 15,
/// finding 3). A watchdog turns a hang into a failure.
#[test]
fn a_panicking_callback_leaves_its_registration_droppable() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let source = InplaceSource::new();
        let mut registration = Box::pin(PinnedRegistration::new(source.token(), || {
            panic!("deliberate: callback")
        }));
        registration.as_mut().register();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.cancel()));
        assert!(caught.is_err(), "the panic reaches the canceller");
        assert!(source.is_cancelled());
        assert!(!registration.is_pending());
        drop(registration);
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok(),
        "the registration's drop did not return"
    );
}
