//! Blocking waits: the calling thread parks on a node in the token's list.

use std::time::{Duration, Instant};

use crate::token::CancellationToken;

impl CancellationToken {
    /// Blocks the calling thread until the token is cancelled.
    ///
    /// Use it in a thread whose job is to react to cancellation (a
    /// watchdog, a thread that closes a resource), or in synchronous code
    /// that has nothing else to do until then.
    ///
    /// Allocates nothing: the thread's node lives on its own stack. Spurious
    /// wake-ups are absorbed. A token that can never be cancelled
    /// ([`can_be_cancelled`](Self::can_be_cancelled) is `false`) blocks
    /// forever: use [`wait_timeout`](Self::wait_timeout) where that can happen.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let waiter = std::thread::spawn(move || token.wait());
    /// source.cancel();
    /// waiter.join().unwrap();
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait(&self) {
        self.state().wait(None);
    }

    /// Blocks until the token is cancelled or `timeout` has passed; `true`
    /// if cancelled. A timeout too large to add to `Instant::now()` waits
    /// without a limit.
    ///
    /// Use it as a cancellable sleep: a periodic job that should wake up
    /// at once when asked to stop, rather than at its next tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// assert!(!source.token().wait_timeout(Duration::from_millis(1)));
    /// source.cancel();
    /// assert!(source.token().wait_timeout(Duration::from_secs(3600)));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        self.state().wait(Instant::now().checked_add(timeout))
    }

    /// Blocks until the token is cancelled or `deadline` is reached; `true`
    /// if cancelled. A deadline in the past only checks.
    ///
    /// Use it where several waits share one end time, so that the time
    /// spent before each wait counts against the whole.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// // Two pauses that may take 20 ms in all.
    /// let deadline = Instant::now() + Duration::from_millis(20);
    /// assert!(!token.wait_deadline(deadline), "not cancelled: returns at the deadline");
    /// assert!(Instant::now() >= deadline);
    /// assert!(!token.wait_deadline(deadline), "the deadline has passed: only checks");
    ///
    /// source.cancel();
    /// assert!(token.wait_deadline(Instant::now() + Duration::from_secs(3600)));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_deadline(&self, deadline: Instant) -> bool {
        self.state().wait(Some(deadline))
    }
}
