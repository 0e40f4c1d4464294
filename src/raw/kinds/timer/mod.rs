//! Timers: a source's timeout as a node of its list, and each clock's queue
//! of armed timeouts (a `Timeline`). The whole soundness argument of timers
//! is here; `src/time/` only says what time it is and when to fire.
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
//! **The queue** (`queue.rs`) is a binary min-heap of `(deadline, node,
//! cause)`, each node knowing its index: arm, re-arm and disarm are
//! O(log n). Its lock (a
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
//!
//! **User code.** A clock's `now` and `wake_at` and a timeout cause's `Drop`
//! run with no lock held and after every count is settled: whatever leaves
//! the queue is handed out as `Taken` and dropped by the caller last (the
//! drain and a fire keep its panic with their own).

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;

mod queue;

pub(crate) use self::queue::Taken;
use self::queue::{Armed, Queue};
use super::{Drain, Next};
use crate::raw::bitlock::SpinLock;
use crate::raw::list;
use crate::raw::node::{DONE, Kind, LINKED, Node};
use crate::raw::reason::CustomCause;
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

pub(super) const NOT_QUEUED: usize = usize::MAX;

// SAFETY: `state` is only dereferenced under the queue's lock while the node
// is queued (see the module's docs); everything else is atomic or immutable.
unsafe impl Send for TimerNode {}
// SAFETY: as above.
unsafe impl Sync for TimerNode {}

impl TimerNode {
    /// The timeline this node is armed on (its clock).
    pub(crate) fn timeline(&self) -> &Arc<Timeline> {
        &self.timeline
    }
}

/// What the core asks of a clock: the time, and a call when the earliest
/// deadline moves earlier (the public `Clock` trait, adapted by
/// `src/time/`). Both are user code: called with no lock held.
pub(crate) trait TimeSource: Send + Sync {
    /// Ticks since the clock's epoch.
    fn now(&self) -> Ticks;
    /// The earliest armed deadline is now `at`: fire by then.
    fn wake_at(&self, at: Ticks);
}

/// One clock's time line as the core sees it: its queue, and how to read
/// the time (manual: set by `advance`, under the queue's lock; otherwise
/// its `TimeSource`).
pub(crate) struct Timeline {
    queue: SpinLock<Queue>,
    source: Option<alloc::boxed::Box<dyn TimeSource>>,
}

impl Timeline {
    /// A manual clock's time line, at time zero.
    pub(crate) fn manual() -> Self {
        Self {
            queue: SpinLock::new(Queue::new()),
            source: None,
        }
    }

    /// A time line read from `source`, which is told when to fire.
    pub(crate) fn with_source(source: alloc::boxed::Box<dyn TimeSource>) -> Self {
        Self {
            queue: SpinLock::new(Queue::new()),
            source: Some(source),
        }
    }

    /// The current time on this time line.
    pub(crate) fn now(&self) -> Ticks {
        match &self.source {
            None => self.queue.with(|q| q.now),
            Some(source) => source.now(),
        }
    }

    /// Moves a manual time line forward by `by` ticks (saturating short of
    /// `NEVER`); returns the new time.
    pub(crate) fn advance(&self, by: Ticks) -> Ticks {
        debug_assert!(self.source.is_none(), "only a manual time line moves");
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
    pub(crate) fn deadline_of(&self, node: &TimerNode) -> Option<Ticks> {
        self.queue.with(|q| q.deadline_of(node))
    }

    /// Takes the earliest entry if it is due at `now`. If its state is
    /// alive (not being destroyed), takes a reference and hands it, with
    /// the entry's cause, to `fire`, still under the queue's lock; `fire`
    /// must leave the state cancelled (claimed: CANCELLED set, no observer
    /// run), after which the entry's source count is given back. Returns
    /// the deadline of the entry now first, if any, and the entry taken
    /// out, if one was (for the caller to drop); `fire` was called iff a
    /// live entry was taken.
    ///
    /// Claiming under the lock is what makes an `advance` return only once
    /// every source due at its time is cancelled, even one that another
    /// thread's concurrent `advance` took first. One entry per hold, so
    /// that firing allocates nothing: the caller drains it before taking
    /// the next (see `cancel::fire_due`).
    pub(crate) fn take_one_due(
        &self,
        now: Ticks,
        mut fire: impl FnMut(NonNull<State>, Option<&Arc<CustomCause>>),
    ) -> (Option<Ticks>, Option<Taken>) {
        self.queue.with(|q| {
            let due = q.entries.first().is_some_and(|e| e.deadline <= now);
            let taken = due.then(|| {
                let first = &q.entries[0];
                // SAFETY: queued under the lock we hold, so the state is
                // allocated (module docs).
                let st = unsafe { first.node.state.as_ref() };
                if st.try_acquire() {
                    fire(first.node.state, first.cause.as_ref());
                    debug_assert!(st.is_cancelled());
                    st.word.remove_source();
                }
                Taken::entry(q.remove(0))
            });
            (q.entries.first().map(|e| e.deadline), taken)
        })
    }

    /// The clock can never fire again (a manual clock's last handle is
    /// gone, a runtime driving it shut down): every entry is taken out,
    /// giving back its count, and nothing is queued on it again. Returns
    /// what was taken, for the caller to drop.
    pub(crate) fn stop(&self) -> Vec<Taken> {
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
        entries.into_iter().map(Taken::entry).collect()
    }

    /// Removes `node` from the queue if it is there. If it was, the caller
    /// owns the source count the entry held, and drops the entry (it may
    /// hold a cause) once that is given back.
    pub(crate) fn disarm(node: &TimerNode) -> Option<Taken> {
        node.timeline
            .queue
            .with(|q| q.remove_node(node))
            .map(Taken::entry)
    }

    /// Arms `node` (this time line's, linked in `st`'s list) for `deadline`
    /// with `cause` (the reason on expiry; `TimedOut` if none): queues it,
    /// or moves it if it is queued. Returns `false` if the deadline is
    /// already reached (a manual clock moved past it): nothing is armed,
    /// and the caller cancels the source at once. The caller holds a source
    /// handle of `st`.
    ///
    /// Tells the clock (`wake_at`, user code) after the unlock and after
    /// every count is settled, so a panic there leaves a consistent queue.
    /// What the call took out (an old entry, a replaced cause) is returned
    /// for the caller to drop last: after it cancelled, if it must, since
    /// a cause's `Drop` may panic.
    pub(crate) fn arm(
        &self,
        st: &State,
        node: &Arc<TimerNode>,
        deadline: Ticks,
        cause: Option<Arc<CustomCause>>,
    ) -> (bool, Taken) {
        // The count a new entry holds, taken before it is queued so that a
        // fire never gives back one that was not taken.
        st.word.add_source();
        let manual = self.source.is_none();
        let (armed, taken) = self.queue.with(|q| q.arm(manual, node, deadline, cause));
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
                return (false, taken);
            }
        };
        if earliest {
            if let Some(source) = &self.source {
                // A panic here unwinds through the caller, dropping
                // `taken` on the way: the entry stays armed and counted.
                source.wake_at(deadline);
            }
        }
        (true, taken)
    }

    /// Whether the clock stopped (see `stop`).
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
            let taken = Timeline::disarm(&old);
            if taken.is_some() {
                st.word.remove_source();
            }
            drop(taken);
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

/// Disarms the state's timer if it is armed (giving back its count);
/// returns whether it was. The caller holds a source handle.
pub(crate) fn disarm_source(st: &State) -> bool {
    let Some(node) = timer(st) else {
        return false;
    };
    let taken = Timeline::disarm(&node);
    let was = taken.is_some();
    if was {
        st.word.remove_source();
    }
    // A cause's `Drop` (user code) runs once the count is right.
    drop(taken);
    was
}

/// Takes a dying state's timer node out of its list (marked DONE, so it is
/// never queued again); the caller takes it out of its queue (the entry's
/// count dies with the state) and drops both last, as user code (a cause,
/// the clock). Called by `lifetime::retire`, before the state is freed.
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
/// back: the state is cancelled, so that changes no answer). An unfired
/// timeout's cause, and the node (which may hold the last handle of its
/// clock), are dropped here, their panics kept with the drain's.
///
/// # Safety
/// The front node of `st`'s list is its timer node and `guard` holds its
/// lock.
#[inline]
pub(crate) unsafe fn step<'a>(st: &State, guard: WordGuard<'a>, ctx: &mut Drain) -> Next<'a> {
    // SAFETY: popped under the lock: the list's `Arc` count is now ours.
    let node = unsafe {
        let popped = st.pop_front();
        popped.as_ref().set_state(DONE);
        Arc::from_raw(popped.cast::<TimerNode>().as_ptr())
    };
    drop(guard);
    let taken = Timeline::disarm(&node);
    if taken.is_some() {
        st.word.remove_source();
    }
    // The node may hold the last handle of its clock: its `Drop` is user
    // code too.
    #[cfg(feature = "std")]
    ctx.panics.catch(move || drop((taken, node)));
    #[cfg(not(feature = "std"))]
    {
        let _ = ctx;
        drop((taken, node));
    }
    Next::Unlocked
}
