//! The algorithm. One `State` per source: the word, the list of observer
//! nodes, the custom reason; counted references to it (`StateRef`); and the
//! operations over them: cancel (claim + drain), attach, detach, link.
//!
//! Rules every function here keeps (argued in `docs/design.md`):
//! - under a bit lock: pointer surgery and status changes only; no user code,
//!   no allocation, no deallocation, no waker call, no drop of user data;
//! - bit locks nest only parent → child (the drain claiming a child under its
//!   parent's lock); nothing takes a parent's lock while holding a child's;
//! - a node is touched by the canceller only between popping it (under the
//!   lock) and marking it DONE (under the lock); its owner frees it only when
//!   it is not LINKED and not RUNNING, which it checks under the same lock;
//! - a `State` is freed when its count of references reaches zero; tokens,
//!   sources, registrations, owned futures and children's links each hold one.

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::task::Waker;

use alloc::sync::Arc;

use crate::list::{self, Head, Links};
use crate::node::{
    CallbackHeader, DETACHED, DONE, Kind, LINKED, LinkNode, NOT_QUEUED, Node, ORPHAN, RUNNING,
    TimerNode, WaiterNode,
};
use crate::reason::{CancelReason, CustomCause, Reason};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::timer::{ClockShared, Queue};
use crate::wake_batch::{WAKE_BATCH, WakeBatch};
use crate::word::{
    CANCELLED, HAS_LINKS, REASON_CUSTOM, REASON_MASK, REASON_REQUESTED, REASON_SHIFT,
    REASON_TIMED_OUT, SOURCE_ONE, SOURCE_SHIFT, Word, WordGuard,
};

/// Shared state of one source. A linked child's allocation continues with
/// its `LinkNode`s (one per parent), see [`layout`].
#[repr(C)]
pub(crate) struct State {
    word: Word,
    refs: AtomicUsize,
    head: Head,
    /// The custom reason; written once, under the lock, before CANCELLED.
    custom: UnsafeCell<Option<Arc<CustomCause>>>,
}

// SAFETY: every field is an atomic or is guarded: `head` and the nodes by the
// bit lock, `custom` by the CANCELLED publication protocol (written once
// before the Release that sets CANCELLED, read only after an Acquire that saw
// it). Nothing in a State is tied to a thread.
unsafe impl Send for State {}
// SAFETY: as above.
unsafe impl Sync for State {}

/// The state behind `CancellationToken::none()`: never cancelled, no source,
/// never written (every writer checks `can_be_cancelled` or `is_none` first).
#[cfg(not(loom))]
static NONE: State = State {
    word: Word::new(0),
    refs: AtomicUsize::new(1),
    head: UnsafeCell::new(ptr::null_mut()),
    custom: UnsafeCell::new(None),
};

#[cfg(loom)]
loom::lazy_static! {
    static ref NONE: State = State {
        word: Word::new(0),
        refs: AtomicUsize::new(1),
        head: UnsafeCell::new(ptr::null_mut()),
        custom: UnsafeCell::new(None),
    };
}

/// Layout of a state followed by `links` link nodes, and the links' offset.
fn layout(links: usize) -> (Layout, usize) {
    let array = Layout::array::<LinkNode>(links).expect("cancel-core: too many parents");
    let (layout, offset) = Layout::new::<State>()
        .extend(array)
        .expect("cancel-core: too many parents");
    (layout.pad_to_align(), offset)
}

fn links_offset() -> usize {
    layout(0).1
}

/// Pointer to link `i` of a linked state, with the allocation's provenance.
///
/// # Safety
/// `this` was allocated by `alloc_state` with more than `i` links.
unsafe fn link_at(this: NonNull<State>, i: usize) -> NonNull<LinkNode> {
    let offset = links_offset() + i * core::mem::size_of::<LinkNode>();
    // SAFETY: within the allocation (caller's contract).
    unsafe { this.cast::<u8>().add(offset).cast::<LinkNode>() }
}

/// The child state a link node belongs to.
///
/// # Safety
/// `link` is link number `link.index` of a state made by `alloc_state`.
unsafe fn state_of_link(link: NonNull<LinkNode>) -> NonNull<State> {
    // SAFETY: `index` is immutable after creation and the pointer has the
    // whole allocation's provenance (links are only ever reached through
    // pointers derived from the allocation pointer).
    unsafe {
        let index = (*link.as_ptr()).node.index as usize;
        let offset = links_offset() + index * core::mem::size_of::<LinkNode>();
        link.cast::<u8>().sub(offset).cast::<State>()
    }
}

/// Calls `f` on each link of a linked state.
///
/// # Safety
/// `this` is a live state; its links are initialised.
unsafe fn for_each_link(this: NonNull<State>, mut f: impl FnMut(NonNull<LinkNode>)) -> usize {
    // SAFETY: the caller's contract; HAS_LINKS is constant after creation.
    unsafe {
        if this.as_ref().word.load() & HAS_LINKS == 0 {
            return 0;
        }
        let mut i = 0;
        loop {
            let link = link_at(this, i);
            let last = (*link.as_ptr()).node.last;
            f(link);
            i += 1;
            if last {
                return i;
            }
        }
    }
}

/// Allocates and initialises a state with `links` uninitialised link slots.
fn alloc_state(links: usize, word: usize) -> NonNull<State> {
    let (layout, _) = layout(links);
    // SAFETY: the layout has a non-zero size (State is not a ZST).
    let raw = unsafe { alloc::alloc::alloc(layout) };
    let Some(ptr) = NonNull::new(raw.cast::<State>()) else {
        alloc::alloc::handle_alloc_error(layout)
    };
    // SAFETY: freshly allocated, suitably aligned for State.
    unsafe {
        ptr.as_ptr().write(State {
            word: Word::new(word),
            refs: AtomicUsize::new(1),
            head: UnsafeCell::new(ptr::null_mut()),
            custom: UnsafeCell::new(None),
        });
    }
    ptr
}

/// Reads the reason of a state whose word `w` (loaded with Acquire) has
/// CANCELLED set.
///
/// # Safety
/// `st` is live and `w` was loaded from it with Acquire and has CANCELLED.
unsafe fn reason_of(st: &State, w: usize) -> Reason {
    match (w & REASON_MASK) >> REASON_SHIFT {
        REASON_TIMED_OUT => Reason::TimedOut,
        REASON_CUSTOM => {
            // SAFETY: written once before the Release that set CANCELLED,
            // which our Acquire load observed; never written again.
            let cause = st.custom.with(|p| unsafe { (*p).clone() });
            match cause {
                Some(cause) => Reason::Custom(cause),
                None => Reason::Requested,
            }
        }
        REASON_REQUESTED => Reason::Requested,
        _ => Reason::Requested,
    }
}

/// Takes one more reference unless the count is already zero (the state is
/// being destroyed). Used by a canceller that found a child through a link.
///
/// # Safety
/// `this` points to memory that stays allocated for the call (the caller
/// holds the lock of the list the link is in, so the child, which must unlink
/// the link under that lock before it is freed, cannot be freed meanwhile).
unsafe fn try_acquire(this: NonNull<State>) -> bool {
    // SAFETY: see the contract.
    let refs = unsafe { &this.as_ref().refs };
    let mut n = refs.load(Ordering::Relaxed);
    loop {
        if n == 0 {
            return false;
        }
        if n > isize::MAX as usize {
            crate::sync::abort();
        }
        // Acquire, as in `Weak::upgrade`: we will read the child's state.
        match refs.compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => n = actual,
        }
    }
}

/// Drops one reference; the last one destroys the state.
///
/// # Safety
/// The caller owns one counted reference to `this` and gives it up.
unsafe fn release(this: NonNull<State>) {
    // SAFETY: we own a reference, so the state is live.
    let refs = unsafe { &this.as_ref().refs };
    // Release/Acquire as in `Arc::drop`: every use of the state through other
    // references happens-before its destruction.
    if refs.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    // An Acquire load of the count rather than a fence: it synchronizes the
    // same way (it reads the end of the release sequence of every earlier
    // decrement), and ThreadSanitizer understands it (std's `Arc` does the
    // same under TSan).
    refs.load(Ordering::Acquire);
    // SAFETY: we dropped the last reference.
    unsafe { destroy(this) }
}

/// Frees states with no references left, starting with `first`.
///
/// Without references, a state can still be reached through its links: a
/// parent's canceller may pop one and claim the state (and read its list)
/// under that parent's lock. So `first` first leaves every parent's list,
/// taking each parent's lock once; after that nothing can reach it and its
/// own list is retired without its own lock.
///
/// # Safety
/// `first` has no references left.
unsafe fn destroy(first: NonNull<State>) {
    // SAFETY: forwarded; `first` is dead, its parents are kept alive by its
    // links' references until `destroy_chain` releases them.
    unsafe {
        for_each_link(first, |link| unlink(link));
        if let Some(timer) = retire(first, ptr::null_mut(), false) {
            crate::timer::disarm(&timer);
        }
        destroy_chain(first);
    }
}

/// Takes a link out of its parent's list if it is still there. The parent's
/// lock is taken even when the link is no longer LINKED: a canceller that
/// popped it may still be working on the child under that lock (the leaf
/// path in `drain` holds no reference to the child), and must be done
/// before a dying child is freed.
///
/// # Safety
/// `link` is an initialised link of a live or dying state; its parent is
/// live (the link holds a reference to it).
unsafe fn unlink(link: NonNull<LinkNode>) {
    // SAFETY: caller's contract; the node's status and links change only
    // under the parent's lock, which we hold.
    unsafe {
        let node = &(*link.as_ptr()).node;
        let pst = (*link.as_ptr()).parent.as_ref();
        let guard = pst.word.lock();
        if node.state(Ordering::Relaxed) == LINKED {
            list::remove(&pst.head, link.cast::<Links>());
            node.set_state(DETACHED);
        }
        drop(guard);
    }
}

/// Frees a state with no references left, and with it its links; a parent
/// whose last reference was such a link is freed in the same loop (never by
/// recursion, so dropping a chain of any depth needs constant stack).
///
/// # Safety
/// `first` has no references left, was unlinked from its parents and
/// retired (see `destroy`).
unsafe fn destroy_chain(first: NonNull<State>) {
    // Dead states waiting to be freed are chained through their `head`
    // field: once its timer is gone, a state with no references has nothing
    // in its list that anyone will look at again (every live node belongs to
    // a handle or a child link, and each holds a reference; see
    // `retire` for leaked futures).
    // `first` was retired with an empty chain by `destroy`.
    let mut todo: *mut State = first.as_ptr();
    #[cfg(feature = "std")]
    let mut first_panic: Option<crate::unwind::Payload> = None;
    while let Some(this) = NonNull::new(todo) {
        // SAFETY: `this` is on the dead list: unreachable by anyone else
        // except, for a parent freed here, a grandparent's canceller until
        // we unlink it (under the grandparent's lock, below).
        unsafe {
            let st = this.as_ref();
            todo = st.head.with(|h| *h).cast::<State>();
            let links = for_each_link(this, |link| {
                if this != first {
                    unlink(link);
                }
                // The link's reference to its parent.
                let parent = (*link.as_ptr()).parent;
                let pst = parent.as_ref();
                if pst.refs.fetch_sub(1, Ordering::Release) == 1 {
                    // As in `release`.
                    pst.refs.load(Ordering::Acquire);
                    // Still linked to its own parents: retire under its lock.
                    if let Some(timer) = retire(parent, todo, true) {
                        crate::timer::disarm(&timer);
                    }
                    todo = parent.as_ptr();
                }
            });
            let custom = st.custom.with_mut(|p| (*p).take());
            ptr::drop_in_place(this.as_ptr());
            alloc::alloc::dealloc(this.as_ptr().cast::<u8>(), layout(links).0);
            // User data (the cause's destructor) runs after the free. With
            // `std` a panic there is kept until the rest of the chain is
            // freed; without it, it unwinds from here and the states still
            // on `todo` are leaked, not freed twice.
            #[cfg(feature = "std")]
            crate::unwind::catch(&mut first_panic, move || drop(custom));
            #[cfg(not(feature = "std"))]
            drop(custom);
        }
    }
    #[cfg(feature = "std")]
    if let Some(payload) = first_panic {
        std::panic::resume_unwind(payload);
    }
}

/// Takes the lock of `this` unless it is cancelled, records `reason` and sets
/// CANCELLED. Returns the held lock if this call made the transition.
///
/// # Safety
/// `this` is live for `'a`.
unsafe fn claim<'a>(this: NonNull<State>, reason: &Reason) -> Option<WordGuard<'a>> {
    // SAFETY: caller's contract.
    let st: &'a State = unsafe { &*this.as_ptr() };
    let Reason::Custom(cause) = reason else {
        // One CAS: lock, CANCELLED and the reason kind together.
        return st.word.lock_and_cancel(reason.kind()).ok();
    };
    let guard = st.word.lock_unless(|w| w & CANCELLED != 0).ok()?;
    // Cloning an Arc is an atomic increment, not an allocation.
    let cause = cause.clone();
    // SAFETY: CANCELLED is not set and we hold the lock: no reader may look
    // at `custom` yet and no other writer exists. The old value is `None`,
    // so the write drops nothing.
    st.custom
        .with_mut(|p| unsafe { ptr::write(p, Some(cause)) });
    guard.set_cancelled(reason.kind());
    Some(guard)
}

/// Links an observer node: at the front (so the list runs LIFO), but behind
/// the source's timer node if it has one (which stays first, see node.rs).
///
/// # Safety
/// The caller holds `st`'s lock; `node` is valid and in no list.
unsafe fn push_observer(st: &State, node: NonNull<Links>) {
    // SAFETY: caller's contract; listed nodes are live.
    unsafe {
        match list::front(&st.head) {
            Some(front) if front.cast::<Node>().as_ref().kind == Kind::Timer => {
                list::insert_after(front, node)
            }
            _ => list::push_front(&st.head, node),
        }
    }
}

/// Retires a dead state's list: takes its timer node out (returned, to be
/// disarmed after any unlock) and sets `head` to `next`, the chain of dead
/// states `destroy_chain` walks.
///
/// A dead state's list holds nothing else, except nodes of borrowing futures
/// leaked with `mem::forget` (never freed, so dropping them from the list is
/// harmless; nobody walks a dead state's list). While the state is still
/// linked to a parent (`reachable`), that parent's canceller may be claiming
/// it and reading its list under its lock, so the work is done in one hold
/// of that lock; once unlinked from every parent, nothing else can touch it.
///
/// # Safety
/// `this` has no references left; if `reachable` is false it was unlinked
/// from every parent (see `destroy`).
unsafe fn retire(
    this: NonNull<State>,
    next: *mut State,
    reachable: bool,
) -> Option<Arc<TimerNode>> {
    // SAFETY: a dead state is still allocated; listed nodes are live; a
    // listed timer node holds one `Arc` count, taken with `into_raw`. The
    // list is ours: under the lock, or unreachable (caller's contract).
    unsafe {
        let st = this.as_ref();
        let guard = if reachable {
            Some(st.word.lock())
        } else {
            None
        };
        let mut timer = None;
        if let Some(front) = list::front(&st.head) {
            if front.cast::<Node>().as_ref().kind == Kind::Timer {
                list::remove(&st.head, front);
                front.cast::<Node>().as_ref().set_state(DONE);
                timer = Some(front.cast::<TimerNode>());
            }
        }
        st.head.with_mut(|h| *h = next.cast::<Links>());
        drop(guard);
        timer.map(|t| Arc::from_raw(t.as_ptr()))
    }
}

/// Takes the links of a cancelled child out of its parents' lists: once
/// cancelled it needs nothing more from them (the seeds' "linked sources
/// must not leak" rule).
///
/// # Safety
/// `this` is live.
unsafe fn detach_links(this: NonNull<State>) {
    // SAFETY: `this` is live, its parents are kept alive by the links' refs.
    unsafe {
        for_each_link(this, |link| {
            let node = &(*link.as_ptr()).node;
            // DONE and DETACHED are final: no need to lock the parent to see
            // that the link is already out of its list. (IDLE and LINKED
            // must be checked under the parent's lock: see `new_linked`.)
            let seen = node.state(Ordering::Acquire);
            if seen == DONE || seen == DETACHED {
                return;
            }
            unlink(link);
        });
    }
}

/// How many leaf children the canceller finishes per hold of their parent's
/// lock (each costs one CAS on the child's word and a store).
const LEAF_BATCH: usize = 32;

/// Runs every observer of `root` (just claimed by this thread, whose lock
/// `root_guard` still holds) and, through link nodes, of every descendant,
/// depth first, each list in LIFO order.
///
/// Iterative: the path from `root` to the child being drained is a stack
/// threaded through the popped link nodes' spare pointers, and each child on
/// it is held by a reference taken when its link was popped.
///
/// A cancelled state accepts no new node (every attach uses `lock_unless`
/// CANCELLED), so once its list is seen empty under the lock it stays empty:
/// the drain then finishes that state without locking it again.
///
/// # Safety
/// `root` is live for the call and this thread claimed it.
unsafe fn drain<'a>(root: NonNull<State>, reason: &Reason, root_guard: WordGuard<'a>) {
    #[cfg(feature = "std")]
    let mut first_panic: Option<crate::unwind::Payload> = None;
    #[cfg(feature = "std")]
    let me = crate::sync::park::thread_key();

    let mut cur = root;
    let mut frames: *mut Links = ptr::null_mut();
    let mut held: Option<WordGuard<'a>> = Some(root_guard);
    let mut known_empty = false;
    // Leaf children finished during the current hold of `cur`'s lock.
    let mut leaves = 0;
    loop {
        // SAFETY: `cur` is root (live by contract) or a child we hold a
        // reference to.
        let st: &'a State = unsafe { &*cur.as_ptr() };
        let front = if known_empty {
            debug_assert!(held.is_none());
            None
        } else {
            let guard = held.take().unwrap_or_else(|| {
                leaves = 0;
                st.word.lock()
            });
            // SAFETY: we hold the lock.
            match unsafe { list::front(&st.head) } {
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
            known_empty = false;
            // SAFETY: `cur` is live (see above).
            unsafe { detach_links(cur) };
            let Some(frame) = NonNull::new(frames) else {
                break;
            };
            let child = cur;
            // SAFETY: `frame` is a popped link of the child `cur`, which we
            // hold; we stored its spare pointer ourselves.
            unsafe {
                frames = frame.as_ref().spare();
                cur = frame.cast::<LinkNode>().as_ref().parent;
            }
            // The child may be freed here, and with it a custom cause whose
            // `Drop` is user code: with `std` its panic waits for the end of
            // the drain like any callback's.
            // SAFETY: the reference taken when its link was popped.
            #[cfg(feature = "std")]
            crate::unwind::catch(&mut first_panic, || unsafe { release(child) });
            // SAFETY: as above.
            #[cfg(not(feature = "std"))]
            unsafe {
                release(child)
            };
            continue;
        };
        let node = front.cast::<Node>();
        // SAFETY: listed nodes are live; `kind` is immutable.
        let kind = unsafe { node.as_ref().kind };
        if kind == Kind::Waiter {
            // A run of waiters (up to a batch) leaves the list in one cut:
            // per node, one read of `next`, the waker moved out and one
            // store of DONE; then the wakers are woken with no lock held.
            let mut batch = WakeBatch::new();
            let mut next = front.as_ptr();
            // Bounded by nodes, not wakers: at most WAKE_BATCH pushes, so
            // nothing between the first DONE and the cut can panic.
            let mut nodes = 0;
            loop {
                // SAFETY: `next` is a listed waiter (checked below before
                // looping), valid under the lock we hold. Its waker slot is
                // guarded by that lock. `next` is read before DONE, after
                // which the owner may free the node.
                unsafe {
                    let waiter = NonNull::new_unchecked(next).cast::<WaiterNode>();
                    next = list::next(waiter.cast::<Links>());
                    if let Some(waker) = waiter.as_ref().replace_waker(None) {
                        batch.push(waker);
                    }
                    waiter.as_ref().node.set_done_unflagged();
                }
                nodes += 1;
                if nodes == WAKE_BATCH || next.is_null() {
                    break;
                }
                // SAFETY: `next` is listed (valid under the lock); `kind` is
                // immutable.
                if unsafe { (*next.cast::<Node>()).kind } != Kind::Waiter {
                    break;
                }
            }
            // SAFETY: we hold the lock; `next` is null or listed. The nodes
            // cut off are DONE: nobody will `remove` them.
            unsafe { list::cut_front(&st.head, next) };
            known_empty = next.is_null();
            drop(guard);
            // A panicking waker is recorded and the rest are still woken.
            #[cfg(feature = "std")]
            while let Err(payload) =
                std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| batch.wake_all()))
            {
                crate::unwind::keep_first(&mut first_panic, payload);
            }
            #[cfg(not(feature = "std"))]
            batch.wake_all();
            continue;
        }
        // SAFETY: we hold the lock; the list is not empty.
        let popped = unsafe { list::pop_front(&st.head) };
        debug_assert_eq!(popped, Some(front));
        let popped = front;
        match kind {
            Kind::Callback => {
                let cb = node.cast::<CallbackHeader>();
                // Set by an owner that abandons the node while it runs.
                let abandoned = crate::sync::AtomicU8::new(0);
                // SAFETY: popped under the lock; until we mark it DONE the
                // owner frees it only after setting `abandoned`, under the
                // lock, which we check before touching the node again.
                unsafe {
                    node.as_ref().set_state(RUNNING);
                    cb.as_ref().abandon.with_mut(|p| *p = &abandoned);
                    #[cfg(feature = "std")]
                    cb.as_ref().runner.with_mut(|p| *p = me);
                }
                drop(guard);

                #[cfg(feature = "std")]
                {
                    // SAFETY: RUNNING gives us the closure.
                    let result =
                        std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| unsafe {
                            CallbackHeader::call(cb)
                        }));
                    if let Err(payload) = result {
                        crate::unwind::keep_first(&mut first_panic, payload);
                    }
                }
                #[cfg(not(feature = "std"))]
                // SAFETY: RUNNING gives us the closure.
                unsafe {
                    CallbackHeader::call(cb)
                };

                let guard = st.word.lock();
                // The lock orders the owner's store before this load.
                if abandoned.load(Ordering::Relaxed) != 0 {
                    // The node is gone; keep the lock for the next pop.
                    held = Some(guard);
                    continue;
                }
                // SAFETY: not abandoned: the node is live and RUNNING.
                if unsafe { node.as_ref().status.load(Ordering::Relaxed) } & ORPHAN != 0 {
                    drop(guard);
                    // SAFETY: an orphaned (boxed) node is ours to free.
                    unsafe { CallbackHeader::dealloc(cb) };
                    continue;
                }
                // SAFETY: not abandoned, so the node is still RUNNING and
                // ours until DONE.
                unsafe {
                    cb.as_ref().abandon.with_mut(|p| *p = ptr::null());
                    #[cfg(feature = "std")]
                    let parker = cb.as_ref().parker.with_mut(|p| (*p).take());
                    node.as_ref().set_state(DONE);
                    #[cfg(feature = "std")]
                    if let Some(thread) = parker {
                        drop(guard);
                        thread.unpark();
                        continue;
                    }
                }
                // Keep the lock for the next pop.
                held = Some(guard);
            }
            Kind::Waiter => unreachable!("handled above"),
            Kind::Thread => {
                #[cfg(feature = "std")]
                {
                    // SAFETY: popped under the lock; the handle is moved out
                    // before DONE, after which the waiting thread may return.
                    let thread = unsafe {
                        let thread = node
                            .cast::<crate::node::ThreadNode>()
                            .as_ref()
                            .take_thread();
                        node.as_ref().set_state(DONE);
                        thread
                    };
                    drop(guard);
                    if let Some(thread) = thread {
                        thread.unpark();
                    }
                }
                #[cfg(not(feature = "std"))]
                unreachable!("thread nodes exist only with std");
            }
            Kind::Timer => {
                // SAFETY: popped under the lock: the list's `Arc` count is
                // now ours. DONE keeps re-armers from queueing it again.
                let timer = unsafe {
                    node.as_ref().set_state(DONE);
                    Arc::from_raw(node.cast::<TimerNode>().as_ptr())
                };
                drop(guard);
                // A queued timer holds a source count (see `timer.rs`); the
                // state is cancelled, so giving it back changes no answer.
                if crate::timer::disarm(&timer) {
                    st.word.remove_source();
                }
                drop(timer);
            }
            Kind::Link => {
                let link = node.cast::<LinkNode>();
                // SAFETY: the link is live while listed, and its child stays
                // allocated while we hold this lock: a dying child must take
                // it (in `destroy_chain`) before it is freed.
                let child = unsafe { state_of_link(link) };
                // SAFETY: under the lock.
                unsafe { node.as_ref().set_state(DONE) };
                // Claim the child while still holding the parent's lock.
                // Locks nest only parent → child (no path takes a parent's
                // lock while holding a child's), so this cannot deadlock.
                // SAFETY: the child is allocated (see above).
                let Some(child_guard) = (unsafe { claim(child, reason) }) else {
                    // Already cancelled (by itself or another parent).
                    held = Some(guard);
                    continue;
                };
                // SAFETY: we hold the child's lock; links are immutable.
                let leaf = unsafe {
                    let cst = child.as_ref();
                    list::front(&cst.head).is_none() && (*link_at(child, 0).as_ptr()).node.last
                };
                if leaf && leaves < LEAF_BATCH {
                    // Nothing listed and no other parent: the child is done.
                    // No reference needed, and the parent stays locked for
                    // the next pop (at most LEAF_BATCH leaves per hold).
                    leaves += 1;
                    drop(child_guard);
                    held = Some(guard);
                    continue;
                }
                leaves = 0;
                // The child must outlive the parent's lock: take a reference
                // (fails if its last one is gone: it is being destroyed).
                // SAFETY: the child is allocated (see above).
                if !unsafe { try_acquire(child) } {
                    drop(child_guard);
                    held = Some(guard);
                    continue;
                }
                drop(guard);
                // SAFETY: the popped link is DONE and its child is held:
                // nobody else touches its spare pointer.
                unsafe { popped.as_ref().set_spare(frames) };
                frames = popped.as_ptr();
                cur = child;
                held = Some(child_guard);
            }
        }
    }

    #[cfg(feature = "std")]
    if let Some(payload) = first_panic {
        std::panic::resume_unwind(payload);
    }
}

/// A counted reference to a state; `Clone` and `Drop` adjust the count.
/// The reference to [`NONE`] is not counted.
pub(crate) struct StateRef {
    ptr: NonNull<State>,
}

// SAFETY: a StateRef is a counted pointer to a Send + Sync State.
unsafe impl Send for StateRef {}
// SAFETY: as above.
unsafe impl Sync for StateRef {}

impl StateRef {
    /// The never-cancelled state shared by every `CancellationToken::none()`.
    #[cfg(not(loom))]
    pub(crate) const fn none() -> Self {
        Self {
            // SAFETY: the address of a static is never null.
            ptr: unsafe { NonNull::new_unchecked(&raw const NONE as *mut State) },
        }
    }

    #[cfg(loom)]
    pub(crate) fn none() -> Self {
        Self {
            ptr: NonNull::from(&*NONE),
        }
    }

    #[inline]
    fn none_ptr() -> *const State {
        #[cfg(not(loom))]
        return &raw const NONE;
        #[cfg(loom)]
        return &*NONE as *const State;
    }

    /// A new source's state: one reference, one source handle.
    pub(crate) fn new_source() -> Self {
        Self {
            ptr: alloc_state(0, SOURCE_ONE),
        }
    }

    /// A new source's state, cancelled from birth with `reason`.
    pub(crate) fn new_cancelled(reason: &Reason) -> Self {
        let this = Self::new_source();
        // SAFETY: the state is ours alone; claim cannot fail on a new state.
        let claimed = unsafe { claim(this.ptr, reason) };
        debug_assert!(claimed.is_some());
        drop(claimed);
        this
    }

    /// A new child linked to each of `parents` (none of them `none()`, no
    /// duplicates): one allocation holding the state and one link per parent.
    /// If a parent is already cancelled the child is born cancelled with that
    /// parent's reason and linked to nothing.
    pub(crate) fn new_linked(parents: &[&StateRef]) -> Self {
        for parent in parents {
            if let Some(reason) = parent.raw_reason() {
                return Self::new_cancelled(&reason);
            }
        }
        if parents.is_empty() {
            return Self::new_source();
        }
        let n = parents.len();
        let this = alloc_state(n, SOURCE_ONE | HAS_LINKS);
        for (i, parent) in parents.iter().enumerate() {
            debug_assert!(!parent.is_none());
            // The link's own reference to its parent, released by `destroy`.
            core::mem::forget(StateRef::clone(parent));
            let mut node = Node::new(Kind::Link);
            node.index = u32::try_from(i).expect("cancel-core: too many parents");
            node.last = i + 1 == n;
            // SAFETY: slot `i` is inside the allocation and uninitialised.
            unsafe {
                link_at(this, i).as_ptr().write(LinkNode {
                    node,
                    parent: parent.ptr,
                });
            }
        }
        let child = Self { ptr: this };
        for i in 0..n {
            // SAFETY: initialised above; parents are live (links hold refs).
            unsafe {
                let link = link_at(this, i);
                let pst = (*link.as_ptr()).parent.as_ref();
                match pst.word.lock_unless(|w| w & CANCELLED != 0) {
                    Ok(guard) => {
                        // A parent linked earlier may have cancelled the
                        // child meanwhile; its claim detaches every LINKED
                        // link, and takes this lock to do so, so checking
                        // here (under the lock) leaves no link behind.
                        if this.as_ref().word.load() & CANCELLED != 0 {
                            drop(guard);
                            break;
                        }
                        push_observer(pst, link.cast::<Links>());
                        (*link.as_ptr()).node.set_state(LINKED);
                        drop(guard);
                    }
                    Err(w) => {
                        // The parent was cancelled after our check: so is the
                        // child, unless a parent's canceller got there first.
                        let reason = reason_of(pst, w);
                        if let Some(guard) = claim(this, &reason) {
                            drain(this, &reason, guard);
                        }
                        break;
                    }
                }
            }
        }
        child
    }

    #[inline(always)]
    fn st(&self) -> &State {
        // SAFETY: a StateRef holds a counted reference (or points to NONE).
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        ptr::eq(self.ptr.as_ptr(), Self::none_ptr())
    }

    /// Identity, for `Eq` and `Hash`.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The poll: one Acquire load.
    #[inline(always)]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.st().word.load() & CANCELLED != 0
    }

    fn raw_reason(&self) -> Option<Reason> {
        let w = self.st().word.load();
        if w & CANCELLED == 0 {
            return None;
        }
        // SAFETY: loaded with Acquire and CANCELLED is set.
        Some(unsafe { reason_of(self.st(), w) })
    }

    pub(crate) fn reason(&self) -> Option<CancelReason> {
        Some(match self.raw_reason()? {
            Reason::Requested => CancelReason::Requested,
            Reason::TimedOut => CancelReason::TimedOut,
            Reason::Custom(cause) => CancelReason::Custom(cause.0.clone()),
        })
    }

    /// Whether anything can still cancel this state: it is cancelled, a
    /// source handle is alive, or a linked parent can be cancelled.
    pub(crate) fn can_be_cancelled(&self) -> bool {
        /// After this many branchings into a second parent anywhere in the
        /// walk, answer "yes": conservative, and bounded work on any DAG.
        const FORK_BUDGET: u32 = 64;
        fn walk(mut this: NonNull<State>, budget: &mut u32) -> bool {
            loop {
                // SAFETY: `this` is the caller's state or an ancestor kept
                // alive by a link of a live descendant.
                let st = unsafe { this.as_ref() };
                let w = st.word.load();
                if w & CANCELLED != 0 || w >> SOURCE_SHIFT != 0 {
                    return true;
                }
                if w & HAS_LINKS == 0 {
                    return false;
                }
                let mut next: Option<NonNull<State>> = None;
                let mut found = false;
                // SAFETY: `this` is live; links and `parent` are immutable.
                unsafe {
                    for_each_link(this, |link| {
                        if found {
                            return;
                        }
                        if (*link.as_ptr()).node.state(Ordering::Acquire) != LINKED {
                            // Popped by a cancelling parent, detached by the
                            // child's own claim, or never linked because the
                            // child was born cancelled: it is (being) cancelled.
                            found = true;
                            return;
                        }
                        let parent = (*link.as_ptr()).parent;
                        if let Some(other) = next.replace(parent) {
                            if *budget == 0 {
                                found = true;
                                return;
                            }
                            *budget -= 1;
                            found = walk(other, budget);
                        }
                    });
                }
                if found {
                    return true;
                }
                match next {
                    Some(parent) => this = parent,
                    None => return false,
                }
            }
        }
        let mut budget = FORK_BUDGET;
        walk(self.ptr, &mut budget)
    }

    pub(crate) fn add_source(&self) {
        self.st().word.add_source();
    }

    pub(crate) fn remove_source(&self) {
        self.st().word.remove_source();
    }

    /// Cancels with `reason`; true for the one call that made the transition.
    /// Returns after every observer of the state and of its linked
    /// descendants has been run, woken or cancelled.
    pub(crate) fn cancel(&self, reason: Reason) -> bool {
        if self.is_none() {
            return false;
        }
        // SAFETY: we hold a reference to the state.
        unsafe {
            let Some(guard) = claim(self.ptr, &reason) else {
                return false;
            };
            drain(self.ptr, &reason, guard);
        }
        true
    }

    /// Registers `f`; see `CancellationToken::register`.
    pub(crate) fn register<F: FnOnce() + Send + 'static>(&self, f: F) -> RawRegistration {
        if self.is_cancelled() {
            f();
            return RawRegistration::inert();
        }
        if !self.can_be_cancelled() {
            drop(f);
            return RawRegistration::inert();
        }
        let node = CallbackHeader::alloc(f);
        let handle = self.clone();
        let st = self.st();
        let Ok(guard) = st.word.lock_unless(|w| w & CANCELLED != 0) else {
            // Cancelled since the check: run inline, like any late register.
            // The node is freed even if the closure panics.
            // SAFETY: the node was never published; the closure is ours.
            unsafe { CallbackHeader::call_then_free(node) };
            return RawRegistration::inert();
        };
        // SAFETY: we hold the lock; the node is new and unlisted.
        unsafe {
            push_observer(st, node.cast::<Links>());
            node.as_ref().node.set_state(LINKED);
        }
        drop(guard);
        RawRegistration {
            state: handle,
            node: Some(node),
        }
    }

    /// First poll of a waiter: stores `waker` and links the node, unless the
    /// state is cancelled (returns `Attach::Cancelled`) or can never be
    /// (returns `Attach::Never`: nothing is stored).
    ///
    /// # Safety
    /// `node` is IDLE, owned by the caller, and stays at its address until
    /// `detach_waiter` is called with it (pinned inside the future).
    pub(crate) unsafe fn attach_waiter(&self, node: NonNull<WaiterNode>, waker: &Waker) -> Attach {
        if self.is_cancelled() {
            return Attach::Cancelled;
        }
        if !self.can_be_cancelled() {
            return Attach::Never;
        }
        // Clone outside the lock: a waker clone is user code.
        let waker = waker.clone();
        let stored = WakerId::of(&waker);
        let st = self.st();
        let Ok(guard) = st.word.lock_unless(|w| w & CANCELLED != 0) else {
            return Attach::Cancelled;
        };
        // SAFETY: the node is IDLE and ours; we hold the lock.
        let old = unsafe {
            let old = node.as_ref().replace_waker(Some(waker));
            push_observer(st, node.cast::<Links>());
            node.as_ref().node.set_state(LINKED);
            old
        };
        drop(guard);
        drop(old);
        Attach::Attached(stored)
    }

    /// Takes a waiter out of the list if it is still there. After this the
    /// canceller will not touch the node again.
    ///
    /// # Safety
    /// `node` was attached to this state with `attach_waiter`.
    pub(crate) unsafe fn detach_waiter(&self, node: NonNull<WaiterNode>) {
        let st = self.st();
        let guard = st.word.lock();
        // SAFETY: we hold the lock; the node is ours and live.
        let waker = unsafe {
            let n = &node.as_ref().node;
            if n.state(Ordering::Relaxed) == LINKED {
                list::remove(&st.head, node.cast::<Links>());
                n.set_state(DETACHED);
            }
            node.as_ref().replace_waker(None)
        };
        drop(guard);
        drop(waker);
    }

    /// A re-poll with a different waker: swaps a clone of it into the node
    /// if the node is still LINKED (returns the clone's identity); `None`
    /// once the canceller took it.
    ///
    /// # Safety
    /// `node` was attached to this state with `attach_waiter`.
    pub(crate) unsafe fn replace_waker(
        &self,
        node: NonNull<WaiterNode>,
        waker: &Waker,
    ) -> Option<WakerId> {
        // Clone outside the lock: a waker clone is user code.
        let waker = waker.clone();
        let stored = WakerId::of(&waker);
        let st = self.st();
        let guard = st.word.lock();
        // SAFETY: we hold the lock; the node is ours and live.
        let (linked, old) = unsafe {
            if node.as_ref().node.state(Ordering::Relaxed) == LINKED {
                (true, node.as_ref().replace_waker(Some(waker)))
            } else {
                (false, Some(waker))
            }
        };
        drop(guard);
        drop(old);
        linked.then_some(stored)
    }

    /// Blocks the calling thread until the state is cancelled or `deadline`
    /// passes; true if cancelled. The node lives on this stack frame.
    #[cfg(feature = "std")]
    pub(crate) fn wait(&self, deadline: Option<std::time::Instant>) -> bool {
        use crate::node::ThreadNode;
        if self.is_cancelled() {
            return true;
        }
        let node = ThreadNode::new();
        let ptr = NonNull::from(&node);
        let st = self.st();
        if !self.can_be_cancelled() {
            // Nothing can cancel it: sleep out the deadline, or forever.
            loop {
                match deadline {
                    None => crate::sync::park::park(),
                    Some(deadline) => {
                        let now = std::time::Instant::now();
                        if now >= deadline {
                            return self.is_cancelled();
                        }
                        crate::sync::park::park_timeout(deadline - now);
                    }
                }
            }
        }
        let Ok(guard) = st.word.lock_unless(|w| w & CANCELLED != 0) else {
            return true;
        };
        // SAFETY: the node is new, on our stack, and outlives its listing:
        // we return only after it is DONE or we unlinked it.
        unsafe {
            push_observer(st, ptr.cast::<Links>());
            node.node.set_state(LINKED);
        }
        drop(guard);
        loop {
            // Acquire pairs with the canceller's Release store of DONE.
            if node.node.state(Ordering::Acquire) == DONE {
                // The canceller may still be inside the store's call (it
                // holds the lock): pass through the lock before this frame,
                // and the node in it, goes away.
                drop(st.word.lock());
                return true;
            }
            match deadline {
                None => crate::sync::park::park(),
                Some(deadline) => {
                    let now = std::time::Instant::now();
                    if now >= deadline {
                        break;
                    }
                    crate::sync::park::park_timeout(deadline - now);
                }
            }
        }
        let guard = st.word.lock();
        let linked = node.node.state(Ordering::Relaxed) == LINKED;
        if linked {
            // SAFETY: we hold the lock and the node is listed here.
            unsafe { list::remove(&st.head, ptr.cast::<Links>()) };
            node.node.set_state(DETACHED);
        }
        drop(guard);
        // Not linked means the canceller popped it (it is DONE).
        !linked
    }
}

impl StateRef {
    /// This source's timer node on `clock`, creating and linking one if it
    /// has none, or replacing one on another clock. `None` if the source is
    /// cancelled (or is `none()`). The returned `Arc` pins the node.
    pub(crate) fn timer_on(&self, clock: &Arc<ClockShared>) -> Option<Arc<TimerNode>> {
        if self.is_none() {
            return None;
        }
        let st = self.st();
        let mut fresh: Option<Arc<TimerNode>> = None;
        loop {
            let Ok(guard) = st.word.lock_unless(|w| w & CANCELLED != 0) else {
                return None;
            };
            // SAFETY: we hold the lock; a listed timer node holds an `Arc`
            // count, so incrementing it and making a new `Arc` is sound.
            let existing = unsafe {
                list::front(&st.head)
                    .filter(|f| f.cast::<Node>().as_ref().kind == Kind::Timer)
                    .map(|f| f.cast::<TimerNode>())
            };
            if let Some(old) = existing {
                // SAFETY: listed, so live.
                if unsafe { Arc::ptr_eq(&old.as_ref().clock, clock) } {
                    // SAFETY: see above.
                    let pinned = unsafe {
                        Arc::increment_strong_count(old.as_ptr());
                        Arc::from_raw(old.as_ptr())
                    };
                    drop(guard);
                    return Some(pinned);
                }
            }
            let Some(new) = fresh.take() else {
                drop(guard);
                // Allocate outside the lock, then look again.
                fresh = Some(Arc::new(TimerNode {
                    node: Node::new(Kind::Timer),
                    clock: clock.clone(),
                    state: self.ptr,
                    queue_index: AtomicUsize::new(NOT_QUEUED),
                }));
                continue;
            };
            // SAFETY: we hold the lock. The list's count is taken with
            // `into_raw` (an increment, no allocation); a replaced node's
            // count is given back after the unlock.
            let replaced = unsafe {
                let replaced = existing.map(|old| {
                    list::remove(&st.head, old.cast::<Links>());
                    old.as_ref().node.set_state(DONE);
                    Arc::from_raw(old.as_ptr())
                });
                let raw = Arc::into_raw(Arc::clone(&new));
                // The node pointer keeps the whole allocation's provenance
                // (a pointer made from `&node.links` could not reach `kind`).
                let node = NonNull::new_unchecked(raw.cast_mut()).cast::<Links>();
                list::push_front(&st.head, node);
                new.node.set_state(LINKED);
                replaced
            };
            drop(guard);
            if let Some(old) = replaced {
                // Its queue entry's source count; the caller holds a source,
                // so the count does not pass through zero here.
                if crate::timer::disarm(&old) {
                    self.remove_source();
                }
            }
            return Some(new);
        }
    }

    /// This source's timer node, if it has one linked.
    pub(crate) fn timer(&self) -> Option<Arc<TimerNode>> {
        if self.is_none() {
            return None;
        }
        let st = self.st();
        let guard = st.word.lock();
        // SAFETY: under the lock; a listed timer node holds an `Arc` count.
        let timer = unsafe {
            list::front(&st.head)
                .filter(|f| f.cast::<Node>().as_ref().kind == Kind::Timer)
                .map(|f| {
                    Arc::increment_strong_count(f.cast::<TimerNode>().as_ptr());
                    Arc::from_raw(f.cast::<TimerNode>().as_ptr())
                })
        };
        drop(guard);
        timer
    }

    /// The states this one was linked to (whether or not the link is still
    /// in the parent's list): for walks up the links, such as the deadline.
    #[cfg(feature = "std")]
    pub(crate) fn parents(&self) -> alloc::vec::Vec<StateRef> {
        let mut out = alloc::vec::Vec::new();
        if self.is_none() {
            return out;
        }
        // SAFETY: we hold a reference; links are immutable; a live link
        // holds a reference to its parent, so cloning it is sound.
        unsafe {
            for_each_link(self.ptr, |link| {
                let parent = core::mem::ManuallyDrop::new(StateRef {
                    ptr: (*link.as_ptr()).parent,
                });
                out.push(StateRef::clone(&parent));
            });
        }
        out
    }
}

impl TimerNode {
    /// The source this timer cancels, if it is still alive. `queue` must be
    /// the node's own clock's queue (the borrow proves its lock is held);
    /// the node must be in it, which is checked. A queued node's state is
    /// still allocated: it is freed only after its timer left the queue.
    pub(crate) fn upgrade(&self, queue: &Queue) -> Option<StateRef> {
        let index = self.queue_index.load(Ordering::Relaxed);
        if !queue.holds(index, self) {
            return None;
        }
        // SAFETY: queued under the lock we hold, so the state is allocated
        // (see above); `try_acquire` refuses a state already being destroyed.
        unsafe { try_acquire(self.state).then_some(StateRef { ptr: self.state }) }
    }
}

/// A state this thread claimed (CANCELLED and the reason are set, its lock
/// released) and has not drained yet: made by [`StateRef::claim`], drained
/// when dropped. Lets a clock claim every due source under its queue's lock
/// (so an `advance` returns only once all of them are cancelled) and run
/// their observers after the unlock. Dropped during an unwind, it still
/// drains: a claimed state is never left with observers nobody will run.
pub(crate) struct Claimed {
    state: StateRef,
    reason: Reason,
}

impl StateRef {
    /// Sets CANCELLED with `reason` unless the state is already cancelled
    /// (then gives the reference back), without running any observer.
    pub(crate) fn claim(self, reason: Reason) -> Result<Claimed, StateRef> {
        if self.is_none() {
            return Err(self);
        }
        // SAFETY: we hold a reference to the state.
        match unsafe { claim(self.ptr, &reason) } {
            Some(guard) => {
                drop(guard);
                Ok(Claimed {
                    state: self,
                    reason,
                })
            }
            None => Err(self),
        }
    }
}

impl Claimed {
    pub(crate) fn state(&self) -> &StateRef {
        &self.state
    }
}

impl Drop for Claimed {
    fn drop(&mut self) {
        let guard = self.state.st().word.lock();
        // SAFETY: we hold a reference; this thread claimed the state (only
        // one claim succeeds) and this is its one drain.
        unsafe { drain(self.state.ptr, &self.reason, guard) }
    }
}

/// What `attach_waiter` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// Linked, holding a clone of the waker with this identity.
    Attached(WakerId),
    Cancelled,
    Never,
}

/// The identity of a waker, as `Waker::will_wake` compares it: its data
/// pointer and vtable. Only compared, never dereferenced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WakerId(*const (), *const core::task::RawWakerVTable);

impl WakerId {
    pub(crate) const NONE: WakerId = WakerId(ptr::null(), ptr::null());

    pub(crate) fn of(waker: &Waker) -> Self {
        WakerId(waker.data(), waker.vtable())
    }
}

// SAFETY: two addresses, only ever compared.
unsafe impl Send for WakerId {}
// SAFETY: as above.
unsafe impl Sync for WakerId {}

impl Clone for StateRef {
    #[inline]
    fn clone(&self) -> Self {
        if !self.is_none() {
            // Relaxed, as in `Arc::clone`: we already hold a reference.
            let old = self.st().refs.fetch_add(1, Ordering::Relaxed);
            if old > isize::MAX as usize {
                crate::sync::abort();
            }
        }
        Self { ptr: self.ptr }
    }
}

impl Drop for StateRef {
    #[inline]
    fn drop(&mut self) {
        if !self.is_none() {
            // SAFETY: we own a counted reference and give it up.
            unsafe { release(self.ptr) }
        }
    }
}

/// A callback node's owner: the core of `Registration`.
pub(crate) struct RawRegistration {
    state: StateRef,
    node: Option<NonNull<CallbackHeader>>,
}

// SAFETY: the node is reached only under the state's lock or after the
// canceller is done with it; the closure is `Send`.
unsafe impl Send for RawRegistration {}
// SAFETY: `&RawRegistration` exposes nothing that touches the node.
unsafe impl Sync for RawRegistration {}

impl RawRegistration {
    pub(crate) fn inert() -> Self {
        Self {
            state: StateRef::none(),
            node: None,
        }
    }

    /// Removes the callback if it has not started; never waits.
    pub(crate) fn unregister(mut self) -> bool {
        self.detach(false)
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
        // ours. `detach_callback` leaves a boxed node freed or orphaned,
        // except when it was removed before it ran: then the closure is
        // still in it, and ours to drop, after which the node is freed (also
        // if a capture's `Drop` panics).
        unsafe {
            match detach_callback(self.state.st(), cb, wait) {
                Detached::Removed => {
                    CallbackHeader::drop_closure_then_free(cb);
                    true
                }
                Detached::NotRemoved | Detached::StillRunning => false,
            }
        }
    }
}

/// What `attach_callback` did with a node that is not attached yet. It
/// never runs the closure: the caller records its own state first, so that
/// a panic of the closure finds the owner consistent.
#[cfg(feature = "std")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttachCallback {
    /// Linked: it runs on cancel, or until detached.
    Linked,
    /// The source is cancelled: nothing linked; the caller runs the closure.
    Cancelled,
    /// Nothing can cancel the source: nothing stored, the closure kept.
    Never,
}

#[cfg(feature = "std")]
impl StateRef {
    /// Links a callback node the caller owns and keeps pinned (the inline,
    /// allocation-free registration).
    ///
    /// # Safety
    /// `cb` is an unattached callback node with its closure, at a stable
    /// address until `detach_callback` has returned for it.
    pub(crate) unsafe fn attach_callback(&self, cb: NonNull<CallbackHeader>) -> AttachCallback {
        if self.is_cancelled() {
            return AttachCallback::Cancelled;
        }
        if !self.can_be_cancelled() {
            return AttachCallback::Never;
        }
        let st = self.st();
        let Ok(guard) = st.word.lock_unless(|w| w & CANCELLED != 0) else {
            return AttachCallback::Cancelled;
        };
        // SAFETY: we hold the lock; the node is unlisted and stays put.
        unsafe {
            push_observer(st, cb.cast::<Links>());
            cb.as_ref().node.set_state(LINKED);
        }
        drop(guard);
        AttachCallback::Linked
    }

    /// Detaches a node attached with `attach_callback`; see
    /// [`detach_callback`].
    ///
    /// # Safety
    /// As for `detach_callback`.
    pub(crate) unsafe fn detach_callback(
        &self,
        cb: NonNull<CallbackHeader>,
        wait: bool,
    ) -> Detached {
        // SAFETY: forwarded.
        unsafe { detach_callback(self.st(), cb, wait) }
    }
}

/// Takes a callback node out of `st`'s list, or out of the canceller's hands.
/// Returns whether it was removed before it started, or that an inline node
/// is running on another thread and `unregister` left it attached:
/// - LINKED: unlinked (`Removed`); the closure is still in the node, and the
///   caller drops it and frees the node (no user code runs in here, so a
///   panicking `Drop` finds the caller's own state already updated);
/// - DONE: the callback ran; the node freed;
/// - RUNNING on this thread (inside its own callback, or inside any callback
///   of this thread's cancel; `std` only): abandoned: the canceller's flag is
///   set, so it never touches the node again, and the node freed now. The
///   canceller is past every read of the node (it moved the closure out
///   before calling it), so this is safe;
/// - RUNNING on another thread, `wait` (a drop, `std`): waits until it
///   returns, spinning briefly and then parking; the node freed;
/// - RUNNING on another thread without waiting: a boxed node is orphaned
///   (the canceller frees it after the call); an inline node stays attached
///   (its owner's drop will wait). Without `std`, where threads cannot be
///   told apart, a RUNNING boxed node is always orphaned.
///
/// # Safety
/// `cb` is attached to `st` and owned by the caller.
unsafe fn detach_callback(st: &State, cb: NonNull<CallbackHeader>, wait: bool) -> Detached {
    let guard = st.word.lock();
    // SAFETY: our node stays allocated until we free it; status, links,
    // `abandon` and `runner` change only under the lock we hold.
    unsafe {
        let node = &cb.as_ref().node;
        match node.state(Ordering::Relaxed) {
            LINKED => {
                list::remove(&st.head, cb.cast::<Links>());
                node.set_state(DETACHED);
                drop(guard);
                Detached::Removed
            }
            RUNNING => {
                #[cfg(feature = "std")]
                {
                    if cb.as_ref().runner.with(|p| *p) == crate::sync::park::thread_key() {
                        let flag = cb.as_ref().abandon.with(|p| *p);
                        (*flag).store(1, Ordering::Relaxed);
                        drop(guard);
                        CallbackHeader::dealloc(cb);
                        return Detached::NotRemoved;
                    }
                    if wait {
                        drop(guard);
                        wait_done(st, cb);
                        return Detached::NotRemoved;
                    }
                }
                let _ = wait;
                if CallbackHeader::is_inline(cb) {
                    drop(guard);
                    return Detached::StillRunning;
                }
                node.status.fetch_or(ORPHAN, Ordering::Relaxed);
                drop(guard);
                Detached::NotRemoved
            }
            state => {
                debug_assert!(state == DONE, "unexpected node state {state}");
                drop(guard);
                CallbackHeader::dealloc(cb);
                Detached::NotRemoved
            }
        }
    }
}

/// What `detach_callback` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detached {
    /// Removed before it started: it never runs. The closure is still in the
    /// node: the owner drops it (and frees a boxed node).
    Removed,
    /// It ran (or runs and will be freed by the canceller); the owner is done.
    NotRemoved,
    /// An inline node running on another thread, left attached.
    StillRunning,
}

/// Waits until the canceller marks the running callback DONE, spinning
/// briefly and then parking, and frees the node.
///
/// # Safety
/// `cb` is RUNNING on another thread in `st`'s drain and owned by the caller.
#[cfg(feature = "std")]
unsafe fn wait_done(st: &State, cb: NonNull<CallbackHeader>) {
    use crate::sync::{Backoff, park};
    // SAFETY: the node is RUNNING or DONE and ours to free once DONE; its
    // parker slot is guarded by the state's lock, like its status.
    unsafe {
        let node = &cb.as_ref().node;
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if node.state(Ordering::Acquire) == DONE {
                // See below: let the canceller leave the lock first.
                drop(st.word.lock());
                CallbackHeader::dealloc(cb);
                return;
            }
            backoff.snooze();
        }
        // Get the handle outside the lock: it may allocate.
        let me = park::current();
        let guard = st.word.lock();
        if node.state(Ordering::Relaxed) == DONE {
            drop(guard);
            drop(me);
            CallbackHeader::dealloc(cb);
            return;
        }
        let old = cb.as_ref().parker.with_mut(|p| (*p).replace(me));
        drop(guard);
        drop(old);
        // Acquire pairs with the canceller's Release store of DONE; park
        // may return spuriously, hence the loop.
        while node.state(Ordering::Acquire) != DONE {
            park::park();
        }
        // The canceller stores DONE while holding the lock and is still
        // inside that store's call when we may see it: pass through the
        // lock so it has returned before the node is freed.
        drop(st.word.lock());
        CallbackHeader::dealloc(cb);
    }
}

impl Drop for RawRegistration {
    fn drop(&mut self) {
        self.detach(true);
    }
}
