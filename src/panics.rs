//! `CallbackPanics`: every panic of one cancellation, for callers that
//! want them all (the role of .NET's `AggregateException` from
//! `Cancel(throwOnFirstException: false)`).

use std::any::Any;
use std::boxed::Box;
use std::fmt;
use std::vec::Vec;

use crate::source::CancellationSource;

/// Every panic raised by the callbacks and wakers of one cancellation, in
/// the order they happened. Returned by
/// [`CancellationSource::cancel_catching`].
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// let _a = token.register(|| panic!("first"));
/// let _b = token.register(|| panic!("second"));
/// # std::panic::set_hook(Box::new(|_| {}));
/// let panics = source.cancel_catching().unwrap_err();
/// assert_eq!(panics.len(), 2);
/// // Callbacks run in reverse order of registration: "second" ran first.
/// assert_eq!(panics.payloads()[0].downcast_ref::<&str>(), Some(&"second"));
/// assert!(source.is_cancelled());
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub struct CallbackPanics {
    payloads: Vec<Box<dyn Any + Send>>,
}

impl CallbackPanics {
    /// How many panics there were (at least one).
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Always `false`: a `CallbackPanics` holds at least one panic.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The panic payloads, in the order the panics happened.
    pub fn payloads(&self) -> &[Box<dyn Any + Send>] {
        &self.payloads
    }

    /// The panic payloads, in the order the panics happened.
    pub fn into_payloads(self) -> Vec<Box<dyn Any + Send>> {
        self.payloads
    }

    /// Resumes the first panic, as [`cancel`](CancellationSource::cancel)
    /// would have (the later payloads are dropped).
    pub fn resume(self) -> ! {
        let mut payloads = self.payloads.into_iter();
        let first = payloads.next().expect("a CallbackPanics holds a panic");
        payloads.for_each(crate::unwind::drop_payload);
        std::panic::resume_unwind(first)
    }
}

/// The message of a payload made by `panic!`, if it is one.
fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    match payload.downcast_ref::<&'static str>() {
        Some(s) => Some(s),
        None => payload
            .downcast_ref::<std::string::String>()
            .map(|s| s.as_str()),
    }
}

impl fmt::Display for CallbackPanics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.payloads.len();
        write!(
            f,
            "{n} callback{} panicked during cancellation",
            if n == 1 { "" } else { "s" }
        )?;
        if let Some(first) = self.payloads.first().and_then(|p| message(&**p)) {
            write!(f, "; the first: {first}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CallbackPanics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let messages: Vec<Option<&str>> = self.payloads.iter().map(|p| message(&**p)).collect();
        f.debug_struct("CallbackPanics")
            .field("messages", &messages)
            .finish()
    }
}

impl std::error::Error for CallbackPanics {}

impl CancellationSource {
    /// Cancels like [`cancel`](Self::cancel), but instead of resuming the
    /// first panic of a callback or waker, returns every one of them, in
    /// the order they happened: `Ok(performed)` when nothing panicked,
    /// `Err` otherwise (the cancellation was performed: the source and its
    /// descendants are cancelled and every other callback ran). For callers
    /// that must not lose any panic: .NET's `AggregateException`.
    ///
    /// Requires `std` (panics are caught with `catch_unwind`).
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn cancel_catching(&self) -> Result<bool, CallbackPanics> {
        let (performed, payloads) = self.state().cancel_catching(crate::raw::Reason::Requested);
        if payloads.is_empty() {
            Ok(performed)
        } else {
            Err(CallbackPanics { payloads })
        }
    }
}
