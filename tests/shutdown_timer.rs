//! A shutdown scope's wait with a time limit as a future, which arms the
//! default timer. A test binary of its own: it counts the default timer's
//! armed entries, which every test of a binary shares, and Miri runs it
//! with the timer targets (the timer thread outlives the test).

use std::future::Future;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll};
use std::time::Duration;

use cancel_core::Shutdown;

#[path = "common/count_waker.rs"]
mod count_waker;
use count_waker::count_waker;

/// The future with a time limit: `Err` with the work left when time runs
/// out, `Ok` when finished first, and a future dropped early leaves no
/// timer armed. (One test: the default timer's count is process-wide.)
#[test]
fn finished_timeout_reports_the_work_left_and_leaves_no_timer() {
    let scope = Shutdown::new();
    let stuck = scope.enter().unwrap();
    let _also = scope.enter().unwrap();
    scope.shutdown();
    let late = futures::executor::block_on(scope.finished_timeout(Duration::from_millis(5)));
    assert_eq!(late.unwrap_err().count, 2);
    assert_eq!(
        cancel_core::default_timer_armed().0,
        0,
        "the timer fired and left"
    );

    // Pending, then dropped: its timer is disarmed.
    let (_w, waker) = count_waker();
    let mut early = Box::pin(scope.finished_timeout(Duration::from_secs(3600)));
    assert!(
        early
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(cancel_core::default_timer_armed().0, 1);
    drop(early);
    assert_eq!(
        cancel_core::default_timer_armed().0,
        0,
        "dropped early, disarmed"
    );

    // Finished before the limit: Ok, woken by the last leave, timer gone.
    let (woken, waker) = count_waker();
    let mut on_time =
        Box::pin(scope.finished_deadline(std::time::Instant::now() + Duration::from_secs(3600)));
    assert!(
        on_time
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    drop(stuck);
    assert_eq!(woken.0.load(SeqCst), 0);
    drop(_also);
    assert_eq!(woken.0.load(SeqCst), 1);
    assert_eq!(
        on_time.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(()))
    );
    assert_eq!(
        cancel_core::default_timer_armed().0,
        0,
        "completion disarmed it"
    );
}
