//! Why a source was cancelled, and the error type that carries it.

use alloc::sync::Arc;
use core::error::Error;
use core::fmt;

use crate::raw::Reason;

/// Why a source was cancelled.
///
/// The first cancellation of a source fixes its reason; a linked child takes
/// the reason of the parent that cancelled it.
///
/// ```
/// use cancel_core::{CancelReason, CancellationSource};
///
/// let source = CancellationSource::new();
/// assert!(source.token().reason().is_none());
/// source.cancel();
/// assert!(matches!(source.token().reason(), Some(CancelReason::Requested)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CancelReason {
    /// `cancel()` was called (on this source or on a parent).
    Requested,
    /// A timeout or deadline expired.
    TimedOut,
    /// `cancel_with(cause)` was called with this cause.
    Custom(Arc<dyn Error + Send + Sync>),
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Requested => f.write_str("cancellation was requested"),
            CancelReason::TimedOut => f.write_str("the operation timed out"),
            CancelReason::Custom(cause) => write!(f, "cancelled: {cause}"),
        }
    }
}

impl CancelReason {
    /// The public form of the core's reason (the custom cause is shared,
    /// not copied).
    pub(crate) fn from_raw(reason: Reason) -> Self {
        match reason {
            Reason::Requested => CancelReason::Requested,
            Reason::TimedOut => CancelReason::TimedOut,
            Reason::Custom(cause) => CancelReason::Custom(cause.0.clone()),
        }
    }
}

/// The error returned by [`CancellationToken::check`](crate::CancellationToken::check)
/// and by futures cut short by cancellation. Use it with `?` to leave an
/// operation as soon as it has been cancelled.
///
/// ```
/// use cancel_core::{CancellationSource, Cancelled, CancellationToken};
///
/// fn work(token: &CancellationToken) -> Result<u32, Cancelled> {
///     let mut sum = 0;
///     for i in 0..1_000 {
///         if i % 100 == 0 {
///             token.check()?;
///         }
///         sum += i;
///     }
///     Ok(sum)
/// }
///
/// let source = CancellationSource::new();
/// assert!(work(&source.token()).is_ok());
/// source.cancel();
/// let err = work(&source.token()).unwrap_err();
/// assert_eq!(err.to_string(), "operation cancelled: cancellation was requested");
/// ```
#[derive(Clone, Debug)]
pub struct Cancelled {
    reason: CancelReason,
}

impl Cancelled {
    pub(crate) fn new(reason: CancelReason) -> Self {
        Self { reason }
    }

    /// Why the operation was cancelled.
    pub fn reason(&self) -> &CancelReason {
        &self.reason
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "operation cancelled: {}", self.reason)
    }
}

impl Error for Cancelled {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.reason {
            CancelReason::Custom(cause) => Some(&**cause),
            _ => None,
        }
    }
}

/// I/O code retries on `Interrupted`, so cancellation must never map to it:
/// a timeout becomes `TimedOut`, anything else `Other`, with the `Cancelled`
/// error kept as the inner error.
#[cfg(feature = "std")]
impl From<Cancelled> for std::io::Error {
    fn from(err: Cancelled) -> Self {
        let kind = match err.reason {
            CancelReason::TimedOut => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}
