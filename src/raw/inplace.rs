//! A source's state in place: inside the caller's own value (a `static`,
//! a runtime's task struct), not on the heap. It is the same `State`, word
//! and list as a heap source's, observed by the same node kinds through an
//! uncounted [`StateView`]; only its lifetime differs:
//!
//! - **Nothing counts it.** Its count of references starts at one (its own,
//!   never given back), so the clones and drops of counted references that
//!   some paths take and give back in pairs can never reach zero: an
//!   in-place state is never freed by `lifetime.rs`.
//! - **Borrows keep it alive.** Every observer (token, future, pinned
//!   registration) borrows it for `'a`, so the borrow checker forbids
//!   moving or dropping it while any is alive; a drop (`&mut self`) sees
//!   no live observer and no canceller in the middle of a call (`cancel`
//!   borrows it too).
//! - **What a leak leaves behind.** An observer leaked with `mem::forget`
//!   (a `Box::pin`ned future or registration) ends the borrow without
//!   leaving the list. Its node is leaked memory, valid forever, and a
//!   callback's closure is `'static`: if the source is then moved its list
//!   still works (no node points at the head: `list.rs`), a cancel wakes
//!   or runs the leaked node as usual, and a drop leaves it there, as a
//!   heap state's death does (`lifetime::retire`).
//! - **A timeout pins it.** A clock's queue keeps a timer node that points
//!   at the state, beyond any borrow, so arming one takes the source
//!   pinned (`Pin<&InplaceSource>`): it is never moved again, and its drop
//!   runs before its memory goes. The drop retires the timer (out of the
//!   list under the state's lock, out of the queue under the queue's), then
//!   waits for a fire that took a counted reference before that (under the
//!   queue's lock) to give it back: the fire's drain is then over.
//!
//! A drop (`&mut self`) finds no observer borrowing the state and no call
//! of its owner inside it; a clock's fire is the one outside user left.

#[cfg(feature = "alloc")]
use core::pin::Pin;
#[cfg(feature = "alloc")]
use core::ptr::NonNull;

use super::cancel;
#[cfg(feature = "alloc")]
use super::kinds::link;
#[cfg(feature = "alloc")]
use super::kinds::timer::{self, Ticks, Timeline};
use super::lifetime::StateView;
#[cfg(feature = "alloc")]
use super::lifetime::{self, StateRef};
#[cfg(feature = "alloc")]
use super::reason::CustomCause;
use super::reason::Reason;
use super::state::State;
#[cfg(feature = "alloc")]
use super::word::{CANCELLED, HAS_LINKS};
use super::word::{Origin, SOURCE_ONE};

/// The state of an in-place source, with its own uncounted reference.
/// `repr(transparent)`: an in-place child lays its link out after it as
/// after a heap child's state.
///
/// `!Unpin` (`PhantomPinned`), and that is load-bearing: its drop gets
/// `&mut self` while a clock's fire or a parent's drain may still be
/// working on the state on another thread (the drop waits for them,
/// `retire_and_wait`). A `&mut` to an `!Unpin` type asserts no
/// uniqueness (the aliasing model exempts it, as it does a pinned
/// registration's node that a canceller runs during its owner's drop).
#[repr(transparent)]
pub(crate) struct InplaceState {
    state: State,
    _pinned: core::marker::PhantomPinned,
}

impl InplaceState {
    /// A new state: not cancelled, one canceller (the owner), one reference
    /// that is never given back.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: State::with_word(SOURCE_ONE, 1),
            _pinned: core::marker::PhantomPinned,
        }
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: State::with_word(SOURCE_ONE, 1),
            _pinned: core::marker::PhantomPinned,
        }
    }

    /// The state, borrowed for as long as `self` is.
    #[inline(always)]
    pub(crate) fn view(&self) -> StateView<'_> {
        StateView::borrow(&self.state)
    }

    /// Cancels with `reason`, as a heap source's `cancel` does: the same
    /// claim and drain, over an uncounted reference that the borrow of
    /// `self` keeps valid for the whole call.
    #[inline]
    pub(crate) fn cancel(&self, reason: Reason) -> bool {
        cancel::cancel(self.view().as_state_ref(), reason, Origin::Cancel)
    }

    /// Arms this state's timeout on `timeline` (see
    /// `StateRef::arm_timeout`; `NEVER` disarms). The caller holds the
    /// source pinned, so the state never moves while a queue points at it.
    #[cfg(feature = "alloc")]
    pub(crate) fn arm_timeout(
        &self,
        timeline: &alloc::sync::Arc<Timeline>,
        deadline: Ticks,
        cause: Option<alloc::sync::Arc<CustomCause>>,
    ) {
        // The owner is the state's one source handle (SOURCE_ONE).
        self.view()
            .as_state_ref()
            .arm_timeout(timeline, deadline, cause);
    }

    /// Disarms this state's timeout; whether it was armed.
    #[cfg(feature = "alloc")]
    pub(crate) fn disarm_timeout(&self) -> bool {
        timer::disarm_source(&self.state)
    }
}

#[cfg(feature = "alloc")]
impl InplaceState {
    /// What a drop does before the memory goes: retires the timer (out of
    /// the list under the state's lock, out of the queue under the
    /// queue's), then waits until every counted reference taken by someone
    /// else (a fire, a parent's drain) is given back. Returns what it took
    /// out, for the caller to drop last (user code: a cause's `Drop`, the
    /// clock's last handle).
    fn retire_and_wait(&mut self) -> impl Drop {
        let st = &self.state;
        // Under the lock: a fire may be claiming the state meanwhile.
        let guard = st.word.lock();
        // SAFETY: we hold the lock.
        let node = unsafe { timer::retire(st) };
        drop(guard);
        // Out of the queue: after this no fire can take a reference.
        let taken = node.as_ref().and_then(|node| Timeline::disarm(node));
        // A fire that took one before gives it back when its drain ends,
        // also when that drain already took the timer node out of the list
        // (so `node` is `None`); so does a parent's drain that descended
        // into an in-place child. Acquire pairs with that release's
        // `Release` decrement: the drain happens-before the memory goes.
        // Never armed nor linked: the count is one already.
        let backoff = crate::sync::Backoff::new();
        while st.refs().load(crate::sync::Ordering::Acquire) != 1 {
            // The holder may be this thread: a drain up the stack whose user
            // code dropped the state. That wait would never end, and going
            // on would free memory the drain still uses: abort, saying so.
            #[cfg(feature = "std")]
            if backoff.is_completed() && cancel::holds_counted(st) {
                dropped_inside_its_own_cancellation();
            }
            backoff.snooze();
        }
        DropLast(taken, node)
    }
}

/// An in-place state dropped by user code that its own cancellation runs
/// (see `retire_and_wait`): nothing sound is left to do but stop.
#[cfg(feature = "std")]
#[cold]
#[inline(never)]
fn dropped_inside_its_own_cancellation() -> ! {
    std::eprintln!(
        "cancel-core: an in-place source was dropped inside its own cancellation \
         (by a callback or a waker that its timeout's fire or its parent's cancel \
         runs, on this thread): that cancellation cannot finish without the \
         source's memory. Drop it after the cancellation returns, or use a \
         CancellationSource. Aborting."
    );
    std::process::abort()
}

/// User data a dying in-place state took out, dropped last.
#[cfg(feature = "alloc")]
struct DropLast<A, B>(A, B);

#[cfg(feature = "alloc")]
impl<A, B> Drop for DropLast<A, B> {
    fn drop(&mut self) {}
}

#[cfg(feature = "alloc")]
impl Drop for InplaceState {
    fn drop(&mut self) {
        drop(self.retire_and_wait());
    }
}

/// An in-place child of a heap parent: its state, then its one link, laid
/// out as a heap child's allocation (`kinds/link.rs`), so that the link
/// protocol is the same: the parent's drain claims it under the parent's
/// lock and may descend into it holding a counted reference. What differs
/// is the end: the owner's drop unlinks it from the parent, waits for a
/// drain that descended into it (`retire_and_wait`), and only then gives
/// back the link's reference to the parent (which may free the parent).
/// Pinned before it is linked: the parent's list points at the link.
#[cfg(feature = "alloc")]
#[repr(C)]
pub(crate) struct InplaceChildState {
    inner: InplaceState,
    link: link::LinkNode,
}

// SAFETY: the state is Send + Sync; the link's `parent` is immutable (and
// counted), its status and list pointers change only under the parent's
// lock, as a heap child's link does. Nothing in it is tied to a thread.
#[cfg(feature = "alloc")]
unsafe impl Send for InplaceChildState {}
// SAFETY: as above.
#[cfg(feature = "alloc")]
unsafe impl Sync for InplaceChildState {}

#[cfg(feature = "alloc")]
const _: () = assert!(core::mem::offset_of!(InplaceChildState, link) == link::LINKS_OFFSET);

#[cfg(feature = "alloc")]
impl InplaceChildState {
    /// A child of `parent` (`none()`: of nothing, a plain in-place state),
    /// not linked yet; holds a counted reference to the parent.
    pub(crate) fn new(parent: &StateRef) -> Self {
        if parent.is_none() {
            return Self {
                inner: InplaceState {
                    state: State::with_word(SOURCE_ONE, 1),
                    _pinned: core::marker::PhantomPinned,
                },
                // SAFETY: no parent.
                link: unsafe { link::LinkNode::inplace(None) },
            };
        }
        Self {
            inner: InplaceState {
                state: State::with_word(SOURCE_ONE | HAS_LINKS, 1),
                _pinned: core::marker::PhantomPinned,
            },
            // SAFETY: the caller holds a reference to the parent.
            link: unsafe { link::LinkNode::inplace(Some(parent.ptr())) },
        }
    }

    /// The state, with provenance over the link too (the link protocol
    /// reaches the link from the state and back).
    #[inline]
    fn ptr(self: Pin<&Self>) -> NonNull<State> {
        NonNull::from(self.get_ref()).cast::<State>()
    }

    /// The state, borrowed for as long as `self` is; linked first.
    #[inline]
    pub(crate) fn view(self: Pin<&Self>) -> StateView<'_> {
        self.ensure_linked();
        // SAFETY: the state lives as long as the borrow of `self`.
        unsafe { StateView::from_ptr(self.ptr()) }
    }

    /// Links the child into its parent's list unless it is already (or
    /// cannot be: cancelled, or a child of nothing). A parent found
    /// cancelled cancels the child with its reason.
    #[inline]
    fn ensure_linked(self: Pin<&Self>) {
        let w = self.inner.state.word.load();
        if w & HAS_LINKS == 0 || w & CANCELLED != 0 || !self.link.is_idle() {
            return;
        }
        self.link_slow();
    }

    #[cold]
    fn link_slow(self: Pin<&Self>) {
        let this = self.ptr();
        // SAFETY: pinned, live for the call, provenance over the link.
        if let Some(reason) = unsafe { link::attach_inplace(this) } {
            // SAFETY: as above.
            let view = unsafe { StateView::from_ptr(this) };
            cancel::cancel(view.as_state_ref(), reason, Origin::Parent);
        }
    }
}

#[cfg(feature = "alloc")]
impl Drop for InplaceChildState {
    fn drop(&mut self) {
        if self.inner.state.word.load() & HAS_LINKS == 0 {
            return;
        }
        // SAFETY: `drop` runs on the pinned value in place.
        let this = unsafe { Pin::new_unchecked(&*self) }.ptr();
        // SAFETY: live; the link holds its reference to the parent. After
        // this no parent's drain can reach the child.
        unsafe { link::unlink_all(this) };
        let last = self.inner.retire_and_wait();
        // SAFETY: the link's own reference, given back once: nothing can
        // reach the child through the parent any more. May free the parent
        // (user code: its causes), so after everything else but `last`.
        unsafe { lifetime::release(self.link.parent()) };
        drop(last);
    }
}

#[cfg(all(test, not(loom), feature = "alloc"))]
mod tests {
    use super::link::{LINKS_OFFSET, LinkNode};
    use super::*;

    /// The constant the link code and the in-place child's layout use is
    /// where `State::layout_with` puts a heap child's link array.
    #[test]
    fn the_link_array_offset_is_the_layouts() {
        assert_eq!(LINKS_OFFSET, State::layout_with::<LinkNode>(0).1);
        assert_eq!(LINKS_OFFSET, State::layout_with::<LinkNode>(3).1);
    }
}
