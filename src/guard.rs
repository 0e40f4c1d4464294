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
    pub fn drop_guard(self) -> DropGuard {
        DropGuard { source: Some(self) }
    }
}

impl DropGuard {
    /// Gives the source back without cancelling it.
    pub fn disarm(mut self) -> CancellationSource {
        match self.source.take() {
            Some(source) => source,
            None => unreachable!("a DropGuard holds its source until dropped or disarmed"),
        }
    }

    /// A token of the guarded source.
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
    pub fn drop_guard_ref(&self) -> DropGuardRef<'_> {
        DropGuardRef { source: Some(self) }
    }
}

impl<'a> DropGuardRef<'a> {
    /// Lets go of the source without cancelling it.
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
