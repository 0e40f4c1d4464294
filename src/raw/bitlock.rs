//! A lock on one bit of a shared atomic word, and a spin lock for data built
//! on it. It knows nothing of what the word's other bits mean nor of what
//! the lock guards (for a source: its observer list; see `word.rs`).
//!
//! Every change of a word that carries this lock goes through one CAS loop,
//! [`cas_unlocked`]: it waits while the lock is held, so that the holder is
//! the only writer and can unlock with a plain store.
//!
//! With feature `critical-section` each hold of the lock is also a critical
//! section (`critical_section::acquire` before the locking CAS, `release`
//! after the unlocking store), so an interrupt handler on the core that
//! holds a lock cannot run, let alone spin on that lock; a hold is O(1) and
//! runs no user code, so interrupts stay masked only briefly. Holds nest
//! (parent → child in the drain, queue → state in a fire) and critical
//! sections must be released in the reverse order of acquisition: the one
//! hold released before the hold it encloses (a drain descending into a
//! child: `kinds/link.rs`) first hands its outer restore state to the inner
//! hold ([`Locked::hand_over`]).

use crate::sync::{AtomicUsize, Backoff, Ordering};

/// The lock bit.
pub(crate) const LOCKED: usize = 1 << 1;

/// The one CAS loop: waits while LOCKED is set; gives up if `give_up` says
/// so for the current value (returned as `Err`, read with `Acquire`); else
/// replaces the value `w` by `new(w)`, with `success` ordering, and returns
/// the old value.
///
/// Spins with backoff while another thread holds the lock: critical
/// sections are O(1), so the spin is bounded unless the holder is preempted.
#[inline]
pub(crate) fn cas_unlocked(
    word: &AtomicUsize,
    give_up: impl Fn(usize) -> bool,
    new: impl Fn(usize) -> usize,
    success: Ordering,
) -> Result<usize, usize> {
    let backoff = Backoff::new();
    // Acquire on every read: a give-up returns a value the caller may act
    // on (a cancelled word's reason), and a failed CAS feeds the next test.
    let mut cur = word.load(Ordering::Acquire);
    loop {
        if give_up(cur) {
            return Err(cur);
        }
        if cur & LOCKED != 0 {
            backoff.snooze();
            cur = word.load(Ordering::Acquire);
            continue;
        }
        match word.compare_exchange_weak(cur, new(cur), success, Ordering::Acquire) {
            Ok(old) => return Ok(old),
            Err(actual) => cur = actual,
        }
    }
}

/// Takes the lock unless `give_up` says otherwise (then returns the word),
/// setting the word to `after_lock(w) | LOCKED` in the same CAS. `order` is
/// the CAS's success ordering: at least `Acquire`, so that the previous
/// holder's critical section (published by its `Release` unlock) is visible.
#[inline]
pub(crate) fn lock_if<'a>(
    word: &'a AtomicUsize,
    give_up: impl Fn(usize) -> bool,
    after_lock: impl Fn(usize) -> usize,
    order: Ordering,
) -> Result<Locked<'a>, usize> {
    #[cfg(all(feature = "critical-section", not(loom)))]
    // SAFETY: released exactly once: by the guard's drop, or below if we
    // give up; nested holds release in reverse order (module comment).
    let restore = unsafe { critical_section::acquire() };
    let old = match cas_unlocked(word, give_up, |w| after_lock(w) | LOCKED, order) {
        Ok(old) => old,
        Err(seen) => {
            #[cfg(all(feature = "critical-section", not(loom)))]
            // SAFETY: acquired above, nothing acquired since.
            unsafe {
                critical_section::release(restore)
            };
            return Err(seen);
        }
    };
    Ok(Locked {
        word,
        value: core::cell::Cell::new(after_lock(old) | LOCKED),
        #[cfg(all(feature = "critical-section", not(loom)))]
        restore,
    })
}

/// Proof that the lock is held; unlocks on drop.
///
/// While the lock is held nobody else writes the word (every other change
/// waits in [`cas_unlocked`]), so the guard knows the word's value and each
/// change it makes is a plain store.
#[derive(Debug)]
pub(crate) struct Locked<'a> {
    word: &'a AtomicUsize,
    value: core::cell::Cell<usize>,
    /// What releasing this hold's critical section restores.
    #[cfg(all(feature = "critical-section", not(loom)))]
    restore: critical_section::RestoreState,
}

impl Locked<'_> {
    /// Sets `bits` in the locked word. `Release`: what the holder wrote
    /// before happens-before an `Acquire` load that sees them.
    #[inline]
    #[cfg(any(feature = "alloc", test))]
    pub(crate) fn set_bits(&self, bits: usize) {
        let value = self.value.get() | bits;
        self.value.set(value);
        self.word.store(value, Ordering::Release);
    }
}

impl Locked<'_> {
    /// Before this hold is released while `inner` (taken inside it) stays
    /// held: swaps their critical sections' restore states, so that this
    /// release restores what `inner`'s would have (nothing: it was taken
    /// inside) and `inner`'s, later, what this one's would have. The
    /// releases then come in the reverse order of the acquisitions. Without
    /// feature `critical-section` it does nothing.
    #[inline]
    pub(crate) fn hand_over(&mut self, inner: &mut Locked<'_>) {
        #[cfg(all(feature = "critical-section", not(loom)))]
        core::mem::swap(&mut self.restore, &mut inner.restore);
        let _ = inner;
    }
}

impl Drop for Locked<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: the next locker sees our critical section. A store, not
        // a read-modify-write: the word has not changed since we locked it,
        // except by us.
        self.word
            .store(self.value.get() & !LOCKED, Ordering::Release);
        #[cfg(all(feature = "critical-section", not(loom)))]
        // SAFETY: acquired by `lock_if` for this hold (or handed over by the
        // hold this one was taken in); holds are released innermost first.
        unsafe {
            critical_section::release(self.restore)
        };
    }
}

/// A lock over data, on the same bit lock: used by the timer queues, which
/// need a lock in `no_std` builds too. Critical sections are closures, so
/// no guard can escape.
#[cfg(feature = "alloc")]
pub(crate) struct SpinLock<T> {
    word: AtomicUsize,
    data: crate::sync::UnsafeCell<T>,
}

// SAFETY: the data is reached only inside `with`, under the bit lock, which
// gives one thread at a time exclusive access; `T: Send` lets it move between
// the threads that take turns.
#[cfg(feature = "alloc")]
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above.
#[cfg(feature = "alloc")]
unsafe impl<T: Send> Send for SpinLock<T> {}

#[cfg(feature = "alloc")]
impl<T> SpinLock<T> {
    pub(crate) fn new(data: T) -> Self {
        Self {
            word: AtomicUsize::new(0),
            data: crate::sync::UnsafeCell::new(data),
        }
    }

    /// Runs `f` with exclusive access to the data.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let guard = match lock_if(&self.word, |_| false, |w| w, Ordering::Acquire) {
            Ok(guard) => guard,
            Err(_) => unreachable!("a lock that never gives up"),
        };
        // SAFETY: we hold the bit lock, so no other `&mut T` exists; the
        // reference does not outlive the closure, which ends before the guard.
        let result = self.data.with_mut(|p| f(unsafe { &mut *p }));
        drop(guard);
        result
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lock_sets_the_bit_and_unlock_clears_it_keeping_the_rest() {
        let word = AtomicUsize::new(0b1001_0000);
        let guard = lock_if(&word, |_| false, |w| w, Ordering::Acquire).unwrap();
        assert_eq!(word.load(Ordering::Relaxed), 0b1001_0000 | LOCKED);
        guard.set_bits(0b1);
        assert_eq!(word.load(Ordering::Relaxed), 0b1001_0001 | LOCKED);
        drop(guard);
        assert_eq!(word.load(Ordering::Relaxed), 0b1001_0001);
    }

    #[test]
    fn give_up_returns_the_word_without_locking() {
        let word = AtomicUsize::new(0b1);
        let got = lock_if(&word, |w| w & 1 != 0, |w| w, Ordering::Acquire);
        assert_eq!(got.unwrap_err(), 0b1);
        assert_eq!(word.load(Ordering::Relaxed), 0b1);
    }

    #[test]
    fn after_lock_is_applied_in_the_locking_cas() {
        let word = AtomicUsize::new(0);
        let guard = lock_if(&word, |_| false, |w| w | 0b1000, Ordering::AcqRel).unwrap();
        assert_eq!(word.load(Ordering::Relaxed), 0b1000 | LOCKED);
        drop(guard);
        assert_eq!(word.load(Ordering::Relaxed), 0b1000);
    }

    #[test]
    fn cas_unlocked_changes_only_an_unlocked_word() {
        let word = AtomicUsize::new(64);
        assert_eq!(
            cas_unlocked(&word, |_| false, |w| w + 32, Ordering::Relaxed),
            Ok(64)
        );
        assert_eq!(word.load(Ordering::Relaxed), 96);
        std::thread::scope(|s| {
            let guard = lock_if(&word, |_| false, |w| w, Ordering::Acquire).unwrap();
            let waiter = s.spawn(|| cas_unlocked(&word, |_| false, |w| w - 32, Ordering::Release));
            // The waiter spins until the unlock: it then sees the value the
            // holder left.
            guard.set_bits(1);
            drop(guard);
            assert_eq!(waiter.join().unwrap(), Ok(97));
        });
        assert_eq!(word.load(Ordering::Relaxed), 65);
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn the_spin_lock_serialises_its_critical_sections() {
        let lock = SpinLock::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..if cfg!(miri) { 50 } else { 10_000 } {
                        lock.with(|n| *n += 1);
                    }
                });
            }
        });
        assert_eq!(lock.with(|n| *n), if cfg!(miri) { 200 } else { 40_000 });
    }
}
