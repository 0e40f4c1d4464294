//! A shutdown scope's count of in-flight work, which is also the scope's
//! reference count, and its completion, built on two sources of the core:
//! `signal` (cancelled when shutdown begins; the work's tokens observe it)
//! and `done` (cancelled once, when the scope is closed with no work in
//! flight; waiters observe it). No second wake-up mechanism: waiting for
//! completion is waiting for `done`.
//!
//! ```text
//!  word:  bit 0 SHUTDOWN   set once, when shutdown begins (enter refused after)
//!         bit 1 ORPHANED   no scope handle left (set by the last one's drop)
//!         bit 2 COMPLETED  set by the completer once `done` is cancelled
//!         bits 3.. guards  work in flight
//!
//!  open ──shutdown (or the signal: a parent's shutdown)──▶ SHUTDOWN
//!  closed = SHUTDOWN, or no handle left (nothing can enter any more)
//!  closed, guards 0 ──the thread whose change made it so──▶ complete: `done`
//!      cancelled, then COMPLETED set, then the parent's guard dropped
//!  no handle, no guard, COMPLETED ──the last of those changes──▶ freed
//! ```
//!
//! Entering and leaving are one read-modify-write each on `word`: a guard
//! holds no other reference (the count keeps the memory alive). Enter
//! racing shutdown is decided by the order of their two RMWs on `word`:
//! either the guard is counted before SHUTDOWN is set, or it is refused.
//! Exactly one RMW makes the transition into "closed with nothing in
//! flight", so exactly one thread completes; the memory is freed only after
//! COMPLETED is set, by the last of the completer and the last handle's
//! drop, so the completer (which runs user code: `done`'s observers) never
//! finds it freed under it.

use core::ptr::NonNull;

use alloc::boxed::Box;

use super::cancel;
use super::kinds::boxed::{self, RawRegistration};
use super::lifetime::StateRef;
use super::reason::Reason;
use super::word::Origin;
use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

const SHUTDOWN: usize = 1 << 0;
const ORPHANED: usize = 1 << 1;
const COMPLETED: usize = 1 << 2;
const GUARD_SHIFT: u32 = 3;
const GUARD_ONE: usize = 1 << GUARD_SHIFT;
/// Words above this have the top bit set: 2^60 guards (2^28 on 32-bit
/// targets), refused by an abort rather than wrapped into the flags.
const COUNT_LIMIT: usize = usize::MAX >> 1;

#[inline]
fn guards(w: usize) -> usize {
    w >> GUARD_SHIFT
}

/// Nothing can enter any more: shutdown began, or no handle is left.
#[cfg(test)]
fn closed(w: usize) -> bool {
    w & (SHUTDOWN | ORPHANED) != 0
}

/// Whether a leave whose RMW read `old` made the scope "closed with
/// nothing in flight": one guard (the word in `[GUARD_ONE, 2 *
/// GUARD_ONE)`) and a closing flag set. One compare, since an open scope's
/// flags are all clear and COMPLETED is never set while a guard is counted.
#[inline(always)]
fn leave_completes(old: usize) -> bool {
    old.wrapping_sub(GUARD_ONE + 1) < GUARD_ONE - 1
}

struct Tracker {
    word: AtomicUsize,
    /// Scope handles; the last one's drop sets ORPHANED.
    handles: AtomicUsize,
    /// Holds on the memory: the scope's (given back by `free`) and the
    /// signal hook closure's (given back by its drop). Without `std` a
    /// registration's drop cannot wait for a hook running on another
    /// thread, so the memory outlives the free until the hook is done.
    memory: AtomicUsize,
    /// A source's state (this scope holds one source count): cancelled when
    /// shutdown begins.
    signal: StateRef,
    /// A source's state (one source count): cancelled at completion.
    done: StateRef,
    /// The callback on `signal` that sets SHUTDOWN when the signal comes
    /// from elsewhere (a parent scope's shutdown); dropped (detached,
    /// waiting for it if it runs elsewhere) before the memory is freed.
    on_signal: UnsafeCell<Option<RawRegistration>>,
    /// A nested scope's guard in its parent, dropped at completion: the
    /// parent's wait includes this scope's work.
    parent: UnsafeCell<Option<WorkRef>>,
}

/// A handle of a scope.
pub(crate) struct TrackerRef {
    ptr: NonNull<Tracker>,
}

/// A guard: one unit of in-flight work, which keeps the scope's memory.
pub(crate) struct WorkRef {
    ptr: NonNull<Tracker>,
}

// SAFETY: the tracker is reached through atomics, through `StateRef`s
// (Send + Sync) and through its two cells, each touched by one thread only
// (the one that sets the callback up, the completer, the freer: see `free`).
unsafe impl Send for TrackerRef {}
// SAFETY: as above; `&TrackerRef` gives only the atomic operations.
unsafe impl Sync for TrackerRef {}
// SAFETY: as above.
unsafe impl Send for WorkRef {}
// SAFETY: as above.
unsafe impl Sync for WorkRef {}

/// The signal callback's pointer to its tracker, holding one of the two
/// holds on its memory (`Tracker::memory`), given back when the closure
/// is dropped (after its call, or unrun).
struct SignalHook(NonNull<Tracker>);
// SAFETY: only used to call `begin`, which is atomic, and to give back its
// hold, which is atomic.
unsafe impl Send for SignalHook {}

impl Drop for SignalHook {
    fn drop(&mut self) {
        // SAFETY: this hook's hold keeps the memory until this call.
        unsafe { release(self.0) };
    }
}

impl TrackerRef {
    /// A new scope; nested in `parent` (whose guard it takes, and whose
    /// signal its own is linked to) if given. `None` if the parent's
    /// shutdown has begun.
    pub(crate) fn new(parent: Option<&TrackerRef>) -> Option<TrackerRef> {
        let (signal, parent_work) = match parent {
            Some(parent) => {
                let work = parent.enter()?;
                (
                    StateRef::new_linked(&[parent.tracker().signal_ref()]),
                    Some(work),
                )
            }
            None => (StateRef::new_source(), None),
        };
        let tracker = Box::new(Tracker {
            word: AtomicUsize::new(0),
            handles: AtomicUsize::new(1),
            memory: AtomicUsize::new(2),
            signal,
            done: StateRef::new_source(),
            on_signal: UnsafeCell::new(None),
            parent: UnsafeCell::new(parent_work),
        });
        let ptr = NonNull::from(Box::leak(tracker));
        // The handle first: the hook may run inside `register` (a signal
        // born cancelled: the parent is shutting down), complete the scope
        // and run user code that panics; unwinding then drops this handle,
        // which frees the tracker.
        let handle = TrackerRef { ptr };
        let hook = SignalHook(ptr);
        // SAFETY: the tracker was just made; the handle keeps it. The hook
        // is run only while the registration lives, and the registration is
        // dropped before the tracker is freed (`free`); a hook running on
        // the freeing thread itself (the free happens inside `begin`) does
        // nothing after `begin` returns, and reaches the tracker only
        // through the raw pointer, so that free invalidates no reference.
        unsafe {
            let registration = boxed::register(&ptr.as_ref().signal, move || {
                let hook = hook;
                begin(hook.0);
            });
            ptr.as_ref().on_signal.with_mut(|p| *p = Some(registration));
        }
        Some(handle)
    }

    fn tracker(&self) -> &Tracker {
        // SAFETY: a handle keeps ORPHANED clear, so the tracker is not freed.
        unsafe { self.ptr.as_ref() }
    }

    /// Counts one unit of work in, unless shutdown has begun. One RMW.
    #[inline]
    pub(crate) fn enter(&self) -> Option<WorkRef> {
        let word = &self.tracker().word;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            if cur & SHUTDOWN != 0 {
                return None;
            }
            // Too many guards (forgotten ones: `mem::forget` in a loop, as
            // `Arc`'s check): the count reached the top bit. One test.
            if cur > COUNT_LIMIT {
                crate::sync::abort();
            }
            // Relaxed, as an `Arc` clone: the caller holds a handle, and the
            // order against shutdown is the order of the two RMWs.
            match word.compare_exchange_weak(
                cur,
                cur + GUARD_ONE,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(WorkRef { ptr: self.ptr }),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Begins shutdown with `reason`: no work enters after this returns,
    /// and the signal is cancelled (the work's tokens, and nested scopes).
    /// True if this call cancelled the signal.
    pub(crate) fn shutdown(&self, reason: Reason) -> bool {
        // SAFETY: this handle keeps the tracker.
        unsafe { shutdown(self.ptr, reason) }
    }

    /// Stops taking work without cancelling the signal. True for the call
    /// that set SHUTDOWN.
    pub(crate) fn close(&self) -> bool {
        // SAFETY: this handle keeps the tracker.
        unsafe { begin(self.ptr) }
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.tracker().word.load(Ordering::Acquire) & SHUTDOWN != 0
    }

    /// Work in flight now (a snapshot).
    pub(crate) fn in_flight(&self) -> usize {
        guards(self.tracker().word.load(Ordering::Acquire))
    }

    pub(crate) fn signal(&self) -> &StateRef {
        self.tracker().signal_ref()
    }

    /// Cancelled once the scope is closed with no work in flight.
    pub(crate) fn done(&self) -> &StateRef {
        &self.tracker().done
    }

    /// Identity, for `Eq`.
    pub(crate) fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }
}

impl WorkRef {
    fn tracker(&self) -> &Tracker {
        // SAFETY: a guard is counted in the word: the tracker is not freed.
        unsafe { self.ptr.as_ref() }
    }

    pub(crate) fn signal(&self) -> &StateRef {
        self.tracker().signal_ref()
    }

    /// Begins its scope's shutdown, as `TrackerRef::shutdown` (for a guard
    /// dropped by a panic).
    #[cfg(feature = "std")]
    pub(crate) fn shutdown(&self, reason: Reason) -> bool {
        // SAFETY: this guard keeps the tracker.
        unsafe { shutdown(self.ptr, reason) }
    }
}

impl Tracker {
    fn signal_ref(&self) -> &StateRef {
        &self.signal
    }
}

/// Cancels the signal, then makes sure SHUTDOWN is set (the signal's
/// callback sets it, on this thread unless another thread's cancel got
/// there first). In this order, so that whoever sees the scope finished
/// also sees the token cancelled. True if this call cancelled the signal.
///
/// # Safety
/// The caller holds a handle or a guard (the tracker stays allocated).
unsafe fn shutdown(ptr: NonNull<Tracker>, reason: Reason) -> bool {
    /// `begin` also when the cancel unwinds: a losing call drops its
    /// unused reason there, and a cause's `Drop` may panic; the scope
    /// must be closed when the call ends, however it ends.
    struct Begin(NonNull<Tracker>);
    impl Drop for Begin {
        fn drop(&mut self) {
            // SAFETY: `shutdown`'s contract, for the whole call.
            unsafe { begin(self.0) };
        }
    }
    let begin = Begin(ptr);
    // SAFETY: caller's contract.
    let cancelled = unsafe { ptr.as_ref() }.signal.cancel(reason);
    drop(begin);
    cancelled
}

/// Sets SHUTDOWN; completes if that closed the scope with nothing in
/// flight. True if it was not set.
///
/// A raw pointer, not `&Tracker`: called by the signal's hook, which holds
/// neither handle nor guard, the completion may free the tracker (its
/// observers dropped the last handle), and a reference argument would
/// still be live across that free.
///
/// # Safety
/// The tracker is allocated: the caller holds a handle, a guard, or is the
/// signal's hook (whose registration the free drops first).
unsafe fn begin(ptr: NonNull<Tracker>) -> bool {
    // AcqRel: as the transition it may make (see `leave`).
    // SAFETY: caller's contract; the reference ends with this statement.
    let old = unsafe { ptr.as_ref() }
        .word
        .fetch_or(SHUTDOWN, Ordering::AcqRel);
    let began = old & SHUTDOWN == 0;
    if began && guards(old) == 0 && old & ORPHANED == 0 {
        // Open, now shut, nothing in flight (with no handle it was
        // already closed: completed by whoever closed it).
        // SAFETY: this RMW made the transition; see `complete`.
        unsafe { complete(ptr) };
    }
    began
}

/// One leave: true if it closed the scope with nothing in flight (the
/// caller then completes it).
///
/// # Safety
/// The caller gives up a counted unit of work of this tracker.
#[inline(always)]
unsafe fn leave(ptr: NonNull<Tracker>) -> bool {
    // AcqRel: Release publishes this work's writes to the completer;
    // Acquire, for the leave that completes, makes every other leave's
    // writes (each released by its RMW) happen-before the completion, so a
    // waiter woken by `done` sees all the work done.
    // SAFETY: caller's contract.
    let old = unsafe { ptr.as_ref() }
        .word
        .fetch_sub(GUARD_ONE, Ordering::AcqRel);
    leave_completes(old)
}

impl Drop for WorkRef {
    /// Leaves: one RMW; the leave that closes the scope with nothing in
    /// flight completes it.
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: this guard's unit keeps the tracker until its leave.
        if unsafe { leave(self.ptr) } {
            // SAFETY: this leave's RMW made the transition; see `complete`.
            unsafe { complete(self.ptr) };
        }
    }
}

impl Clone for TrackerRef {
    fn clone(&self) -> Self {
        // Relaxed, as an `Arc` clone: the caller holds a handle.
        let old = self.tracker().handles.fetch_add(1, Ordering::Relaxed);
        // Forgotten clones (`mem::forget` in a loop): abort before the
        // count wraps, as `Arc` does (a wrapped count frees the scope under
        // live handles: 2^32 clones on a 32-bit target).
        if old > isize::MAX as usize {
            crate::sync::abort();
        }
        TrackerRef { ptr: self.ptr }
    }
}

impl Drop for TrackerRef {
    fn drop(&mut self) {
        if self.tracker().handles.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        // The last handle: nothing can enter any more (closed).
        let old = self.tracker().word.fetch_or(ORPHANED, Ordering::AcqRel);
        if guards(old) != 0 {
            return; // the last guard's leave completes and frees
        }
        if old & SHUTDOWN == 0 {
            // This drop closed the scope with nothing in flight.
            // SAFETY: this RMW made the transition; see `complete`.
            unsafe { complete(self.ptr) };
        } else if old & COMPLETED != 0 {
            // Completed earlier while a handle lived: the memory is ours.
            // SAFETY: no handle, no guard, completed: nobody else reaches it.
            unsafe { free(self.ptr) };
        }
        // Otherwise a completer is running; it frees when it sets COMPLETED.
    }
}

/// Completes a scope: cancels `done` (its observers run here), then sets
/// COMPLETED, frees the memory if no handle is left, and gives back the
/// parent's unit of work (the parent completes after its child, and so on
/// up the chain, in this loop).
///
/// `done` is cancelled while the tracker still holds its source count (it
/// is given back by `free`, which needs COMPLETED): cancelled after, a
/// `finished()` future first polled in between would see a source that
/// nothing can cancel, store no waker, and never wake (the lost completion
/// that Miri found with the last handle and the last guard dropped at once:
/// `the_last_handle_and_the_last_guard_dropped_at_once`).
///
/// # Safety
/// The caller's RMW made the transition into "closed with nothing in
/// flight": it is the one completer. The memory stays allocated until this
/// sets COMPLETED (freeing needs it), so the observers may run first.
unsafe fn complete(ptr: NonNull<Tracker>) {
    let mut next = Some(ptr);
    while let Some(ptr) = next {
        // SAFETY: the caller's (or, for a parent, the leave's) transition.
        next = unsafe { complete_one(ptr) };
    }
}

/// Completes one scope; returns its parent if giving back the parent's
/// unit of work completed the parent too, for `complete`'s loop to go on
/// with (a loop, not a recursion: a chain of any depth in constant stack).
///
/// # Safety
/// As `complete`.
unsafe fn complete_one(ptr: NonNull<Tracker>) -> Option<NonNull<Tracker>> {
    /// The rest of the completion, also when an observer's panic unwinds
    /// out of the cancel (it is resumed after the whole drain). Only then
    /// is the parent's guard still here: its drop completes the parent by
    /// a nested call (one level per panic).
    struct Finish {
        ptr: NonNull<Tracker>,
        parent: Option<WorkRef>,
    }
    impl Drop for Finish {
        fn drop(&mut self) {
            // SAFETY: allocated until COMPLETED is set, here.
            let old = unsafe { self.ptr.as_ref() }
                .word
                .fetch_or(COMPLETED, Ordering::AcqRel);
            if old & ORPHANED != 0 {
                // SAFETY: no handle, no guard (closed with nothing in
                // flight), COMPLETED: the last handle's drop saw COMPLETED
                // clear and left the free to us; nobody else can reach it.
                unsafe { free(self.ptr) };
            }
            drop(self.parent.take());
        }
    }
    // SAFETY: allocated until COMPLETED (see above).
    let t = unsafe { ptr.as_ref() };
    let parent = t.parent.with_mut(|p| {
        // SAFETY: `parent` is taken only here, by the one completer.
        unsafe { (*p).take() }
    });
    let mut finish = Finish { ptr, parent };
    // Observers that drop the last handle leave the free to `finish` (the
    // handle's drop sees COMPLETED clear).
    cancel::cancel(&t.done, Reason::Requested, Origin::Cancel);
    let parent = finish.parent.take();
    drop(finish);
    // The parent's unit given back here rather than by the guard's drop
    // (which would complete the parent inside this call).
    let parent = core::mem::ManuallyDrop::new(parent?);
    // SAFETY: the unit still counted keeps the parent allocated.
    unsafe { leave(parent.ptr) }.then_some(parent.ptr)
}

/// Frees a tracker: the signal callback is detached without waiting (if it
/// runs, here or on another thread, its closure's hold keeps the memory
/// until it returns, and it finds the scope completed and orphaned: it
/// sets SHUTDOWN and nothing else), the two sources' counts given back, the
/// scope's hold on the memory given up. Not waiting keeps a thread from
/// blocking here on user code that a hook elsewhere runs.
///
/// # Safety
/// No handle, no guard, COMPLETED set, and the caller is the one that
/// observed the last of those changes.
unsafe fn free(ptr: NonNull<Tracker>) {
    // SAFETY: caller's contract: no other handle, guard or completer. All
    // through shared references: the hook may still be running on another
    // thread, reading the word.
    unsafe {
        let t = ptr.as_ref();
        if let Some(registration) = t.on_signal.with_mut(|p| (*p).take()) {
            registration.unregister();
        }
        t.signal.remove_source();
        t.done.remove_source();
        release(ptr);
    }
}

/// Gives back one hold on the tracker's memory (`Tracker::memory`); the
/// last one deallocates it, taking it as a `Box` (sole access) only then.
///
/// # Safety
/// The caller holds one of the two holds and gives it up.
unsafe fn release(ptr: NonNull<Tracker>) {
    // AcqRel, as `Arc`'s drop: the other holder's last use of the memory
    // happens-before the deallocation.
    // SAFETY: caller's contract.
    if unsafe { ptr.as_ref() }
        .memory
        .fetch_sub(1, Ordering::AcqRel)
        == 1
    {
        // SAFETY: both holds given up: nobody else reaches the memory.
        drop(unsafe { Box::from_raw(ptr.as_ptr()) });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The one-compare test of a leave equals its definition on every word
    /// a leave can read (a guard counted, so COMPLETED clear).
    #[test]
    fn leave_completes_is_the_last_guard_of_a_closed_scope() {
        for count in 1..5usize {
            for flags in 0..4usize {
                let old = count << GUARD_SHIFT | flags;
                let new = old - GUARD_ONE;
                assert_eq!(
                    leave_completes(old),
                    guards(new) == 0 && closed(new),
                    "word {old:#b}"
                );
            }
        }
        assert!(!leave_completes(COUNT_LIMIT), "no wrap at the top");
    }

    /// Runs `overflow` in a child process (this test binary, this test
    /// alone) and checks that the child aborted: a count past its limit
    /// must stop the process, not wrap (a wrapped count frees a scope that
    /// handles or guards still point to).
    #[cfg(all(feature = "std", unix, not(miri)))]
    fn aborts_in_a_child_process(test: &str, overflow: impl FnOnce()) {
        use std::os::unix::process::ExitStatusExt;
        const CHILD: &str = "CANCEL_CORE_OVERFLOW_CHILD";
        if std::env::var_os(CHILD).is_some() {
            overflow();
            return; // not reached when it aborts
        }
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--test-threads=1"])
            .env(CHILD, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(6), "{test}: SIGABRT, got {status:?}");
    }

    /// Failed before the fix (second review of the shutdown work): a
    /// handle's clone did not check its count, and on a 32-bit target
    /// `u32::MAX` forgotten clones wrapped it to zero (found natively on
    /// i686: the scope finished with a handle alive).
    #[cfg(all(feature = "std", unix, not(miri)))]
    #[test]
    fn a_handle_count_past_isize_max_aborts() {
        let test = "raw::tracker::tests::a_handle_count_past_isize_max_aborts";
        aborts_in_a_child_process(test, || {
            let scope = TrackerRef::new(None).unwrap();
            let limit = isize::MAX as usize;
            scope.tracker().handles.store(limit + 1, Ordering::Relaxed);
            let _clone = scope.clone();
        });
    }

    #[cfg(all(feature = "std", unix, not(miri)))]
    #[test]
    fn a_guard_count_past_its_limit_aborts() {
        let test = "raw::tracker::tests::a_guard_count_past_its_limit_aborts";
        aborts_in_a_child_process(test, || {
            let scope = TrackerRef::new(None).unwrap();
            let word = (COUNT_LIMIT & !(GUARD_ONE - 1)) + GUARD_ONE;
            scope.tracker().word.store(word, Ordering::Relaxed);
            let _guard = scope.enter();
        });
    }
}
