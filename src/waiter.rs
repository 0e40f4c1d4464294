//! The pinned node behind every cancellation future: attached to the token's
//! list on first poll, detached on drop. The futures in `future.rs` are safe
//! wrappers around it.

use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll};

use crate::node::WaiterNode;
use crate::state::{Attach, StateRef, WakerId};
use crate::token::CancellationToken;

/// A way to reach a token: borrowed (`cancelled()`) or owned
/// (`cancelled_owned()`); the waiter keeps it alive while attached.
pub(crate) trait TokenRef {
    fn token(&self) -> &CancellationToken;
}

impl TokenRef for &CancellationToken {
    fn token(&self) -> &CancellationToken {
        self
    }
}

impl TokenRef for CancellationToken {
    fn token(&self) -> &CancellationToken {
        self
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// Not yet polled, or polled while nothing could ever cancel.
    Idle,
    /// The node is in the token's list (or was popped by the canceller).
    Attached,
}

/// Future core: waits for the token to be cancelled. `!Unpin`: the node's
/// address is in the token's list while attached.
pub(crate) struct Waiter<T: TokenRef> {
    token: T,
    node: WaiterNode,
    phase: Phase,
    /// Identity of the waker *stored* in the node (the clone, which a
    /// `clone` may give a data pointer of its own): what `Waker::will_wake`
    /// compares. Owner-private, so a re-poll with that waker reads neither
    /// the node nor the lock. Comparing with the waker *given* instead would
    /// be wrong: once it is freed, another task's waker may reuse its
    /// address, and that task would never be stored.
    stored: WakerId,
    _pinned: PhantomPinned,
}

// SAFETY: the node's waker slot and links are reached by other threads only
// under the state's bit lock (node.rs); `stored` is only compared, never
// dereferenced; the rest is `T`.
unsafe impl<T: TokenRef + Send> Send for Waiter<T> {}
// SAFETY: `&Waiter` gives access to nothing but `&T`; polling needs `Pin<&mut>`.
unsafe impl<T: TokenRef + Sync> Sync for Waiter<T> {}

impl<T: TokenRef> Waiter<T> {
    pub(crate) fn new(token: T) -> Self {
        Self {
            token,
            node: WaiterNode::new(),
            phase: Phase::Idle,
            stored: WakerId::NONE,
            _pinned: PhantomPinned,
        }
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        self.token.token()
    }

    fn state(&self) -> &StateRef {
        self.token.token().state()
    }

    /// Ready once the token is cancelled. The first poll links the node (one
    /// lock); a later poll with a waker that `will_wake` the stored one is
    /// one load; a different waker is swapped in under the lock.
    pub(crate) fn poll_cancelled(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: we never move out of `this`; the node stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        if this.state().is_cancelled() {
            return Poll::Ready(());
        }
        match this.phase {
            Phase::Idle => {
                let node = NonNull::from(&this.node);
                // SAFETY: the node is IDLE and pinned; `Drop` detaches it
                // before it moves or dies, and the token (kept alive by `T`)
                // is the one it is attached to.
                match unsafe { this.state().attach_waiter(node, cx.waker()) } {
                    Attach::Attached(stored) => {
                        this.phase = Phase::Attached;
                        this.stored = stored;
                        Poll::Pending
                    }
                    Attach::Cancelled => Poll::Ready(()),
                    Attach::Never => Poll::Pending,
                }
            }
            Phase::Attached => {
                let waker = cx.waker();
                if WakerId::of(waker) == this.stored {
                    // The stored waker wakes this task: nothing to do. If the
                    // canceller took it meanwhile, the wake is on its way.
                    // (The stored clone is alive while it is stored, so no
                    // other waker can have its address; once the canceller
                    // took it, CANCELLED is set and was seen above.)
                    return Poll::Pending;
                }
                let node = NonNull::from(&this.node);
                // SAFETY: attached to this token's state above.
                match unsafe { this.state().replace_waker(node, waker) } {
                    Some(stored) => {
                        this.stored = stored;
                        Poll::Pending
                    }
                    // The canceller took the node: cancelled.
                    None => Poll::Ready(()),
                }
            }
        }
    }
}

impl<T: TokenRef> Drop for Waiter<T> {
    fn drop(&mut self) {
        if self.phase == Phase::Attached {
            // SAFETY: attached to this token's state in `poll_cancelled`.
            unsafe { self.state().detach_waiter(NonNull::from(&self.node)) };
        }
    }
}
