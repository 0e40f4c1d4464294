//! The token traits: code written once against [`Token`] (and
//! [`CallbackToken`] for callbacks) takes any kind of token, the role of
//! C++26's `stoppable_token` concept.

use core::future::Future;
use core::pin::Pin;

use crate::future::WaitForCancellation;
use crate::inplace::InplaceToken;
use crate::reason::Cancelled;
use crate::token::CancellationToken;

/// Anything that observes a cancellation: generic code takes `&impl Token`
/// (or `T: Token`) and works with every kind of token, at the cost of that
/// kind.
///
/// Implemented by [`CancellationToken`], [`InplaceToken`],
/// [`NeverToken`](crate::NeverToken) (never cancelled: generic code over it
/// compiles to nothing) and, with feature `tokio-util`,
/// `tokio_util::sync::CancellationToken`; and by `&T` for each.
///
/// ```
/// use cancel_core::{Cancelled, InplaceSource, NeverToken, Token};
///
/// /// A library function: its callers pick the token.
/// fn sum_until_cancelled(token: &impl Token, items: &[u32]) -> Result<u32, Cancelled> {
///     let mut total = 0;
///     for item in items {
///         token.check()?;
///         total += item;
///     }
///     Ok(total)
/// }
///
/// assert_eq!(sum_until_cancelled(&NeverToken, &[1, 2, 3]), Ok(6));
/// let source = InplaceSource::new();
/// source.cancel();
/// assert!(sum_until_cancelled(&source.token(), &[1, 2, 3]).is_err());
/// let heap = cancel_core::CancellationSource::new();
/// assert_eq!(sum_until_cancelled(&heap.token(), &[4]), Ok(4));
/// ```
pub trait Token {
    /// The future of [`cancelled`](Self::cancelled).
    type Wait<'a>: Future<Output = ()>
    where
        Self: 'a;

    /// Whether cancellation has been requested.
    fn is_cancelled(&self) -> bool;

    /// Whether the token is, or may still become, cancelled; `false` lets
    /// code skip setting up cancellation work that could never fire.
    fn can_be_cancelled(&self) -> bool;

    /// `Err` with the reason once cancelled, for `?`.
    fn check(&self) -> Result<(), Cancelled>;

    /// A future that completes when the token is cancelled (and never, for
    /// a token that cannot be).
    fn cancelled(&self) -> Self::Wait<'_>;
}

/// A [`Token`] that takes pinned, allocation-free callbacks (implemented
/// for the crate's own tokens beside [`PinnedRegistration`](crate::PinnedRegistration),
/// their callback type). Not every kind
/// can: tokio-util's token has no callbacks.
///
/// ```
/// use std::pin::pin;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use cancel_core::{CallbackToken, InplaceSource, PinnedCallback};
///
/// static CLOSED: AtomicBool = AtomicBool::new(false);
///
/// fn serve(token: &impl CallbackToken) {
///     let mut on_cancel = pin!(token.callback(|| CLOSED.store(true, Ordering::SeqCst)));
///     on_cancel.as_mut().register();
///     // ... the work; the callback is unregistered when this returns
/// #   let _ = token.is_cancelled();
/// }
///
/// let source = InplaceSource::new();
/// source.cancel();
/// serve(&source.token()); // already cancelled: the callback ran at once
/// assert!(CLOSED.load(Ordering::SeqCst));
/// ```
pub trait CallbackToken: Token {
    /// The pinned registration [`callback`](Self::callback) makes.
    type Callback<'a, F>: PinnedCallback
    where
        Self: 'a,
        F: FnOnce() + Send + 'static;

    /// A registration of `f`, not linked yet: pin it and call
    /// [`register`](PinnedCallback::register). Dropping it unregisters.
    fn callback<F: FnOnce() + Send + 'static>(&self, f: F) -> Self::Callback<'_, F>;
}

/// A pinned callback registration of some [`CallbackToken`]; see
/// [`PinnedRegistration`](crate::PinnedRegistration) for the rules.
pub trait PinnedCallback {
    /// Links the callback (or runs it now if already cancelled); whether it
    /// is pending now.
    fn register(self: Pin<&mut Self>) -> bool;
    /// Removes it without waiting; `true` iff removed before it started.
    fn unregister(self: Pin<&mut Self>) -> bool;
    /// Whether it is registered and not taken by a cancellation yet.
    fn is_pending(&self) -> bool;
}

/// The tokens whose state is this crate's own, heap or in place: what a
/// [`PinnedRegistration`](crate::PinnedRegistration) attaches to. Sealed.
pub trait CoreToken: sealed::Sealed {}

pub(crate) mod sealed {
    /// Gives the core the token's state; not implementable outside.
    #[allow(private_bounds)]
    pub trait Sealed: crate::raw::HoldsState {}
}

impl sealed::Sealed for CancellationToken {}
impl CoreToken for CancellationToken {}
impl sealed::Sealed for InplaceToken<'_> {}
impl CoreToken for InplaceToken<'_> {}

impl Token for CancellationToken {
    type Wait<'a> = WaitForCancellation<'a>;

    #[inline]
    fn is_cancelled(&self) -> bool {
        CancellationToken::is_cancelled(self)
    }
    #[inline]
    fn can_be_cancelled(&self) -> bool {
        CancellationToken::can_be_cancelled(self)
    }
    #[inline]
    fn check(&self) -> Result<(), Cancelled> {
        CancellationToken::check(self)
    }
    fn cancelled(&self) -> WaitForCancellation<'_> {
        CancellationToken::cancelled(self)
    }
}

impl<'s> Token for InplaceToken<'s> {
    type Wait<'a>
        = WaitForCancellation<'s>
    where
        Self: 'a;

    #[inline]
    fn is_cancelled(&self) -> bool {
        InplaceToken::is_cancelled(self)
    }
    #[inline]
    fn can_be_cancelled(&self) -> bool {
        InplaceToken::can_be_cancelled(self)
    }
    #[inline]
    fn check(&self) -> Result<(), Cancelled> {
        InplaceToken::check(self)
    }
    fn cancelled(&self) -> WaitForCancellation<'s> {
        InplaceToken::cancelled(*self)
    }
}

impl<T: Token + ?Sized> Token for &T {
    type Wait<'a>
        = T::Wait<'a>
    where
        Self: 'a;

    #[inline]
    fn is_cancelled(&self) -> bool {
        T::is_cancelled(self)
    }
    #[inline]
    fn can_be_cancelled(&self) -> bool {
        T::can_be_cancelled(self)
    }
    #[inline]
    fn check(&self) -> Result<(), Cancelled> {
        T::check(self)
    }
    fn cancelled(&self) -> T::Wait<'_> {
        T::cancelled(self)
    }
}

impl<T: CallbackToken + ?Sized> CallbackToken for &T {
    type Callback<'a, F>
        = T::Callback<'a, F>
    where
        Self: 'a,
        F: FnOnce() + Send + 'static;

    fn callback<F: FnOnce() + Send + 'static>(&self, f: F) -> T::Callback<'_, F> {
        T::callback(self, f)
    }
}
