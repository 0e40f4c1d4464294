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

/// The panics of one run: one pointer, null until the first panic, so that
/// a run without one (the common run) passes, tests and forgets a word.
#[derive(Default)]
pub(crate) struct Panics(Option<Box<Kept>>);

struct Kept {
    /// The first panic, then (when collecting) the later ones.
    all: Vec<Payload>,
    /// Whether later panics are kept (`cancel_catching`) or dropped.
    collect: bool,
}

impl Panics {
    /// Keeps every panic, in order (`into_vec`).
    pub(crate) fn collecting() -> Self {
        Self(Some(Box::new(Kept {
            all: Vec::new(),
            collect: true,
        })))
    }

    /// Keeps `payload`: as the first panic, or as a later one when
    /// collecting; otherwise drops it.
    #[cold]
    pub(crate) fn keep(&mut self, payload: Payload) {
        match &mut self.0 {
            None => {
                self.0 = Some(Box::new(Kept {
                    all: std::vec![payload],
                    collect: false,
                }))
            }
            Some(kept) if kept.collect || kept.all.is_empty() => kept.all.push(payload),
            Some(_) => drop_payload(payload),
        }
    }

    /// Runs `f`, keeping its panic.
    #[inline]
    pub(crate) fn catch(&mut self, f: impl FnOnce()) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
            self.keep(payload);
        }
    }

    /// Resumes the first panic, if any (later ones are dropped); during an
    /// unwind (a drop) it is dropped instead: a panic escaping a drop while
    /// unwinding would abort.
    #[inline]
    pub(crate) fn resume(self) {
        if let Some(kept) = self.0 {
            resume_kept(kept.all);
        }
    }

    /// Every panic kept, first first.
    pub(crate) fn into_vec(self) -> Vec<Payload> {
        self.0.map_or_else(Vec::new, |kept| kept.all)
    }
}

#[cold]
#[inline(never)]
fn resume_kept(all: Vec<Payload>) {
    let mut all = all.into_iter();
    let first = all.next();
    all.for_each(drop_payload);
    resume(first);
}

/// Resumes a run's first panic, if any; during an unwind (a drop) it is
/// dropped instead: a panic escaping a drop while unwinding would abort.
#[inline]
pub(crate) fn resume(first: Option<Payload>) {
    if let Some(payload) = first {
        resume_payload(payload);
    }
}

#[cold]
#[inline(never)]
fn resume_payload(payload: Payload) {
    if std::thread::panicking() {
        drop_payload(payload);
    } else {
        std::panic::resume_unwind(payload);
    }
}

/// Runs `f`; a panic is kept as the run's first or dropped.
pub(crate) fn catch(first: &mut Option<Payload>, f: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(f)) {
        keep_first(first, payload);
    }
}
