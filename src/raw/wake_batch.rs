//! Wakers taken from waiter nodes under the lock, woken after it is released.
//!
//! A fixed array on the canceller's stack: no allocation, no per-slot
//! initialisation or `Option` bookkeeping (the cancel loop fills it once per
//! lock hold, so every instruction here is paid per waiter).

use core::mem::MaybeUninit;
use core::task::Waker;

/// How many wakers the canceller takes per lock hold before waking them.
pub(crate) const WAKE_BATCH: usize = 32;

/// Up to [`WAKE_BATCH`] wakers. Slots `woken..len` are initialised and not
/// yet taken; `Drop` drops them (only reached on an unwind in `no_std`, or
/// when a batch is abandoned by a panic outside `wake_all`).
pub(crate) struct WakeBatch {
    wakers: [MaybeUninit<Waker>; WAKE_BATCH],
    len: usize,
    woken: usize,
}

impl WakeBatch {
    pub(crate) const fn new() -> Self {
        Self {
            wakers: [const { MaybeUninit::uninit() }; WAKE_BATCH],
            len: 0,
            woken: 0,
        }
    }

    /// Adds a waker. Panics if the batch is full.
    #[cfg(test)]
    pub(crate) fn push(&mut self, waker: Waker) {
        assert!(self.len < WAKE_BATCH, "cancel-core: wake batch overflow");
        // SAFETY: just checked.
        unsafe { self.push_unchecked(waker) }
    }

    /// Adds a waker, with no test of the length.
    ///
    /// # Safety
    /// The batch is not full.
    #[cfg(test)]
    #[inline(always)]
    pub(crate) unsafe fn push_unchecked(&mut self, waker: Waker) {
        // SAFETY: forwarded; the slot after the last is unwritten.
        unsafe {
            self.write_at(self.len, waker);
            self.set_len(self.len + 1);
        }
    }

    /// Writes slot `i` without counting it: the cancel loop's fill, which
    /// keeps the count in a register and calls [`set_len`](Self::set_len)
    /// once (nothing in that loop can panic, so no written slot is lost).
    ///
    /// # Safety
    /// `i < WAKE_BATCH`, `i` is the length so far plus the slots written
    /// since, and `set_len` follows.
    #[inline(always)]
    pub(crate) unsafe fn write_at(&mut self, i: usize, waker: Waker) {
        debug_assert!(i < WAKE_BATCH);
        // SAFETY: caller's contract: in bounds.
        unsafe { self.wakers.get_unchecked_mut(i).write(waker) };
    }

    /// Counts the slots written by `write_at`.
    ///
    /// # Safety
    /// Slots `0..len` are written, `len <= WAKE_BATCH`.
    #[inline(always)]
    pub(crate) unsafe fn set_len(&mut self, len: usize) {
        debug_assert!(len <= WAKE_BATCH);
        self.len = len;
    }

    /// Wakes every waker not woken yet, in push order. If a `wake` panics,
    /// the slots after it stay owned by the batch: call again to wake them.
    pub(crate) fn wake_all(&mut self) {
        let len = self.len;
        let mut i = self.woken;
        while i < len {
            // Advance first: the waker is moved out before user code runs.
            self.woken = i + 1;
            // SAFETY: `i` is in `woken..len` (before the store above), and
            // `len <= WAKE_BATCH` (`set_len`'s contract, kept by the cancel
            // loop's count of nodes; `push` checks it): that slot is in
            // bounds, was written and has not been read.
            let waker = unsafe { self.wakers.get_unchecked(i).assume_init_read() };
            i += 1;
            waker.wake();
        }
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        for slot in &mut self.wakers[self.woken..self.len] {
            // SAFETY: slots in `woken..len` are initialised and not taken;
            // each is dropped once (the batch is going away).
            unsafe { slot.assume_init_drop() };
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn wakes_each_once_and_drops_the_rest() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut batch = WakeBatch::new();
        for _ in 0..WAKE_BATCH {
            batch.push(Waker::from(count.clone()));
        }
        assert_eq!(Arc::strong_count(&count), 1 + WAKE_BATCH);
        batch.wake_all();
        batch.wake_all();
        assert_eq!(count.0.load(Ordering::Relaxed), WAKE_BATCH);
        assert_eq!(Arc::strong_count(&count), 1);

        let mut batch = WakeBatch::new();
        batch.push(Waker::from(count.clone()));
        batch.push(Waker::from(count.clone()));
        drop(batch);
        assert_eq!(count.0.load(Ordering::Relaxed), WAKE_BATCH);
        assert_eq!(Arc::strong_count(&count), 1);
    }
}
