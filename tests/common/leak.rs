//! Leaking a pinned box on purpose (included with `#[path]`).
#![allow(dead_code)]

use std::pin::Pin;
use std::sync::Mutex;

/// Leaks a pinned box as `mem::forget` would (never freed, never dropped),
/// but keeps it reachable from a static, so Miri's leak check knows the
/// leak is the point of the test.
pub fn leak_reachably<T>(value: Pin<Box<T>>) {
    struct Kept(#[allow(dead_code)] *mut ());
    // SAFETY: only stored, never used.
    unsafe impl Send for Kept {}
    static KEPT: Mutex<Vec<Kept>> = Mutex::new(Vec::new());
    // SAFETY: the box is leaked, never moved out of nor freed.
    let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(value) });
    KEPT.lock().unwrap().push(Kept(raw.cast()));
}
