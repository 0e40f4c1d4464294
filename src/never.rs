//! `NeverToken`: the token that is never cancelled, as a type (C++26's
//! `never_stop_token`). Generic code over it compiles to nothing.

use core::future::{Pending, pending};
use core::pin::Pin;

use crate::reason::Cancelled;
use crate::token_trait::{CallbackToken, PinnedCallback, Token};

/// A token that is never cancelled, known at compile time: zero-sized, and
/// every [`Token`] method is a constant, so a generic function
/// instantiated with it keeps none of its cancellation code. Pass it where
/// a caller has no cancellation to offer.
///
/// (`CancellationToken::none()` is the runtime counterpart: one type for
/// both, at the cost of one load per poll.)
///
/// ```
/// use cancel_core::{NeverToken, Token};
///
/// assert_eq!(size_of::<NeverToken>(), 0);
/// assert!(!NeverToken.is_cancelled());
/// assert!(!NeverToken.can_be_cancelled());
/// assert!(NeverToken.check().is_ok());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct NeverToken;

impl Token for NeverToken {
    type Wait<'a> = Pending<()>;

    #[inline(always)]
    fn is_cancelled(&self) -> bool {
        false
    }
    #[inline(always)]
    fn can_be_cancelled(&self) -> bool {
        false
    }
    #[inline(always)]
    fn check(&self) -> Result<(), Cancelled> {
        Ok(())
    }
    /// A future that never completes (and stores nothing).
    #[inline(always)]
    fn cancelled(&self) -> Pending<()> {
        pending()
    }
}

impl CallbackToken for NeverToken {
    type Callback<'a, F>
        = NeverCallback<F>
    where
        F: FnOnce() + Send + 'static;

    #[inline(always)]
    fn callback<F: FnOnce() + Send + 'static>(&self, f: F) -> NeverCallback<F> {
        NeverCallback { _f: f }
    }
}

/// The callback registration of a [`NeverToken`]: never linked, never run;
/// it keeps the closure and drops it unrun with itself.
#[derive(Debug)]
pub struct NeverCallback<F> {
    _f: F,
}

impl<F> PinnedCallback for NeverCallback<F> {
    #[inline(always)]
    fn register(self: Pin<&mut Self>) -> bool {
        false
    }
    #[inline(always)]
    fn unregister(self: Pin<&mut Self>) -> bool {
        false
    }
    #[inline(always)]
    fn is_pending(&self) -> bool {
        false
    }
}
