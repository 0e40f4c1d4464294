//! `DropGuard`: cancel a source when a scope ends, however it ends.

use core::fmt;

use crate::source::CancellationSource;
use crate::token::CancellationToken;

/// Cancels its source when dropped, including while unwinding from a panic.
/// Made by [`CancellationSource::drop_guard`].
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// {
///     let _guard = source.drop_guard();
/// }
/// assert!(token.is_cancelled());
/// ```
#[must_use = "dropping the guard cancels the source at once"]
pub struct DropGuard {
    source: Option<CancellationSource>,
}

impl CancellationSource {
    /// Turns this handle into a guard that cancels the source when dropped.
    ///
    /// Use it to tie the life of background work to an owner: keep the
    /// guard in the owner (a struct, a scope) and the work stops when the
    /// owner goes away, by return, by `?` or by panic. To guard a source
    /// you keep using elsewhere, see [`drop_guard_ref`](Self::drop_guard_ref).
    ///
    /// ```
    /// use cancel_core::{CancellationSource, CancellationToken, DropGuard};
    ///
    /// struct Service {
    ///     _stop_workers: DropGuard, // dropping the service stops its workers
    /// }
    ///
    /// fn start() -> (Service, CancellationToken) {
    ///     let source = CancellationSource::new();
    ///     let workers = source.token(); // what the workers would watch
    ///     (Service { _stop_workers: source.drop_guard() }, workers)
    /// }
    ///
    /// let (service, workers) = start();
    /// assert!(!workers.is_cancelled());
    /// drop(service);
    /// assert!(workers.is_cancelled());
    /// ```
    pub fn drop_guard(self) -> DropGuard {
        DropGuard { source: Some(self) }
    }
}

impl DropGuard {
    /// Gives the source back without cancelling it.
    ///
    /// Use it once the step the guard protected has succeeded: a set-up
    /// that cancels what it started if it fails half-way, and hands on the
    /// running work when it does not.
    ///
    /// ```
    /// use cancel_core::{CancellationSource, CancellationToken};
    ///
    /// fn start(fail: bool) -> Result<CancellationSource, &'static str> {
    ///     let guard = CancellationSource::new().drop_guard();
    ///     let _worker_token: CancellationToken = guard.token(); // given to a worker
    ///     if fail {
    ///         return Err("config missing"); // the guard cancels the worker
    ///     }
    ///     Ok(guard.disarm()) // success: the caller now owns the running work
    /// }
    ///
    /// let running = start(false).unwrap();
    /// assert!(!running.is_cancelled());
    /// assert!(start(true).is_err());
    /// ```
    pub fn disarm(mut self) -> CancellationSource {
        match self.source.take() {
            Some(source) => source,
            None => unreachable!("a DropGuard holds its source until dropped or disarmed"),
        }
    }

    /// A token of the guarded source, for the work the guard should stop.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let guard = CancellationSource::new().drop_guard();
    /// let token = guard.token();
    /// let worker = std::thread::spawn(move || {
    ///     while !token.is_cancelled() {
    ///         std::thread::yield_now();
    ///     }
    /// });
    /// drop(guard);
    /// worker.join().unwrap();
    /// ```
    pub fn token(&self) -> CancellationToken {
        match &self.source {
            Some(source) => source.token(),
            None => unreachable!("a DropGuard holds its source until dropped or disarmed"),
        }
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            cancel_on_drop(&source);
        }
    }
}

/// Cancels from a guard's drop. During an unwind a callback's panic would
/// abort the process (a panic during unwinding): the first panic is kept,
/// the cancel's is caught and its payload dropped under its own guard.
fn cancel_on_drop(source: &CancellationSource) {
    #[cfg(feature = "std")]
    if std::thread::panicking() {
        if let Err(payload) =
            std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| source.cancel()))
        {
            crate::unwind::drop_payload(payload);
        }
        return;
    }
    source.cancel();
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("source", &self.source)
            .finish()
    }
}

/// Cancels a borrowed source when dropped, including while unwinding from a
/// panic: the borrowed form of [`DropGuard`] (tokio-util's `DropGuardRef`),
/// for a scope that must cancel a source it does not own. Made by
/// [`CancellationSource::drop_guard_ref`].
///
/// ```
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// {
///     let _guard = source.drop_guard_ref();
///     // ... work that must not outlive the scope ...
/// }
/// assert!(source.is_cancelled());
///
/// let other = CancellationSource::new();
/// let guard = other.drop_guard_ref();
/// guard.disarm();
/// assert!(!other.is_cancelled());
/// ```
#[must_use = "dropping the guard cancels the source at once"]
pub struct DropGuardRef<'a> {
    source: Option<&'a CancellationSource>,
}

impl CancellationSource {
    /// A guard that cancels this source when dropped, borrowing it.
    ///
    /// Use it where the source lives on (in a struct, in a caller) but a
    /// scope must cancel it on every early exit: `?`, `return`, panic.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// fn transfer(stop: &CancellationSource, ok: bool) -> Result<(), &'static str> {
    ///     let guard = stop.drop_guard_ref();
    ///     if !ok {
    ///         return Err("write failed"); // stop the rest of the transfer
    ///     }
    ///     guard.disarm();
    ///     Ok(())
    /// }
    ///
    /// let stop = CancellationSource::new();
    /// transfer(&stop, true).unwrap();
    /// assert!(!stop.is_cancelled());
    /// transfer(&stop, false).unwrap_err();
    /// assert!(stop.is_cancelled());
    /// ```
    pub fn drop_guard_ref(&self) -> DropGuardRef<'_> {
        DropGuardRef { source: Some(self) }
    }
}

impl<'a> DropGuardRef<'a> {
    /// Lets go of the source without cancelling it, and gives back the
    /// borrow: for when the guarded scope ended well.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let guard = source.drop_guard_ref();
    /// // ... the step that must not be left half-done succeeded ...
    /// let source_again = guard.disarm();
    /// assert!(!source_again.is_cancelled());
    /// ```
    pub fn disarm(mut self) -> &'a CancellationSource {
        match self.source.take() {
            Some(source) => source,
            None => unreachable!("a DropGuardRef holds its source until dropped or disarmed"),
        }
    }
}

impl Drop for DropGuardRef<'_> {
    fn drop(&mut self) {
        if let Some(source) = self.source.take() {
            cancel_on_drop(source);
        }
    }
}

impl fmt::Debug for DropGuardRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuardRef")
            .field("source", &self.source)
            .finish()
    }
}
