//! `Registration`: the RAII handle of a registered callback.

use core::fmt;
#[cfg(feature = "std")]
use core::pin::Pin;

use crate::raw::RawRegistration;
use crate::token::CancellationToken;

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
///
/// Keep it for as long as the callback should stay registered: in a named
/// variable for a scope, or in the struct whose resource the callback acts
/// on, so both go away together.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use cancel_core::{CancellationSource, CancellationToken, Registration};
///
/// struct Connection {
///     closed: Arc<AtomicBool>,
///     _on_cancel: Registration, // unregistered when the connection is dropped
/// }
///
/// impl Connection {
///     fn open(token: &CancellationToken) -> Self {
///         let closed = Arc::new(AtomicBool::new(false));
///         let c = closed.clone();
///         let _on_cancel = token.register(move || c.store(true, Ordering::SeqCst));
///         Connection { closed, _on_cancel }
///     }
/// }
///
/// let source = CancellationSource::new();
/// let conn = Connection::open(&source.token());
/// let dropped = Connection::open(&source.token());
/// drop(dropped); // its callback is gone with it
/// source.cancel();
/// assert!(conn.closed.load(Ordering::SeqCst));
/// ```
///
/// `let _ = token.register(..)` drops it at once, which unregisters the
/// callback (rustc warns):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// let source = cancel_core::CancellationSource::new();
/// source.token().register(|| println!("cancelled"));
/// ```
#[must_use = "dropping a Registration unregisters its callback at once: bind it to a named \
              variable (`let _reg = token.register(..);`), not to `_`"]
pub struct Registration {
    raw: RawRegistration,
}

impl CancellationToken {
    /// Runs `f` once when the source is cancelled, on the thread that calls
    /// `cancel()`, before `cancel()` returns. Callbacks run in reverse order
    /// of registration. If the token is already cancelled, `f` runs here,
    /// before `register` returns; if it can never be cancelled (see
    /// [`can_be_cancelled`](Self::can_be_cancelled)), `f` is dropped unrun.
    ///
    /// Dropping the returned [`Registration`] removes the callback, waiting
    /// for it to return if it is running on another thread. Keep callbacks
    /// short and non-blocking: they run on the canceller's thread.
    ///
    /// Use it to cancel what knows nothing of tokens: kill a child process,
    /// shut a socket down so a blocked `read` returns, wake a condition
    /// variable. For a callback that borrows local data, see
    /// `callback_scope` (`std`); for one without an allocation,
    /// `PinnedRegistration` (`std`).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let hits = Arc::new(AtomicUsize::new(0));
    /// let h = hits.clone();
    /// let registration = source.token().register(move || {
    ///     h.fetch_add(1, Ordering::SeqCst);
    /// });
    /// source.cancel();
    /// assert_eq!(hits.load(Ordering::SeqCst), 1);
    /// drop(registration);
    /// ```
    pub fn register<F: FnOnce() + Send + 'static>(&self, f: F) -> Registration {
        Registration::from_raw(self.state().register(f))
    }
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
    /// Use it instead of dropping where waiting could deadlock (a callback
    /// that unregisters another source's callback while both sources are
    /// cancelled at once), or where the answer matters: `true` is a
    /// promise that the callback never runs, so nothing it does needs
    /// undoing.
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
    /// For diagnostics and tests; to act on the answer, use the return
    /// value of [`unregister`](Self::unregister), which is not a snapshot.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let registration = source.token().register(|| {});
    /// assert!(registration.is_pending());
    /// source.cancel();
    /// assert!(!registration.is_pending());
    /// ```
    pub fn is_pending(&self) -> bool {
        self.raw.is_pending()
    }

    /// Removes the callback without blocking a thread (.NET's
    /// `CancellationTokenRegistration.DisposeAsync`): a future that resolves
    /// to `true` iff the callback was removed before it started. If the
    /// callback is running on another thread, the future completes once it
    /// has returned, like the drop's guarantee but awaited instead of
    /// parking the thread; from inside the callback itself (on the
    /// cancelling thread) it completes at once. Dropped before it completes,
    /// it lets go without waiting (as [`unregister`](Self::unregister)).
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let registration = source.token().register(|| unreachable!("removed first"));
    /// let removed = futures::executor::block_on(registration.unregister_async());
    /// assert!(removed);
    /// source.cancel();
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn unregister_async(self) -> Unregistering {
        Unregistering {
            inner: self.raw.unregister_async(),
        }
    }

    /// The token the callback was registered on (.NET's
    /// `CancellationTokenRegistration.Token`), also after it ran: for code
    /// that keeps registrations and needs to know what each one watches.
    ///
    /// ```
    /// use cancel_core::CancellationSource;
    ///
    /// let source = CancellationSource::new();
    /// let token = source.token();
    /// let registration = token.register(|| {});
    /// assert_eq!(registration.token(), token);
    /// ```
    pub fn token(&self) -> CancellationToken {
        CancellationToken::from_state(self.raw.state().clone())
    }
}

/// The future of [`Registration::unregister_async`]: `true` iff the
/// callback was removed before it started; completes once a callback running
/// on another thread has returned. `Unpin`.
///
/// ```
/// use std::sync::{Arc, Barrier};
/// use cancel_core::CancellationSource;
///
/// let source = CancellationSource::new();
/// let (started, finish) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
/// let (s, f) = (started.clone(), finish.clone());
/// let registration = source.token().register(move || {
///     s.wait();
///     f.wait();
/// });
/// let canceller = { let s = source.clone(); std::thread::spawn(move || s.cancel()) };
/// started.wait(); // the callback runs on the canceller's thread
/// let unregistering = registration.unregister_async();
/// finish.wait(); // let it return
/// assert!(!futures::executor::block_on(unregistering), "it ran");
/// assert!(canceller.join().unwrap());
/// ```
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
#[must_use = "futures do nothing unless polled; dropped, it unregisters without waiting"]
pub struct Unregistering {
    inner: crate::raw::UnregisterAsync,
}

#[cfg(feature = "std")]
impl core::future::Future for Unregistering {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<bool> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

#[cfg(feature = "std")]
impl fmt::Debug for Unregistering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unregistering").finish_non_exhaustive()
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("is_pending", &self.is_pending())
            .field("token", &self.token())
            .finish()
    }
}
