//! Timers: a source's timeout as a node of its list, and each clock's queue
//! of armed timeouts (a `Timeline`). The whole soundness argument of timers
//! is here; `clock.rs` only says what time it is and when to fire.
//!
//! ```text
//!  node:  IDLE ──timer_on──▶ LINKED (front of the list) ──drain pops / replaced / state dies──▶ DONE
//!  entry: (none) ──arm──▶ queued ──disarm / fire / clock stops──▶ (none)
//! ```
//!
//! **The node.** Each source has at most one `TimerNode`, kept at the front
//! of its list (`State::push_observer` puts every other node behind it), so
//! it is found in O(1) and `cancel()` pops it first, which disarms it. It is
//! an `Arc`: the list holds one count (linked with `Arc::into_raw`), a queue
//! entry one while armed, a re-arming thread one for the call. It is not a
//! reference to the source: `state` is not counted.
//!
//! **The queue** is a binary min-heap of `(deadline, node)`, each node
//! knowing its index: arm, re-arm and disarm are O(log n). Its lock (a
//! `SpinLock` on the same bit lock as the word, so it works without `std`)
//! is held for heap operations (which may allocate: the heap is a `Vec`),
//! and around the claim of a due source (a CAS on its word: the queue's lock
//! is the outer one; no code takes it while holding a bit lock). No user
//! code runs under it.
//!
//! **A queued node's state is allocated.** A node is queued only while it is
//! LINKED in its source's list (`Queue::arm` refuses a node that is not). It
//! may stay queued after it left the list (DONE), until the thread that took
//! it out disarms it: the drain's `step` and `timer_on` (a replaced node)
//! hold a reference to the state meanwhile, and `lifetime::destroy` disarms
//! it (`retire`, then `disarm` under the queue's lock) before the state is
//! freed. So under the queue's lock a queued node's `state` may be read, and
//! `try_acquire`d (refused once the state is dying).
//!
//! **An armed timer is a canceller.** A queue entry holds one count in its
//! state word's SOURCES field, so a token whose source handles are all gone
//! still can be cancelled while its timer is armed. The count is taken by
//! `arm` (whose caller holds a source handle, so it never passes through
//! zero) before the entry is queued, and given back when the entry leaves
//! the queue: `disarm` by a caller that holds a reference (`disarm_source`,
//! `timer_on` replacing a node, the drain's `step`), `take_one_due` after the
//! fired state is claimed (so no moment exists where nothing counts and
//! nothing is cancelled), `stop`. A dying state's count is never given back
//! (`lifetime::destroy`): nobody reads it again.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;

use super::Next;
use crate::raw::bitlock::SpinLock;
use crate::raw::list;
use crate::raw::node::{DONE, Kind, LINKED, Node};
use crate::raw::state::State;
use crate::raw::word::WordGuard;
use crate::sync::{AtomicUsize, Ordering};

/// Nanoseconds since a clock's epoch; `NEVER` stands for "never".
pub(crate) type Ticks = u64;
pub(crate) const NEVER: Ticks = u64::MAX;

/// A source's timeout.
#[repr(C)]
pub(crate) struct TimerNode {
    node: Node,
    timeline: Arc<Timeline>,
    state: NonNull<State>,
    /// Position in the timeline's queue, or `NOT_QUEUED`; only changed
    /// under the queue's lock (atomic so that reads elsewhere are not races).
    queue_index: AtomicUsize,
}

const NOT_QUEUED: usize = usize::MAX;

// SAFETY: `state` is only dereferenced under the queue's lock while the node
// is queued (see the module's docs); everything else is atomic or immutable.
unsafe impl Send for TimerNode {}
// SAFETY: as above.
unsafe impl Sync for TimerNode {}

impl TimerNode {
    /// The timeline this node is armed on (its clock).
    #[cfg(feature = "std")]
    pub(crate) fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }
}

struct Entry {
    deadline: Ticks,
    node: Arc<TimerNode>,
}

/// A clock's armed timeouts: a binary min-heap ordered by deadline.
struct Queue {
    entries: Vec<Entry>,
    /// A manual clock's current time.
    now: Ticks,
    /// The clock can never move again: nothing is armed on it any more.
    stopped: bool,
}

/// One clock's time line as the core sees it: its queue, and how to read
/// the time (manual: set by `advance`; system: since `epoch`).
pub(crate) struct Timeline {
    queue: SpinLock<Queue>,
    manual: bool,
    #[cfg(feature = "std")]
    epoch: std::time::Instant,
    /// The thread that sleeps until the earliest deadline, unparked when an
    /// earlier one is armed (the default timer; none for a manual clock).
    #[cfg(feature = "std")]
    driver: std::sync::OnceLock<std::thread::Thread>,
}

impl Queue {
    fn holds(&self, index: usize, node: &TimerNode) -> bool {
        self.entries
            .get(index)
            .is_some_and(|e| core::ptr::eq(Arc::as_ptr(&e.node), node))
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
    fn remove(&mut self, index: usize) -> Entry {
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
        // Give memory back after a burst, as a long-lived process expects.
        if self.entries.capacity() > 64 && self.entries.len() * 4 < self.entries.capacity() {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        entry
    }

    /// Removes `node` if it is queued.
    fn remove_node(&mut self, node: &TimerNode) -> Option<Entry> {
        let index = node.queue_index.load(Ordering::Relaxed);
        self.holds(index, node).then(|| self.remove(index))
    }

    /// Queues `node` at `deadline`, or moves it there; see `Armed`. On a
    /// manual clock a deadline already reached is not queued (an `advance`
    /// may have passed it since the caller looked at the time): the caller
    /// cancels at once. The entry such a call takes out is returned, to be
    /// dropped after the unlock.
    fn arm(
        &mut self,
        manual: bool,
        node: &Arc<TimerNode>,
        deadline: Ticks,
    ) -> (Armed, Option<Entry>) {
        let index = node.queue_index.load(Ordering::Relaxed);
        let queued = self.holds(index, node);
        if manual && deadline <= self.now {
            // Due: out of the queue (its count is the caller's to give back).
            let old = queued.then(|| self.remove(index));
            return (
                Armed::Due {
                    held: old.is_some(),
                },
                old,
            );
        }
        if queued {
            // Already queued: move it (it keeps its count).
            self.entries[index].deadline = deadline;
            self.sift_down(index);
            self.sift_up(index);
            let earliest = node.queue_index.load(Ordering::Relaxed) == 0;
            return (Armed::Moved { earliest }, None);
        }
        // A node that left its source's list (DONE) must not be queued
        // again: its source may be freed without looking at this queue. A
        // stopped clock queues nothing: it would never fire.
        if self.stopped || node.node.state(Ordering::Acquire) != LINKED {
            return (Armed::Refused, None);
        }
        self.entries.push(Entry {
            deadline,
            node: node.clone(),
        });
        let i = self.entries.len() - 1;
        self.set_index(i);
        self.sift_up(i);
        let earliest = node.queue_index.load(Ordering::Relaxed) == 0;
        (Armed::Queued { earliest }, None)
    }
}

/// What `Queue::arm` did.
enum Armed {
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

impl Timeline {
    fn new(manual: bool) -> Self {
        Self {
            queue: SpinLock::new(Queue {
                entries: Vec::new(),
                now: 0,
                stopped: false,
            }),
            manual,
            #[cfg(feature = "std")]
            epoch: std::time::Instant::now(),
            #[cfg(feature = "std")]
            driver: std::sync::OnceLock::new(),
        }
    }

    /// A manual clock's time line, at time zero.
    pub(crate) fn manual() -> Self {
        Self::new(true)
    }

    /// A time line that follows the system's monotonic clock from now.
    #[cfg(feature = "std")]
    pub(crate) fn system() -> Self {
        Self::new(false)
    }

    /// The thread to unpark when an earlier deadline is armed.
    #[cfg(feature = "std")]
    pub(crate) fn set_driver(&self, thread: std::thread::Thread) {
        let _ = self.driver.set(thread);
    }

    #[cfg(feature = "std")]
    pub(crate) fn epoch(&self) -> std::time::Instant {
        self.epoch
    }

    /// The current time on this time line.
    pub(crate) fn now(&self) -> Ticks {
        if self.manual {
            return self.queue.with(|q| q.now);
        }
        #[cfg(feature = "std")]
        return u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(NEVER);
        #[cfg(not(feature = "std"))]
        unreachable!("only manual time lines exist without std")
    }

    /// Moves a manual time line forward by `by` ticks (saturating short of
    /// `NEVER`); returns the new time.
    pub(crate) fn advance(&self, by: Ticks) -> Ticks {
        self.queue.with(|q| {
            q.now = q.now.saturating_add(by).min(NEVER - 1);
            q.now
        })
    }

    /// Number of armed timeouts.
    pub(crate) fn armed(&self) -> usize {
        self.queue.with(|q| q.entries.len())
    }

    /// (armed timeouts, the queue's capacity), for diagnostics.
    #[cfg(feature = "std")]
    pub(crate) fn armed_and_capacity(&self) -> (usize, usize) {
        self.queue.with(|q| (q.entries.len(), q.entries.capacity()))
    }

    /// The deadline `node` is armed for, if it is.
    #[cfg(feature = "std")]
    pub(crate) fn deadline_of(&self, node: &TimerNode) -> Option<Ticks> {
        self.queue.with(|q| {
            let index = node.queue_index.load(Ordering::Relaxed);
            q.holds(index, node).then(|| q.entries[index].deadline)
        })
    }

    /// Takes the earliest entry if it is due at `now` (skipping entries of
    /// states being destroyed). If its state is alive, takes a reference and
    /// hands it to `fire`, still under the queue's lock; `fire` must leave
    /// the state cancelled (claimed: CANCELLED set, no observer run), after
    /// which the entry's source count is given back. Returns the deadline of
    /// the entry now first, if any; `fire` was called iff one was taken.
    ///
    /// Claiming under the lock is what makes an `advance` return only once
    /// every source due at its time is cancelled, even one that another
    /// thread's concurrent `advance` took first. One entry per hold: the
    /// caller drains it before taking the next (see `cancel::fire_due`).
    pub(crate) fn take_one_due(
        &self,
        now: Ticks,
        mut fire: impl FnMut(NonNull<State>),
    ) -> Option<Ticks> {
        let mut dropped = Vec::new();
        let next = self.queue.with(|q| {
            while let Some(first) = q.entries.first() {
                if first.deadline > now {
                    break;
                }
                // SAFETY: queued under the lock we hold, so the state is
                // allocated (module docs).
                let st = unsafe { first.node.state.as_ref() };
                let alive = st.try_acquire();
                if alive {
                    fire(first.node.state);
                    debug_assert!(st.is_cancelled());
                    st.word.remove_source();
                }
                // Dropped after the unlock.
                dropped.push(q.remove(0));
                if alive {
                    break;
                }
            }
            q.entries.first().map(|e| e.deadline)
        });
        drop(dropped);
        next
    }

    /// The last handle of a manual clock is gone: nothing can advance it,
    /// so its timers could never fire. Every entry is taken out, giving
    /// back its count, and nothing is queued on it again.
    pub(crate) fn stop(&self) {
        let entries = self.queue.with(|q| {
            q.stopped = true;
            for entry in &q.entries {
                entry.node.queue_index.store(NOT_QUEUED, Ordering::Relaxed);
                // SAFETY: queued under the lock we hold: allocated (module
                // docs). A dying state's count is given back too: harmless,
                // nobody reads it again.
                unsafe { entry.node.state.as_ref() }.word.remove_source();
            }
            core::mem::take(&mut q.entries)
        });
        drop(entries);
    }

    /// Removes `node` from the queue if it is there; returns whether it was.
    /// The caller then owns the source count the entry held.
    pub(crate) fn disarm(node: &TimerNode) -> bool {
        let entry = node.timeline.queue.with(|q| q.remove_node(node));
        entry.is_some()
    }

    /// Arms `node` (this time line's, linked in `st`'s list) for `deadline`:
    /// queues it, or moves it if it is queued. Returns `false` if the
    /// deadline is already reached (a manual clock moved past it): nothing
    /// is armed, and the caller cancels the source at once. The caller holds
    /// a source handle of `st`.
    #[must_use]
    pub(crate) fn arm(&self, st: &State, node: &Arc<TimerNode>, deadline: Ticks) -> bool {
        // The count a new entry holds, taken before it is queued so that a
        // fire never gives back one that was not taken.
        st.word.add_source();
        let (armed, old) = self.queue.with(|q| q.arm(self.manual, node, deadline));
        drop(old);
        let earliest = match armed {
            Armed::Queued { earliest } => earliest,
            Armed::Moved { earliest } => {
                st.word.remove_source();
                earliest
            }
            Armed::Refused => {
                st.word.remove_source();
                false
            }
            Armed::Due { held } => {
                st.word.remove_source();
                if held {
                    st.word.remove_source();
                }
                return false;
            }
        };
        #[cfg(feature = "std")]
        if earliest {
            if let Some(driver) = self.driver.get() {
                driver.unpark();
            }
        }
        #[cfg(not(feature = "std"))]
        let _ = earliest;
        true
    }

    /// Whether the clock stopped (a manual clock whose handles are gone).
    #[cfg(feature = "std")]
    pub(crate) fn is_stopped(&self) -> bool {
        self.queue.with(|q| q.stopped)
    }
}

/// The timer node at the front of a locked list, if there is one.
///
/// # Safety
/// The caller holds `st`'s lock (or `st` is unreachable by anyone else).
unsafe fn front_timer(st: &State) -> Option<NonNull<TimerNode>> {
    // SAFETY: caller's contract; listed nodes are live; `kind` is immutable.
    unsafe {
        st.front()
            .filter(|f| f.as_ref().kind() == Kind::Timer)
            .map(|f| f.cast::<TimerNode>())
    }
}

/// A new `Arc` for a listed timer node (the list keeps its own count).
///
/// # Safety
/// `node` is listed (so live) and the caller holds its list's lock.
unsafe fn pin(node: NonNull<TimerNode>) -> Arc<TimerNode> {
    // SAFETY: a listed node holds an `Arc` count, so incrementing it and
    // making a new `Arc` is sound.
    unsafe {
        Arc::increment_strong_count(node.as_ptr());
        Arc::from_raw(node.as_ptr())
    }
}

/// The state's timer node on `timeline`, creating and linking one if it has
/// none, or replacing one on another time line (its entry is disarmed and
/// its count given back). `None` if the state is cancelled.
///
/// # Safety
/// `this` is live and the caller holds a source handle of it.
pub(crate) unsafe fn timer_on(
    this: NonNull<State>,
    timeline: &Arc<Timeline>,
) -> Option<Arc<TimerNode>> {
    // SAFETY: caller's contract.
    let st = unsafe { this.as_ref() };
    let mut fresh: Option<Arc<TimerNode>> = None;
    loop {
        let guard = st.word.lock_unless_cancelled().ok()?;
        // SAFETY: we hold the lock.
        let existing = unsafe { front_timer(st) };
        if let Some(old) = existing {
            // SAFETY: listed, so live; we hold its list's lock.
            if unsafe { Arc::ptr_eq(&old.as_ref().timeline, timeline) } {
                // SAFETY: as above.
                let pinned = unsafe { pin(old) };
                drop(guard);
                return Some(pinned);
            }
        }
        let Some(new) = fresh.take() else {
            drop(guard);
            // Allocate outside the lock, then look again.
            fresh = Some(Arc::new(TimerNode {
                node: Node::new(Kind::Timer),
                timeline: timeline.clone(),
                state: this,
                queue_index: AtomicUsize::new(NOT_QUEUED),
            }));
            continue;
        };
        // SAFETY: we hold the lock. The list's count is taken with
        // `into_raw` (an increment, no allocation); a replaced node's count
        // is given back after the unlock.
        let replaced = unsafe {
            let replaced = existing.map(|old| {
                list::remove(&st.head, old.cast());
                old.as_ref().node.set_state(DONE);
                Arc::from_raw(old.as_ptr())
            });
            let raw = Arc::into_raw(Arc::clone(&new));
            // The node pointer keeps the whole allocation's provenance (a
            // pointer made from `&node.links` could not reach `kind`).
            list::push_front(&st.head, NonNull::new_unchecked(raw.cast_mut()).cast());
            new.node.set_state(LINKED);
            replaced
        };
        drop(guard);
        if let Some(old) = replaced {
            if Timeline::disarm(&old) {
                st.word.remove_source();
            }
        }
        return Some(new);
    }
}

/// The state's timer node, if it has one linked.
pub(crate) fn timer(st: &State) -> Option<Arc<TimerNode>> {
    let guard = st.word.lock();
    // SAFETY: under the lock.
    let timer = unsafe { front_timer(st).map(|node| pin(node)) };
    drop(guard);
    timer
}

/// Disarms the state's timer if it is armed (giving back its count).
/// The caller holds a source handle.
pub(crate) fn disarm_source(st: &State) {
    if let Some(node) = timer(st) {
        if Timeline::disarm(&node) {
            st.word.remove_source();
        }
    }
}

/// Takes a dying state's timer node out of its list (marked DONE, so it is
/// never queued again) and out of its queue; the entry's count dies with
/// the state. Called by `lifetime::retire`, before the state is freed.
///
/// # Safety
/// The caller holds `st`'s lock, or nobody else can reach `st`.
pub(crate) unsafe fn retire(st: &State) -> Option<Arc<TimerNode>> {
    // SAFETY: caller's contract; a listed timer node holds one `Arc` count.
    unsafe {
        let node = front_timer(st)?;
        list::remove(&st.head, node.cast());
        node.as_ref().node.set_state(DONE);
        Some(Arc::from_raw(node.as_ptr()))
    }
}

/// The drain's step for the popped timer node: DONE keeps re-armers from
/// queueing it again; it is disarmed after the unlock (its count given
/// back: the state is cancelled, so that changes no answer).
///
/// # Safety
/// The front node of `st`'s list is its timer node and `guard` holds its
/// lock.
#[inline]
pub(crate) unsafe fn step<'a>(st: &State, guard: WordGuard<'a>) -> Next<'a> {
    // SAFETY: popped under the lock: the list's `Arc` count is now ours.
    let node = unsafe {
        let popped = st.pop_front();
        popped.as_ref().set_state(DONE);
        Arc::from_raw(popped.cast::<TimerNode>().as_ptr())
    };
    drop(guard);
    if Timeline::disarm(&node) {
        st.word.remove_source();
    }
    drop(node);
    Next::Unlocked
}
