//! Scoped callbacks (`std`): closures that borrow from the stack, as C++'s
//! `stop_callback` captures references. Sound under `mem::forget` the way
//! `std::thread::scope` is: the registrations belong to a scope that lives
//! on `run`'s stack frame, which detaches every one still registered
//! (waiting for a callback running on another thread) before it returns or
//! unwinds. A handle (`forget`table) only lets its owner detach one early.
//!
//! ```text
//!  run ──▶ the caller's closure registers (an entry each) ──▶ returns / unwinds
//!                                                               └─▶ every entry detached, waiting
//! ```

use core::cell::RefCell;
use core::marker::PhantomData;

use alloc::vec::Vec;

use super::boxed::{self, RawRegistration};
use crate::raw::lifetime::StateRef;

/// A scope's registrations; only `run` makes one.
pub(crate) struct ScopeCore<'scope, 'env: 'scope> {
    /// `None` once detached through its handle.
    entries: RefCell<Vec<Option<RawRegistration>>>,
    /// Invariant in both, as `std::thread::Scope`: closures may borrow for
    /// `'scope`, which ends when `run` has detached them all.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// Runs `f` with a new scope; when `f` returns or unwinds, every callback
/// still registered in the scope is detached (a drop: waiting for one that
/// runs on another thread), so none runs after `run` returns, and none
/// outlives what it borrows.
pub(crate) fn run<'env, T>(f: impl for<'scope> FnOnce(&'scope ScopeCore<'scope, 'env>) -> T) -> T {
    let core = ScopeCore {
        entries: RefCell::new(Vec::new()),
        scope: PhantomData,
        env: PhantomData,
    };
    /// Detaches on the way out, also during an unwind.
    struct Close<'a, 'scope, 'env>(&'a ScopeCore<'scope, 'env>);
    impl Drop for Close<'_, '_, '_> {
        fn drop(&mut self) {
            // Taken out first: a closure's drop (user code) may panic, and
            // must not find the list borrowed.
            let entries = core::mem::take(&mut *self.0.entries.borrow_mut());
            // In order; each drop detaches one. A panic of one closure's
            // drop still drops the rest (the vector's drop glue goes on).
            drop(entries);
        }
    }
    let close = Close(&core);
    let result = f(close.0);
    drop(close);
    result
}

impl<'scope, 'env> ScopeCore<'scope, 'env> {
    /// Registers `f` on `state` in this scope; returns its entry's index.
    pub(crate) fn register<F: FnOnce() + Send + 'scope>(
        &'scope self,
        state: &StateRef,
        f: F,
    ) -> usize {
        // SAFETY: the registration is kept in this scope, which only `run`
        // makes, on its own stack frame, and whose close drops it (detaching
        // it, waiting if it runs elsewhere) before `run` returns or unwinds,
        // so before anything `f` borrows for `'scope` is gone. Nobody else
        // can take it out but `detach`, which drops it too.
        let raw = unsafe { boxed::register_borrowing(state, f) };
        let mut entries = self.entries.borrow_mut();
        entries.push(Some(raw));
        entries.len() - 1
    }

    /// Detaches entry `index` now: `unregister` (`wait` false: returns whether
    /// it was removed before it ran) or a drop (`wait` true).
    pub(crate) fn detach(&self, index: usize, wait: bool) -> bool {
        let raw = self
            .entries
            .borrow_mut()
            .get_mut(index)
            .and_then(Option::take);
        match raw {
            Some(mut raw) if !wait => {
                let removed = raw.unregister_keeping();
                if raw.is_attached() {
                    // Running on another thread: kept, so that the scope's
                    // end (or this entry's drop) waits for it. Let go, it
                    // could outlive what it borrows.
                    self.entries.borrow_mut()[index] = Some(raw);
                }
                removed
            }
            Some(raw) => {
                drop(raw);
                false
            }
            None => false,
        }
    }

    /// Whether entry `index` is registered and not started.
    pub(crate) fn is_pending(&self, index: usize) -> bool {
        self.entries
            .borrow()
            .get(index)
            .is_some_and(|e| e.as_ref().is_some_and(RawRegistration::is_pending))
    }
}
