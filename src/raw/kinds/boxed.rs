//! The boxed callback, owned by a `Registration`: its node is one
//! allocation made by `register`, freed by the registration (or, orphaned,
//! by the canceller). Its attach and detach are the callback protocol's
//! (`callback/`); this file is the owner's side: registering, and
//! letting go, synchronously or as a future (`unregister_async`: .NET's
//! `CancellationTokenRegistration.DisposeAsync`).

#[cfg(feature = "std")]
use core::future::Future;
#[cfg(feature = "std")]
use core::pin::Pin;
use core::ptr::NonNull;
#[cfg(feature = "std")]
use core::task::{Context, Poll};

use super::callback::{self, CallbackHeader, Detached};
use super::link;
use crate::raw::lifetime::StateRef;

/// A boxed callback node's owner: the core of `Registration`.
pub(crate) struct RawRegistration {
    state: StateRef,
    node: Option<NonNull<CallbackHeader>>,
}

// SAFETY: the node is reached only under the state's lock or after the
// canceller is done with it; the closure is `Send`.
unsafe impl Send for RawRegistration {}
// SAFETY: `&RawRegistration` exposes nothing that touches the node.
unsafe impl Sync for RawRegistration {}

/// Registers `f` on `state`; see `CancellationToken::register`. Runs it here
/// if the state is cancelled; drops it unrun (storing nothing) if nothing
/// can cancel the state. The registration keeps a reference to the state
/// either way (`Registration::token`).
pub(crate) fn register<F: FnOnce() + Send + 'static>(state: &StateRef, f: F) -> RawRegistration {
    // SAFETY: `f` borrows nothing (`'static`): no drop order to keep.
    unsafe { register_borrowing(state, f) }
}

/// `register` for a closure that may borrow.
///
/// # Safety
/// The returned registration is dropped (which detaches the callback,
/// waiting for it if it runs on another thread) before anything `f`
/// borrows is gone. `mem::forget` of it would break that: the caller owns
/// it where nobody can forget it (`scoped.rs`).
pub(crate) unsafe fn register_borrowing<F: FnOnce() + Send>(
    state: &StateRef,
    f: F,
) -> RawRegistration {
    if state.get().is_cancelled() {
        f();
        return RawRegistration::finished(state);
    }
    // SAFETY: we hold a reference.
    if !unsafe { link::can_be_cancelled(state.ptr()) } {
        drop(f);
        return RawRegistration::finished(state);
    }
    let cb = CallbackHeader::alloc(f);
    // SAFETY: the node is new and ours; it stays allocated until the
    // registration frees it (or hands it to the canceller).
    if unsafe { state.get().attach(CallbackHeader::node(cb), || {}) } {
        return RawRegistration {
            state: state.clone(),
            node: Some(cb),
        };
    }
    // Cancelled since the check: run inline, like any late register. The
    // node is freed even if the closure panics.
    // SAFETY: the node was never published; the closure is ours.
    unsafe { CallbackHeader::call_then_free(cb) };
    RawRegistration::finished(state)
}

impl RawRegistration {
    /// A registration with nothing stored (its callback ran inline, or was
    /// dropped: nothing could cancel the state).
    fn finished(state: &StateRef) -> Self {
        Self {
            state: state.clone(),
            node: None,
        }
    }

    /// The state it was registered on.
    pub(crate) fn state(&self) -> &StateRef {
        &self.state
    }

    /// Removes the callback if it has not started; never waits.
    pub(crate) fn unregister(mut self) -> bool {
        self.detach(false)
    }

    /// `unregister` for a borrowing callback: never waits, and never lets
    /// go of a callback running on another thread (it stays this
    /// registration's, whose drop waits for it: `scoped.rs`).
    #[cfg(feature = "std")]
    pub(crate) fn unregister_keeping(&mut self) -> bool {
        // Taken first: whatever the closure's drop does below, this
        // registration never touches the node again (unless given back).
        let Some(cb) = self.node.take() else {
            return false;
        };
        // SAFETY: as in `detach`.
        unsafe {
            match callback::detach_keeping(self.state.get(), cb) {
                Detached::Removed => {
                    CallbackHeader::drop_closure_then_free(cb);
                    true
                }
                Detached::NotRemoved => false,
                Detached::StillRunning => {
                    self.node = Some(cb);
                    false
                }
            }
        }
    }

    /// Whether it still holds its node (a callback running elsewhere after
    /// `unregister_keeping`).
    #[cfg(feature = "std")]
    pub(crate) fn is_attached(&self) -> bool {
        self.node.is_some()
    }

    /// True while the callback is registered and has not started.
    pub(crate) fn is_pending(&self) -> bool {
        match self.node {
            // SAFETY: our node is live until we free it.
            Some(node) => unsafe { CallbackHeader::is_linked(node) },
            None => false,
        }
    }

    fn detach(&mut self, wait: bool) -> bool {
        // Taken first: whatever the closure's drop does below, this
        // registration never touches the node again.
        let Some(cb) = self.node.take() else {
            return false;
        };
        // SAFETY: the node was attached to this state by `register` and is
        // ours. `detach` leaves a boxed node freed or orphaned, except when
        // it was removed before it ran: then the closure is still in it, and
        // ours to drop, after which the node is freed (also if a capture's
        // `Drop` panics).
        unsafe {
            match callback::detach(self.state.get(), cb, wait) {
                Detached::Removed => {
                    CallbackHeader::drop_closure_then_free(cb);
                    true
                }
                Detached::NotRemoved | Detached::StillRunning => false,
            }
        }
    }
}

impl Drop for RawRegistration {
    fn drop(&mut self) {
        self.detach(true);
    }
}

/// `Registration::unregister_async`: removes the callback, and if it is
/// running on another thread, completes once it has returned, without
/// blocking a thread. `true` iff it was removed before it started. Dropped
/// before it completes, it lets go of the node (a running one is orphaned:
/// the canceller frees it), never waiting.
#[cfg(feature = "std")]
pub(crate) struct UnregisterAsync {
    registration: RawRegistration,
}

#[cfg(feature = "std")]
impl RawRegistration {
    pub(crate) fn unregister_async(self) -> UnregisterAsync {
        UnregisterAsync { registration: self }
    }
}

#[cfg(feature = "std")]
impl Future for UnregisterAsync {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        // `Unpin`: no field is pinned.
        let reg = &mut self.get_mut().registration;
        let Some(cb) = reg.node else {
            return Poll::Ready(false);
        };
        // SAFETY: our boxed node, attached by `register`, detached only here.
        let (polled, left) = unsafe { callback::poll_detach(reg.state.get(), cb, cx.waker()) };
        // The node is settled (forgotten, a removed closure dropped) before
        // the wakers left over are dropped: all three drops are user code,
        // and a panic of one must neither leave this registration holding a
        // freed node nor skip another (nor make one a panic during an
        // unwind). The first panic is resumed after all of them.
        let ready = match polled {
            callback::PolledDetach::Removed => true,
            callback::PolledDetach::Finished => false,
            callback::PolledDetach::Pending => return Poll::Pending,
        };
        reg.node = None;
        let mut first = None;
        if ready {
            crate::unwind::catch(&mut first, || {
                // SAFETY: removed before it ran: the closure is ours.
                unsafe { CallbackHeader::drop_closure_then_free(cb) }
            });
        }
        crate::unwind::catch(&mut first, || drop(left.clone));
        crate::unwind::catch(&mut first, || drop(left.stored));
        crate::unwind::resume(first);
        Poll::Ready(ready)
    }
}

#[cfg(feature = "std")]
impl Drop for UnregisterAsync {
    fn drop(&mut self) {
        let reg = &mut self.registration;
        if let Some(cb) = reg.node.take() {
            // SAFETY: our node, never polled or last `Pending` (it is taken
            // on `Removed` and `Finished`): detached here without waiting.
            unsafe {
                match callback::detach(reg.state.get(), cb, false) {
                    Detached::Removed => CallbackHeader::drop_closure_then_free(cb),
                    Detached::NotRemoved | Detached::StillRunning => {}
                }
            }
        }
    }
}
