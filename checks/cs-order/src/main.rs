//! A check run by CI (`.ci/run`), from the review of issue 15: a
//! critical-section implementation that aborts when the crate (feature
//! `critical-section`) releases its critical sections out of order (each
//! release must hand back the token of the innermost open section), and
//! fails when user code (a callback, a waker) runs inside one. It drives
//! the paths where holds nest: a drain descending into children (heap and
//! in place), leaf batches, fires (queue lock, then state lock), drops of
//! armed sources and linked children, diamonds, the destroy chain, shutdown
//! scopes. `cargo run --manifest-path checks/cs-order/Cargo.toml`. It
//! aborts with `Locked::hand_over` emptied (checked).
use std::cell::RefCell;
use std::pin::pin;
use std::sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cancel_core::{CancellationSource, InplaceChild, InplaceSource, ManualClock, PinnedRegistration};

static GLOBAL: Mutex<()> = Mutex::new(());
static NEXT: AtomicU32 = AtomicU32::new(1);
thread_local! {
    static STACK: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    static GUARD: RefCell<Option<MutexGuard<'static, ()>>> = const { RefCell::new(None) };
}

struct Checked;
critical_section::set_impl!(Checked);
unsafe impl critical_section::Impl for Checked {
    unsafe fn acquire() -> u32 {
        let outer = STACK.with(|s| s.borrow().is_empty());
        if outer {
            let g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
            GUARD.with(|x| *x.borrow_mut() = Some(g));
        }
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        STACK.with(|s| s.borrow_mut().push(id));
        id
    }
    unsafe fn release(id: u32) {
        let top = STACK.with(|s| s.borrow_mut().pop());
        if top != Some(id) {
            eprintln!("critical sections released out of order: released {id}, innermost open {top:?}");
            std::process::abort();
        }
        if STACK.with(|s| s.borrow().is_empty()) {
            GUARD.with(|x| drop(x.borrow_mut().take()));
        }
    }
}

fn open() -> usize {
    STACK.with(|s| s.borrow().len())
}

fn user_code(what: &'static str) -> impl FnOnce() + Send + 'static {
    move || assert_eq!(open(), 0, "user code ({what}) ran inside a critical section")
}

fn main() {
    // Heap tree: parent -> child -> grandchild, callbacks at each level,
    // many leaves, a timer on a child.
    let clock = ManualClock::new();
    let parent = CancellationSource::new();
    let child = parent.child();
    let grandchild = child.child();
    let leaves: Vec<_> = (0..40).map(|_| parent.child()).collect();
    clock.cancel_after(&grandchild, Duration::from_secs(100));
    let _r1 = parent.token().register(user_code("parent cb"));
    let _r2 = child.token().register(user_code("child cb"));
    let _r3 = grandchild.token().register(user_code("grandchild cb"));
    // In-place child of the heap parent, with an observer (descended into).
    let ic = pin!(InplaceChild::new(&parent.token()));
    let mut r4 = pin!(PinnedRegistration::new(ic.as_ref().token(), user_code("inplace child cb")));
    r4.as_mut().register();
    // An in-place child that is a leaf.
    let leaf = pin!(InplaceChild::new(&parent.token()));
    let _ = leaf.as_ref().token();
    parent.cancel();
    assert!(grandchild.is_cancelled() && leaves.iter().all(|l| l.is_cancelled()));
    assert!(ic.as_ref().is_cancelled() && leaf.as_ref().is_cancelled());
    drop(r4);

    // Fires: an in-place source and heap sources, with callbacks.
    let a = pin!(InplaceSource::new());
    let mut ra = pin!(PinnedRegistration::new(a.token(), user_code("fire cb")));
    ra.as_mut().register();
    clock.cancel_after(a.as_ref(), Duration::from_secs(1));
    let b = CancellationSource::new();
    let bc = b.child();
    let _rb = bc.token().register(user_code("fire child cb"));
    clock.cancel_after(&b, Duration::from_secs(1));
    clock.advance(Duration::from_secs(1));
    assert!(a.is_cancelled() && bc.is_cancelled());
    drop(ra);

    // Drops of armed sources and children with live links.
    {
        let p = CancellationSource::new();
        let c = p.child();
        clock.cancel_after(&c, Duration::from_secs(5));
        let s = pin!(InplaceSource::new());
        clock.cancel_after(s.as_ref(), Duration::from_secs(5));
        let ic = pin!(InplaceChild::new(&p.token()));
        let _ = ic.as_ref().token();
        drop(p);
    }
    // Cross-thread: cancels racing registrations.
    std::thread::scope(|sc| {
        let p = CancellationSource::new();
        let kids: Vec<_> = (0..8).map(|_| p.child()).collect();
        for k in &kids {
            let t = k.token();
            sc.spawn(move || {
                for _ in 0..100 {
                    let r = t.register(user_code("racing cb"));
                    drop(r);
                }
            });
        }
        p.cancel();
    });
    // A diamond: two parents, a two-parent child with a timer and a
    // grandchild; the last handles dropped (lifetime::destroy chain) after
    // one parent cancels, the other still linked.
    {
        let a = CancellationSource::new();
        let b = CancellationSource::new();
        let d = CancellationSource::linked([a.token(), b.token()]);
        clock.cancel_after(&d, Duration::from_secs(50));
        let g = d.child();
        let _rg = g.token().register(user_code("diamond grandchild cb"));
        let ic = pin!(InplaceChild::new(&d.token()));
        let _ = ic.as_ref().token();
        a.cancel();
        assert!(g.is_cancelled() && ic.as_ref().is_cancelled());
        let e = CancellationSource::linked([a.token(), b.token()]);
        clock.cancel_after(&e, Duration::from_secs(50));
        drop((d, g, e));
        b.cancel();
    }
    // Last-handle drop of a timed child chain (never cancelled).
    {
        let p = CancellationSource::new();
        let c = p.child();
        let gc = c.child();
        clock.cancel_after(&gc, Duration::from_secs(70));
        let t = gc.token();
        drop((p, c, gc));
        drop(t);
    }
    // Shutdown scopes (tracker).
    {
        let sd = cancel_core::Shutdown::new();
        let child = sd.child().unwrap();
        let _r = child.token().register(user_code("shutdown child cb"));
        sd.shutdown();
    }
    assert_eq!(open(), 0);
    println!("ok: every critical section released innermost first; no user code inside one");
}
