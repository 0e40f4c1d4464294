//! The API that stays when the crate is built without `std` (`cargo test
//! --no-default-features --test no_std_api`; `.ci/run` also builds the
//! library for `thumbv7em-none-eabihf`). Everything here compiles and works
//! with only `core` + `alloc` inside the crate: sources, tokens, links,
//! reasons, callbacks, futures (polled by hand), the drop guard and the
//! manual clock. (The test harness itself uses std; the crate does not.)

use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use cancel_core::{
    CancelReason, CancellationFutureExt, CancellationSource, CancellationToken, Cancelled,
    ManualClock,
};

#[derive(Debug)]
struct Halt;
impl core::fmt::Display for Halt {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("halt")
    }
}
impl core::error::Error for Halt {}

#[test]
fn no_std_surface() {
    const NONE: CancellationToken = CancellationToken::none();
    assert!(!NONE.can_be_cancelled());

    let clock = ManualClock::new();
    let root = CancellationSource::new();
    let timed = clock.with_timeout(Duration::from_millis(5));
    let child = CancellationSource::linked([&root.token(), &timed.token()]);
    let token = child.token();

    let hits = alloc_counter();
    let h = hits.clone();
    let registration = token.register(move || {
        h.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
    });

    let mut waiting = pin!(token.cancelled());
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
    let mut raced = pin!(core::future::pending::<()>().with_cancellation(&token));
    assert!(raced.as_mut().poll(&mut cx).is_pending());

    clock.advance(Duration::from_millis(5));
    assert!(token.is_cancelled());
    assert!(matches!(token.reason(), Some(CancelReason::TimedOut)));
    assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Ready(()));
    let err: Cancelled = match raced.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(err.reason(), CancelReason::TimedOut));
    assert_eq!(hits.load(core::sync::atomic::Ordering::SeqCst), 1);
    assert!(!registration.unregister());

    let other = CancellationSource::new();
    assert!(other.cancel_with(Halt));
    assert!(matches!(
        other.token().reason(),
        Some(CancelReason::Custom(_))
    ));
    let guarded = CancellationSource::new();
    let t = guarded.token();
    drop(guarded.drop_guard());
    assert!(t.check().is_err());
    drop(root);
}

fn alloc_counter() -> alloc::sync::Arc<core::sync::atomic::AtomicUsize> {
    alloc::sync::Arc::new(core::sync::atomic::AtomicUsize::new(0))
}

extern crate alloc;
