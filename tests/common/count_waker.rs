//! A waker that counts its wakes, shared by the test files that check
//! "woken exactly once" (included with `#[path]`).
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Wake, Waker};

#[derive(Default)]
pub struct CountWaker(pub AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// The counter and a waker that bumps it.
pub fn count_waker() -> (Arc<CountWaker>, Waker) {
    let inner = Arc::new(CountWaker::default());
    (inner.clone(), Waker::from(inner))
}
