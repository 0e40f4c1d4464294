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
/// Use it to log or report each failure of a shutdown, rather than only
/// the first; [`resume`](Self::resume) propagates the first panic as
/// [`cancel`](CancellationSource::cancel) would have.
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
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let _a = token.register(|| panic!("flush failed"));
    /// let _b = token.register(|| {}); // fine
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let panics = source.cancel_catching().unwrap_err();
    /// assert_eq!(panics.len(), 1);
    /// assert_eq!(panics.to_string(), "1 callback panicked during cancellation; the first: flush failed");
    /// ```
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Always `false`: a `CallbackPanics` holds at least one panic (it is
    /// only made when something panicked). Here for `len`'s sake.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let _r = source.token().register(|| panic!("boom"));
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let panics = source.cancel_catching().unwrap_err();
    /// assert!(!panics.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The panic payloads, in the order the panics happened: for a report
    /// that names every failure. The payload of a `panic!` with a message is
    /// a `&'static str` or a `String` (when the message is formatted at run
    /// time).
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let table = String::from("users");
    /// let _db = token.register(move || panic!("database: flush of {table} failed"));
    /// let _net = token.register(|| panic!("network: close failed"));
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let panics = source.cancel_catching().unwrap_err();
    /// let messages: Vec<String> = panics
    ///     .payloads()
    ///     .iter()
    ///     .map(|p| match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
    ///         (Some(s), _) => s.to_string(),
    ///         (_, Some(s)) => s.clone(),
    ///         _ => "?".to_string(),
    ///     })
    ///     .collect();
    /// // Last registered, first run.
    /// assert_eq!(messages, ["network: close failed", "database: flush of users failed"]);
    /// ```
    pub fn payloads(&self) -> &[Box<dyn Any + Send>] {
        &self.payloads
    }

    /// The panic payloads, in the order the panics happened, by value: to
    /// resume one of them yourself, or to send them elsewhere.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let _r = source.token().register(|| panic!("boom"));
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let payloads = source.cancel_catching().unwrap_err().into_payloads();
    /// let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
    ///     for payload in payloads {
    ///         std::panic::resume_unwind(payload);
    ///     }
    /// }));
    /// assert_eq!(resumed.unwrap_err().downcast_ref::<&str>(), Some(&"boom"));
    /// ```
    pub fn into_payloads(self) -> Vec<Box<dyn Any + Send>> {
        self.payloads
    }

    /// Resumes the first panic, as [`cancel`](CancellationSource::cancel)
    /// would have (the later payloads are dropped).
    ///
    /// Use it after logging every panic, to fail the way a plain `cancel()`
    /// fails.
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
    /// let mut log = Vec::new();
    /// log.push(panics.to_string());
    /// let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panics.resume()));
    /// assert_eq!(resumed.unwrap_err().downcast_ref::<&str>(), Some(&"second"));
    /// assert_eq!(log, ["2 callbacks panicked during cancellation; the first: second"]);
    /// ```
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
    ///
    /// Use it where a shutdown must go on and report every failure: a
    /// supervisor that logs each callback's panic, a test that checks them.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let _close = token.register(|| panic!("close failed"));
    /// let _flush = token.register(|| panic!("flush failed"));
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// match source.cancel_catching() {
    ///     Ok(performed) => println!("cancelled cleanly (by this call: {performed})"),
    ///     Err(panics) => {
    ///         for payload in panics.payloads() {
    ///             eprintln!("shutdown step failed: {:?}", payload.downcast_ref::<&str>());
    ///         }
    ///         assert_eq!(panics.len(), 2);
    ///     }
    /// }
    /// assert!(source.is_cancelled());
    /// assert_eq!(source.cancel_catching().ok(), Some(false), "nothing left to run");
    /// ```
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
