//! A global allocator for tests that counts per thread: allocations, bytes,
//! and live allocations (so the test harness's own threads never leak in).
//! Each test binary that needs it declares
//! `#[global_allocator] static GLOBAL: counting::Counting = counting::Counting;`.

#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};

pub struct Counting;

type Hook = Box<dyn FnOnce()>;

thread_local! {
    /// Run (once) by this thread's next allocation, before it is made.
    static HOOK: RefCell<Option<Hook>> = const { RefCell::new(None) };
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
    static BYTES: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

// SAFETY: forwards to `System`; the counters are plain thread-locals with
// const initialisers (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let hook = HOOK.try_with(|h| h.try_borrow_mut().ok().and_then(|mut h| h.take()));
        if let Ok(Some(hook)) = hook {
            hook();
        }
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        let _ = BYTES.try_with(|c| c.set(c.get() + layout.size()));
        let _ = LIVE.try_with(|c| c.set(c.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|c| c.set(c.get() - 1));
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Net live allocations made (and not freed) by this thread so far.
pub fn live() -> isize {
    LIVE.get()
}

/// (allocations, bytes, net live allocations) made by this thread in `f`.
pub fn measure<R>(f: impl FnOnce() -> R) -> (usize, usize, isize, R) {
    let (a0, b0, l0) = (ALLOCS.get(), BYTES.get(), LIVE.get());
    let r = f();
    (ALLOCS.get() - a0, BYTES.get() - b0, LIVE.get() - l0, r)
}

/// Runs `f` at this thread's next allocation, just before it is made: a
/// deterministic way into the window between a check and an allocation.
/// `f` must not allocate (it would run inside the allocator).
pub fn on_next_alloc(f: impl FnOnce() + 'static) {
    let hook: Hook = Box::new(f);
    HOOK.with(|h| *h.borrow_mut() = Some(hook));
}
