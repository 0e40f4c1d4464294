//! Futures that complete on cancellation, and adapters that race a future
//! against a token. None of them allocates: each waits through one node
//! pinned inside itself.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::raw::{HoldsState, StateView, Waiter};
use crate::reason::Cancelled;
use crate::token::{CancellationToken, cancelled_error};

pin_project! {
    /// Completes when the token is cancelled. Returned by
    /// [`CancellationToken::cancelled`]. Cancel-safe: dropping it loses
    /// nothing. A future created before `cancel()` but never polled is ready
    /// afterwards.
    ///
    /// Await it in a task whose job is to react to cancellation (close a
    /// connection, flush a buffer), or race it against the work in a
    /// `select!`. To cut one future short, [`run_until_cancelled`](CancellationToken::run_until_cancelled)
    /// is simpler.
    ///
    /// # Pinning: it is `!Unpin`
    /// The future waits through a node that lives inside it (that is why it
    /// needs no allocation), and once it has been polled the token's list
    /// points at that node. So it must not move after its first poll: it is
    /// `!Unpin`, as are all the futures and streams of this crate.
    /// `.await` pins it for you. To poll it by hand, or to pass it by
    /// reference to `select!`, pin it first: on the stack with
    /// [`pin!`](core::pin::pin) (`let mut cancelled = pin!(token.cancelled());`),
    /// or on the heap with `Box::pin` (to keep it in a struct or return
    /// it).
    ///
    /// # In a `select!` loop
    /// Make the future once, before the loop, pin it, and pass `&mut
    /// cancelled` (or `cancelled.as_mut()`) to the `select!` in each
    /// iteration. The pinned future stays in the token's list between
    /// iterations; a new `token.cancelled()` per iteration would also be
    /// correct (a cancellation is never missed: a future made after it is
    /// ready at once) but links and unlinks a node each time.
    ///
    /// `futures::select!` also wants a fused future: with feature
    /// `futures-core` this crate's futures implement `FusedFuture`
    /// (without it, pin `token.cancelled().fuse()` instead). With `futures`'
    /// `async-await` feature:
    ///
    /// ```text
    /// let mut cancelled = std::pin::pin!(token.cancelled());
    /// loop {
    ///     futures::select! {
    ///         () = cancelled => break,
    ///         msg = rx.next() => handle(msg),
    ///     }
    /// }
    /// ```
    ///
    /// `tokio::select!` needs no fused future; pass the pinned future by
    /// `&mut`:
    ///
    /// ```text
    /// let mut cancelled = std::pin::pin!(token.cancelled());
    /// loop {
    ///     tokio::select! {
    ///         () = &mut cancelled => break,
    ///         msg = rx.recv() => handle(msg),
    ///     }
    /// }
    /// ```
    ///
    /// The same loop with `futures::future::select`, which takes `Unpin`
    /// futures, so the pinned future is passed as `cancelled.as_mut()`:
    ///
    /// ```
    /// use std::pin::pin;
    /// use futures::StreamExt;
    /// use futures::channel::mpsc;
    /// use futures::future::{Either, select};
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let (tx, mut rx) = mpsc::unbounded::<u32>();
    /// for n in 1..=3 {
    ///     tx.unbounded_send(n).unwrap();
    /// }
    ///
    /// let total = futures::executor::block_on(async {
    ///     let mut cancelled = pin!(token.cancelled()); // once, outside the loop
    ///     let mut total = 0;
    ///     loop {
    ///         match select(cancelled.as_mut(), rx.next()).await {
    ///             Either::Left(((), _)) => break total, // cancelled: stop
    ///             Either::Right((Some(n), _)) => {
    ///                 total += n;
    ///                 if total == 6 {
    ///                     source.cancel(); // e.g. another task asks us to stop
    ///                 }
    ///             }
    ///             Either::Right((None, _)) => break total, // the channel closed
    ///         }
    ///     }
    /// });
    /// assert_eq!(total, 6);
    /// ```
    ///
    /// With `futures-core`, a finished future says so, which is how
    /// `futures::select!` knows to skip its arm:
    ///
    /// ```
    /// # #[cfg(feature = "futures-core")]
    /// # {
    /// use std::pin::pin;
    /// use futures::future::FusedFuture;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let mut cancelled = pin!(token.cancelled());
    /// assert!(!cancelled.is_terminated());
    /// source.cancel();
    /// futures::executor::block_on(cancelled.as_mut());
    /// assert!(cancelled.is_terminated());
    /// # }
    /// ```
    #[must_use = "futures do nothing unless polled"]
    pub struct WaitForCancellation<'a> {
        #[pin]
        waiter: Waiter<StateView<'a>>,
    }
}

pin_project! {
    /// The `'static` form of [`WaitForCancellation`], holding its own token.
    /// Returned by [`CancellationToken::cancelled_owned`] and
    /// [`CancellationSource::cancelled`](crate::CancellationSource::cancelled).
    /// Use it where the future must own what it needs: spawned tasks,
    /// threads, structs without a lifetime. `!Unpin`, like
    /// [`WaitForCancellation`] (see there for pinning and `select!`).
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
    /// It is `!Unpin` (it holds its waiter node; see
    /// [`WaitForCancellation`] for pinning). Name the type where a future
    /// must be stored: in a struct field, or as an associated type.
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
        waiter: Waiter<StateView<'a>>,
        started: bool,
    }
}

pin_project! {
    /// The `'static` form of [`RunUntilCancelled`], holding its own token.
    /// Returned by [`CancellationToken::run_until_cancelled_owned`] and
    /// [`CancellationFutureExt::with_cancellation_owned`]. Use it for work
    /// that is spawned or sent to another thread. `!Unpin`, like
    /// [`WaitForCancellation`].
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

impl<'a> WaitForCancellation<'a> {
    pub(crate) fn from_waiter(waiter: Waiter<StateView<'a>>) -> Self {
        Self { waiter }
    }
}

impl<'a, F> RunUntilCancelled<'a, F> {
    pub(crate) fn from_waiter(future: F, waiter: Waiter<StateView<'a>>) -> Self {
        Self {
            future: Some(future),
            waiter,
            started: false,
        }
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
            waiter: Waiter::new(StateView::of(self.state())),
        }
    }

    /// Like [`cancelled`](Self::cancelled), but owns the token, so the
    /// future is `'static` (for spawning). Allocates nothing.
    ///
    /// Use it for a task that is spawned on a runtime or sent to another
    /// thread, which cannot borrow the token.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .build()
    ///     .unwrap();
    /// let source = CancellationSource::new();
    /// let watcher = runtime.spawn(source.token().cancelled_owned()); // `'static`
    /// source.cancel();
    /// runtime.block_on(watcher).unwrap();
    /// ```
    pub fn cancelled_owned(self) -> WaitForCancellationOwned {
        WaitForCancellationOwned {
            waiter: Waiter::new(self),
        }
    }

    /// Runs `future` until it completes (`Ok(output)`) or this token is
    /// cancelled (`Err(Cancelled)`); see [`RunUntilCancelled`] for the bias.
    ///
    /// Use it to make a future that knows nothing of tokens (a library's
    /// request, a channel's receive) stop on cancellation; the error says
    /// why. [`CancellationFutureExt::with_cancellation`] is the same,
    /// written after the future.
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
            waiter: Waiter::new(StateView::of(self.state())),
            started: false,
        }
    }

    /// Like [`run_until_cancelled`](Self::run_until_cancelled), owning the
    /// token, so the future is `'static`: for work that is spawned.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let runtime = tokio::runtime::Builder::new_multi_thread()
    ///     .worker_threads(1)
    ///     .build()
    ///     .unwrap();
    /// let source = CancellationSource::new();
    /// let never_done = std::future::pending::<u32>();
    /// let job = runtime.spawn(source.token().run_until_cancelled_owned(never_done));
    /// source.cancel();
    /// let err = runtime.block_on(job).unwrap().unwrap_err();
    /// assert!(err.reason().is_requested());
    /// ```
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
    /// Runs `self` until it completes or `token` is cancelled: `Ok(output)`
    /// or `Err(Cancelled)`, as [`CancellationToken::run_until_cancelled`].
    ///
    /// Use it at the end of a chain of future calls, where the future is
    /// written first and the token second.
    ///
    /// ```
    /// use futures::channel::oneshot;
    /// use futures::executor::block_on;
    /// use cancel_core::{CancellationFutureExt, CancellationSource};
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    ///
    /// let (tx, reply) = oneshot::channel::<u32>();
    /// tx.send(7).unwrap();
    /// assert_eq!(block_on(reply.with_cancellation(&token)).unwrap(), Ok(7));
    ///
    /// let (_tx, reply) = oneshot::channel::<u32>(); // no reply will come
    /// source.cancel();
    /// let err = block_on(reply.with_cancellation(&token)).unwrap_err();
    /// assert!(err.reason().is_requested());
    /// ```
    fn with_cancellation(self, token: &CancellationToken) -> RunUntilCancelled<'_, Self> {
        token.run_until_cancelled(self)
    }

    /// Like [`with_cancellation`](Self::with_cancellation), owning the
    /// token, so the future is `'static`: for work that is spawned or sent
    /// to another thread.
    ///
    /// ```
    /// use futures::channel::oneshot;
    /// use cancel_core::{CancellationFutureExt, CancellationSource};
    ///
    /// let source = CancellationSource::new();
    /// let (_tx, reply) = oneshot::channel::<u32>(); // no reply will come
    /// let call = reply.with_cancellation_owned(source.token());
    /// let caller = std::thread::spawn(move || futures::executor::block_on(call));
    /// source.cancel();
    /// assert!(caller.join().unwrap().is_err());
    /// ```
    fn with_cancellation_owned(self, token: CancellationToken) -> RunUntilCancelledOwned<Self> {
        token.run_until_cancelled_owned(self)
    }
}

impl<F: Future> CancellationFutureExt for F {}

impl Future for WaitForCancellation<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().waiter.poll_cancelled(cx)
    }
}

impl Future for WaitForCancellationOwned {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().waiter.poll_cancelled(cx)
    }
}

/// The shared body of both `RunUntilCancelled` forms. Once it is ready the
/// inner future is dropped and the waiter released (no waker is kept for a
/// later cancellation to wake for nothing).
fn poll_run<T: HoldsState, F: Future>(
    mut future: Pin<&mut Option<F>>,
    mut waiter: Pin<&mut Waiter<T>>,
    started: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<F::Output, Cancelled>> {
    let Some(inner) = future.as_mut().as_pin_mut() else {
        panic!("`RunUntilCancelled` polled after completion");
    };
    let state = waiter.holder().state();
    // An already-cancelled token never lets the inner future run; after the
    // first poll the inner future goes first (the documented bias).
    let out = if !core::mem::replace(started, true) && state.is_cancelled() {
        Err(cancelled_error(state))
    } else if let Poll::Ready(out) = inner.poll(cx) {
        Ok(out)
    } else {
        match waiter.as_mut().poll_cancelled(cx) {
            Poll::Ready(()) => Err(cancelled_error(waiter.holder().state())),
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
                    .field("is_cancelled", &self.waiter.holder().state().is_cancelled())
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
            self.waiter.has_been_ready()
        }
    }

    /// Terminated once it has returned `Ready`.
    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl FusedFuture for WaitForCancellationOwned {
        fn is_terminated(&self) -> bool {
            self.waiter.has_been_ready()
        }
    }

    /// Terminated once it has returned `Ready` (the inner future is gone).
    #[cfg_attr(docsrs, doc(cfg(feature = "futures-core")))]
    impl<F: Future> FusedFuture for RunUntilCancelled<'_, F> {
        fn is_terminated(&self) -> bool {
            self.future.is_none()
        }
    }

    /// Terminated once it has returned `Ready` (the inner future is gone).
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
            .field("is_cancelled", &self.waiter.holder().state().is_cancelled())
            .field("finished", &self.future.is_none())
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Debug for RunUntilCancelledOwned<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunUntilCancelledOwned")
            .field("is_cancelled", &self.waiter.holder().state().is_cancelled())
            .field("finished", &self.future.is_none())
            .finish_non_exhaustive()
    }
}
