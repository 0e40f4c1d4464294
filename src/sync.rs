//! The one place that chooses between real atomics and loom's models of them.
//!
//! Every atomic, cell, spin and park in the crate goes through here, so that a
//! `--cfg loom` build explores exactly the code that ships. With feature
//! `critical-section` the atomics are portable-atomic's (and the bit lock's
//! holds are critical sections: `raw/bitlock.rs`); loom models the plain
//! build.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::Ordering;
#[cfg(all(not(loom), not(feature = "critical-section")))]
pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize};
// Feature `critical-section`: the same API, with read-modify-write
// operations on chips that have only loads and stores (native atomics
// where the chip has them).
#[cfg(all(not(loom), feature = "critical-section"))]
pub(crate) use portable_atomic::{AtomicPtr, AtomicU8, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// `core::cell::UnsafeCell` with loom's closure-based API, so the same code
/// compiles against both.
#[cfg(not(loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

/// Exponential backoff for the bit lock and for the short waits on a node.
///
/// Outside loom this is `crossbeam_utils::Backoff` (spins, then yields the
/// thread when `std` is on). Under loom every step yields to the scheduler,
/// which is what loom needs to explore a spin loop.
pub(crate) struct Backoff {
    #[cfg(not(loom))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(not(loom))]
            inner: crossbeam_utils::Backoff::new(),
        }
    }

    #[inline]
    pub(crate) fn snooze(&self) {
        #[cfg(not(loom))]
        self.inner.snooze();
        #[cfg(loom)]
        loom::thread::yield_now();
    }

    /// True once spinning has stopped paying off and the caller should park.
    #[cfg(feature = "std")]
    #[inline]
    pub(crate) fn is_completed(&self) -> bool {
        #[cfg(not(loom))]
        return self.inner.is_completed();
        #[cfg(loom)]
        return true;
    }
}

/// Thread handles and parking, for the waits that may be long.
#[cfg(feature = "std")]
pub(crate) mod park {
    #[cfg(loom)]
    pub(crate) use loom::thread::{Thread, current, park};

    /// loom has no timed park; a timed park may return early anyway, and
    /// loom models do not use timeouts.
    #[cfg(loom)]
    pub(crate) fn park_timeout(_: std::time::Duration) {
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    pub(crate) use std::thread::{Thread, current, park, park_timeout};

    /// An identity for the calling thread that costs no allocation: the
    /// address of a thread-local byte. It is unique among live threads, which
    /// is all that "is this the thread running the callbacks?" needs.
    pub(crate) fn thread_key() -> usize {
        #[cfg(not(loom))]
        std::thread_local! { static KEY: u8 = const { 0 } }
        #[cfg(loom)]
        loom::thread_local! { static KEY: u8 = 0 }
        KEY.with(|k| k as *const u8 as usize)
    }
}

/// Aborts the process: used where continuing would be unsound (a reference
/// count overflow), exactly as `Arc` does.
#[cold]
pub(crate) fn abort() -> ! {
    #[cfg(feature = "std")]
    std::process::abort();
    #[cfg(not(feature = "std"))]
    {
        // A panic while panicking aborts; this is the portable no_std abort.
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("cancel-core: reference count overflow");
            }
        }
        let _bomb = Bomb;
        panic!("cancel-core: reference count overflow");
    }
}
