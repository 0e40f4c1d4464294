//! The pinned callback node behind `PinnedRegistration`: the closure and the
//! node live inside the caller's (pinned) value, so registering allocates
//! nothing: the role of C++'s in-place `stop_callback`.

use core::marker::PhantomPinned;
use core::pin::Pin;

use crate::node::CallbackNode;
use crate::state::{AttachCallback, Detached};
use crate::token::CancellationToken;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not registered; the closure is in the node.
    Idle,
    /// In the token's list (or taken by the canceller).
    Attached,
    /// Ran inline at registration, or was unregistered or detached: the
    /// closure is gone.
    Finished,
    /// The token could never be cancelled: nothing stored, closure kept.
    Never,
}

pub(crate) struct InlineCallback<F: FnOnce() + Send + 'static> {
    token: CancellationToken,
    node: CallbackNode<F>,
    phase: Phase,
    _pinned: PhantomPinned,
}

// SAFETY: the node is reached by other threads only under the state's lock
// (and the abandon protocol, node.rs); the closure is `Send`.
unsafe impl<F: FnOnce() + Send + 'static> Send for InlineCallback<F> {}
// SAFETY: `&InlineCallback` exposes only the token and the phase.
unsafe impl<F: FnOnce() + Send + 'static> Sync for InlineCallback<F> {}

impl<F: FnOnce() + Send + 'static> InlineCallback<F> {
    pub(crate) fn new(token: CancellationToken, f: F) -> Self {
        Self {
            token,
            node: CallbackNode::inline(f),
            phase: Phase::Idle,
            _pinned: PhantomPinned,
        }
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    /// Links the node (or runs the closure now if the token is cancelled).
    /// Idempotent: a second call does nothing.
    pub(crate) fn register(self: Pin<&mut Self>) -> Phase {
        // SAFETY: we never move out of `this`; the node stays put.
        let this = unsafe { self.get_unchecked_mut() };
        if this.phase != Phase::Idle {
            return this.phase;
        }
        // SAFETY: the node is unattached, holds its closure, and is pinned;
        // `detach` (called by `Drop` at the latest) runs before it moves.
        this.phase = match unsafe { this.token.state().attach_callback(this.node.header()) } {
            AttachCallback::Linked => Phase::Attached,
            AttachCallback::RanInline => Phase::Finished,
            AttachCallback::Never => Phase::Never,
        };
        this.phase
    }

    /// Takes the callback out; `wait` as in `detach_callback`. True iff it
    /// was removed before it started. Without `wait`, a callback running on
    /// another thread stays attached (the drop waits for it).
    pub(crate) fn detach(self: Pin<&mut Self>, wait: bool) -> bool {
        // SAFETY: as in `register`.
        let this = unsafe { self.get_unchecked_mut() };
        match this.phase {
            Phase::Attached => {
                // SAFETY: attached to this token's state by `register`.
                match unsafe { this.token.state().detach_callback(this.node.header(), wait) } {
                    Detached::Removed => {
                        this.phase = Phase::Finished;
                        true
                    }
                    Detached::NotRemoved => {
                        this.phase = Phase::Finished;
                        false
                    }
                    Detached::StillRunning => false,
                }
            }
            Phase::Idle | Phase::Never => {
                this.phase = Phase::Finished;
                // SAFETY: never published: the closure is ours to drop.
                unsafe { crate::node::CallbackHeader::drop_closure(this.node.header()) };
                false
            }
            Phase::Finished => false,
        }
    }
}

impl<F: FnOnce() + Send + 'static> Drop for InlineCallback<F> {
    fn drop(&mut self) {
        // SAFETY: `drop` is called on the pinned value in place.
        unsafe { Pin::new_unchecked(self) }.detach(true);
    }
}
