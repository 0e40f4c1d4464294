//! The reason as the core stores and propagates it: a kind (in the state
//! word, `word.rs`) and, for a custom cause, the cause behind a thin pointer
//! so that the state keeps one word for it and propagation to children
//! clones it (one atomic increment) instead of allocating.

#[cfg(feature = "alloc")]
use alloc::sync::Arc;
#[cfg(feature = "alloc")]
use core::error::Error;

use super::word::ReasonKind;

#[derive(Clone)]
pub(crate) enum Reason {
    Requested,
    TimedOut,
    /// Needs `alloc` (the cause is shared behind an `Arc`).
    #[cfg(feature = "alloc")]
    Custom(Arc<CustomCause>),
}

/// A custom cause: the user's error.
#[cfg(feature = "alloc")]
pub(crate) struct CustomCause(pub(crate) Arc<dyn Error + Send + Sync>);

impl Reason {
    #[inline]
    pub(crate) fn kind(&self) -> ReasonKind {
        match self {
            Reason::Requested => ReasonKind::Requested,
            Reason::TimedOut => ReasonKind::TimedOut,
            #[cfg(feature = "alloc")]
            Reason::Custom(_) => ReasonKind::Custom,
        }
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn custom<E: Error + Send + Sync + 'static>(cause: E) -> Self {
        Reason::Custom(Arc::new(CustomCause(Arc::new(cause))))
    }

    /// The custom cause, if this is one.
    #[cfg(feature = "alloc")]
    pub(crate) fn into_cause(self) -> Option<Arc<CustomCause>> {
        match self {
            Reason::Custom(cause) => Some(cause),
            _ => None,
        }
    }
}
