//! The default timer thread under a panicking timeout callback. A test
//! binary of its own: it installs a panic hook (process-wide) to see where
//! the panic is reported, and the timer thread it exercises is shared by
//! every test of a binary.
//!
//! Review finding 3 (failed on `a8d10ee`): the panic unwound out of the
//! process-wide timer thread and killed it; no timeout fired again in the
//! process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cancel_core::{CancelReason, CancellationSource};

/// (thread name, message) of each panic the hook saw.
type Reports = Arc<Mutex<Vec<(Option<String>, String)>>>;

#[test]
fn a_panicking_timeout_callback_is_reported_and_the_timer_thread_goes_on() {
    let reported: Reports = Arc::default();
    let r = reported.clone();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().map(str::to_owned);
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .unwrap_or_default();
        r.lock().unwrap().push((thread, message));
        default_hook(info);
    }));

    // Registered before the timeout can fire, however slowly this runs
    // (Miri): armed for an hour, then re-armed. Re-armed for 250 ms, not
    // 1: a deadline already past when `cancel_after` arms it cancels at
    // once, on this thread (Miri under load took over 1 ms between the two),
    // and this test is about the timer thread.
    let first = CancellationSource::with_timeout(Duration::from_secs(3600));
    let _reg = first.token().register(|| panic!("timeout callback"));
    first.cancel_after(Duration::from_millis(250));
    first.token().wait();
    for round in 0..3 {
        let next = CancellationSource::with_timeout(Duration::from_millis(1));
        assert!(
            next.token().wait_timeout(Duration::from_secs(60)),
            "round {round}: a later timeout fired"
        );
        assert!(matches!(
            next.token().reason(),
            Some(CancelReason::TimedOut)
        ));
    }
    let reported = reported.lock().unwrap();
    assert_eq!(
        *reported,
        [(
            Some("cancel-core-timer".to_owned()),
            "timeout callback".to_owned()
        )],
        "reported once, through the panic hook, on the timer thread"
    );
}
