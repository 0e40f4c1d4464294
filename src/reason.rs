//! Why a source was cancelled, and the error type that carries it.

#[cfg(feature = "alloc")]
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
    #[cfg(feature = "alloc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
    Custom(Arc<dyn Error + Send + Sync>),
}

/// Where a cancellation came from: this source's own `cancel`, its own
/// timeout, or a parent it is linked to. [`CancelReason`] says why; this
/// says from where, so a child can tell "my own timeout fired" from "my
/// parent was cancelled" even when both say `TimedOut`.
///
/// ```
/// use std::time::Duration;
/// use cancel_core::{CancelOrigin, ManualClock};
///
/// let clock = ManualClock::new();
/// let server = clock.with_timeout(Duration::from_secs(10));
/// let request = server.child();
/// clock.cancel_after(&request, Duration::from_secs(30));
/// clock.advance(Duration::from_secs(10)); // the server's timeout, not the request's
///
/// assert!(request.reason().unwrap().is_timed_out());
/// assert_eq!(server.origin(), Some(CancelOrigin::Timeout));
/// assert_eq!(request.origin(), Some(CancelOrigin::Parent));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CancelOrigin {
    /// A `cancel`, `cancel_with` (or the like) call on this source.
    Cancel,
    /// This source's own timeout expired (its timer fired, or it was armed
    /// with a deadline already reached).
    Timeout,
    /// A parent this source is linked to was cancelled (the reason is the
    /// parent's).
    Parent,
}

impl CancelOrigin {
    pub(crate) fn from_raw(origin: crate::raw::Origin) -> Self {
        match origin {
            crate::raw::Origin::Cancel => CancelOrigin::Cancel,
            crate::raw::Origin::Timer => CancelOrigin::Timeout,
            crate::raw::Origin::Parent => CancelOrigin::Parent,
        }
    }

    /// Whether the cancellation came from a parent through a link.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    /// let parent = CancellationSource::new();
    /// let child = parent.child();
    /// parent.cancel();
    /// assert!(child.origin().unwrap().is_inherited());
    /// assert!(!parent.origin().unwrap().is_inherited());
    /// ```
    pub fn is_inherited(self) -> bool {
        self == CancelOrigin::Parent
    }
}

/// `Requested` and `TimedOut` equal themselves; two custom reasons are equal
/// when they hold the same cause (the one `cancel_with` call that a source
/// and its descendants share), compared by identity: an error need not be
/// `PartialEq`.
///
/// ```
/// use cancel_core::{CancelReason, CancellationSource};
///
/// let parent = CancellationSource::new();
/// let child = parent.child();
/// parent.cancel_with(std::fmt::Error);
/// assert_eq!(parent.reason(), child.reason(), "the child shares its parent's cause");
/// assert_ne!(parent.reason(), Some(CancelReason::Requested));
/// ```
impl PartialEq for CancelReason {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (CancelReason::Requested, CancelReason::Requested) => true,
            (CancelReason::TimedOut, CancelReason::TimedOut) => true,
            #[cfg(feature = "alloc")]
            (CancelReason::Custom(a), CancelReason::Custom(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for CancelReason {}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelReason::Requested => f.write_str("cancellation was requested"),
            CancelReason::TimedOut => f.write_str("the operation timed out"),
            #[cfg(feature = "alloc")]
            CancelReason::Custom(cause) => write!(f, "cancelled: {cause}"),
        }
    }
}

impl CancelReason {
    /// Whether `cancel()` was called (on the source or a parent): someone
    /// asked for the stop, as opposed to a timeout or a cause.
    ///
    /// ```
    /// let source = cancel_core::CancellationSource::new();
    /// source.cancel();
    /// assert!(source.reason().unwrap().is_requested());
    /// ```
    pub fn is_requested(&self) -> bool {
        matches!(self, CancelReason::Requested)
    }

    /// Whether a timeout or deadline expired: for code that retries, or
    /// reports "timed out", where a user's request would end quietly.
    ///
    /// ```
    /// let clock = cancel_core::ManualClock::new();
    /// let source = clock.with_timeout(std::time::Duration::from_secs(1));
    /// clock.advance(std::time::Duration::from_secs(1));
    /// assert!(source.reason().unwrap().is_timed_out());
    /// ```
    pub fn is_timed_out(&self) -> bool {
        matches!(self, CancelReason::TimedOut)
    }

    /// Whether `cancel_with(cause)` was called (on the source or a parent).
    ///
    /// Use it to route a cancellation that carries a cause of its own (to
    /// log it, or to return it as the error) apart from a plain request or
    /// a timeout; [`cause`](Self::cause) gives the cause.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// source.cancel_with(std::io::Error::other("client went away"));
    /// let reason = source.reason().unwrap();
    /// assert!(reason.is_custom());
    /// assert!(!reason.is_requested() && !reason.is_timed_out());
    /// ```
    pub fn is_custom(&self) -> bool {
        #[cfg(feature = "alloc")]
        return matches!(self, CancelReason::Custom(_));
        #[cfg(not(feature = "alloc"))]
        return false;
    }

    /// The cause given to `cancel_with`, if that is why: to log it, or to
    /// chain it into an error of your own.
    ///
    /// ```
    /// let source = cancel_core::CancellationSource::new();
    /// source.cancel_with(std::fmt::Error);
    /// assert_eq!(source.reason().unwrap().cause().unwrap().to_string(), std::fmt::Error.to_string());
    /// ```
    pub fn cause(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        match self {
            #[cfg(feature = "alloc")]
            CancelReason::Custom(cause) => Some(&**cause),
            _ => None,
        }
    }

    /// The cause given to `cancel_with`, if that is why and it is an `E`:
    /// for code that knows which error types its cancellers use, and acts
    /// on their fields.
    ///
    /// ```
    /// use std::io;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// source.cancel_with(io::Error::new(io::ErrorKind::ConnectionReset, "peer left"));
    /// let reason = source.reason().unwrap();
    /// let io_error = reason.downcast_cause::<io::Error>().unwrap();
    /// assert_eq!(io_error.kind(), io::ErrorKind::ConnectionReset);
    /// assert!(reason.downcast_cause::<std::fmt::Error>().is_none());
    /// ```
    pub fn downcast_cause<E: Error + 'static>(&self) -> Option<&E> {
        self.cause()?.downcast_ref::<E>()
    }

    /// The public form of the core's reason (the custom cause is shared,
    /// not copied).
    pub(crate) fn from_raw(reason: Reason) -> Self {
        match reason {
            Reason::Requested => CancelReason::Requested,
            Reason::TimedOut => CancelReason::TimedOut,
            #[cfg(feature = "alloc")]
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
    /// The error for an operation stopped by a cancellation with `reason`:
    /// for runtimes and libraries with futures of their own that report
    /// cancellation the way this crate's do.
    ///
    /// ```
    /// use cancel_core::{CancelReason, Cancelled};
    ///
    /// let err = Cancelled::new(CancelReason::TimedOut);
    /// assert!(err.reason().is_timed_out());
    /// ```
    pub fn new(reason: CancelReason) -> Self {
        Self { reason }
    }

    /// Why the operation was cancelled.
    ///
    /// ```
    /// let source = cancel_core::CancellationSource::new();
    /// source.cancel();
    /// assert!(source.token().check().unwrap_err().reason().is_requested());
    /// ```
    pub fn reason(&self) -> &CancelReason {
        &self.reason
    }

    /// The reason, by value: for mapping the error into one of your own
    /// without a clone.
    ///
    /// ```
    /// use cancel_core::{CancelReason, CancellationSource, Cancelled};
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum JobError {
    ///     TimedOut,
    ///     Stopped,
    /// }
    ///
    /// impl From<Cancelled> for JobError {
    ///     fn from(err: Cancelled) -> Self {
    ///         match err.into_reason() {
    ///             CancelReason::TimedOut => JobError::TimedOut,
    ///             _ => JobError::Stopped,
    ///         }
    ///     }
    /// }
    ///
    /// let source = CancellationSource::new();
    /// source.cancel();
    /// let err: JobError = source.token().check().unwrap_err().into();
    /// assert_eq!(err, JobError::Stopped);
    /// ```
    pub fn into_reason(self) -> CancelReason {
        self.reason
    }
}

/// Follows the error-chain convention of the Rust API guidelines: a custom
/// cause is the error's [`source`](Error::source), so it is not repeated in
/// the message.
///
/// ```
/// use std::error::Error;
/// use cancel_core::{CancelReason, Cancelled, CancellationSource};
///
/// assert_eq!(
///     Cancelled::new(CancelReason::TimedOut).to_string(),
///     "operation cancelled: the operation timed out"
/// );
/// let source = CancellationSource::new();
/// source.cancel_with(std::io::Error::other("disk full"));
/// let err = source.token().check().unwrap_err();
/// assert_eq!(err.to_string(), "operation cancelled");
/// assert_eq!(err.source().unwrap().to_string(), "disk full");
/// ```
impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            #[cfg(feature = "alloc")]
            CancelReason::Custom(_) => f.write_str("operation cancelled"),
            reason => write!(f, "operation cancelled: {reason}"),
        }
    }
}

/// Equal when their reasons are (see [`CancelReason`]'s `PartialEq`).
impl PartialEq for Cancelled {
    fn eq(&self, other: &Self) -> bool {
        self.reason == other.reason
    }
}

impl Eq for Cancelled {}

impl Error for Cancelled {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.reason {
            #[cfg(feature = "alloc")]
            CancelReason::Custom(cause) => Some(&**cause),
            _ => None,
        }
    }
}

/// I/O code retries on `Interrupted`, so cancellation must never map to it:
/// a timeout becomes `TimedOut`, anything else `Other`, with the `Cancelled`
/// error kept as the inner error.
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
impl From<Cancelled> for std::io::Error {
    fn from(err: Cancelled) -> Self {
        let kind = match err.reason {
            CancelReason::TimedOut => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, err)
    }
}
