//! Futures that complete on cancellation, and adapters that race a future
//! against a token. None of them allocates: each waits through one node
//! pinned inside itself.

use core::borrow::Borrow;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::raw::{HoldsState, Waiter};
use crate::reason::Cancelled;
use crate::token::CancellationToken;

pin_project! {
    /// Completes when the token is cancelled. Returned by
    /// [`CancellationToken::cancelled`]. Cancel-safe: dropping it loses
    /// nothing. A future created before `cancel()` but never polled is ready
    /// afterwards.
    #[must_use = "futures do nothing unless polled"]
    pub struct WaitForCancellation<'a> {
        #[pin]
        waiter: Waiter<&'a CancellationToken>,
        done: bool,
    }
}

pin_project! {
    /// The `'static` form of [`WaitForCancellation`], holding its own token.
    /// Returned by [`CancellationToken::cancelled_owned`].
    ///
    /// ```
    /// use cancel_core::{CancellationSource, WaitForCancellationOwned};
    ///
    /// let source = CancellationSource::new();
    /// let waiting: WaitForCancellationOwned = source.token().cancelled_owned();
    /// let task = std::thread::spawn(move || futures::executor::block_on(waiting));
    /// source.cancel();
    /// task.join().unwrap();
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WaitForCancellationOwned {
        #[pin]
        waiter: Waiter<CancellationToken>,
        done: bool,
    }
}

pin_project! {
    /// Runs a future until it completes or the token is cancelled, whichever
    /// comes first. Returned by [`CancellationToken::run_until_cancelled`] and
    /// [`CancellationFutureExt::with_cancellation`].
    ///
    /// If the token is already cancelled at the first poll, the inner future
    /// is never polled. Otherwise each poll polls the inner future first, so
    /// a future that is ready wins over a cancellation that arrived in the
    /// same instant. The inner future is dropped as soon as cancellation wins.
    ///
    /// ```
    /// use cancel_core::{CancellationSource, RunUntilCancelled};
    ///
    /// struct Worker<'a> {
    ///     job: RunUntilCancelled<'a, std::future::Ready<u32>>, // nameable, storable
    /// }
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let worker = Worker { job: token.run_until_cancelled(std::future::ready(1)) };
    /// assert_eq!(futures::executor::block_on(worker.job).unwrap(), 1);
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct RunUntilCancelled<'a, F> {
        #[pin]
        future: Option<F>,
        #[pin]
        waiter: Waiter<&'a CancellationToken>,
        started: bool,
    }
}

pin_project! {
    /// The `'static` form of [`RunUntilCancelled`], holding its own token.
    /// Returned by [`CancellationToken::run_until_cancelled_owned`] and
    /// [`CancellationFutureExt::with_cancellation_owned`].
    ///
    /// ```
    /// use cancel_core::{CancellationFutureExt, CancellationSource, RunUntilCancelledOwned};
    ///
    /// let source = CancellationSource::new();
    /// let job: RunUntilCancelledOwned<std::future::Pending<()>> =
    ///     std::future::pending().with_cancellation_owned(source.token());
    /// let task = std::thread::spawn(move || futures::executor::block_on(job));
    /// source.cancel();
    /// assert!(task.join().unwrap().is_err());
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct RunUntilCancelledOwned<F> {
        #[pin]
        future: Option<F>,
        #[pin]
        waiter: Waiter<CancellationToken>,
        started: bool,
    }
}

impl CancellationToken {
    /// A future that completes when this token is cancelled.
    ///
    /// Creating, polling and dropping it allocates nothing. A token that can
    /// never be cancelled (see [`can_be_cancelled`](Self::can_be_cancelled))
    /// gives a future that stays pending and stores no waker.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let waiter = std::thread::spawn(move || {
    ///     futures::executor::block_on(token.cancelled());
    ///     "woken"
    /// });
    /// source.cancel();
    /// assert_eq!(waiter.join().unwrap(), "woken");
    /// ```
    pub fn cancelled(&self) -> WaitForCancellation<'_> {
        WaitForCancellation {
            waiter: Waiter::new(self),
            done: false,
        }
    }

    /// Like [`cancelled`](Self::cancelled), but owns the token, so the
    /// future is `'static` (for spawning). Allocates nothing.
    pub fn cancelled_owned(self) -> WaitForCancellationOwned {
        WaitForCancellationOwned {
            waiter: Waiter::new(self),
            done: false,
        }
    }

    /// Runs `future` until it completes (`Ok(output)`) or this token is
    /// cancelled (`Err(Cancelled)`); see [`RunUntilCancelled`] for the bias.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let out = futures::executor::block_on(token.run_until_cancelled(async { 7 }));
    /// assert_eq!(out.unwrap(), 7);
    /// source.cancel();
    /// let out = futures::executor::block_on(token.run_until_cancelled(async { 7 }));
    /// assert!(out.is_err());
    /// ```
    pub fn run_until_cancelled<F: Future>(&self, future: F) -> RunUntilCancelled<'_, F> {
        RunUntilCancelled {
            future: Some(future),
            waiter: Waiter::new(self),
            started: false,
        }
    }

    /// Like [`run_until_cancelled`](Self::run_until_cancelled), owning the token.
    pub fn run_until_cancelled_owned<F: Future>(self, future: F) -> RunUntilCancelledOwned<F> {
        RunUntilCancelledOwned {
            future: Some(future),
            waiter: Waiter::new(self),
            started: false,
        }
    }
}

/// Races any future against a token. Implemented for every [`Future`].
///
/// Named so that it can be imported beside `futures::FutureExt` and
/// `tokio_util`'s without a clash (`use cancel_core::CancellationFutureExt;`).
///
/// ```
/// use cancel_core::{CancellationSource, CancellationFutureExt};
///
/// let source = CancellationSource::new();
/// source.cancel();
/// let out = futures::executor::block_on(std::future::pending::<()>().with_cancellation(&source.token()));
/// assert!(out.is_err());
/// ```
pub trait CancellationFutureExt: Future + Sized {
    /// Runs `self` until it completes or `token` is cancelled.
    fn with_cancellation(self, token: &CancellationToken) -> RunUntilCancelled<'_, Self> {
        token.run_until_cancelled(self)
    }

    /// Like [`with_cancellation`](Self::with_cancellation), owning the token.
    fn with_cancellation_owned(self, token: CancellationToken) -> RunUntilCancelledOwned<Self> {
        token.run_until_cancelled_owned(self)
    }
}

impl<F: Future> CancellationFutureExt for F {}

impl Future for WaitForCancellation<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let ready = this.waiter.poll_cancelled(cx);
        *this.done |= ready.is_ready();
        ready
    }
}

impl Future for WaitForCancellationOwned {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let ready = this.waiter.poll_cancelled(cx);
        *this.done |= ready.is_ready();
        ready
    }
}

/// The shared body of both `RunUntilCancelled` forms. Once it is ready the
/// inner future is dropped and the waiter released (no waker is kept for a
/// later cancellation to wake for nothing).
fn poll_run<T: HoldsState + Borrow<CancellationToken>, F: Future>(
    mut future: Pin<&mut Option<F>>,
    mut waiter: Pin<&mut Waiter<T>>,
    started: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Cancelled>> {
    let Some(inner) = future.as_mut().as_pin_mut() else {
        panic!("`RunUntilCancelled` polled after completion");
    };
    let token = Borrow::<CancellationToken>::borrow(waiter.holder());
    // An already-cancelled token never lets the inner future run; after the
    // first poll the inner future goes first (the documented bias).
    let out = if !core::mem::replace(started, true) && token.is_cancelled() {
        Err(token.cancelled_error())
    } else if let Poll::Ready(out) = inner.poll(cx) {
        Ok(out)
    } else {
        match waiter.as_mut().poll_cancelled(cx) {
            Poll::Ready(()) => {
                Err(Borrow::<CancellationToken>::borrow(waiter.holder()).cancelled_error())
            }
            Poll::Pending => return Poll::Pending,
        }
    };
    future.set(None);
    waiter.release();
    Poll::Ready(out)
}

impl<F: Future> Future for RunUntilCancelled<'_, F> {
    type Output = Result<F::Output, Cancelled>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        poll_run(this.future, this.waiter, this.started, cx)
    }
}

impl<F: Future> Future for RunUntilCancelledOwned<F> {
    type Output = Result<F::Output, Cancelled>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        poll_run(this.future, this.waiter, this.started, cx)
    }
}

macro_rules! debug_impl {
    ($($ty:ty),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    .field("is_cancelled", &self.waiter.holder().is_cancelled())
                    .finish_non_exhaustive()
            }
        }
    )*};
}
debug_impl!(WaitForCancellation<'_>, WaitForCancellationOwned);

#[cfg(feature = "futures-core")]
mod fused {
    use futures_core::future::FusedFuture;

    use super::*;

    /// Terminated once it has returned `Ready` (a cancelled token's future
    /// stays ready if polled again).
    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl FusedFuture for WaitForCancellation<'_> {
        fn is_terminated(&self) -> bool {
            self.done
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl FusedFuture for WaitForCancellationOwned {
        fn is_terminated(&self) -> bool {
            self.done
        }
    }

    /// Terminated once it has returned `Ready` (the inner future is gone).
    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl<F: Future> FusedFuture for RunUntilCancelled<'_, F> {
        fn is_terminated(&self) -> bool {
            self.future.is_none()
        }
    }

    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl<F: Future> FusedFuture for RunUntilCancelledOwned<F> {
        fn is_terminated(&self) -> bool {
            self.future.is_none()
        }
    }
}

impl<F> fmt::Debug for RunUntilCancelled<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelled")
            .field("is_cancelled", &self.waiter.holder().is_cancelled())
            .field("finished", &self.future.is_none())
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for RunUntilCancelledOwned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledOwned")
            .field("is_cancelled", &self.waiter.holder().is_cancelled())
            .field("finished", &self.future.is_none())
            .finish_non_exhaustive()
    }
}
