//! The pinned callback behind `PinnedRegistration`: the closure and
//! the node live inside the caller's pinned value, so registering allocates
//! nothing (the role of C++'s in-place `stop_callback`). The node protocol
//! is the callback's (`callback/`); this file is the owner's side, a
//! phase machine:
//!
//! ```text
//!  Idle ──register──▶ Attached ──unregister, removed──────────────▶ Finished
//!   │  │                 │ └────unregister, it ran / runs here──────▶ Finished
//!   │  │                 └──unregister, it runs on another thread──▶ Released
//!   │  └──register on a cancelled token (phase set, then it runs)─▶ Finished
//!   └──register on a token nothing can cancel──▶ Never (closure kept)
//!  drop: Attached/Released ▶ detach, waiting for a running callback;
//!        Idle/Never ▶ the closure is dropped unrun.
//! ```
//!
//! Every phase change is made before any user code (the closure, or a
//! capture's `Drop`) runs, so a panic there finds the phase telling the
//! truth: nothing is dropped twice or left attached.

use core::marker::PhantomPinned;
use core::pin::Pin;

use super::callback::{self, Attached, CallbackHeader, CallbackNode, Detached};
use crate::raw::lifetime::HoldsState;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not registered; the closure is in the node.
    Idle,
    /// In the token's list (or taken by the canceller).
    Attached,
    /// `unregister` found it running on another thread: the closure is the
    /// canceller's; the node is still in its hands until the call returns,
    /// so the drop waits for it.
    Released,
    /// Ran inline at registration, was unregistered, or ran: the closure is
    /// gone and the node is free.
    Finished,
    /// The token could never be cancelled: nothing stored, closure kept.
    Never,
}

pub(crate) struct InlineCallback<T: HoldsState, F: FnOnce() + Send + 'static> {
    holder: T,
    node: CallbackNode<F>,
    phase: Phase,
    _pinned: PhantomPinned,
}

// SAFETY: the node is reached by other threads only under the state's lock
// (and the abandon protocol, callback/mod.rs); the closure is `Send`.
unsafe impl<T: HoldsState + Send, F: FnOnce() + Send + 'static> Send for InlineCallback<T, F> {}
// SAFETY: `&InlineCallback` exposes only the holder and a status snapshot.
unsafe impl<T: HoldsState + Sync, F: FnOnce() + Send + 'static> Sync for InlineCallback<T, F> {}

impl<T: HoldsState, F: FnOnce() + Send + 'static> InlineCallback<T, F> {
    pub(crate) fn new(holder: T, f: F) -> Self {
        Self {
            holder,
            node: CallbackNode::inline(f),
            phase: Phase::Idle,
            _pinned: PhantomPinned,
        }
    }

    pub(crate) fn holder(&self) -> &T {
        &self.holder
    }

    /// Whether the callback is linked and not taken by a cancellation yet.
    pub(crate) fn is_pending(&self) -> bool {
        // SAFETY: the node lives as long as `self`.
        self.phase == Phase::Attached && unsafe { CallbackHeader::is_linked(self.node.header()) }
    }

    /// Links the node (or runs the closure now if the token is cancelled).
    /// A second call does nothing. Returns whether it is pending now.
    pub(crate) fn register(self: Pin<&mut Self>) -> bool {
        // SAFETY: we never move out of `this`; the node stays put.
        let this = unsafe { self.get_unchecked_mut() };
        if this.phase != Phase::Idle {
            return this.is_pending();
        }
        let header = this.node.header();
        // SAFETY: the node is unattached, holds its closure, and is pinned;
        // `detach` (called by `Drop` at the latest) runs before it moves.
        match unsafe { callback::attach_pinned(this.holder.state(), header) } {
            Attached::Linked => this.phase = Phase::Attached,
            Attached::Never => this.phase = Phase::Never,
            Attached::Cancelled => {
                // Finished before the call: if it panics, the drop must not
                // touch the closure it consumed.
                this.phase = Phase::Finished;
                // SAFETY: never published: the closure is ours to call.
                unsafe { CallbackHeader::call(header) };
            }
        }
        this.is_pending()
    }

    /// Takes the callback out; `wait` as in `callback::detach`. True iff it
    /// was removed before it started. Without `wait`, a callback running on
    /// another thread stays in the canceller's hands (`Released`; the drop
    /// waits for it).
    pub(crate) fn detach(self: Pin<&mut Self>, wait: bool) -> bool {
        // SAFETY: as in `register`.
        let this = unsafe { self.get_unchecked_mut() };
        let header = this.node.header();
        match this.phase {
            Phase::Attached | Phase::Released => {
                // SAFETY: attached to this state by `register`.
                match unsafe { callback::detach(this.holder.state().get(), header, wait) } {
                    Detached::Removed => {
                        this.phase = Phase::Finished;
                        // SAFETY: removed before it ran: the closure is ours.
                        unsafe { CallbackHeader::drop_closure(header) };
                        true
                    }
                    Detached::NotRemoved => {
                        this.phase = Phase::Finished;
                        false
                    }
                    Detached::StillRunning => {
                        this.phase = Phase::Released;
                        false
                    }
                }
            }
            Phase::Idle | Phase::Never => {
                this.phase = Phase::Finished;
                // SAFETY: never published: the closure is ours to drop.
                unsafe { CallbackHeader::drop_closure(header) };
                false
            }
            Phase::Finished => false,
        }
    }
}

impl<T: HoldsState, F: FnOnce() + Send + 'static> Drop for InlineCallback<T, F> {
    fn drop(&mut self) {
        // SAFETY: `drop` is called on the pinned value in place.
        unsafe { Pin::new_unchecked(self) }.detach(true);
    }
}
