//! A unit of work in a shutdown scope: the guard that counts it, and the
//! variant that begins the scope's shutdown when dropped by a panic.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

#[cfg(feature = "std")]
use crate::raw::Reason;
use crate::raw::WorkRef;
use crate::token::CancellationToken;

/// One unit of work in a [`Shutdown`](crate::Shutdown) scope. Dropping it counts the work
/// out; it is `Send`, so it moves into the task or thread doing the work.
///
/// A guard dropped while its thread is panicking does not shut the scope
/// down by default (one failed request should not stop a server); make it
/// do so with [`shutdown_on_panic`](Self::shutdown_on_panic) for work whose
/// failure means the whole scope must stop (tokio-util's `DropGuard` use in
/// tokio #6956).
#[must_use = "dropping the guard counts the work out at once"]
pub struct WorkGuard {
    work: WorkRef,
}

/// A [`WorkGuard`] that begins its scope's shutdown if it is dropped while
/// its thread panics (see [`WorkGuard::shutdown_on_panic`]). A type of its
/// own, so that the plain guard's drop has no check to make. Derefs to the
/// guard.
#[must_use = "dropping the guard counts the work out at once"]
pub struct ShutdownOnPanic {
    guard: WorkGuard,
}

/// The cause given to a scope's shutdown by a [`WorkGuard`] dropped while
/// its thread panicked (see [`WorkGuard::shutdown_on_panic`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkPanicked;

impl WorkGuard {
    pub(crate) fn new(work: WorkRef) -> Self {
        Self { work }
    }

    /// The scope's token: cancelled when its shutdown begins. The work
    /// watches it and winds down.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let guard = scope.enter().unwrap();
    /// let token = guard.token();
    /// scope.shutdown();
    /// assert!(token.is_cancelled());
    /// ```
    pub fn token(&self) -> CancellationToken {
        CancellationToken::from_state(self.work.signal().clone())
    }

    /// Whether the scope's shutdown has begun (one load, no token made).
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let guard = scope.enter().unwrap();
    /// assert!(!guard.is_cancelled());
    /// scope.shutdown();
    /// assert!(guard.is_cancelled());
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.work.signal().is_cancelled()
    }

    /// Makes this guard, if it is dropped while its thread panics, begin the
    /// scope's shutdown (cause [`WorkPanicked`]) before it counts the work
    /// out: for work whose failure means the scope must stop. Without the
    /// `std` feature a drop cannot tell an unwind, and it is a plain guard.
    ///
    /// ```
    /// # #[cfg(feature = "std")] { // telling an unwind: std only
    /// use cancel_core::{Shutdown, WorkPanicked};
    ///
    /// let scope = Shutdown::new();
    /// let guard = scope.enter().unwrap().shutdown_on_panic();
    /// let worker = std::thread::spawn(move || {
    ///     let _guard = guard;
    ///     # std::panic::set_hook(Box::new(|_| {}));
    ///     panic!("the work failed");
    /// });
    /// assert!(worker.join().is_err());
    /// scope.wait();
    /// let reason = scope.token().reason().unwrap();
    /// assert!(reason.downcast_cause::<WorkPanicked>().is_some());
    /// # }
    /// ```
    pub fn shutdown_on_panic(self) -> ShutdownOnPanic {
        ShutdownOnPanic { guard: self }
    }
}

impl core::ops::Deref for ShutdownOnPanic {
    type Target = WorkGuard;

    fn deref(&self) -> &WorkGuard {
        &self.guard
    }
}

impl Drop for ShutdownOnPanic {
    fn drop(&mut self) {
        #[cfg(feature = "std")]
        if std::thread::panicking() {
            // A callback's panic here would abort (a panic while unwinding):
            // kept under its own guard.
            if let Err(payload) = std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| {
                self.guard.work.shutdown(Reason::custom(WorkPanicked))
            })) {
                crate::unwind::drop_payload(payload);
            }
        }
        // The guard counts the work out when it drops, next.
    }
}

impl fmt::Debug for ShutdownOnPanic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownOnPanic")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl fmt::Debug for WorkGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkGuard")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl fmt::Display for WorkPanicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a unit of work panicked")
    }
}

impl core::error::Error for WorkPanicked {}

pin_project_lite::pin_project! {
    /// A future counted as one unit of work of a scope until it is dropped
    /// (see [`Shutdown::track`](crate::Shutdown::track)). Its output is the
    /// future's.
    ///
    /// ```
    /// let scope = cancel_core::Shutdown::new();
    /// let job = scope.track(std::future::ready(1)).unwrap();
    /// assert!(!job.guard().is_cancelled());
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct Tracked<F> {
        #[pin]
        future: F,
        guard: WorkGuard,
    }
}

impl<F> Tracked<F> {
    pub(crate) fn new(future: F, guard: WorkGuard) -> Self {
        Self { future, guard }
    }

    /// The unit of work it holds: its token says when shutdown begins.
    pub fn guard(&self) -> &WorkGuard {
        &self.guard
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().future.poll(cx)
    }
}

impl<F> fmt::Debug for Tracked<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}
