//! Where panics of user code go when cancel-core catches them (`std` only):
//! the first of a run is kept to be resumed at its end, later ones are
//! dropped. A payload is user data too: its `Drop` may panic, and that
//! panic's payload is dropped the same way, so nothing escapes.

use std::any::Any;
use std::boxed::Box;
use std::panic::{AssertUnwindSafe, catch_unwind};

pub(crate) type Payload = Box<dyn Any + Send>;

/// Drops a panic payload; a panic of its `Drop` is caught, and so on.
pub(crate) fn drop_payload(payload: Payload) {
    let mut payload = payload;
    while let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        payload = nested;
    }
}

/// Keeps `payload` if it is the first panic of a run; drops it otherwise.
pub(crate) fn keep_first(first: &mut Option<Payload>, payload: Payload) {
    if first.is_none() {
        *first = Some(payload);
    } else {
        drop_payload(payload);
    }
}

/// Resumes a run's first panic, if any; during an unwind (a drop) it is
/// dropped instead: a panic escaping a drop while unwinding would abort.
pub(crate) fn resume(first: Option<Payload>) {
    if let Some(payload) = first {
        if std::thread::panicking() {
            drop_payload(payload);
        } else {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Runs `f`; a panic is kept as the run's first or dropped.
pub(crate) fn catch(first: &mut Option<Payload>, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        keep_first(first, payload);
    }
}
