//! `PinnedRegistration`: the allocation-free callback registration, on any
//! token of this crate's own state (heap or in place).

use core::fmt;
use core::pin::Pin;

use pin_project_lite::pin_project;

use crate::inplace::InplaceToken;
use crate::raw::InlineCallback;
use crate::token::CancellationToken;
use crate::token_trait::{CallbackToken, CoreToken, PinnedCallback};

pin_project! {
    /// An allocation-free callback registration for callers that can pin it:
    /// the closure and the list node live inside this value (the role of
    /// C++'s in-place `std::stop_callback`). For runtimes and libraries that
    /// register a callback per operation and want no allocation for it.
    ///
    /// # Rules
    /// - Pin it (`std::pin::pin!`, `Box::pin`, or inside a pinned future),
    ///   then call [`register`](Self::register). Before `register` nothing is
    ///   linked and the closure cannot run.
    /// - It works on any token of this crate's own state ([`CoreToken`]):
    ///   a [`CancellationToken`] (owned) or an
    ///   [`InplaceToken`](crate::InplaceToken) (borrowing its source, which
    ///   then cannot move or drop while the registration lives).
    /// - Dropping it unregisters, with the guarantees of [`Registration`](crate::Registration):
    ///   if the callback is running on another thread the drop waits for it
    ///   to return; from inside its own callback (or any callback on the
    ///   cancelling thread) it returns at once.
    /// - Without `std` the crate cannot tell threads apart, so the drop of
    ///   a running registration always waits, spinning: do not drop one
    ///   from inside its own callback, nor from an interrupt handler that
    ///   may have preempted its callback (that wait never ends). `cancel`
    ///   itself is fine in an interrupt handler. Without `std` a callback's
    ///   panic also ends the cancellation's drain (nothing can catch it):
    ///   the callbacks and waiters after it are not run, so build firmware
    ///   with `panic = "abort"`; the panicked registration itself is
    ///   finished, and its drop returns.
    /// - Leaking it (`mem::forget` of a `Pin<Box<_>>`) is safe: the node stays
    ///   allocated and registered, like a leaked `Registration`. The closure
    ///   is `'static`, so it never borrows anything a leak could outlive.
    /// - Everything else is as for [`CancellationToken::register`]: it runs
    ///   once, on the cancelling thread, in LIFO order with the other
    ///   callbacks; registering on a cancelled token runs it inline.
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// let fired = Arc::new(AtomicBool::new(false));
    /// let f = fired.clone();
    /// let mut registration = pin!(PinnedRegistration::new(source.token(), move || {
    ///     f.store(true, Ordering::SeqCst);
    /// }));
    /// registration.as_mut().register();
    /// assert!(registration.is_pending());
    /// source.cancel();
    /// assert!(fired.load(Ordering::SeqCst));
    /// ```
    #[must_use = "a PinnedRegistration does nothing until pinned and registered"]
    pub struct PinnedRegistration<F, T = CancellationToken>
    where
        F: FnOnce(),
        F: Send,
        F: 'static,
        T: CoreToken,
    {
        #[pin]
        inner: InlineCallback<T, F>,
    }
}

impl<F: FnOnce() + Send + 'static, T: CoreToken> PinnedRegistration<F, T> {
    /// A registration of `f` on `token`, not linked yet: pin it and call
    /// [`register`](Self::register). Nothing is linked and `f` cannot run
    /// until then, so the value may still be moved (into a future's fields,
    /// say) before it is pinned.
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// let registration = PinnedRegistration::new(source.token(), || println!("cancelled"));
    /// let mut registration = pin!(registration); // moved, then pinned
    /// assert!(!registration.is_pending(), "not registered yet");
    /// assert!(registration.as_mut().register());
    /// ```
    pub fn new(token: T, f: F) -> Self {
        Self {
            inner: InlineCallback::new(token, f),
        }
    }

    /// Links the callback without allocating. If the token is already
    /// cancelled the callback runs now, before this returns; if it can never
    /// be cancelled nothing is linked. Returns whether the callback is now
    /// pending (as [`is_pending`](Self::is_pending) would). Calling it again
    /// does nothing but answer again.
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// source.cancel();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let r = ran.clone();
    /// let mut late = pin!(PinnedRegistration::new(source.token(), move || {
    ///     r.store(true, Ordering::SeqCst);
    /// }));
    /// assert!(!late.as_mut().register(), "already cancelled: it ran here, not pending");
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn register(self: Pin<&mut Self>) -> bool {
        self.project().inner.register()
    }

    /// Removes the callback without waiting; `true` iff it was removed
    /// before it started (see [`Registration::unregister`](crate::Registration::unregister)). If it is
    /// running on another thread, the drop waits for it to return.
    /// Afterwards the registration is not pending and `register` does
    /// nothing.
    ///
    /// Use it, like [`Registration::unregister`](crate::Registration::unregister), where the drop's wait
    /// could deadlock, or to learn whether the callback will never run.
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// let mut registration = pin!(PinnedRegistration::new(source.token(), || unreachable!()));
    /// registration.as_mut().register();
    /// assert!(registration.as_mut().unregister(), "removed before it ran");
    /// source.cancel();
    /// ```
    pub fn unregister(self: Pin<&mut Self>) -> bool {
        self.project().inner.detach(false)
    }

    /// Whether the callback is registered and has not been taken by a
    /// cancellation yet (a snapshot, for diagnostics and tests).
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// let mut registration = pin!(PinnedRegistration::new(source.token(), || {}));
    /// assert!(!registration.is_pending());
    /// registration.as_mut().register();
    /// assert!(registration.is_pending());
    /// source.cancel();
    /// assert!(!registration.is_pending());
    /// ```
    pub fn is_pending(&self) -> bool {
        self.inner.is_pending()
    }

    /// The token this registration observes (as [`Registration::token`](crate::Registration::token),
    /// but borrowed).
    ///
    /// ```
    /// use std::pin::pin;
    /// use cancel_core::{CancellationSource, PinnedRegistration};
    ///
    /// let source = CancellationSource::new();
    /// let registration = pin!(PinnedRegistration::new(source.token(), || {}));
    /// assert_eq!(*registration.token(), source.token());
    /// ```
    pub fn token(&self) -> &T {
        self.inner.holder()
    }
}

impl<F: FnOnce() + Send + 'static, T: CoreToken> PinnedCallback for PinnedRegistration<F, T> {
    fn register(self: Pin<&mut Self>) -> bool {
        PinnedRegistration::register(self)
    }
    fn unregister(self: Pin<&mut Self>) -> bool {
        PinnedRegistration::unregister(self)
    }
    fn is_pending(&self) -> bool {
        PinnedRegistration::is_pending(self)
    }
}

impl<F: FnOnce() + Send + 'static, T: CoreToken> fmt::Debug for PinnedRegistration<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PinnedRegistration")
            .field("is_pending", &self.is_pending())
            .finish_non_exhaustive()
    }
}

// The crate's own tokens take their callbacks as pinned registrations.

impl CallbackToken for CancellationToken {
    type Callback<'a, F>
        = PinnedRegistration<F>
    where
        F: FnOnce() + Send + 'static;

    fn callback<F: FnOnce() + Send + 'static>(&self, f: F) -> PinnedRegistration<F> {
        PinnedRegistration::new(self.clone(), f)
    }
}

impl<'s> CallbackToken for InplaceToken<'s> {
    type Callback<'a, F>
        = PinnedRegistration<F, InplaceToken<'s>>
    where
        Self: 'a,
        F: FnOnce() + Send + 'static;

    fn callback<F: FnOnce() + Send + 'static>(&self, f: F) -> PinnedRegistration<F, Self> {
        PinnedRegistration::new(*self, f)
    }
}
