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
        let Some(source) = self.source.take() else {
            return;
        };
        #[cfg(feature = "std")]
        if std::thread::panicking() {
            // A callback panicking now would abort the process (a panic
            // during unwinding): keep the first panic, drop the second.
            // A payload whose `Drop` panics would abort here too: it is
            // dropped under its own guard.
            if let Err(payload) =
                std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| source.cancel()))
            {
                crate::unwind::drop_payload(payload);
            }
            return;
        }
        source.cancel();
    }
}

impl fmt::Debug for DropGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropGuard")
            .field("source", &self.source)
            .finish()
    }
}
