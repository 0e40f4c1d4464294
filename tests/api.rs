//! The API as users reach for it: sources observed and compared directly,
//! `linked` over sources and tokens, reasons, registrations' tokens, the
//! borrowed drop guard, adapters that let go of their waker when they
//! finish, fused futures and streams, and every panic of one cancellation.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, Poll};

use cancel_core::{
    CancelReason, CancellationFutureExt, CancellationSource, CancellationToken, Cancelled,
};

#[path = "common/count_waker.rs"]
mod count_waker;
use count_waker::count_waker;

#[test]
fn a_source_is_observed_directly_and_compares_with_its_tokens() {
    let source = CancellationSource::new();
    let token = source.token();
    assert!(source.can_be_cancelled());
    assert_eq!(source.reason(), None);
    assert_eq!(source, source.clone());
    assert_eq!(source, token);
    assert_eq!(token, source);
    assert_ne!(source, CancellationSource::new());
    assert_eq!(CancellationToken::from(&source), token);
    let mut set = HashSet::new();
    set.insert(token.clone());
    assert!(set.contains(&CancellationToken::from(&source)));
    // Hash is consistent with the tokens': a source hashes as its tokens.
    use std::hash::{BuildHasher, RandomState};
    let h = RandomState::new();
    assert_eq!(h.hash_one(&source), h.hash_one(&token));
    source.cancel();
    assert!(source.reason().unwrap().is_requested());
}

#[test]
fn a_source_makes_children_and_futures_directly() {
    let source = CancellationSource::new();
    let child = source.child();
    let (wakes, waker) = count_waker();
    let mut fut = pin!(source.cancelled());
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    source.cancel();
    assert!(child.is_cancelled());
    assert_eq!(wakes.0.load(SeqCst), 1);
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
}

#[test]
fn linked_takes_sources_and_tokens_by_reference_or_by_value() {
    let a = CancellationSource::new();
    let b = CancellationSource::new();
    let by_source_ref = CancellationSource::linked([&a, &b]);
    let b_token = b.token();
    let mixed = CancellationSource::linked([a.as_ref(), &b_token]);
    let by_value = CancellationSource::linked(vec![a.token(), b.token(), a.token()]);
    let many: Vec<CancellationSource> = (0..20).map(|_| CancellationSource::new()).collect();
    let spilled = CancellationSource::linked(many.iter().chain([&b, &b]));
    b.cancel();
    for s in [&by_source_ref, &mixed, &by_value, &spilled] {
        assert!(s.is_cancelled());
        assert_eq!(s.reason(), b.reason());
    }
    let none_only = CancellationSource::linked([CancellationToken::none()]);
    assert!(!none_only.is_cancelled());
    assert!(none_only.can_be_cancelled(), "a plain source");
}

#[derive(Debug)]
struct DiskFull;

impl std::fmt::Display for DiskFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("disk full")
    }
}

impl std::error::Error for DiskFull {}

#[test]
fn reasons_compare_and_give_their_cause_back_typed() {
    let source = CancellationSource::new();
    let child = source.child();
    source.cancel_with(DiskFull);
    let reason = source.reason().unwrap();
    assert!(reason.is_custom());
    assert!(!reason.is_requested() && !reason.is_timed_out());
    assert!(reason.downcast_cause::<DiskFull>().is_some());
    assert!(reason.downcast_cause::<std::fmt::Error>().is_none());
    assert_eq!(
        Some(reason.clone()),
        child.reason(),
        "the same cause, shared"
    );
    let other = CancellationSource::new();
    other.cancel_with(DiskFull);
    assert_ne!(
        other.reason(),
        Some(reason.clone()),
        "another cause, though equal text"
    );
    assert_eq!(CancelReason::TimedOut, CancelReason::TimedOut);
    assert_ne!(CancelReason::TimedOut, CancelReason::Requested);

    // The error chain prints the cause once.
    let err = child.token().check().unwrap_err();
    assert_eq!(err.to_string(), "operation cancelled");
    let source_text = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(source_text, "disk full");
    assert_eq!(err, Cancelled::new(reason));
    assert_eq!(
        Cancelled::new(CancelReason::Requested).to_string(),
        "operation cancelled: cancellation was requested"
    );
}

#[test]
fn a_registration_knows_its_token_also_after_it_ran() {
    let source = CancellationSource::new();
    let token = source.token();
    let pending = token.register(|| {});
    assert_eq!(pending.token(), token);
    source.cancel();
    assert_eq!(pending.token(), token);
    let inline = token.register(|| {});
    assert_eq!(inline.token(), token, "ran inline: still its token");
    let never = CancellationToken::none().register(|| unreachable!());
    assert_eq!(never.token(), CancellationToken::none());
    assert!(format!("{pending:?}").contains("token"));
}

#[test]
fn the_borrowed_drop_guard_cancels_unless_disarmed() {
    let source = CancellationSource::new();
    {
        let _guard = source.drop_guard_ref();
        assert!(!source.is_cancelled());
    }
    assert!(source.is_cancelled());
    let other = CancellationSource::new();
    let disarmed = other.drop_guard_ref().disarm();
    assert_eq!(disarmed, &other);
    assert!(!other.is_cancelled());
    // During an unwind it cancels too.
    let third = CancellationSource::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _guard = third.drop_guard_ref();
        std::panic::resume_unwind(Box::new("the scope panics"));
    }));
    assert!(result.is_err());
    assert!(third.is_cancelled());
}

#[test]
fn a_finished_run_until_cancelled_lets_go_of_its_waker() {
    let source = CancellationSource::new();
    let token = source.token();
    let (wakes, waker) = count_waker();
    let mut ready_now = pin!(token.run_until_cancelled(std::future::ready(3)));
    assert_eq!(
        ready_now.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(3))
    );
    // An inner future that finishes on its second poll: by then the waiter
    // had stored the waker.
    let mut polls = 0;
    let mut later = pin!(token.run_until_cancelled(std::future::poll_fn(move |_| {
        polls += 1;
        if polls == 2 {
            Poll::Ready(7)
        } else {
            Poll::Pending
        }
    })));
    assert!(
        later
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(
        Arc::strong_count(&wakes),
        3,
        "the waiter stored a waker clone"
    );
    assert_eq!(
        later.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(7))
    );
    assert_eq!(
        Arc::strong_count(&wakes),
        2,
        "and let go of it when it finished"
    );
    source.cancel();
    assert_eq!(
        wakes.0.load(SeqCst),
        0,
        "nobody is woken for a finished future"
    );
    let fresh = CancellationSource::new();
    let owned = fresh.token().run_until_cancelled_owned(async { 1 });
    assert_eq!(futures::executor::block_on(owned), Ok(1));
    let timed = std::future::pending::<()>().with_cancellation(&token);
    assert!(futures::executor::block_on(timed).is_err());
}

#[cfg(feature = "futures-core")]
#[test]
fn the_futures_are_fused() {
    use futures::future::FusedFuture;
    let source = CancellationSource::new();
    let token = source.token();
    let (_wakes, waker) = count_waker();
    let mut cancelled = pin!(token.cancelled());
    let mut run = pin!(token.run_until_cancelled(std::future::pending::<()>()));
    assert!(!cancelled.is_terminated() && !run.is_terminated());
    assert!(
        cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    source.cancel();
    assert!(
        cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
    assert!(
        run.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
    assert!(cancelled.is_terminated() && run.is_terminated());
}

#[cfg(feature = "stream")]
#[test]
fn an_ended_stream_lets_go_of_its_waker_and_is_fused() {
    use cancel_core::CancellationStreamExt;
    use futures::stream::{FusedStream, Stream};
    let source = CancellationSource::new();
    let (wakes, waker) = count_waker();
    // Pending first (the waiter stores the waker), then ends.
    let mut polls = 0;
    let inner = futures::stream::poll_fn(move |_| {
        polls += 1;
        if polls == 1 {
            Poll::Pending
        } else {
            Poll::Ready(None::<u8>)
        }
    });
    let mut stream = pin!(inner.take_until_cancelled(source.token()));
    assert!(
        stream
            .as_mut()
            .poll_next(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(Arc::strong_count(&wakes), 3);
    assert_eq!(
        stream.as_mut().poll_next(&mut Context::from_waker(&waker)),
        Poll::Ready(None)
    );
    assert!(stream.is_terminated());
    assert_eq!(
        Arc::strong_count(&wakes),
        2,
        "the ended stream let go of its waker"
    );
    source.cancel();
    assert_eq!(wakes.0.load(SeqCst), 0);
}

#[test]
fn cancel_catching_returns_every_panic_in_order() {
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let source = CancellationSource::new();
    let child = source.child();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let _a = source.token().register(move || {
        r.fetch_add(1, SeqCst);
        panic!("a");
    });
    let _b = child.token().register(|| panic!("b"));
    let _c = source.token().register(|| std::panic::panic_any(42u32));
    let panics = source.cancel_catching().unwrap_err();
    std::panic::set_hook(quiet);
    assert_eq!(panics.len(), 3);
    let p = panics.payloads();
    // LIFO: c, a, then the child's subtree (its link came first).
    assert_eq!(p[0].downcast_ref::<u32>(), Some(&42));
    assert_eq!(p[1].downcast_ref::<&str>(), Some(&"a"));
    assert_eq!(p[2].downcast_ref::<&str>(), Some(&"b"));
    assert_eq!(ran.load(SeqCst), 1);
    assert!(child.is_cancelled());
    assert!(panics.to_string().starts_with("3 callbacks panicked"));
    assert!(!source.cancel_catching().unwrap(), "already cancelled");
    let calm = CancellationSource::new();
    assert!(calm.cancel_catching().unwrap());
}

/// A value that does nothing unless kept is `#[must_use]` (rustc warns),
/// and the message says to bind it to a name, not to `_`.
#[test]
fn must_use_values_are_marked() {
    // The compile_fail doctests on `Registration`, `ToTokio` and
    // `ScopedRegistration` check the warnings; here, that keeping them works.
    let source = CancellationSource::new();
    let _reg = source.token().register(|| {});
    let _child = source.child();
    assert!(_reg.is_pending());
}
