//! Callbacks that borrow from the stack, in a scope (`std`).

use core::fmt;

use crate::raw::{ScopeCore, run_scope};
use crate::token::CancellationToken;

/// Runs `f` with a scope in which callbacks may borrow local data, as C++'s
/// `stop_callback` captures references. Every callback still registered
/// when `f` returns (or unwinds) is unregistered then, waiting for one that
/// is running on another thread, so no callback runs after
/// `callback_scope` returns and none outlives what it borrows. Modelled on
/// [`std::thread::scope`], and sound the same way: forgetting a
/// [`ScopedRegistration`] with `mem::forget` only keeps the callback
/// registered until the scope ends.
///
/// Use it where a callback needs local state (a counter, a channel end, a
/// `&Condvar`) that would otherwise have to move into it or be shared
/// through an `Arc`, or that cannot be `'static` at all. Each callback
/// still takes one allocation, as with
/// [`register`](CancellationToken::register). Why a scope: a handle
/// that unregisters in its `Drop` cannot by itself make borrowing sound,
/// since `mem::forget` skips the drop; the scope's end is the one
/// unregistration that cannot be skipped.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use cancel_core::{CancellationSource, callback_scope};
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// let cancelled = AtomicUsize::new(0); // on the stack: no Arc
/// callback_scope(|scope| {
///     let _r = scope.register(&token, || {
///         cancelled.fetch_add(1, Ordering::SeqCst);
///     });
///     source.cancel();
/// });
/// assert_eq!(cancelled.load(Ordering::SeqCst), 1);
/// ```
///
/// A callback cannot borrow what dies before the scope ends (here, a local
/// of the scope's body):
///
/// ```compile_fail,E0373
/// use cancel_core::{CancellationSource, callback_scope};
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// callback_scope(|scope| {
///     let local = 1;
///     let _r = scope.register(&token, || assert_eq!(local, 1));
/// });
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub fn callback_scope<'env, T>(f: impl for<'scope> FnOnce(&CallbackScope<'scope, 'env>) -> T) -> T {
    run_scope(|core| f(&CallbackScope { core }))
}

/// A scope of borrowing callbacks; see [`callback_scope`], which makes it
/// and passes it to its closure by reference. Pass `&CallbackScope` on to
/// helper functions that register callbacks of their own.
///
/// ```
/// use std::sync::Mutex;
/// use cancel_core::{
///     CallbackScope, CancellationSource, CancellationToken, ScopedRegistration, callback_scope,
/// };
///
/// fn log_on_cancel<'scope>(
///     scope: &CallbackScope<'scope, '_>,
///     token: &CancellationToken,
///     log: &'scope Mutex<Vec<&'static str>>,
///     name: &'static str,
/// ) -> ScopedRegistration<'scope> {
///     scope.register(token, move || log.lock().unwrap().push(name))
/// }
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// let log = Mutex::new(Vec::new());
/// callback_scope(|scope| {
///     let _reader = log_on_cancel(scope, &token, &log, "reader");
///     let _writer = log_on_cancel(scope, &token, &log, "writer");
///     source.cancel();
/// });
/// assert_eq!(*log.lock().unwrap(), ["writer", "reader"]); // last registered, first run
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub struct CallbackScope<'scope, 'env: 'scope> {
    core: &'scope ScopeCore<'scope, 'env>,
}

impl<'scope, 'env> CallbackScope<'scope, 'env> {
    /// Registers `f` on `token` until the scope ends (or the returned
    /// handle is dropped or unregisters it), with the semantics of
    /// [`CancellationToken::register`]: it runs once, on the cancelling
    /// thread; if the token is already cancelled it runs here; if nothing
    /// can cancel the token it is dropped unrun. `f` may borrow anything
    /// that outlives the scope.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cancel_core::{CancellationSource, callback_scope};
    ///
    /// let source = CancellationSource::new();
    /// let stop_reading = AtomicBool::new(false); // borrowed, not shared by Arc
    /// callback_scope(|scope| {
    ///     let _r = scope.register(source.as_ref(), || stop_reading.store(true, Ordering::SeqCst));
    ///     source.cancel();
    ///     assert!(stop_reading.load(Ordering::SeqCst));
    /// });
    /// ```
    pub fn register<F: FnOnce() + Send + 'scope>(
        &self,
        token: &CancellationToken,
        f: F,
    ) -> ScopedRegistration<'scope> {
        let core: &'scope ScopeCore<'scope, 'env> = self.core;
        let index = core.register(token.state(), f);
        ScopedRegistration {
            core: Some(core_ref(core)),
            index,
        }
    }
}

/// The handle's view of a scope (without `'env`, which it does not need).
fn core_ref<'scope, 'env>(core: &'scope ScopeCore<'scope, 'env>) -> &'scope dyn ScopeEntries {
    core
}

/// What a handle does with its entry.
trait ScopeEntries {
    fn detach(&self, index: usize, wait: bool) -> bool;
    fn is_pending(&self, index: usize) -> bool;
}

impl ScopeEntries for ScopeCore<'_, '_> {
    fn detach(&self, index: usize, wait: bool) -> bool {
        ScopeCore::detach(self, index, wait)
    }
    fn is_pending(&self, index: usize) -> bool {
        ScopeCore::is_pending(self, index)
    }
}

/// A callback registered in a [`CallbackScope`]. Dropping it unregisters
/// the callback now (waiting for it if it runs on another thread);
/// otherwise the scope's end does.
///
/// Drop it to end a callback's watch before the scope ends (one step of
/// a longer scope); keep it to the end of the scope otherwise.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use cancel_core::{CancellationSource, callback_scope};
///
/// let source = CancellationSource::new();
/// let token = source.token();
/// let interrupted_steps = AtomicUsize::new(0);
/// callback_scope(|scope| {
///     for step in 0..3 {
///         let _watch = scope.register(&token, || {
///             interrupted_steps.fetch_add(1, Ordering::SeqCst);
///         });
///         if step == 2 {
///             source.cancel(); // only the running step's callback is registered
///         }
///     } // each step's `_watch` is dropped here: unregistered
/// });
/// assert_eq!(interrupted_steps.load(Ordering::SeqCst), 1);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
#[must_use = "dropping it unregisters the callback at once: bind it (`let _r = ...`)"]
pub struct ScopedRegistration<'scope> {
    core: Option<&'scope dyn ScopeEntries>,
    index: usize,
}

impl ScopedRegistration<'_> {
    /// Removes the callback without waiting; `true` iff it was removed
    /// before it started (as [`Registration::unregister`](crate::Registration::unregister)).
    /// Use it to learn whether the callback ran, or where waiting here
    /// could deadlock. A callback already running on another thread is not
    /// waited for here, but it is not let go either: the scope's end waits
    /// for it, since it may borrow what the scope's caller frees next.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cancel_core::{CancellationSource, callback_scope};
    ///
    /// let source = CancellationSource::new();
    /// let rolled_back = AtomicBool::new(false);
    /// callback_scope(|scope| {
    ///     let r = scope.register(source.as_ref(), || rolled_back.store(true, Ordering::SeqCst));
    ///     // ... the step finished before any cancellation ...
    ///     assert!(r.unregister(), "removed before it ran: nothing to undo");
    ///     source.cancel();
    /// });
    /// assert!(!rolled_back.load(Ordering::SeqCst));
    /// ```
    pub fn unregister(mut self) -> bool {
        match self.core.take() {
            Some(core) => core.detach(self.index, false),
            None => false,
        }
    }

    /// Whether the callback is registered and has not started (a
    /// snapshot, for diagnostics and tests).
    ///
    /// ```
    /// use cancel_core::{CancellationSource, callback_scope};
    ///
    /// let source = CancellationSource::new();
    /// let hits = std::sync::atomic::AtomicUsize::new(0);
    /// callback_scope(|scope| {
    ///     let r = scope.register(source.as_ref(), || {
    ///         hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ///     });
    ///     assert!(r.is_pending());
    ///     source.cancel();
    ///     assert!(!r.is_pending());
    /// });
    /// ```
    pub fn is_pending(&self) -> bool {
        self.core.is_some_and(|core| core.is_pending(self.index))
    }
}

impl Drop for ScopedRegistration<'_> {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            core.detach(self.index, true);
        }
    }
}

impl fmt::Debug for ScopedRegistration<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedRegistration")
            .field("is_pending", &self.is_pending())
            .finish()
    }
}

impl fmt::Debug for CallbackScope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackScope").finish_non_exhaustive()
    }
}
