//! Links: a child source's node in each parent's list.
//!
//! ```text
//!  IDLE ──linked under the parent's lock──▶ LINKED ──parent's drain pops──▶ DONE
//!   │  (the child is born cancelled: never linked)     │
//!   │                                                   └─child cancelled or destroyed─▶ DETACHED
//! ```
//!
//! A child's allocation is its `State` followed by one `LinkNode` per
//! parent (`alloc`): a child with one parent is one allocation of 64 bytes.
//! Each link holds a counted reference to its parent, released when the
//! child is destroyed (`lifetime.rs`), so a parent outlives every list entry
//! that names it. The walks up the links (`can_be_cancelled`, the parents
//! of a deadline) read a link's parent without the parent's lock: `parent`
//! is immutable and the link's reference keeps it alive.
//!
//! In the drain a popped link claims its child while still holding the
//! parent's lock (locks nest parent → child only; no path takes a parent's
//! lock while holding a child's, so this cannot deadlock). A leaf child
//! (nothing listed, no other parent) is finished on the spot, with no
//! reference taken; any other child is descended into, held by a reference.

use core::ptr::NonNull;

use super::{Drain, Next};
use crate::raw::list::{self, Links};
#[cfg(feature = "alloc")]
use crate::raw::node::IDLE;
use crate::raw::node::{DETACHED, DONE, Kind, LINKED, Node};
use crate::raw::reason::Reason;
use crate::raw::state::State;
#[cfg(feature = "alloc")]
use crate::raw::word::SOURCE_ONE;
use crate::raw::word::{self, HAS_LINKS, Origin, WordGuard};
use crate::sync::Ordering;

/// A child's node in one parent's list.
#[repr(C)]
pub(crate) struct LinkNode {
    node: Node,
    parent: NonNull<State>,
}

/// Where a state's link array starts: what `State::layout_with::<LinkNode>`
/// computes, as a constant (`State` is `repr(C)`; the array is placed at
/// the next multiple of its alignment).
pub(crate) const LINKS_OFFSET: usize = size_of::<State>().next_multiple_of(align_of::<LinkNode>());

/// How many leaf children the canceller finishes per hold of their parent's
/// lock (each costs one CAS on the child's word and a store).
const LEAF_BATCH: usize = 32;

/// After this many branchings into a second parent anywhere in the walk,
/// `can_be_cancelled` answers "yes": conservative, and bounded work on any
/// DAG (a DAG of diamonds has exponentially many paths).
const FORK_BUDGET: u32 = 64;

#[cfg(feature = "alloc")]
/// A plain (unlinked) state: one allocation, one canceller.
pub(crate) fn alloc_plain() -> NonNull<State> {
    State::alloc_with::<LinkNode>(0, SOURCE_ONE)
}

#[cfg(feature = "alloc")]
/// A child state with one (IDLE) link per parent, each holding a counted
/// reference to its parent, taken here. Nothing is linked yet: see
/// [`attach_all`].
///
/// # Safety
/// Each parent is live and the caller holds a reference to it.
#[inline]
pub(crate) unsafe fn alloc(
    parents: impl ExactSizeIterator<Item = NonNull<State>>,
) -> NonNull<State> {
    let n = parents.len();
    let this = State::alloc_with::<LinkNode>(n, SOURCE_ONE | HAS_LINKS);
    for (i, parent) in parents.enumerate() {
        let index = u32::try_from(i).expect("cancel-core: too many parents");
        // SAFETY: the parent is live (caller's contract); slot `i` is inside
        // the allocation and uninitialised.
        unsafe {
            // The link's own reference to its parent, released by `destroy`.
            parent.as_ref().acquire();
            link_at(this, i).as_ptr().write(LinkNode {
                node: Node::link(index, i + 1 == n),
                parent,
            });
        }
    }
    this
}

#[cfg(feature = "alloc")]
/// [`alloc`] for one parent, with the layout a constant.
///
/// # Safety
/// As for `alloc`.
#[inline]
pub(crate) unsafe fn alloc_one(parent: NonNull<State>) -> NonNull<State> {
    let this = State::alloc_with::<LinkNode>(1, SOURCE_ONE | HAS_LINKS);
    // SAFETY: as in `alloc`, for slot 0.
    unsafe {
        parent.as_ref().acquire();
        link_at(this, 0).as_ptr().write(LinkNode {
            node: Node::link(0, true),
            parent,
        });
    }
    this
}

impl LinkNode {
    /// The one link of an in-place child (`inplace.rs`), laid out after its
    /// state as after a one-parent heap child's: IDLE, holding a counted
    /// reference to `parent`, taken here. `None` (a child of nothing)
    /// makes a link no code reads (its word has no HAS_LINKS).
    ///
    /// # Safety
    /// `parent`, if any, is live and the caller holds a reference to it.
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn inplace(parent: Option<NonNull<State>>) -> Self {
        // SAFETY: caller's contract; the address of a static is not null.
        let parent = unsafe {
            match parent {
                Some(parent) => {
                    parent.as_ref().acquire();
                    parent
                }
                None => NonNull::new_unchecked(crate::raw::state::none_ptr().cast_mut()),
            }
        };
        LinkNode {
            node: Node::link(0, true),
            parent,
        }
    }

    /// The parent this link holds a reference to.
    #[cfg(feature = "alloc")]
    pub(crate) fn parent(&self) -> NonNull<State> {
        self.parent
    }

    /// Whether the link is still IDLE (never linked), read without the
    /// parent's lock: a hint, except that `false` is final.
    #[cfg(feature = "alloc")]
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.node.state(Ordering::Acquire) == IDLE
    }
}

/// Links an in-place child's one link into its parent's list, once: a link
/// that is no longer IDLE (linked before, or popped, or detached) is left
/// as it is. Returns the parent's reason if the parent is cancelled (the
/// caller then cancels the child, as `new_child` does).
///
/// # Safety
/// `this` is an in-place child's state, with provenance over its link, live
/// for the call.
#[cfg(feature = "alloc")]
pub(crate) unsafe fn attach_inplace(this: NonNull<State>) -> Option<Reason> {
    // SAFETY: caller's contract: link 0 exists and holds a reference.
    unsafe {
        let link = link_at(this, 0);
        let parent = (*link.as_ptr()).parent.as_ref();
        match parent.word.lock_unless_cancelled() {
            Ok(guard) => {
                let node = link.cast::<Node>();
                // Under the parent's lock, which every change of the link's
                // status takes: IDLE only before the first attach.
                if node.as_ref().state(Ordering::Relaxed) == IDLE && !this.as_ref().is_cancelled() {
                    parent.push_observer(node);
                    node.as_ref().set_state_unflagged(LINKED);
                }
                drop(guard);
                None
            }
            Err(_) => Some(parent.reason().unwrap_or(Reason::Requested)),
        }
    }
}

/// Pointer to link `i` of a linked state, with the allocation's provenance.
///
/// # Safety
/// `this` was allocated by `alloc` with more than `i` links.
#[inline(always)]
unsafe fn link_at(this: NonNull<State>, i: usize) -> NonNull<LinkNode> {
    let offset = LINKS_OFFSET + i * size_of::<LinkNode>();
    // SAFETY: within the allocation (caller's contract).
    unsafe { this.cast::<u8>().add(offset).cast::<LinkNode>() }
}

/// The child state a link node belongs to.
///
/// # Safety
/// `link` is a link of a state made by `alloc`.
#[inline(always)]
unsafe fn child_of(link: NonNull<LinkNode>) -> NonNull<State> {
    // SAFETY: `index` is immutable after creation and the pointer has the
    // whole allocation's provenance (links are only ever reached through
    // pointers derived from the allocation pointer).
    unsafe {
        let index = (*link.as_ptr()).node.index();
        let offset = LINKS_OFFSET + index * size_of::<LinkNode>();
        link.cast::<u8>().sub(offset).cast::<State>()
    }
}

/// Calls `f` on each link of a state; returns how many it has.
///
/// # Safety
/// `this` is live (or dying, not yet freed); its links are initialised.
#[inline(always)]
unsafe fn for_each(this: NonNull<State>, mut f: impl FnMut(NonNull<LinkNode>)) -> usize {
    // SAFETY: the caller's contract; HAS_LINKS is constant after creation.
    unsafe {
        if this.as_ref().word.load() & HAS_LINKS == 0 {
            return 0;
        }
        let mut i = 0;
        loop {
            let link = link_at(this, i);
            let last = (*link.as_ptr()).node.is_last();
            f(link);
            i += 1;
            if last {
                return i;
            }
        }
    }
}

/// Calls `f` with each parent of a linked state (whether or not the link is
/// still in the parent's list). Each parent is kept alive by the link.
///
/// # Safety
/// As for `for_each`.
#[cfg(feature = "alloc")]
pub(crate) unsafe fn for_each_parent(this: NonNull<State>, mut f: impl FnMut(NonNull<State>)) {
    // SAFETY: forwarded; `parent` is immutable.
    unsafe { for_each(this, |link| f((*link.as_ptr()).parent)) };
}

/// Links each of a new child's links into its parent's list, one parent at
/// a time. Stops when the child turns out cancelled by a parent linked
/// earlier (that parent's drain has it), or when a parent turns out
/// cancelled: then returns that parent's reason, and the caller claims and
/// drains the child (which detaches the links made).
///
/// # Safety
/// `this` was just made by `alloc` and is held by the caller.
#[inline]
#[cfg(feature = "alloc")]
pub(crate) unsafe fn attach_all(this: NonNull<State>) -> Option<Reason> {
    let mut born_cancelled = None;
    let mut stop = false;
    // SAFETY: initialised by `alloc`; parents are live (links hold refs).
    unsafe {
        for_each(this, |link| {
            if !stop {
                (stop, born_cancelled) = attach_link(this, link, true);
            }
        });
    }
    born_cancelled
}

/// [`attach_all`] for a child of one parent (`alloc_one`): no loop.
///
/// # Safety
/// As for `attach_all`.
#[inline]
#[cfg(feature = "alloc")]
pub(crate) unsafe fn attach_one(this: NonNull<State>) -> Option<Reason> {
    // SAFETY: forwarded; `alloc_one` made link 0. The child cannot be
    // cancelled before this link is in: it has no other parent, and its
    // handles are not out yet.
    unsafe { attach_link(this, link_at(this, 0), false).1 }
}

/// Links one link of a new child into its parent's list; returns whether
/// to stop (the child or that parent is cancelled) and, if the parent was
/// cancelled, its reason. See [`attach_all`]. `may_be_cancelled`: whether
/// a parent linked earlier may have cancelled the child.
///
/// # Safety
/// As for `attach_all`; `link` is one of `this`'s links.
#[inline(always)]
#[cfg(feature = "alloc")]
unsafe fn attach_link(
    this: NonNull<State>,
    link: NonNull<LinkNode>,
    may_be_cancelled: bool,
) -> (bool, Option<Reason>) {
    // SAFETY: caller's contract.
    unsafe {
        let st = this.as_ref();
        // The link's pointer itself (the node is its first field): it
        // keeps the whole allocation's provenance, which the drain needs
        // to get from the link back to its child (`child_of`). A pointer
        // made from `&link.node` would cover the node only.
        let node = link.cast::<Node>();
        let parent = (*link.as_ptr()).parent.as_ref();
        // Not `State::attach`: the child may be cancelled meanwhile by
        // a parent linked earlier, checked under this parent's lock.
        match parent.word.lock_unless_cancelled() {
            Ok(guard) => {
                // That parent's claim detaches every LINKED link, taking
                // this lock to do so: checking here, under it, leaves no
                // link behind.
                if may_be_cancelled && st.is_cancelled() {
                    drop(guard);
                    return (true, None);
                }
                parent.push_observer(node);
                node.as_ref().set_state_unflagged(LINKED);
                drop(guard);
                (false, None)
            }
            // The parent was cancelled after the caller's check: so is the
            // child, unless another parent's canceller got there first
            // (then the claim fails and nothing drains).
            Err(_) => (true, Some(parent.reason().unwrap_or(Reason::Requested))),
        }
    }
}

/// Takes a link out of its parent's list if it is still there. The parent's
/// lock is taken even when the link is no longer LINKED: a canceller that
/// popped it may still be working on the child under that lock (the leaf
/// path in `step` holds no reference to the child), and must be done before
/// a dying child is freed.
///
/// # Safety
/// `link` is an initialised link of a live or dying state; its parent is
/// live (the link holds a reference to it).
unsafe fn unlink(link: NonNull<LinkNode>) {
    // SAFETY: caller's contract; the node's status and links change only
    // under the parent's lock, which we hold.
    unsafe {
        let node = &(*link.as_ptr()).node;
        let parent = (*link.as_ptr()).parent.as_ref();
        let guard = parent.word.lock();
        if node.state(Ordering::Relaxed) == LINKED {
            list::remove(&parent.head, link.cast());
            node.set_state_unflagged(DETACHED);
        }
        drop(guard);
    }
}

/// Takes every link of a dying state out of its parents' lists; see
/// `unlink` for why each parent's lock is taken. Returns the number of
/// links, for `release_parents` and `free`.
///
/// # Safety
/// `this` has no references left.
#[inline]
#[cfg(feature = "alloc")]
pub(crate) unsafe fn unlink_all(this: NonNull<State>) -> usize {
    // SAFETY: forwarded; the links' references keep the parents alive.
    unsafe { for_each(this, |link| unlink(link)) }
}

/// Releases each of the `links` links' reference to its parent, calling
/// `on_last` with a parent whose last reference that was.
///
/// # Safety
/// `this` has no references left, has left every parent's list, and has
/// `links` links (`unlink_all`'s count).
#[inline]
#[cfg(feature = "alloc")]
pub(crate) unsafe fn release_parents(
    this: NonNull<State>,
    links: usize,
    mut on_last: impl FnMut(NonNull<State>),
) {
    for i in 0..links {
        // SAFETY: link `i` exists (caller's contract); it owns one
        // reference to its parent, which it gives up here.
        unsafe {
            let parent = (*link_at(this, i).as_ptr()).parent;
            // Release/Acquire, as in `Arc::drop` (see `lifetime::release`).
            if parent.as_ref().refs().fetch_sub(1, Ordering::Release) == 1 {
                parent.as_ref().refs().load(Ordering::Acquire);
                on_last(parent);
            }
        }
    }
}

/// Takes the links of a cancelled child out of its parents' lists: once
/// cancelled it needs nothing more from them (the seeds' "linked sources
/// must not leak" rule).
///
/// # Safety
/// `this` is live.
#[inline]
pub(crate) unsafe fn detach_all(this: NonNull<State>) {
    // SAFETY: `this` is live, its parents are kept alive by the links' refs.
    unsafe {
        for_each(this, |link| {
            // DONE and DETACHED are final: no need to lock the parent to see
            // that the link is already out of its list. (IDLE and LINKED
            // must be checked under the parent's lock: see `attach_all`.)
            let seen = (*link.as_ptr()).node.state(Ordering::Acquire);
            if seen == DONE || seen == DETACHED {
                return;
            }
            unlink(link);
        });
    }
}

/// The drain's step for a popped link: marks it DONE and, still holding the
/// parent's lock, claims the child. A child already cancelled is skipped
/// (another claim drains it); a leaf is finished here, keeping the parent's
/// lock (at most `LEAF_BATCH` per hold); any other child is descended into,
/// held by a reference (`try_acquire`; a child whose last reference is gone
/// is being destroyed, and is skipped: its `destroy` takes this parent's
/// lock before freeing it, so it cannot be freed while we look at it).
///
/// # Safety
/// The front node of `st`'s list is a link and `guard` holds its lock.
#[inline]
pub(crate) unsafe fn step<'a>(
    st: &State,
    guard: WordGuard<'a>,
    reason: &Reason,
    ctx: &mut Drain,
) -> Next<'a> {
    loop {
        // SAFETY: caller's contract (and, looping, checked below).
        let popped = unsafe { st.pop_front() };
        let link = popped.cast::<LinkNode>();
        // SAFETY: the link is live while listed, and its child stays
        // allocated while we hold this lock (see above).
        let child = unsafe { child_of(link) };
        // SAFETY: under the lock.
        unsafe { popped.as_ref().set_state_unflagged(DONE) };
        // SAFETY: the child is allocated (see above).
        let cst: &'a State = unsafe { &*child.as_ptr() };
        let Some(child_guard) = cst.claim(reason, Origin::Parent) else {
            // Already cancelled (by itself or another parent).
            return Next::Locked(guard);
        };
        // SAFETY: we hold the child's lock; links are immutable.
        let leaf = unsafe { cst.front().is_none() && (*link_at(child, 0).as_ptr()).node.is_last() };
        if !(leaf && ctx.leaves < LEAF_BATCH) {
            return descend(st, guard, popped, child, child_guard, ctx);
        }
        // Nothing listed and no other parent: the child is done.
        ctx.leaves += 1;
        drop(child_guard);
        // A run of leaves (a parent of many children) is finished here,
        // without going back to the drain loop for each.
        // SAFETY: under the lock; listed nodes are live, `kind` immutable.
        let more = unsafe { st.front().is_some_and(|f| f.as_ref().kind() == Kind::Link) };
        if !more || ctx.leaves >= LEAF_BATCH {
            return Next::Locked(guard);
        }
    }
}

/// The end of `step` for a child that is not a leaf (or past the batch of
/// leaves): hold it by a reference and descend into it.
#[inline]
fn descend<'a>(
    st: &State,
    mut guard: WordGuard<'a>,
    popped: NonNull<Node>,
    child: NonNull<State>,
    mut child_guard: WordGuard<'a>,
    ctx: &mut Drain,
) -> Next<'a> {
    // SAFETY: the child is allocated while we hold the parent's lock.
    let cst: &'a State = unsafe { &*child.as_ptr() };
    ctx.leaves = 0;
    // The child must outlive the parent's lock: take a reference.
    if !cst.try_acquire() {
        drop(child_guard);
        return Next::Locked(guard);
    }
    // SAFETY: we hold the parent's lock.
    let parent_empty = unsafe { st.front().is_none() };
    // The parent's hold ends before the child's, which it encloses.
    guard.hand_over(&mut child_guard);
    drop(guard);
    Next::Descend {
        child,
        link: popped.cast(),
        guard: child_guard,
        parent_empty,
    }
}

/// The child a popped link (on the drain's path) was descended into.
///
/// # Safety
/// `link` is a link node popped by a drain, whose child that drain holds.
#[cfg(feature = "std")]
pub(crate) unsafe fn descended_child(link: NonNull<Links>) -> NonNull<State> {
    // SAFETY: caller's contract: a link of a live child.
    unsafe { child_of(link.cast::<LinkNode>()) }
}

/// The parent a popped link (on the drain's path) leads back to.
///
/// # Safety
/// `link` is a link node popped by this drain.
pub(crate) unsafe fn parent_of(link: NonNull<Links>) -> NonNull<State> {
    // SAFETY: caller's contract; `parent` is immutable.
    unsafe { (*link.cast::<LinkNode>().as_ptr()).parent }
}

/// Whether anything can still cancel `this`: it is cancelled, a canceller
/// (source handle or armed timer) is alive, or a linked parent can be
/// cancelled. A `false` is exact. A `true` may be conservative on one kind
/// of graph: after `FORK_BUDGET` branchings into an extra parent the walk
/// answers `true` (see `CancellationToken::can_be_cancelled`).
///
/// # Safety
/// `this` is live.
#[inline]
pub(crate) unsafe fn can_be_cancelled(this: NonNull<State>) -> bool {
    fn walk(mut this: NonNull<State>, budget: &mut u32) -> bool {
        loop {
            // SAFETY: `this` is the caller's state or an ancestor kept alive
            // by a link of a live descendant.
            let w = unsafe { this.as_ref().word.load() };
            if word::has_canceller(w) {
                return true;
            }
            if w & HAS_LINKS == 0 {
                return false;
            }
            let mut next: Option<NonNull<State>> = None;
            let mut found = false;
            // SAFETY: `this` is live; links and `parent` are immutable.
            unsafe {
                for_each(this, |link| {
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
    // The common answer without the walk's call: a source alive, or no link.
    // SAFETY: caller's contract.
    let w = unsafe { this.as_ref().word.load() };
    if word::has_canceller(w) {
        return true;
    }
    if w & HAS_LINKS == 0 {
        return false;
    }
    let mut budget = FORK_BUDGET;
    walk(this, &mut budget)
}

#[cfg(feature = "alloc")]
/// Frees a state with `links` link nodes (made by `alloc_plain` or `alloc`);
/// returns its custom cause, user data for the caller to drop.
///
/// # Safety
/// Nothing can reach `this` any more (see `lifetime::destroy_chain`).
#[inline]
pub(crate) unsafe fn free(
    this: NonNull<State>,
    links: usize,
) -> Option<alloc::sync::Arc<crate::raw::reason::CustomCause>> {
    // SAFETY: forwarded; link nodes need no drop.
    unsafe { State::free_with::<LinkNode>(this, links) }
}
