//! Object lifetime: `StateRef`, the counted reference to a state, and what
//! happens when the last one goes: the state leaves its parents' lists,
//! its timer is retired, it is freed, and so, in the same loop, is any
//! parent whose last reference was one of its links (never by recursion:
//! dropping a chain of any depth needs constant stack).
//!
//! Without references, a state can still be reached through its links: a
//! parent's canceller may pop one and claim the state (and read its list)
//! under that parent's lock. So a dying state first leaves every parent's
//! list, taking each parent's lock once; after that nothing can reach it,
//! and its own list is retired without its own lock. A parent freed in the
//! same loop is still linked to its own parents, so it is retired under its
//! own lock. (Reversing the order is a data race that the loom models
//! `parent_cancel_vs_child_last_handle_drop` and
//! `parent_cancel_vs_last_drop_of_a_timed_two_parent_child` report.)

use core::ptr::{self, NonNull};

#[cfg(feature = "alloc")]
use super::kinds::link;
#[cfg(feature = "alloc")]
use alloc::sync::Arc;

#[cfg(feature = "alloc")]
use super::kinds::timer::{self, Taken, Timeline};
#[cfg(feature = "alloc")]
use super::reason::CustomCause;
use super::state::{self, NONE, NONE_REFS, State};
use crate::sync::Ordering;

/// A counted reference to a state; `Clone` and `Drop` adjust the count,
/// also of [`NONE`] (whose `const` references are not counted: see there).
///
/// `repr(transparent)`, so that a [`StateView`] (the same pointer,
/// uncounted) can lend itself as one (`StateView::as_state_ref`).
#[repr(transparent)]
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

    /// Adopts one counted reference to `ptr` (a new state's first, or one
    /// taken with `try_acquire`).
    ///
    /// # Safety
    /// The caller owns that reference and gives it up.
    #[inline]
    #[cfg(feature = "alloc")]
    pub(crate) unsafe fn from_raw(ptr: NonNull<State>) -> Self {
        Self { ptr }
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> &State {
        // SAFETY: a StateRef holds a counted reference (or points to NONE).
        unsafe { self.ptr.as_ref() }
    }

    #[inline(always)]
    pub(crate) fn ptr(&self) -> NonNull<State> {
        self.ptr
    }

    #[inline]
    pub(crate) fn is_none(&self) -> bool {
        ptr::eq(self.ptr.as_ptr(), state::none_ptr())
    }

    /// Identity, for `Eq` and `Hash`.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

/// How a node's owner (a future, a pinned registration) reaches its state:
/// a token held by value, or a borrowed view. The owner keeps the state
/// alive while its node is attached.
pub(crate) trait HoldsState {
    fn state(&self) -> &StateRef;
}

/// An uncounted reference to a state that stays alive for `'a`: a token's
/// state borrowed through the token (`token.cancelled()`), or an in-place
/// source's state borrowed through the source (`inplace.rs`). Copying it
/// costs nothing and touches no count.
///
/// It lends itself as a `&StateRef` to the code that takes one. Code that
/// clones that reference takes a counted one, given back by its drop: the
/// count stays at least one (an in-place state's own uncounted reference,
/// or the lender's), so a view never makes a state die.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub(crate) struct StateView<'a> {
    ptr: NonNull<State>,
    _borrow: core::marker::PhantomData<&'a State>,
}

// SAFETY: a shared borrow of a Send + Sync State.
unsafe impl Send for StateView<'_> {}
// SAFETY: as above.
unsafe impl Sync for StateView<'_> {}

impl<'a> StateView<'a> {
    /// The state behind a counted reference, for as long as it is borrowed.
    #[inline(always)]
    pub(crate) fn of(state: &'a StateRef) -> Self {
        Self {
            ptr: state.ptr,
            _borrow: core::marker::PhantomData,
        }
    }

    /// A state borrowed for `'a`.
    #[inline(always)]
    pub(crate) fn borrow(state: &'a State) -> Self {
        Self {
            ptr: NonNull::from(state),
            _borrow: core::marker::PhantomData,
        }
    }

    #[inline(always)]
    pub(crate) fn get(&self) -> &'a State {
        // SAFETY: borrowed for 'a (see the constructors).
        unsafe { self.ptr.as_ref() }
    }

    /// A state at `ptr`, borrowed for `'a`.
    ///
    /// # Safety
    /// The state at `ptr` stays alive for `'a`.
    #[cfg(feature = "alloc")]
    #[inline(always)]
    pub(crate) unsafe fn from_ptr(ptr: NonNull<State>) -> Self {
        Self {
            ptr,
            _borrow: core::marker::PhantomData,
        }
    }

    /// This view as a `&StateRef`, never dropped (see the type's comment).
    #[inline(always)]
    pub(crate) fn as_state_ref(&self) -> &StateRef {
        // SAFETY: both types are `repr(transparent)` over `NonNull<State>`
        // (the marker is a ZST); a shared reference is never dropped, so no
        // uncounted release can happen through it.
        unsafe { &*(self as *const Self).cast::<StateRef>() }
    }

    /// Identity, for `Eq` and `Hash`.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl HoldsState for StateView<'_> {
    #[inline(always)]
    fn state(&self) -> &StateRef {
        self.as_state_ref()
    }
}

impl Clone for StateRef {
    #[inline]
    fn clone(&self) -> Self {
        self.get().acquire();
        Self { ptr: self.ptr }
    }
}

impl Drop for StateRef {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own a counted reference and give it up (one to NONE
        // may be uncounted; its count never reaches zero: see `destroy`).
        unsafe { release(self.ptr) }
    }
}

/// Drops one reference; the last one destroys the state.
///
/// # Safety
/// The caller owns one counted reference to `this` and gives it up.
#[inline]
pub(crate) unsafe fn release(this: NonNull<State>) {
    // SAFETY: we own a reference, so the state is live.
    let refs = unsafe { this.as_ref().refs() };
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
/// # Safety
/// `first` has no references left.
#[cold]
unsafe fn destroy(first: NonNull<State>) {
    if ptr::eq(first.as_ptr(), state::none_ptr()) {
        // 2^62 unpaired drops of `const` references to NONE: re-seed the
        // count, never free the static (`state::NONE`).
        // SAFETY: NONE is a static.
        unsafe { first.as_ref().refs().store(NONE_REFS, Ordering::Relaxed) };
        return;
    }
    // Without `alloc` every state is NONE or in place, and an in-place
    // state's own reference is never given back (`inplace.rs`): no count
    // but NONE's reaches zero.
    #[cfg(not(feature = "alloc"))]
    unreachable!("cancel-core: a state without references and no heap");
    // SAFETY: forwarded; `first` is dead, its parents are kept alive by its
    // links' references until `destroy_chain` releases them.
    #[cfg(feature = "alloc")]
    unsafe {
        let links = link::unlink_all(first);
        let retired = retire(first, ptr::null_mut(), false);
        destroy_chain(first, links, retired);
    }
}

#[cfg(feature = "alloc")]
/// Retires a dead state's list: takes its timer node out of the list and out
/// of its queue (the state is freed only after this: `kinds/timer.rs`), and
/// sets `head` to `next`, the chain of dead states `destroy_chain` walks.
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
/// from every parent.
unsafe fn retire(this: NonNull<State>, next: *mut State, reachable: bool) -> Retired {
    // SAFETY: a dead state is still allocated. The list is ours: under the
    // lock, or unreachable (caller's contract).
    unsafe {
        let st = this.as_ref();
        let guard = reachable.then(|| st.word.lock());
        let node = timer::retire(st);
        st.head.with_mut(|h| *h = next.cast());
        drop(guard);
        // Its source count dies with the state: nobody reads it again. The
        // entry (its cause) and the node (maybe its clock's last handle)
        // are user code to drop: the caller's, last.
        node.map(|node| (Timeline::disarm(&node), node))
    }
}

#[cfg(feature = "alloc")]
/// What `retire` took out: the timer's queue entry and node, if it had one.
type Retired = Option<(Option<Taken>, Arc<timer::TimerNode>)>;

#[cfg(feature = "alloc")]
/// Drops user data that a dying state held: a retired timer (its cause,
/// maybe its clock's last handle) or a custom cause. After the free, so
/// that a panic leaves nothing half-done: with `std` it is kept in
/// `first_panic` until the rest of the chain is freed; without it, it
/// unwinds from here and the states still to free are leaked, never freed
/// twice. Out of line: the common death has none.
#[cold]
#[inline(never)]
fn drop_user_data(
    retired: Retired,
    custom: Option<Arc<CustomCause>>,
    #[cfg(feature = "std")] first_panic: &mut Option<crate::unwind::Payload>,
    #[cfg(not(feature = "std"))] _: &mut (),
) {
    #[cfg(feature = "std")]
    crate::unwind::catch(first_panic, move || drop((retired, custom)));
    #[cfg(not(feature = "std"))]
    drop((retired, custom));
}

#[cfg(feature = "alloc")]
/// Frees a state with no references left, and with it its links; a parent
/// whose last reference was such a link is freed in the same loop.
///
/// # Safety
/// `first` has no references left, was unlinked from its `first_links`
/// parents and retired (see `destroy`).
unsafe fn destroy_chain(first: NonNull<State>, first_links: usize, first_retired: Retired) {
    // Dead states waiting to be freed are chained through their `head`
    // field: once its timer is gone, a state with no references has nothing
    // in its list that anyone will look at again (every live node belongs to
    // a handle or a child link, and each holds a reference; see `retire` for
    // leaked futures). `first` was retired with an empty chain by `destroy`.
    let mut todo: *mut State = first.as_ptr();
    #[cfg(feature = "std")]
    let mut first_panic: Option<crate::unwind::Payload> = None;
    #[cfg(not(feature = "std"))]
    let mut first_panic = ();
    while let Some(this) = NonNull::new(todo) {
        // SAFETY: `this` is on the dead list: unreachable by anyone else
        // except, for a parent freed here, a grandparent's canceller until
        // we unlink it (under the grandparent's lock).
        let custom = unsafe {
            todo = this.as_ref().head.with(|h| *h).cast::<State>();
            let links = if this == first {
                first_links
            } else {
                link::unlink_all(this)
            };
            link::release_parents(this, links, |parent| {
                // Still linked to its own parents: retired under its lock.
                let retired = retire(parent, todo, true);
                if retired.is_some() {
                    drop_user_data(retired, None, &mut first_panic);
                }
                todo = parent.as_ptr();
            });
            link::free(this, links)
        };
        if custom.is_some() {
            drop_user_data(None, custom, &mut first_panic);
        }
    }
    // The first state's timer, after its free too.
    if first_retired.is_some() {
        drop_user_data(first_retired, None, &mut first_panic);
    }
    #[cfg(feature = "std")]
    crate::unwind::resume(first_panic);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// `CancellationToken::none()` makes uncounted references whose drops
    /// decrement NONE's count: were it ever to reach zero, the count is
    /// re-seeded and the static is not freed; past `isize::MAX` its clone
    /// does not abort. (Other tests clone `none()`
    /// concurrently, so one attempt may miss zero; a few tries reach it.)
    #[test]
    fn none_count_reaching_zero_is_reseeded_not_freed() {
        let refs = NONE.refs();
        let mut reseeded = false;
        for _ in 0..1000 {
            refs.store(1, Ordering::Relaxed);
            drop(StateRef::none());
            if refs.load(Ordering::Relaxed) >= NONE_REFS / 2 {
                reseeded = true;
                break;
            }
        }
        // Whatever happened, leave it far from zero for the other tests.
        if refs.load(Ordering::Relaxed) < NONE_REFS / 2 {
            refs.store(NONE_REFS, Ordering::Relaxed);
        }
        assert!(reseeded, "NONE's count reached zero without a re-seed");
        // Past `isize::MAX` (where any other state's clone aborts, as
        // `Arc`'s does) a clone of NONE goes on: its count means nothing.
        refs.store(isize::MAX as usize + 1, Ordering::Relaxed);
        drop(StateRef::none().clone());
        refs.store(NONE_REFS, Ordering::Relaxed);
        // Still the same, usable, never-cancelled state.
        let token = StateRef::none();
        let clone = token.clone();
        assert!(clone.is_none() && !clone.get().is_cancelled());
        drop((clone, token));
    }
}
