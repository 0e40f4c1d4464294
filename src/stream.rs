//! `take_until_cancelled`: end a `futures_core::Stream` on cancellation.

use core::fmt;
use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;
use pin_project_lite::pin_project;

use crate::raw::Waiter;
use crate::token::CancellationToken;

pin_project! {
    /// Yields the inner stream's items until the token is cancelled, then
    /// ends. Made by [`CancellationStreamExt::take_until_cancelled`].
    ///
    /// Cancellation is checked before each poll of the inner stream, so no
    /// item is pulled after cancellation is seen; an item the inner stream
    /// has produced is always handed on, never dropped.
    ///
    /// It is `!Unpin` (it holds its waiter node): pin it with
    /// [`pin!`](core::pin::pin) or `Box::pin` before calling `StreamExt::next`
    /// on it (see [`WaitForCancellation`](crate::WaitForCancellation)).
    /// With it, `futures::select!` takes it directly: it is a
    /// `FusedStream`, terminated once it has ended. Name the type to store
    /// the stream in a struct.
    ///
    /// ```
    /// use std::pin::Pin;
    /// use futures::StreamExt;
    /// use futures::stream::{self, Iter};
    /// use cancel_core::{CancellationSource, CancellationStreamExt, TakeUntilCancelled};
    ///
    /// struct Feed {
    ///     events: Pin<Box<TakeUntilCancelled<Iter<std::ops::Range<u32>>>>>,
    /// }
    ///
    /// let source = CancellationSource::new();
    /// let mut feed = Feed {
    ///     events: Box::pin(stream::iter(0..10).take_until_cancelled(source.token())),
    /// };
    /// futures::executor::block_on(async {
    ///     assert_eq!(feed.events.next().await, Some(0));
    ///     source.cancel();
    ///     assert_eq!(feed.events.next().await, None);
    /// });
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
    #[must_use = "streams do nothing unless polled"]
    pub struct TakeUntilCancelled<S> {
        #[pin]
        stream: S,
        #[pin]
        waiter: Waiter<CancellationToken>,
        done: bool,
    }
}

/// Adds [`take_until_cancelled`](Self::take_until_cancelled) to every
/// [`Stream`]. Requires the `stream` feature.
///
/// Use it for streams that should end when the work is cancelled:
/// events, ticks, a subscription. Import it beside `futures::StreamExt`
/// (the names do not clash).
///
/// ```
/// use cancel_core::{CancellationSource, CancellationStreamExt};
/// use futures::StreamExt;
///
/// let source = CancellationSource::new();
/// let mut numbers = std::pin::pin!(futures::stream::iter(0..).take_until_cancelled(source.token()));
/// futures::executor::block_on(async {
///     assert_eq!(numbers.next().await, Some(0));
///     source.cancel();
///     assert_eq!(numbers.next().await, None);
/// });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
pub trait CancellationStreamExt: Stream + Sized {
    /// Ends the stream when `token` is cancelled; see
    /// [`TakeUntilCancelled`] for what is pulled and what is kept.
    ///
    /// Use it so that a loop over a stream (`while let Some(x) =
    /// stream.next().await`) ends on cancellation like it ends on the
    /// stream's own end, with no `select!`.
    ///
    /// ```
    /// use futures::StreamExt;
    /// use futures::channel::mpsc;
    /// use cancel_core::{CancellationSource, CancellationStreamExt};
    ///
    /// let source = CancellationSource::new();
    /// let (tx, rx) = mpsc::unbounded::<&str>();
    /// tx.unbounded_send("tick").unwrap();
    /// tx.unbounded_send("stop").unwrap();
    /// tx.unbounded_send("never read").unwrap();
    ///
    /// let mut events = std::pin::pin!(rx.take_until_cancelled(source.token()));
    /// let seen = futures::executor::block_on(async {
    ///     let mut seen = Vec::new();
    ///     while let Some(event) = events.next().await {
    ///         seen.push(event);
    ///         if event == "stop" {
    ///             source.cancel(); // in a real program, another task
    ///         }
    ///     }
    ///     seen
    /// });
    /// assert_eq!(seen, ["tick", "stop"]);
    /// ```
    fn take_until_cancelled(self, token: CancellationToken) -> TakeUntilCancelled<Self> {
        TakeUntilCancelled {
            stream: self,
            waiter: Waiter::new(token),
            done: false,
        }
    }
}

impl<S: Stream> CancellationStreamExt for S {}

impl<S: Stream> Stream for TakeUntilCancelled<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let mut this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        let ended = if this.waiter.holder().is_cancelled() {
            true
        } else {
            match this.stream.poll_next(cx) {
                Poll::Ready(Some(item)) => return Poll::Ready(Some(item)),
                Poll::Ready(None) => true,
                Poll::Pending => this.waiter.as_mut().poll_cancelled(cx).is_ready(),
            }
        };
        if ended {
            // Ended: the waiter leaves the token's list now, so a later
            // cancellation wakes nobody for this stream.
            *this.done = true;
            this.waiter.release();
            return Poll::Ready(None);
        }
        Poll::Pending
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        if self.done {
            (0, Some(0))
        } else {
            (0, self.stream.size_hint().1)
        }
    }
}

/// Terminated once it has ended (cancelled, or the inner stream ended).
#[cfg_attr(docsrs, doc(cfg(feature = "stream")))]
impl<S: Stream> futures_core::stream::FusedStream for TakeUntilCancelled<S> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

impl<S> fmt::Debug for TakeUntilCancelled<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TakeUntilCancelled")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
