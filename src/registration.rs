//! `Registration`: the RAII handle of a registered callback.

use core::fmt;

use crate::state::RawRegistration;

/// Keeps a callback registered. Dropping it removes the callback; returned
/// by [`CancellationToken::register`](crate::CancellationToken::register).
///
/// Dropping guarantees that afterwards the callback is neither running nor
/// will run: if it is running on another thread at that moment, the drop
/// waits for it to return (spinning briefly, then parking the thread).
/// A drop from inside the callback itself, or from any callback running on
/// the cancelling thread, returns at once instead of deadlocking.
///
/// Without the `std` feature the crate cannot tell threads apart, so a drop
/// never waits: it behaves like [`unregister`](Self::unregister).
///
/// Two callbacks on different sources that each drop the other's
/// registration while both sources are cancelled on two threads wait for
/// each other forever, as with .NET's `CancellationTokenRegistration.Dispose`;
/// use [`unregister`](Self::unregister) there.
#[must_use = "dropping the Registration unregisters the callback at once"]
pub struct Registration {
    raw: RawRegistration,
}

impl Registration {
    pub(crate) fn from_raw(raw: RawRegistration) -> Self {
        Self { raw }
    }

    /// Removes the callback without waiting. Returns `true` if it was removed
    /// before it started (it will never run), `false` if it has run, is
    /// running, or was never stored (registered on a cancelled or
    /// never-cancellable token).
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let registration = source.token().register(|| unreachable!());
    /// assert!(registration.unregister());
    /// source.cancel();
    /// ```
    pub fn unregister(self) -> bool {
        self.raw.unregister()
    }

    /// Whether the callback is still waiting for cancellation (registered
    /// and not started). A snapshot: cancellation may start right after.
    pub fn is_pending(&self) -> bool {
        self.raw.is_pending()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("is_pending", &self.is_pending())
            .finish()
    }
}
