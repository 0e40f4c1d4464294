//! One source's shared state: the word, the head of its observer list and
//! its custom cause; how it is allocated (optionally followed by an array,
//! the link nodes of a linked child: kinds/link.rs); its reference count;
//! the claim that cancels it; and the two idioms every node kind uses to
//! enter and leave the list. Nothing here knows a particular node kind.
//!
//! Rules every function here and in `kinds/` keeps (argued in
//! docs/design.md):
//! - under a bit lock: pointer surgery and status changes only; no user code,
//!   no allocation, no deallocation, no waker call, no drop of user data;
//! - bit locks nest only parent → child (the drain claiming a child under its
//!   parent's lock), and a clock's queue lock → a due state's lock (a fire's
//!   claim); nothing takes a parent's lock while holding a child's;
//! - a node is touched by the canceller only between popping it (under the
//!   lock) and marking it DONE (under the lock); its owner frees it only when
//!   it is not LINKED and not RUNNING, which it checks under the same lock;
//! - a `State` is freed when its count of references reaches zero (see
//!   `lifetime.rs`).

#[cfg(feature = "alloc")]
use core::alloc::Layout;
use core::ptr::{self, NonNull};

#[cfg(feature = "alloc")]
use alloc::sync::Arc;

use super::list::{self, Head, Links};
use super::node::{DETACHED, Kind, LINKED, Node};
#[cfg(feature = "alloc")]
use super::reason::CustomCause;
use super::reason::Reason;
#[cfg(feature = "alloc")]
use super::word;
use super::word::{CANCELLED, Origin, ReasonKind, Word, WordGuard};
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

/// Shared state of one source.
#[repr(C)]
pub(crate) struct State {
    pub(crate) word: Word,
    refs: AtomicUsize,
    /// The observer list; guarded by the word's bit lock. A dead state's
    /// `head` chains it to the next dead state to free (`lifetime.rs`).
    pub(crate) head: Head,
    /// The custom reason; written once, under the lock, before CANCELLED.
    #[cfg(feature = "alloc")]
    custom: UnsafeCell<Option<Arc<CustomCause>>>,
}

// SAFETY: every field is an atomic or is guarded: `head` and the nodes by the
// bit lock, `custom` by the CANCELLED publication protocol (written once
// before the Release that sets CANCELLED, read only after an Acquire that saw
// it). Nothing in a State is tied to a thread.
unsafe impl Send for State {}
// SAFETY: as above.
unsafe impl Sync for State {}

/// The state behind `CancellationToken::none()`: never cancelled, no
/// canceller, never written (every writer checks `can_be_cancelled` or
/// `is_none` first).
///
/// Its references are counted like any state's, so that `StateRef`'s clone
/// and drop need no test for it; but `CancellationToken::none()` is a
/// `const fn` and makes uncounted references, whose drops only decrement.
/// So its count means nothing and may wrap: it starts at [`NONE_REFS`] (a
/// quarter of the range, so reaching zero takes 2^62 unpaired drops, 2^30
/// on 32-bit targets), `lifetime::destroy` re-seeds it instead of freeing
/// a static whenever it reaches zero, and `acquire` does not abort for it
/// past `isize::MAX`.
#[cfg(not(loom))]
pub(crate) static NONE: State = State::with_word(0, NONE_REFS);

#[cfg(loom)]
loom::lazy_static! {
    pub(crate) static ref NONE: State = State::with_word(0, NONE_REFS);
}

/// The address of [`NONE`].
#[inline]
pub(crate) fn none_ptr() -> *const State {
    #[cfg(not(loom))]
    return &raw const NONE;
    #[cfg(loom)]
    return &*NONE as *const State;
}

/// [`NONE`]'s initial count of references (see there).
pub(crate) const NONE_REFS: usize = 1 << (usize::BITS - 2);

impl State {
    #[cfg(not(loom))]
    pub(super) const fn with_word(word: usize, refs: usize) -> Self {
        State {
            word: Word::new(word),
            refs: AtomicUsize::new(refs),
            head: UnsafeCell::new(ptr::null_mut()),
            #[cfg(feature = "alloc")]
            custom: UnsafeCell::new(None),
        }
    }

    #[cfg(loom)]
    pub(super) fn with_word(word: usize, refs: usize) -> Self {
        State {
            word: Word::new(word),
            refs: AtomicUsize::new(refs),
            head: UnsafeCell::new(ptr::null_mut()),
            #[cfg(feature = "alloc")]
            custom: UnsafeCell::new(None),
        }
    }

    #[cfg(feature = "alloc")]
    /// The layout of a state followed by `n` values of `T`, and the offset
    /// of that array.
    #[inline]
    pub(crate) fn layout_with<T>(n: usize) -> (Layout, usize) {
        // The common sizes (a plain source, a child of one parent) as
        // constants: no overflow tests at run time.
        match n {
            0 => Self::layout_const::<T, 0>(),
            1 => Self::layout_const::<T, 1>(),
            _ => Self::layout_any::<T>(n),
        }
    }

    #[cfg(feature = "alloc")]
    /// `layout_with::<T>(N)`, computed at compile time.
    #[inline(always)]
    fn layout_const<T, const N: usize>() -> (Layout, usize) {
        struct L<T, const N: usize>(core::marker::PhantomData<T>);
        impl<T, const N: usize> L<T, N> {
            const LAYOUT: (Layout, usize) = {
                let Ok(array) = Layout::array::<T>(N) else {
                    panic!("cancel-core: link array too large")
                };
                let offset = size_of::<State>().next_multiple_of(array.align());
                let align = if array.align() > align_of::<State>() {
                    array.align()
                } else {
                    align_of::<State>()
                };
                let Ok(layout) = Layout::from_size_align(offset + array.size(), align) else {
                    panic!("cancel-core: link array too large")
                };
                (layout.pad_to_align(), offset)
            };
        }
        L::<T, N>::LAYOUT
    }

    #[cfg(feature = "alloc")]
    #[inline(never)]
    fn layout_any<T>(n: usize) -> (Layout, usize) {
        let array = Layout::array::<T>(n).expect("cancel-core: too many parents");
        let (layout, offset) = Layout::new::<State>()
            .extend(array)
            .expect("cancel-core: too many parents");
        (layout.pad_to_align(), offset)
    }

    #[cfg(feature = "alloc")]
    /// Allocates a state with word `word`, one reference, and room for `n`
    /// (uninitialised) values of `T` after it.
    pub(crate) fn alloc_with<T>(n: usize, word: usize) -> NonNull<State> {
        let (layout, _) = Self::layout_with::<T>(n);
        // SAFETY: the layout has a non-zero size (State is not a ZST).
        let raw = unsafe { alloc::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<State>()) else {
            alloc::alloc::handle_alloc_error(layout)
        };
        // SAFETY: freshly allocated, suitably aligned for State.
        unsafe { ptr.as_ptr().write(Self::with_word(word, 1)) };
        ptr
    }

    #[cfg(feature = "alloc")]
    /// Frees a state allocated by `alloc_with::<T>(n, _)`, returning its
    /// custom cause (user data, to be dropped by the caller).
    ///
    /// # Safety
    /// Nothing can reach `this` any more; its trailing array needs no drop.
    pub(crate) unsafe fn free_with<T>(this: NonNull<State>, n: usize) -> Option<Arc<CustomCause>> {
        // SAFETY: caller's contract: we are the last user of the state.
        unsafe {
            let custom = this.as_ref().custom.with_mut(|p| (*p).take());
            ptr::drop_in_place(this.as_ptr());
            alloc::alloc::dealloc(this.as_ptr().cast::<u8>(), Self::layout_with::<T>(n).0);
            custom
        }
    }

    /// The count of references (sources, tokens, registrations, owned
    /// futures, children's links, a fire in progress).
    #[inline(always)]
    pub(crate) fn refs(&self) -> &AtomicUsize {
        &self.refs
    }

    /// Takes one more reference for a caller that holds one: `Relaxed`, as
    /// in `Arc::clone`. Aborts on overflow, as `Arc` does, except for
    /// [`NONE`], whose count may wander (uncounted `const` references drop
    /// too) and is never used to free it.
    #[inline]
    pub(crate) fn acquire(&self) {
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            self.overflow();
        }
    }

    #[cold]
    #[inline(never)]
    fn overflow(&self) {
        if !ptr::eq(self, none_ptr()) {
            crate::sync::abort();
        }
    }

    /// Takes one more reference unless the count is already zero (the
    /// state is being destroyed): for a canceller that found the state
    /// through a link, or a clock through its queue.
    ///
    /// The caller must know the memory stays allocated for the call (it
    /// holds the lock of the list the link is in, or the queue's lock).
    pub(crate) fn try_acquire(&self) -> bool {
        let mut n = self.refs.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return false;
            }
            if n > isize::MAX as usize {
                crate::sync::abort();
            }
            // Acquire, as in `Weak::upgrade`: we will read the state.
            match self
                .refs
                .compare_exchange_weak(n, n + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => n = actual,
            }
        }
    }

    #[inline(always)]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.word.load() & CANCELLED != 0
    }

    /// The reason, if the state is cancelled.
    pub(crate) fn reason(&self) -> Option<Reason> {
        let w = self.word.load();
        if w & CANCELLED == 0 {
            return None;
        }
        Some(match ReasonKind::of(w) {
            ReasonKind::Requested => Reason::Requested,
            ReasonKind::TimedOut => Reason::TimedOut,
            // SAFETY: written once before the Release that set CANCELLED,
            // which our Acquire load observed; never written again.
            #[cfg(feature = "alloc")]
            ReasonKind::Custom => match self.custom.with(|p| unsafe { (*p).clone() }) {
                Some(cause) => Reason::Custom(cause),
                None => Reason::Requested,
            },
            // Without `alloc` no reason is custom.
            #[cfg(not(feature = "alloc"))]
            ReasonKind::Custom => Reason::Requested,
        })
    }

    /// Where the cancellation came from, if the state is cancelled.
    pub(crate) fn origin(&self) -> Option<Origin> {
        let w = self.word.load();
        (w & CANCELLED != 0).then(|| Origin::of(w))
    }

    /// Takes the lock unless the state is cancelled, records `reason` and
    /// `origin` and sets CANCELLED. Returns the held lock if this call made
    /// the transition (exactly one call does).
    #[inline(always)]
    pub(crate) fn claim(&self, reason: &Reason, origin: Origin) -> Option<WordGuard<'_>> {
        #[cfg(not(feature = "alloc"))]
        {
            // Without `alloc` no reason is custom: always the one CAS.
            self.word.lock_and_cancel(reason.kind(), origin).ok()
        }
        #[cfg(feature = "alloc")]
        self.claim_any(reason, origin)
    }

    #[cfg(feature = "alloc")]
    #[inline(always)]
    fn claim_any(&self, reason: &Reason, origin: Origin) -> Option<WordGuard<'_>> {
        let Reason::Custom(cause) = reason else {
            // One CAS: lock, CANCELLED, the reason kind and the origin.
            return self.word.lock_and_cancel(reason.kind(), origin).ok();
        };
        let guard = self.word.lock_unless_cancelled().ok()?;
        // Cloning an Arc is an atomic increment, not an allocation.
        let cause = cause.clone();
        // SAFETY: CANCELLED is not set and we hold the lock: no reader may
        // look at `custom` yet and no other writer exists. The old value is
        // `None`, so the write drops nothing.
        self.custom
            .with_mut(|p| unsafe { ptr::write(p, Some(cause)) });
        word::set_cancelled(&guard, ReasonKind::Custom, origin);
        Some(guard)
    }

    /// Links an observer node: at the front (so the list runs LIFO), but
    /// behind the source's timer node if it has one (which stays first, see
    /// kinds/timer.rs).
    ///
    /// # Safety
    /// The caller holds this state's lock; `node` is valid and in no list.
    #[inline]
    pub(crate) unsafe fn push_observer(&self, node: NonNull<Node>) {
        // SAFETY: caller's contract; listed nodes are live.
        unsafe {
            match list::front(&self.head) {
                Some(front) if Node::of(front).as_ref().kind() == Kind::Timer => {
                    list::insert_after(front, Node::entry(node))
                }
                _ => list::push_front(&self.head, Node::entry(node)),
            }
        }
    }

    /// "Attach unless cancelled": takes the lock unless CANCELLED, runs
    /// `in_lock` (status-only work on the caller's node, such as storing a
    /// waker), links `node` and marks it LINKED. Returns false, and does
    /// nothing, if the state is cancelled: a cancelled list accepts no node.
    ///
    /// # Safety
    /// `node` is valid, IDLE or DETACHED, owned by the caller, and stays at
    /// its address until it is detached or seen DONE.
    #[inline]
    pub(crate) unsafe fn attach(&self, node: NonNull<Node>, in_lock: impl FnOnce()) -> bool {
        let Ok(guard) = self.word.lock_unless_cancelled() else {
            return false;
        };
        in_lock();
        // SAFETY: we hold the lock; the node is unlisted (caller's contract).
        unsafe {
            self.push_observer(node);
            node.as_ref().set_state_unflagged(LINKED);
        }
        drop(guard);
        true
    }

    /// "Detach if linked": takes the lock and, if `node` is still LINKED,
    /// unlinks it and marks it DETACHED; then runs `in_lock` (status-only
    /// work, such as taking a waker out) with whether it was linked.
    /// Returns `in_lock`'s result, for the caller to act on (drop user
    /// data) after the unlock.
    ///
    /// # Safety
    /// `node` was attached to this state by its owner, the caller.
    #[inline]
    pub(crate) unsafe fn detach<R>(
        &self,
        node: NonNull<Node>,
        in_lock: impl FnOnce(bool) -> R,
    ) -> R {
        let guard = self.word.lock();
        // SAFETY: our node stays allocated while we own it; its links and
        // status change only under the lock we hold.
        let linked = unsafe {
            let n = node.as_ref();
            let linked = n.state(Ordering::Relaxed) == LINKED;
            if linked {
                list::remove(&self.head, Node::entry(node));
                n.set_state_unflagged(DETACHED);
            }
            linked
        };
        let result = in_lock(linked);
        drop(guard);
        result
    }

    /// The front node, if the list is not empty.
    ///
    /// # Safety
    /// The caller holds this state's lock.
    #[inline]
    pub(crate) unsafe fn front(&self) -> Option<NonNull<Node>> {
        // SAFETY: caller's contract.
        unsafe { list::front(&self.head).map(Node::of) }
    }

    /// Takes the front node off the list.
    ///
    /// # Safety
    /// The caller holds this state's lock and the list is not empty.
    #[inline]
    pub(crate) unsafe fn pop_front(&self) -> NonNull<Node> {
        // SAFETY: caller's contract.
        unsafe { Node::of(list::pop_front(&self.head).unwrap_unchecked()) }
    }

    /// Makes `next` (null: none) the head, dropping the run before it.
    ///
    /// # Safety
    /// As for [`list::cut_front`].
    #[inline]
    pub(crate) unsafe fn cut_front(&self, next: *mut Links) {
        // SAFETY: caller's contract.
        unsafe { list::cut_front(&self.head, next) }
    }
}
