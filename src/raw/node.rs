//! The header every node of a source's list starts with: its links, its kind
//! and its status, with the transitions the protocols make on it. The kinds
//! themselves (callback, waiter, thread, link, timer) live in `kinds/`, each
//! with its own protocol.
//!
//! ```text
//!  IDLE ──attach──▶ LINKED ──canceller pops──▶ RUNNING ──callback returns──▶ DONE
//!                     │                  (callbacks only)
//!                     │                 └─────────────────────────────────▶ DONE
//!                     └──owner unlinks──▶ DETACHED             (other kinds)
//! ```
//!
//! Every transition happens under the source's bit lock. Once a node is
//! DONE the canceller never touches it again, so its owner may free or reuse
//! it. The ORPHAN flag (callbacks only, see kinds/callback/mod.rs) rides along
//! in the status byte.

use core::ptr::NonNull;

use super::list::Links;
use crate::sync::{AtomicU8, Ordering};

pub(crate) const IDLE: u8 = 0;
pub(crate) const LINKED: u8 = 1;
pub(crate) const RUNNING: u8 = 2;
pub(crate) const DONE: u8 = 3;
pub(crate) const DETACHED: u8 = 4;
const STATE_MASK: u8 = 0b111;
/// A boxed callback's owner let go of it while it ran on another thread
/// (without waiting): the canceller frees the node when the call returns.
const ORPHAN: u8 = 1 << 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Callback,
    Waiter,
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Thread,
    Link,
    Timer,
}

/// The header every node starts with (`repr(C)`, so a `*mut Links` popped
/// from the list is also a `*mut Node` and a pointer to the whole node).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Node {
    links: Links,
    status: AtomicU8,
    kind: Kind,
    /// Link nodes: this is the child's last link.
    last: bool,
    /// Link nodes: position in the child's link array.
    index: u32,
}

impl Node {
    #[inline]
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            links: Links::new(),
            status: AtomicU8::new(IDLE),
            kind,
            last: false,
            index: 0,
        }
    }

    /// A link node's header: link `index` of its child, `last` if it is the
    /// child's last one.
    #[cfg(feature = "alloc")]
    pub(crate) fn link(index: u32, last: bool) -> Self {
        Self {
            last,
            index,
            ..Self::new(Kind::Link)
        }
    }

    /// The node as a list entry (the links come first).
    #[inline(always)]
    pub(crate) fn entry(this: NonNull<Node>) -> NonNull<Links> {
        this.cast()
    }

    /// The node of a list entry.
    #[inline(always)]
    pub(crate) fn of(entry: NonNull<Links>) -> NonNull<Node> {
        entry.cast()
    }

    /// Immutable after creation.
    #[inline(always)]
    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn index(&self) -> usize {
        self.index as usize
    }

    pub(crate) fn is_last(&self) -> bool {
        self.last
    }

    /// Status without flags. Callers that race with nothing (they hold the
    /// lock, or the node is theirs alone) may use `Relaxed`.
    #[inline]
    pub(crate) fn state(&self, order: Ordering) -> u8 {
        self.status.load(order) & STATE_MASK
    }

    /// Sets the status, keeping flags. Only under the source's lock.
    /// `Release`, so an owner that reads DONE with `Acquire` outside the
    /// lock sees everything the canceller did to the node before.
    #[inline]
    pub(crate) fn set_state(&self, state: u8) {
        let old = self.status.load(Ordering::Relaxed);
        self.status
            .store((old & !STATE_MASK) | state, Ordering::Release);
    }

    /// `set_state(DONE)` for a kind that never carries flags (waiters): one
    /// store instead of a load and a store. Same lock and ordering rules.
    #[inline]
    pub(crate) fn set_done_unflagged(&self) {
        self.set_state_unflagged(DONE);
    }

    /// `set_state` where the node carries no flag: a node of a kind that
    /// never does (all but callbacks), or any node leaving IDLE or LINKED
    /// (ORPHAN is only ever set on a RUNNING callback). One store instead
    /// of a load and a store; same lock and ordering rules.
    #[inline]
    pub(crate) fn set_state_unflagged(&self, state: u8) {
        debug_assert_eq!(self.status.load(Ordering::Relaxed) & !STATE_MASK, 0);
        self.status.store(state, Ordering::Release);
    }

    /// Sets ORPHAN. Only under the source's lock, so `Relaxed`.
    pub(crate) fn mark_orphan(&self) {
        self.status.fetch_or(ORPHAN, Ordering::Relaxed);
    }

    /// Whether ORPHAN is set. Only under the source's lock.
    pub(crate) fn is_orphan(&self) -> bool {
        self.status.load(Ordering::Relaxed) & ORPHAN != 0
    }
}
