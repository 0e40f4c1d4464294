//! The state word: one `AtomicUsize` per source holding the cancelled flag,
//! the list lock, the reason's kind and the count of live source handles.
//!
//! ```text
//!  bit 0      CANCELLED   set once, never cleared
//!  bit 1      LOCKED      the bit lock guarding the source's node list
//!  bit 2      HAS_LINKS   the state is a linked child (constant after creation)
//!  bits 3-4   REASON      kind of the reason, written with CANCELLED
//!  bits 5..   SOURCES     number of live `CancellationSource` handles
//! ```
//!
//! This module knows nothing of lists or nodes: it offers loads, the source
//! count and a bit lock that can give up (for "lock unless cancelled").
//! Every write to the word is either a CAS made while it is unlocked (taking
//! the lock, cancelling, counting sources) or a plain store by the lock
//! holder (setting CANCELLED, unlocking): so unlocking costs a store, not a
//! read-modify-write.

use crate::sync::{AtomicUsize, Backoff, Ordering};

pub(crate) const CANCELLED: usize = 1 << 0;
pub(crate) const LOCKED: usize = 1 << 1;
pub(crate) const HAS_LINKS: usize = 1 << 2;
pub(crate) const REASON_SHIFT: u32 = 3;
pub(crate) const REASON_MASK: usize = 0b11 << REASON_SHIFT;
pub(crate) const SOURCE_SHIFT: u32 = 5;
pub(crate) const SOURCE_ONE: usize = 1 << SOURCE_SHIFT;

/// Reason kinds as stored in the REASON bits.
pub(crate) const REASON_REQUESTED: usize = 1;
pub(crate) const REASON_TIMED_OUT: usize = 2;
pub(crate) const REASON_CUSTOM: usize = 3;

#[derive(Debug)]
pub(crate) struct Word(AtomicUsize);

impl Word {
    #[cfg(not(loom))]
    pub(crate) const fn new(bits: usize) -> Self {
        Self(AtomicUsize::new(bits))
    }

    #[cfg(loom)]
    pub(crate) fn new(bits: usize) -> Self {
        Self(AtomicUsize::new(bits))
    }

    /// The poll: one load. `Acquire` pairs with the `Release` that set
    /// CANCELLED, so whatever the canceller wrote before is visible.
    #[inline(always)]
    pub(crate) fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Adds a source handle. Like every change to the word, it waits while
    /// the lock is held: that lets the holder unlock with a plain store.
    /// The caller already holds a source (or is creating the first), so the
    /// count cannot be seen passing through zero: `Relaxed`.
    pub(crate) fn add_source(&self) {
        let old = self.update_unlocked(|w| w + SOURCE_ONE, Ordering::Relaxed);
        if old >> SOURCE_SHIFT >= (usize::MAX >> SOURCE_SHIFT) - 1 {
            crate::sync::abort();
        }
    }

    /// Removes a source handle and returns the word as it was before.
    pub(crate) fn remove_source(&self) -> usize {
        self.update_unlocked(|w| w - SOURCE_ONE, Ordering::Release)
    }

    /// Applies `f` with a CAS once the word is unlocked; returns the old word.
    fn update_unlocked(&self, f: impl Fn(usize) -> usize, order: Ordering) -> usize {
        let backoff = Backoff::new();
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            if cur & LOCKED != 0 {
                backoff.snooze();
                cur = self.0.load(Ordering::Relaxed);
                continue;
            }
            match self
                .0
                .compare_exchange_weak(cur, f(cur), order, Ordering::Relaxed)
            {
                Ok(old) => return old,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes the bit lock unless `give_up` says otherwise for the word's current
    /// value, in which case that value is returned (read with `Acquire`).
    ///
    /// Spins with backoff while another thread holds the lock; critical
    /// sections are O(1), so the spin is bounded unless the holder is preempted.
    #[inline]
    pub(crate) fn lock_unless(
        &self,
        give_up: impl Fn(usize) -> bool,
    ) -> Result<WordGuard<'_>, usize> {
        let backoff = Backoff::new();
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if give_up(cur) {
                return Err(cur);
            }
            if cur & LOCKED != 0 {
                backoff.snooze();
                cur = self.0.load(Ordering::Acquire);
                continue;
            }
            // Acquire: everything the previous holder did under the lock
            // (released by its unlock) is visible to us.
            match self.0.compare_exchange_weak(
                cur,
                cur | LOCKED,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(WordGuard {
                        word: self,
                        value: core::cell::Cell::new(cur | LOCKED),
                    });
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes the bit lock and sets CANCELLED with the reason kind in one CAS,
    /// unless the word is already cancelled (then returns it). `AcqRel`:
    /// Acquire takes the lock; Release publishes everything the caller wrote
    /// before `cancel()` to whoever sees CANCELLED with Acquire.
    pub(crate) fn lock_and_cancel(&self, reason_kind: usize) -> Result<WordGuard<'_>, usize> {
        let backoff = Backoff::new();
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & CANCELLED != 0 {
                return Err(cur);
            }
            if cur & LOCKED != 0 {
                backoff.snooze();
                cur = self.0.load(Ordering::Acquire);
                continue;
            }
            let new = cur | LOCKED | CANCELLED | (reason_kind << REASON_SHIFT);
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    return Ok(WordGuard {
                        word: self,
                        value: core::cell::Cell::new(new),
                    });
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Takes the bit lock unconditionally.
    #[inline]
    pub(crate) fn lock(&self) -> WordGuard<'_> {
        match self.lock_unless(|_| false) {
            Ok(guard) => guard,
            Err(_) => unreachable!("lock_unless(false) never gives up"),
        }
    }
}

/// Proof that the bit lock is held; unlocks on drop.
///
/// While the lock is held nobody else writes the word (source counts wait
/// for the lock, cancelling needs it), so the guard knows the word's value
/// and both changes it makes (set CANCELLED, unlock) are plain stores.
#[derive(Debug)]
pub(crate) struct WordGuard<'a> {
    word: &'a Word,
    value: core::cell::Cell<usize>,
}

impl WordGuard<'_> {
    /// Sets CANCELLED and the reason kind. `Release`: everything before this
    /// (the caller's writes before `cancel()`, the custom reason stored under
    /// the lock) happens-before any `Acquire` load that sees CANCELLED.
    pub(crate) fn set_cancelled(&self, reason_kind: usize) {
        let value = self.value.get() | CANCELLED | (reason_kind << REASON_SHIFT);
        self.value.set(value);
        self.word.0.store(value, Ordering::Release);
    }
}

impl Drop for WordGuard<'_> {
    fn drop(&mut self) {
        // Release: the next locker sees our list updates. A store, not a
        // read-modify-write: the word has not changed since we locked it,
        // except by us.
        self.word
            .0
            .store(self.value.get() & !LOCKED, Ordering::Release);
    }
}

/// A lock over data, built on the same bit lock: used by the timer queue,
/// which needs a lock in `no_std` builds too. Critical sections are run as
/// closures, so no guard can escape.
pub(crate) struct SpinLock<T> {
    word: Word,
    data: crate::sync::UnsafeCell<T>,
}

// SAFETY: the data is reached only inside `with`, under the bit lock, which
// gives one thread at a time exclusive access; `T: Send` lets it move between
// the threads that take turns.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(data: T) -> Self {
        Self {
            word: Word::new(0),
            data: crate::sync::UnsafeCell::new(data),
        }
    }

    /// Runs `f` with exclusive access to the data.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let guard = self.word.lock();
        // SAFETY: we hold the bit lock, so no other `&mut T` exists; the
        // reference does not outlive the closure, which ends before the guard.
        let result = self.data.with_mut(|p| f(unsafe { &mut *p }));
        drop(guard);
        result
    }
}
