//! A clock's queue of armed timeouts: a binary min-heap of
//! `(deadline, node, cause)`, each node knowing its index, so that arm,
//! re-arm and disarm are O(log n). Data structure only: the lock around it
//! and the protocol (who may queue a node, who gives back its count) are in
//! `mod.rs`.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::{NOT_QUEUED, Ticks, TimerNode};
use crate::raw::node::LINKED;
use crate::raw::reason::CustomCause;
use crate::sync::Ordering;

pub(super) struct Entry {
    pub(super) deadline: Ticks,
    pub(super) node: Arc<TimerNode>,
    /// The reason on expiry, if not `TimedOut` (`cancel_after_with`).
    pub(super) cause: Option<Arc<CustomCause>>,
}

/// An entry taken out of a queue, or a cause replaced in one: handed to the
/// caller, who drops it once its own bookkeeping is done, outside every
/// lock (a cause's `Drop` is user code).
#[must_use]
pub(crate) struct Taken {
    _entry: Option<Entry>,
    _cause: Option<Arc<CustomCause>>,
}

impl Taken {
    pub(super) fn entry(entry: Entry) -> Self {
        Self {
            _entry: Some(entry),
            _cause: None,
        }
    }

    pub(super) fn cause(cause: Option<Arc<CustomCause>>) -> Self {
        Self {
            _entry: None,
            _cause: cause,
        }
    }
}

/// A clock's armed timeouts: a binary min-heap ordered by deadline.
pub(super) struct Queue {
    pub(super) entries: Vec<Entry>,
    /// A manual clock's current time.
    pub(super) now: Ticks,
    /// The clock can never fire again: nothing is armed on it any more.
    pub(super) stopped: bool,
}

/// What `Queue::arm` did.
pub(super) enum Armed {
    /// A new entry: it holds the source count the caller took.
    Queued { earliest: bool },
    /// The node was queued: moved, keeping its count.
    Moved { earliest: bool },
    /// Not queued: the node left its list, or the clock stopped.
    Refused,
    /// The deadline is already reached on this manual clock: not queued
    /// (an entry it had was taken out, `held`: its count is given back too).
    Due { held: bool },
}

impl Queue {
    pub(super) const fn new() -> Self {
        Queue {
            entries: Vec::new(),
            now: 0,
            stopped: false,
        }
    }

    pub(super) fn holds(&self, index: usize, node: &TimerNode) -> bool {
        self.entries
            .get(index)
            .is_some_and(|e| core::ptr::eq(Arc::as_ptr(&e.node), node))
    }

    /// The deadline `node` is queued for, if it is.
    pub(super) fn deadline_of(&self, node: &TimerNode) -> Option<Ticks> {
        let index = node.queue_index.load(Ordering::Relaxed);
        self.holds(index, node)
            .then(|| self.entries[index].deadline)
    }

    fn set_index(&self, i: usize) {
        self.entries[i].node.queue_index.store(i, Ordering::Relaxed);
    }

    fn swap(&mut self, a: usize, b: usize) {
        self.entries.swap(a, b);
        self.set_index(a);
        self.set_index(b);
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.entries[parent].deadline <= self.entries[i].deadline {
                break;
            }
            self.swap(i, parent);
            i = parent;
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < self.entries.len() && self.entries[l].deadline < self.entries[min].deadline {
                min = l;
            }
            if r < self.entries.len() && self.entries[r].deadline < self.entries[min].deadline {
                min = r;
            }
            if min == i {
                return;
            }
            self.swap(i, min);
            i = min;
        }
    }

    /// Removes the entry at `index`; returns it so the caller drops it after
    /// releasing the lock.
    pub(super) fn remove(&mut self, index: usize) -> Entry {
        let last = self.entries.len() - 1;
        if index != last {
            self.swap(index, last);
        }
        let entry = self.entries.pop().expect("index is in the heap");
        entry.node.queue_index.store(NOT_QUEUED, Ordering::Relaxed);
        if index < self.entries.len() {
            self.sift_down(index);
            self.sift_up(index);
        }
        // No shrinking here: removal is the fire's path, which calls no
        // allocator (`arm` gives memory back after a burst).
        entry
    }

    /// Removes `node` if it is queued.
    pub(super) fn remove_node(&mut self, node: &TimerNode) -> Option<Entry> {
        let index = node.queue_index.load(Ordering::Relaxed);
        self.holds(index, node).then(|| self.remove(index))
    }

    /// Queues `node` at `deadline` with `cause`, or moves it there (the
    /// cause replaced); see `Armed`. On a manual clock a deadline already
    /// reached is not queued (an `advance` may have passed it since the
    /// caller looked at the time): the caller cancels at once. What the
    /// call takes out (an entry, a replaced cause) is returned, to be
    /// dropped after the unlock.
    pub(super) fn arm(
        &mut self,
        manual: bool,
        node: &Arc<TimerNode>,
        deadline: Ticks,
        cause: Option<Arc<CustomCause>>,
    ) -> (Armed, Taken) {
        let index = node.queue_index.load(Ordering::Relaxed);
        let queued = self.holds(index, node);
        if manual && deadline <= self.now {
            // Due: out of the queue (its count is the caller's to give back).
            let old = queued.then(|| self.remove(index));
            let held = old.is_some();
            return (
                Armed::Due { held },
                Taken {
                    _entry: old,
                    _cause: cause,
                },
            );
        }
        if queued {
            // Already queued: move it (it keeps its count).
            let entry = &mut self.entries[index];
            entry.deadline = deadline;
            let old = core::mem::replace(&mut entry.cause, cause);
            self.sift_down(index);
            self.sift_up(index);
            let earliest = node.queue_index.load(Ordering::Relaxed) == 0;
            return (Armed::Moved { earliest }, Taken::cause(old));
        }
        // A node that left its source's list (DONE) must not be queued
        // again: its source may be freed without looking at this queue. A
        // stopped clock queues nothing: it would never fire.
        if self.stopped || node.node.state(Ordering::Acquire) != LINKED {
            return (Armed::Refused, Taken::cause(cause));
        }
        // Give memory back after a burst, as a long-lived process expects:
        // here, where the queue may allocate anyway (to grow), not on the
        // fire's path.
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        self.entries.push(Entry {
            deadline,
            node: node.clone(),
            cause,
        });
        let i = self.entries.len() - 1;
        self.set_index(i);
        self.sift_up(i);
        let earliest = node.queue_index.load(Ordering::Relaxed) == 0;
        (Armed::Queued { earliest }, Taken::cause(None))
    }
}
