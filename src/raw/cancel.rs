//! Cancel = claim + drain. The claim (`State::claim`) sets CANCELLED with
//! the reason, exactly once, and keeps the lock; the drain then runs every
//! observer of the state and, through its links, of every descendant: a
//! loop that hands the node at the front of the current list to its kind's
//! step (`kinds/`), depth first, each list in LIFO order. Also here: a
//! claimed state whose drain is deferred (`Claimed`), and a clock firing its
//! due timeouts (`fire_due`: claim under the queue's lock, drain after).
//!
//! The loop is iterative: the path from the root to the child being drained
//! is a stack threaded through the popped link nodes' spare pointers, and
//! each child on it is held by a reference taken when its link was popped.
//! A cancelled state accepts no new node, so once its list is seen empty
//! under the lock it stays empty: the drain then finishes that state
//! without locking it again.

use core::ptr::{self, NonNull};

#[cfg(feature = "std")]
use super::kinds::thread;
#[cfg(feature = "alloc")]
use super::kinds::timer::{self, Ticks, Timeline};
use super::kinds::{Drain, Next, callback, link, waiter};
use super::lifetime::{self, StateRef};
use super::list::Links;
use super::node::Kind;
use super::reason::Reason;
use super::state::State;
use super::word::{Origin, WordGuard};

/// Tag on a frame's spare pointer (links are at least 8-aligned): the
/// parent it leads back to had an empty list when the drain descended.
const PARENT_EMPTY: usize = 1;

/// Cancels `state` with `reason`; true for the one call that made the
/// transition. Returns after every observer of the state and of its linked
/// descendants has been run, woken or cancelled (except parts that another
/// thread claimed first: that thread runs them); then resumes the first
/// panic of the drain, if any.
pub(crate) fn cancel(state: &StateRef, reason: Reason, origin: Origin) -> bool {
    let mut panics = Leftover::default();
    let claimed = cancel_into(state, &reason, origin, &mut panics);
    #[cfg(feature = "std")]
    panics.resume();
    #[cfg(not(feature = "std"))]
    let NoPanics = panics;
    claimed
}

/// Like [`cancel`], but every panic of the drain is returned, in the order
/// they happened, instead of the first being resumed.
#[cfg(feature = "std")]
pub(crate) fn cancel_catching(
    state: &StateRef,
    reason: Reason,
) -> (bool, alloc::vec::Vec<crate::unwind::Payload>) {
    let mut panics = crate::unwind::Panics::collecting();
    let claimed = cancel_into(state, &reason, Origin::Cancel, &mut panics);
    (claimed, panics.into_vec())
}

/// Claims and drains, keeping the drain's panics in `panics`.
#[inline(always)]
fn cancel_into(state: &StateRef, reason: &Reason, origin: Origin, panics: &mut Leftover) -> bool {
    if state.is_none() {
        return false;
    }
    let Some(guard) = state.get().claim(reason, origin) else {
        return false;
    };
    let st = state.get();
    // The common cancel, without the drain loop: a list of nothing but
    // waiters, at most a batch of them (a request's token and its one
    // `cancelled()`). The same step as in the loop, and the same end.
    // SAFETY: we hold the lock; listed nodes are live, `kind` immutable.
    let waiters_first = unsafe {
        st.front()
            .is_some_and(|f| f.as_ref().kind() == Kind::Waiter)
    };
    if waiters_first {
        let mut ctx = Drain::new(panics);
        // SAFETY: the front node is a waiter and we hold the lock.
        match unsafe { waiter::step(st, guard, &mut ctx) } {
            // SAFETY: we hold a reference; see `drain`'s end of a state.
            Next::Empty => unsafe { link::detach_all(state.ptr()) },
            // SAFETY: we hold a reference and claimed the state.
            _ => unsafe { drain(state.ptr(), false, reason, None, panics) },
        }
    } else {
        // SAFETY: we hold a reference to the state and just claimed it.
        unsafe { drain(state.ptr(), false, reason, Some(guard), panics) };
    }
    true
}

/// What a drain leaves for its caller: with `std`, the panics of callbacks,
/// wakers and released children, to be resumed once the caller is done with
/// its own references (resuming inside a drop, then dropping a reference
/// during that unwind, could abort).
#[cfg(feature = "std")]
pub(crate) type Leftover = crate::unwind::Panics;
#[cfg(not(feature = "std"))]
pub(crate) type Leftover = NoPanics;

/// Without `std` a panic unwinds out of the drain: none is left over.
#[cfg(not(feature = "std"))]
#[derive(Default)]
pub(crate) struct NoPanics;

/// Runs every observer of `root` (just claimed by this thread, whose lock
/// `root_guard` still holds, or released after a first step) and of every
/// descendant; keeps their panics in `panics`, for the caller to resume.
/// `root_counted`: the caller holds a counted reference to `root` for the
/// call (a clock's fire), rather than borrowing it.
///
/// # Safety
/// `root` is live for the call and this thread claimed it.
pub(crate) unsafe fn drain<'a>(
    root: NonNull<State>,
    root_counted: bool,
    reason: &Reason,
    root_guard: Option<WordGuard<'a>>,
    panics: &mut Leftover,
) {
    let mut ctx = Drain::new(panics);
    let mut cur = root;
    let mut frames: *mut Links = ptr::null_mut();
    // What this drain holds counted references to, for an in-place state
    // dropped by user code this drain runs (`holds_counted`). Published
    // only once it holds one: no cost for a drain that never descends.
    #[cfg(feature = "std")]
    let mark = DrainMark::new(root, root_counted);
    // A fire's drain (not the plain `cancel()` path) publishes at once,
    // here where `mark` stays put.
    #[cfg(feature = "std")]
    if root_counted {
        mark.publish();
    }
    #[cfg(not(feature = "std"))]
    let _ = root_counted;
    let mut held: Option<WordGuard<'a>> = root_guard;
    let mut known_empty = false;
    loop {
        // SAFETY: `cur` is root (live by contract) or a child we hold a
        // reference to.
        let st: &'a State = unsafe { &*cur.as_ptr() };
        let front = if known_empty {
            debug_assert!(held.is_none());
            None
        } else {
            let guard = held.take().unwrap_or_else(|| {
                ctx.leaves = 0;
                st.word.lock()
            });
            // SAFETY: we hold the lock.
            match unsafe { st.front() } {
                Some(front) => Some((front, guard)),
                None => {
                    drop(guard);
                    None
                }
            }
        };
        let Some((front, guard)) = front else {
            // `cur` is drained: take its links out of other parents' lists,
            // then go back up to the parent it was reached from.
            // SAFETY: `cur` is live (see above).
            unsafe { link::detach_all(cur) };
            let Some(frame) = NonNull::new(frames) else {
                break;
            };
            let child = cur;
            // SAFETY: `frame` is a popped link of the child `cur`, which we
            // hold; we stored its spare pointer ourselves.
            unsafe {
                let spare = frame.as_ref().spare();
                // The parent's list was seen empty when we left it: it
                // stays so (cancelled), so it is done without its lock.
                known_empty = spare.addr() & PARENT_EMPTY != 0;
                frames = spare.map_addr(|a| a & !PARENT_EMPTY);
                cur = link::parent_of(frame);
            }
            #[cfg(feature = "std")]
            mark.frames.set(frames);
            // The child may be freed here, and with it a custom cause whose
            // `Drop` is user code: with `std` its panic waits for the end of
            // the drain like any callback's.
            // SAFETY: the reference taken when its link was popped.
            #[cfg(feature = "std")]
            ctx.panics.catch(|| unsafe { lifetime::release(child) });
            // SAFETY: as above.
            #[cfg(not(feature = "std"))]
            unsafe {
                lifetime::release(child)
            };
            continue;
        };
        // SAFETY: we hold `st`'s lock and `front` is its front node.
        let next = unsafe { step(st, front, guard, reason, &mut ctx) };
        match next {
            Next::Locked(guard) => held = Some(guard),
            Next::Unlocked => {}
            Next::Empty => known_empty = true,
            Next::Descend {
                child,
                link,
                guard,
                parent_empty,
            } => {
                // The path back up, and whether `cur` is known empty.
                let spare = frames.map_addr(|a| a | if parent_empty { PARENT_EMPTY } else { 0 });
                // SAFETY: the popped link is DONE and its child is held:
                // nobody else touches its spare pointer.
                unsafe { link.as_ref().set_spare(spare) };
                frames = link.as_ptr();
                #[cfg(feature = "std")]
                {
                    mark.frames.set(frames);
                    mark.publish();
                }
                cur = child;
                held = Some(guard);
            }
        }
    }
}

/// Hands the front node of `st`'s list to its kind's step.
///
/// # Safety
/// `guard` holds `st`'s lock and `front` is the front node of its list.
#[inline(always)]
unsafe fn step<'a>(
    st: &'a State,
    front: NonNull<super::node::Node>,
    guard: WordGuard<'a>,
    reason: &Reason,
    ctx: &mut Drain,
) -> Next<'a> {
    // SAFETY: each step is given the lock of the list whose front node is
    // of its kind (listed nodes are live; `kind` is immutable).
    unsafe {
        match front.as_ref().kind() {
            Kind::Waiter => waiter::step(st, guard, ctx),
            Kind::Callback => callback::step(st, guard, ctx),
            Kind::Link => link::step(st, guard, reason, ctx),
            #[cfg(feature = "alloc")]
            Kind::Timer => timer::step(st, guard, ctx),
            #[cfg(not(feature = "alloc"))]
            Kind::Timer => unreachable!("timer nodes exist only with alloc"),
            #[cfg(feature = "std")]
            Kind::Thread => thread::step(st, guard),
            #[cfg(not(feature = "std"))]
            Kind::Thread => unreachable!("thread nodes exist only with std"),
        }
    }
}

/// What one drain holds counted references to, published in a list per
/// thread while it holds any (with `std`): its root if the caller counted
/// it (a fire), and the child of each link on its path down (`frames`,
/// each child reached with `try_acquire`). An in-place state's drop waits
/// for such references to be given back; `holds_counted` tells it that the
/// holder is this very thread, further up the stack (user code the drain
/// runs dropped the state): a wait that would never end (`inplace.rs`).
#[cfg(feature = "std")]
struct DrainMark {
    root: *const State,
    frames: core::cell::Cell<*mut Links>,
    prev: core::cell::Cell<*const DrainMark>,
    published: core::cell::Cell<bool>,
}

#[cfg(all(feature = "std", not(loom)))]
std::thread_local! {
    /// The innermost published drain mark of this thread.
    static MARKS: core::cell::Cell<*const DrainMark> = const { core::cell::Cell::new(ptr::null()) };
}

#[cfg(all(feature = "std", loom))]
loom::thread_local! {
    static MARKS: core::cell::Cell<*const DrainMark> = core::cell::Cell::new(ptr::null());
}

#[cfg(feature = "std")]
impl DrainMark {
    fn new(root: NonNull<State>, root_counted: bool) -> Self {
        DrainMark {
            root: if root_counted {
                root.as_ptr()
            } else {
                ptr::null()
            },
            frames: core::cell::Cell::new(ptr::null_mut()),
            prev: core::cell::Cell::new(ptr::null()),
            published: core::cell::Cell::new(false),
        }
    }

    /// Makes this mark the innermost of this thread (once). It stays at its
    /// address until dropped: a local of `drain`, never moved after this.
    #[inline]
    fn publish(&self) {
        if self.published.get() {
            return;
        }
        let _ = MARKS.try_with(|m| {
            self.prev.set(m.get());
            m.set(self);
            self.published.set(true);
        });
    }
}

#[cfg(feature = "std")]
impl Drop for DrainMark {
    fn drop(&mut self) {
        if self.published.get() {
            // Marks are published and dropped in stack order (also during
            // an unwind): this is the innermost.
            let _ = MARKS.try_with(|m| m.set(self.prev.get()));
        }
    }
}

/// Whether a drain running on this thread (further up the stack) holds a
/// counted reference to `st`.
#[cfg(feature = "std")]
pub(crate) fn holds_counted(st: *const State) -> bool {
    MARKS
        .try_with(|m| {
            let mut cur = m.get();
            // SAFETY: published marks are live locals of `drain` frames up
            // this thread's stack (each unpublishes itself when dropped);
            // their frames are links this thread popped, of children it
            // holds (alive), whose spare pointers only it writes.
            unsafe {
                while let Some(mark) = cur.as_ref() {
                    if ptr::eq(mark.root, st) {
                        return true;
                    }
                    let mut frame = mark.frames.get();
                    while let Some(f) = NonNull::new(frame) {
                        if ptr::eq(link::descended_child(f).as_ptr(), st) {
                            return true;
                        }
                        frame = f.as_ref().spare().map_addr(|a| a & !PARENT_EMPTY);
                    }
                    cur = mark.prev.get();
                }
            }
            false
        })
        .unwrap_or(false)
}

/// A state this thread claimed (CANCELLED and the reason are set, its lock
/// released) and has not drained yet; drained when dropped, also during an
/// unwind, so a claimed state is never left with observers nobody will run.
/// Its reference is released before the drain's first panic is resumed.
#[cfg(feature = "alloc")]
pub(crate) struct Claimed {
    state: Option<StateRef>,
    reason: Reason,
}

/// Sets CANCELLED with `reason` unless the state is already cancelled (then
/// gives the reference back), without running any observer.
#[cfg(feature = "alloc")]
pub(crate) fn claim(state: StateRef, reason: Reason, origin: Origin) -> Result<Claimed, StateRef> {
    if state.is_none() {
        return Err(state);
    }
    let claimed = state.get().claim(&reason, origin).is_some();
    if claimed {
        Ok(Claimed {
            state: Some(state),
            reason,
        })
    } else {
        Err(state)
    }
}

#[cfg(feature = "alloc")]
impl Drop for Claimed {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let guard = state.get().word.lock();
        let mut panics = Leftover::default();
        // SAFETY: we hold a reference; this thread claimed the state (only
        // one claim succeeds) and this is its one drain.
        unsafe { drain(state.ptr(), true, &self.reason, Some(guard), &mut panics) };
        // The release may free the state, running a cause's `Drop`: user
        // code, kept like the drain's panics.
        #[cfg(feature = "std")]
        {
            panics.catch(move || drop(state));
            panics.resume();
        }
        #[cfg(not(feature = "std"))]
        {
            let NoPanics = panics;
            drop(state);
        }
    }
}

/// A caught panic of user code run by a clock.
#[cfg(feature = "std")]
pub(crate) type Panic = crate::unwind::Payload;
#[cfg(not(feature = "std"))]
#[cfg(feature = "alloc")]
pub(crate) type Panic = core::convert::Infallible;

/// Cancels, with reason `TimedOut`, every source of `timeline` whose timeout
/// is due at `now`, in deadline order, on this thread: one at a time, each
/// claimed under the queue's lock (`Timeline::take_one_due`) and drained
/// after it, before the next is taken. So when a callback runs, no other
/// source is claimed and waiting for this thread: a `cancel()` it makes
/// finishes everything it reaches. A panic of one source's observers costs
/// no other source anything: with `std` each drain runs under
/// `catch_unwind` and every panic goes to `on_panic`; without `std` it
/// unwinds from here, and the sources still due stay queued for the next
/// `advance`. Returns the next deadline.
#[cfg(feature = "alloc")]
pub(crate) fn fire_due(
    timeline: &Timeline,
    now: Ticks,
    on_panic: &mut dyn FnMut(Panic),
) -> Option<Ticks> {
    loop {
        let mut fired: Option<Result<Claimed, StateRef>> = None;
        let (next, taken) = timeline.take_one_due(now, |state, cause| {
            // SAFETY: `take_one_due` hands over a reference it took.
            let state = unsafe { StateRef::from_raw(state) };
            let reason = match cause {
                Some(cause) => Reason::Custom(cause.clone()),
                None => Reason::TimedOut,
            };
            // Kept (not dropped) under the queue's lock: a drop may free the
            // state, which takes that lock.
            fired = Some(claim(state, reason, Origin::Timer));
        });
        let took = taken.is_some();
        // The fired source's drain first, then the entries taken out (a
        // cause's `Drop`, one at a time): each is user code, each panic is
        // kept apart.
        #[cfg(feature = "std")]
        {
            if let Err(payload) =
                std::panic::catch_unwind(core::panic::AssertUnwindSafe(move || drop(fired)))
            {
                on_panic(payload);
            }
            if let Err(payload) =
                std::panic::catch_unwind(core::panic::AssertUnwindSafe(move || drop(taken)))
            {
                on_panic(payload);
            }
        }
        #[cfg(not(feature = "std"))]
        {
            let _ = &on_panic;
            drop(fired);
            drop(taken);
        }
        if !took {
            return next;
        }
    }
}
