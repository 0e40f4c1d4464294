//! `InplaceSource` and `InplaceToken`: a source whose state lives inside the
//! caller's own value (a `static`, a runtime's task or operation struct)
//! instead of on the heap, observed through borrowed tokens. The role of
//! C++26's `inplace_stop_source` / `inplace_stop_token`.

use core::fmt;
use core::future::Future;
use core::hash::{Hash, Hasher};

use crate::future::{RunUntilCancelled, WaitForCancellation};
#[cfg(feature = "alloc")]
use core::pin::Pin;

#[cfg(feature = "alloc")]
use crate::raw::InplaceChildState;
use crate::raw::{HoldsState, InplaceState, Reason, StateRef, StateView, Waiter};
use crate::reason::{CancelOrigin, CancelReason, Cancelled};
#[cfg(feature = "alloc")]
use crate::token::CancellationToken;
use crate::token::cancelled_error;

/// A cancellation source that lives where you put it: in a `static`, on the
/// stack, or inside your own struct. It needs no allocator, ever: the same
/// state word and observer list as a [`CancellationSource`](crate::CancellationSource)'s,
/// inline (32 bytes on 64-bit targets).
///
/// Its tokens ([`InplaceToken`]) borrow it, and so does everything that
/// observes it (futures, [`PinnedRegistration`](crate::PinnedRegistration)s),
/// so the borrow checker keeps it from moving or being dropped while
/// anything observes it. That is the trade against the heap source: no
/// counted handles, no `'static` tokens to send anywhere, no linked
/// children of its own (see [`InplaceToken`] for how to link).
///
/// Everything else works as on the heap source, with the same cost:
/// polling is one load, callbacks run in LIFO order on the cancelling
/// thread, futures wake, blocked threads return (`std`).
///
/// **Dropping it.** Its drop waits for a clock's fire that is cancelling
/// it on another thread to finish (the fire holds it meanwhile). So do not
/// drop it from inside its own timeout's cancellation, that is from a
/// callback or a waker that fire runs (an `Arc`-held source whose task,
/// woken inline, drops the last handle): with `std` that aborts the
/// process with a message saying so; without `std` it never returns. A
/// heap [`CancellationSource`](crate::CancellationSource) may be dropped
/// anywhere.
///
/// ```
/// use cancel_core::InplaceSource;
///
/// static SHUTDOWN: InplaceSource = InplaceSource::new();
///
/// let token = SHUTDOWN.token(); // InplaceToken<'static>, Copy
/// assert!(!token.is_cancelled());
/// assert!(SHUTDOWN.cancel());
/// assert!(token.check().is_err());
/// ```
///
/// A source that is still observed cannot be moved or dropped:
///
/// ```compile_fail,E0505
/// use cancel_core::InplaceSource;
///
/// let source = InplaceSource::new();
/// let token = source.token();
/// let moved = source; // error: cannot move out of `source` while borrowed
/// token.is_cancelled();
/// # drop(moved);
/// ```
///
/// ```compile_fail,E0505
/// use cancel_core::InplaceSource;
///
/// let source = InplaceSource::new();
/// let waiting = source.token().cancelled();
/// drop(source); // error: cannot move out of `source` while borrowed
/// # drop(waiting);
/// ```
pub struct InplaceSource {
    /// `!Unpin` (so `Pin<&InplaceSource>`, which a clock's timeout takes
    /// to keep the address, means something).
    state: InplaceState,
}

impl InplaceSource {
    /// A new source, not cancelled. A `const fn`: it makes `static`s, and
    /// it never allocates.
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// struct Operation {
    ///     stop: InplaceSource, // the runtime's own struct holds the state
    ///     id: u32,
    /// }
    /// let op = Operation { stop: InplaceSource::new(), id: 7 };
    /// assert!(!op.stop.token().is_cancelled());
    /// # let _ = op.id;
    /// ```
    #[cfg(not(loom))]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: InplaceState::new(),
        }
    }

    /// A new source (under loom, whose atomics are not `const`).
    #[cfg(loom)]
    #[must_use]
    pub fn new() -> Self {
        Self {
            state: InplaceState::new(),
        }
    }

    /// A token of this source, borrowing it: `Copy`, one pointer.
    ///
    /// A token cannot outlive its source:
    ///
    /// ```compile_fail,E0597
    /// use cancel_core::{InplaceSource, InplaceToken};
    ///
    /// let token: InplaceToken<'_>;
    /// {
    ///     let source = InplaceSource::new();
    ///     token = source.token(); // error: `source` does not live long enough
    /// }
    /// token.is_cancelled();
    /// ```
    #[inline]
    pub fn token(&self) -> InplaceToken<'_> {
        InplaceToken {
            view: self.state.view(),
        }
    }

    /// Cancels the source with reason [`CancelReason::Requested`]; `true`
    /// only for the call that made the transition. As
    /// [`CancellationSource::cancel`](crate::CancellationSource::cancel):
    /// every callback has run and every waiter is woken before it returns.
    /// It allocates nothing (with a timeout armed, it frees that timeout's
    /// node), and it may be called from an interrupt handler (with feature
    /// `critical-section` on a single-core chip, so that the handler cannot
    /// preempt a hold of the source's lock).
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// let source = InplaceSource::new();
    /// assert!(source.cancel());
    /// assert!(!source.cancel(), "already cancelled");
    /// ```
    #[inline]
    pub fn cancel(&self) -> bool {
        self.state.cancel(Reason::Requested)
    }

    /// Cancels with a custom cause (as
    /// [`CancellationSource::cancel_with`](crate::CancellationSource::cancel_with)),
    /// which is boxed: the one operation of an in-place source that
    /// allocates.
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// let source = InplaceSource::new();
    /// source.cancel_with(std::io::Error::other("disk full"));
    /// assert_eq!(source.token().reason().unwrap().to_string(), "cancelled: disk full");
    /// ```
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    pub fn cancel_with<E>(&self, cause: E) -> bool
    where
        E: core::error::Error + Send + Sync + 'static,
    {
        self.state.cancel(Reason::custom(cause))
    }

    /// Disarms the timeout armed on this source (with a clock's
    /// `cancel_after`, which takes the source pinned); whether one was
    /// armed.
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::time::Duration;
    /// use cancel_core::{InplaceSource, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let source = pin!(InplaceSource::new());
    /// clock.cancel_after(source.as_ref(), Duration::from_secs(1));
    /// assert!(source.disarm());
    /// clock.advance(Duration::from_secs(1));
    /// assert!(!source.is_cancelled());
    /// ```
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    pub fn disarm(&self) -> bool {
        self.state.disarm_timeout()
    }

    /// The core's state, for the clocks.
    #[cfg(feature = "alloc")]
    pub(crate) fn raw(&self) -> &InplaceState {
        &self.state
    }

    /// Whether the source has been cancelled (one `Acquire` load).
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.token().is_cancelled()
    }

    /// A future that completes when the source is cancelled; see
    /// [`InplaceToken::cancelled`].
    pub fn cancelled(&self) -> WaitForCancellation<'_> {
        self.token().cancelled()
    }
}

impl Default for InplaceSource {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for InplaceSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InplaceSource")
            .field("is_cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// A token of an [`InplaceSource`]: `Copy`, one pointer, and valid for as
/// long as the source is borrowed (`'a`). It observes the source as a
/// [`CancellationToken`](crate::CancellationToken) observes its own: by
/// polling, with [`check`](Self::check), with futures, with pinned
/// callbacks ([`PinnedRegistration`](crate::PinnedRegistration)), and with
/// blocking waits (`std`). None of it allocates.
///
/// **Links.** Where lifetimes allow, both ways:
/// - an in-place child of a heap parent is an [`InplaceChild`]: a real
///   link in the parent's list, so the parent's `cancel()` reaches it
///   with its reason (origin [`Parent`](CancelOrigin::Parent)) before
///   returning, like a heap child; the link holds a counted reference to
///   the parent, and the child unlinks itself when dropped;
/// - a heap source (or any source) cancelled by an in-place parent is a
///   [`PinnedRegistration`](crate::PinnedRegistration) on the in-place
///   token whose closure cancels it: an in-place state cannot be counted,
///   so no heap child may hold a link (a reference) to it, and the
///   registration's borrow is what keeps the parent alive.
///
/// ```
/// use std::pin::pin;
/// use cancel_core::{CancellationSource, InplaceSource, PinnedRegistration};
///
/// let inplace = InplaceSource::new(); // an in-place parent...
/// let heap_child = CancellationSource::new(); // ...of a heap source
/// let child = heap_child.clone();
/// let mut link = pin!(PinnedRegistration::new(inplace.token(), move || {
///     child.cancel();
/// }));
/// link.as_mut().register();
/// inplace.cancel();
/// assert!(heap_child.is_cancelled());
/// ```
#[derive(Clone, Copy)]
pub struct InplaceToken<'a> {
    view: StateView<'a>,
}

impl<'a> InplaceToken<'a> {
    /// Whether the source has been cancelled: one `Acquire` load, the same
    /// instructions as [`CancellationToken::is_cancelled`](crate::CancellationToken::is_cancelled).
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.view.get().is_cancelled()
    }

    /// Whether the token is, or may still become, cancelled. Always `true`:
    /// its source is alive for as long as the token is, and it can cancel.
    #[inline]
    pub fn can_be_cancelled(&self) -> bool {
        true
    }

    /// `Err` with the reason once cancelled (as
    /// [`CancellationToken::check`](crate::CancellationToken::check)).
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// fn step(token: cancel_core::InplaceToken<'_>) -> Result<u32, cancel_core::Cancelled> {
    ///     token.check()?;
    ///     Ok(1)
    /// }
    /// let source = InplaceSource::new();
    /// assert_eq!(step(source.token()).unwrap(), 1);
    /// source.cancel();
    /// assert!(step(source.token()).unwrap_err().reason().is_requested());
    /// ```
    #[inline]
    pub fn check(&self) -> Result<(), Cancelled> {
        if self.is_cancelled() {
            Err(cancelled_error(self.view.as_state_ref()))
        } else {
            Ok(())
        }
    }

    /// Why the source was cancelled; `None` while it is not.
    pub fn reason(&self) -> Option<CancelReason> {
        self.view.get().reason().map(CancelReason::from_raw)
    }

    /// Where the cancellation came from; `None` while not cancelled.
    pub fn origin(&self) -> Option<CancelOrigin> {
        self.view.get().origin().map(CancelOrigin::from_raw)
    }

    /// A future that completes when the source is cancelled: the same
    /// [`WaitForCancellation`] as a heap token's, borrowing the source.
    /// Creating, polling and dropping it allocates nothing.
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// let source = InplaceSource::new();
    /// let token = source.token();
    /// std::thread::scope(|s| {
    ///     s.spawn(|| futures::executor::block_on(token.cancelled()));
    ///     source.cancel();
    /// });
    /// ```
    pub fn cancelled(self) -> WaitForCancellation<'a> {
        WaitForCancellation::from_waiter(Waiter::new(self.view))
    }

    /// Runs `future` until it completes or the source is cancelled (see
    /// [`CancellationToken::run_until_cancelled`](crate::CancellationToken::run_until_cancelled)).
    ///
    /// ```
    /// use cancel_core::InplaceSource;
    ///
    /// let source = InplaceSource::new();
    /// let out = futures::executor::block_on(source.token().run_until_cancelled(async { 7 }));
    /// assert_eq!(out.unwrap(), 7);
    /// ```
    pub fn run_until_cancelled<F: Future>(self, future: F) -> RunUntilCancelled<'a, F> {
        RunUntilCancelled::from_waiter(future, Waiter::new(self.view))
    }

    /// Blocks the thread until the source is cancelled (`std`).
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait(&self) {
        self.view.as_state_ref().wait(None);
    }

    /// Blocks until cancelled or `timeout` passes; `true` if cancelled
    /// (`std`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::InplaceSource;
    ///
    /// let source = InplaceSource::new();
    /// assert!(!source.token().wait_timeout(Duration::from_millis(1)));
    /// source.cancel();
    /// assert!(source.token().wait_timeout(Duration::from_secs(60)));
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> bool {
        self.view
            .as_state_ref()
            .wait(std::time::Instant::now().checked_add(timeout))
    }

    /// Blocks until cancelled or `deadline`; `true` if cancelled (`std`).
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn wait_deadline(&self, deadline: std::time::Instant) -> bool {
        self.view.as_state_ref().wait(Some(deadline))
    }
}

impl HoldsState for InplaceToken<'_> {
    #[inline(always)]
    fn state(&self) -> &StateRef {
        self.view.as_state_ref()
    }
}

impl PartialEq for InplaceToken<'_> {
    /// Tokens of the same source are equal.
    fn eq(&self, other: &Self) -> bool {
        self.view.addr() == other.view.addr()
    }
}

impl Eq for InplaceToken<'_> {}

impl Hash for InplaceToken<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.view.addr().hash(state);
    }
}

impl fmt::Debug for InplaceToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InplaceToken")
            .field("is_cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "alloc")]
pin_project_lite::pin_project! {
    /// An in-place source linked to a heap parent: cancelled when the parent
    /// is (before the parent's `cancel()` returns, with the parent's reason and
    /// origin [`Parent`](CancelOrigin::Parent)), and by its own
    /// [`cancel`](Self::cancel), which never reaches the parent. The link is
    /// the one a heap child has, in the parent's list, inside this value: no
    /// allocation. For a runtime's operation that lives inside a pinned task
    /// and stops with the runtime's shutdown token.
    ///
    /// It is used pinned (`pin!`, `Box::pin`, a field of a pinned future):
    /// the parent's list points into it. It links itself at its first use
    /// (`token`, `cancel`, `is_cancelled`, `cancelled`); its drop unlinks it,
    /// after waiting for a parent's `cancel()` that is working on it on
    /// another thread. It holds a counted reference to the parent (a token
    /// clone's worth) until then. 64 bytes on 64-bit targets: a state and a
    /// link, like a heap child's allocation.
    ///
    /// So do not drop it from inside its parent's cancellation (a callback
    /// or a waker that the parent's `cancel()` runs while it works on this
    /// child): with `std` that aborts the process with a message saying so;
    /// without `std` it never returns.
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancelOrigin, CancellationSource, InplaceChild};
    ///
    /// let shutdown = CancellationSource::new();
    /// let op = pin!(InplaceChild::new(&shutdown.token()));
    /// let token = op.as_ref().token();
    /// assert!(!token.is_cancelled());
    /// shutdown.cancel();
    /// assert!(token.is_cancelled());
    /// assert_eq!(token.origin(), Some(CancelOrigin::Parent));
    /// ```
    ///
    /// A child's own cancel stays its own:
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancellationSource, InplaceChild};
    ///
    /// let shutdown = CancellationSource::new();
    /// let op = pin!(InplaceChild::new(&shutdown.token()));
    /// assert!(op.as_ref().cancel());
    /// assert!(!shutdown.is_cancelled());
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    pub struct InplaceChild {
        #[pin]
        state: InplaceChildState,
    }
}

#[cfg(feature = "alloc")]
impl InplaceChild {
    /// A child of `parent`, not linked until its first use (pinned). A
    /// child of [`CancellationToken::none()`] is a plain in-place source;
    /// one of a cancelled parent is cancelled at its first use.
    pub fn new(parent: &CancellationToken) -> Self {
        Self {
            state: InplaceChildState::new(parent.state()),
        }
    }

    fn state(self: Pin<&Self>) -> Pin<&InplaceChildState> {
        self.project_ref().state
    }

    /// A token of this child, borrowing it (linked first).
    pub fn token(self: Pin<&Self>) -> InplaceToken<'_> {
        InplaceToken {
            view: self.state().view(),
        }
    }

    /// Cancels the child (and its observers), never the parent; `true` for
    /// the call that made the transition.
    pub fn cancel(self: Pin<&Self>) -> bool {
        let view = self.state().view();
        view.as_state_ref().cancel(Reason::Requested)
    }

    /// Whether the child is cancelled, by itself or by its parent.
    pub fn is_cancelled(self: Pin<&Self>) -> bool {
        self.token().is_cancelled()
    }

    /// A future that completes when the child is cancelled.
    pub fn cancelled(self: Pin<&Self>) -> WaitForCancellation<'_> {
        self.token().cancelled()
    }
}

#[cfg(feature = "alloc")]
impl fmt::Debug for InplaceChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InplaceChild").finish_non_exhaustive()
    }
}
