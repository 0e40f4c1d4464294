//! Where panics of user code go when cancel-core catches them (`std` only).
//! A run (one drain, one fire, one teardown) keeps its panics in a
//! [`Panics`]: the first is kept to be resumed at the run's end; later ones
//! are dropped, unless the caller asked to collect them all
//! (`CancellationSource::cancel_catching`). A payload is user data too: its
//! `Drop` may panic, and that panic's payload is dropped the same way, so
//! nothing escapes.

use std::any::Any;
use std::boxed::Box;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::vec::Vec;

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

/// The panics of one run.
#[derive(Default)]
pub(crate) struct Panics {
    first: Option<Payload>,
    /// The later ones, when collecting (`None`: they are dropped).
    later: Option<Vec<Payload>>,
}

impl Panics {
    /// Keeps every panic, in the order they happened.
    pub(crate) fn collecting() -> Self {
        Self {
            first: None,
            later: Some(Vec::new()),
        }
    }

    pub(crate) fn keep(&mut self, payload: Payload) {
        match &mut self.later {
            Some(later) if self.first.is_some() => later.push(payload),
            _ => keep_first(&mut self.first, payload),
        }
    }

    /// Runs `f`, keeping its panic.
    pub(crate) fn catch(&mut self, f: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            self.keep(payload);
        }
    }

    /// Resumes the first panic, if any (later ones are dropped); during an
    /// unwind (a drop) it is dropped instead: a panic escaping a drop while
    /// unwinding would abort.
    pub(crate) fn resume(self) {
        if let Some(later) = self.later {
            later.into_iter().for_each(drop_payload);
        }
        resume(self.first);
    }

    /// Every panic kept, first first.
    pub(crate) fn into_vec(self) -> Vec<Payload> {
        let mut all: Vec<Payload> = self.first.into_iter().collect();
        all.extend(self.later.into_iter().flatten());
        all
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
