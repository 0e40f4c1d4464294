//! The node kinds, one protocol per file: each kind's node type, how it is
//! attached and detached, its step in the drain (`cancel.rs` loops over the
//! list and hands each node to its kind's step), and its panic paths.
//!
//! | file | observer | node lives in |
//! |---|---|---|
//! | `callback/` | the callback node and its protocol, shared by every owner (`waiting.rs`: an owner waiting for it to finish elsewhere) | the heap / the owner |
//! | `boxed.rs` | the boxed callback's owner (`register`, `unregister_async`) | the heap |
//! | `pinned.rs` | the pinned, allocation-free callback (`PinnedRegistration`), on any token of a crate state, heap or in place | its owner |
//! | `scoped.rs` | callbacks that borrow from the stack, owned by a scope | the heap, owned by the scope |
//! | `waiter.rs` | a future's waker | the pinned future |
//! | `thread.rs` | a blocked thread (`wait`) | the thread's stack |
//! | `link.rs` | a linked child (and the layout of a child's allocation) | the child's allocation |
//! | `timer.rs` | a source's timeout, and each clock's queue of them | an `Arc` shared with the queue |
//!
//! This module holds what the steps share with the loop: the drain's
//! context and what a step tells the loop to do next.

use core::ptr::NonNull;

use super::list::Links;
use super::state::State;
use super::word::WordGuard;

#[cfg(feature = "alloc")]
pub(crate) mod boxed;
pub(crate) mod callback;
pub(crate) mod link;
pub(crate) mod pinned;
#[cfg(feature = "std")]
pub(crate) mod scoped;
#[cfg(feature = "std")]
pub(crate) mod thread;
#[cfg(feature = "alloc")]
pub(crate) mod timer;
pub(crate) mod waiter;

/// What one drain's steps share: set up by `cancel.rs` for the whole drain.
pub(crate) struct Drain<'p> {
    /// The panics of callbacks, wakers and released children (`std`): the
    /// first kept to be resumed when the whole subtree is drained (or all
    /// of them, for `cancel_catching`).
    #[cfg(feature = "std")]
    pub(crate) panics: &'p mut crate::unwind::Panics,
    /// Leaf children finished during the current hold of a parent's lock
    /// (`link.rs`); the loop resets it whenever it takes a lock afresh.
    pub(crate) leaves: usize,
    #[cfg(not(feature = "std"))]
    pub(crate) _panics: core::marker::PhantomData<&'p mut ()>,
}

impl<'p> Drain<'p> {
    #[inline]
    pub(crate) fn new(panics: &'p mut crate::raw::cancel::Leftover) -> Self {
        #[cfg(not(feature = "std"))]
        let _ = panics;
        Drain {
            #[cfg(feature = "std")]
            panics,
            leaves: 0,
            #[cfg(not(feature = "std"))]
            _panics: core::marker::PhantomData,
        }
    }
}

/// What a step leaves the drain loop to do.
pub(crate) enum Next<'a> {
    /// The state's lock is still held (`guard`): pop the next node under it.
    Locked(WordGuard<'a>),
    /// The lock was released: take it again for the next node.
    Unlocked,
    /// The lock was released and the list is known to be empty: a
    /// cancelled list accepts no new node, so it stays empty.
    Empty,
    /// Drain `child` next (its lock is `guard`, a reference to it is held),
    /// then come back through `link`, the popped link node (free to chain
    /// the path: its spare pointer).
    Descend {
        child: NonNull<State>,
        link: NonNull<Links>,
        guard: WordGuard<'a>,
        /// The parent's list was empty once the link was popped: the drain
        /// comes back to it without locking it (a cancelled list stays
        /// empty).
        parent_empty: bool,
    },
}
