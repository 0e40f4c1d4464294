//! Concurrent fuzzing: the input builds a small forest of linked sources,
//! then two threads run the rest of the operations on it at once. Checked
//! invariants that do not depend on timing:
//! - a callback runs at most once, never after `unregister` returned true
//!   and never after its registration's drop returned;
//! - when `cancel()` returns, every descendant of that source is cancelled;
//! - at the end every callback closure has been dropped (nothing leaked;
//!   LeakSanitizer checks the rest) and no timeout is left armed;
//! - an in-place child (`InplaceChild`, linked at its first use) of a
//!   cancelled source is cancelled once that cancel returned (uncontended),
//!   and its drop may race the parent's cancel on the other thread.
#![no_main]

use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, OnceLock, mpsc};
use std::task::{Context, Waker};
use std::time::Duration;

use cancel_core::{CancellationSource, CancellationToken, InplaceChild, ManualClock, Registration, WaitForCancellationOwned};

struct Slot {
    runs: AtomicUsize,
    /// 1 once unregister returned true, 2 once the registration's drop returned.
    gone: AtomicU8,
}

struct Forest {
    sources: Vec<CancellationSource>,
    /// descendants[i]: indices of every source reachable below i.
    descendants: Vec<Vec<usize>>,
    clock: ManualClock,
}

fn build(data: &mut &[u8]) -> Forest {
    let mut next = || match data.split_first() {
        Some((&b, rest)) => {
            *data = rest;
            b
        }
        None => 0,
    };
    let n = 1 + (next() % 6) as usize;
    let clock = ManualClock::new();
    let mut sources: Vec<CancellationSource> = Vec::new();
    let mut parents_of: Vec<Vec<usize>> = Vec::new();
    for i in 0..n {
        let mask = if i == 0 { 0 } else { next() as usize % (1 << i.min(6)) };
        let parents: Vec<usize> = (0..i).filter(|p| mask & (1 << p) != 0).collect();
        let tokens: Vec<CancellationToken> = parents.iter().map(|&p| sources[p].token()).collect();
        let s = CancellationSource::linked(tokens.iter());
        if next() % 4 == 0 {
            clock.cancel_after(&s, Duration::from_millis(1 + u64::from(next() % 4)));
        }
        sources.push(s);
        parents_of.push(parents);
    }
    let mut descendants = vec![Vec::new(); n];
    for i in (0..n).rev() {
        for &p in &parents_of[i] {
            let mut below = descendants[i].clone();
            below.push(i);
            descendants[p].extend(below);
        }
    }
    Forest { sources, descendants, clock }
}

fn worker(forest: &Forest, ops: &[u8], slots: &mut Vec<Arc<Slot>>, contended: &bool) {
    let n = forest.sources.len();
    let mut regs: Vec<(Arc<Slot>, Registration)> = Vec::new();
    let mut futs: Vec<Pin<Box<WaitForCancellationOwned>>> = Vec::new();
    let mut children: Vec<CancellationSource> = Vec::new();
    // In-place children, with their parent's index.
    let mut inplace: Vec<(usize, Pin<Box<InplaceChild>>)> = Vec::new();
    for pair in ops.chunks(2) {
        let (op, arg) = (pair[0] % 8, pair.get(1).copied().unwrap_or(0) as usize);
        let i = arg % n;
        match op {
            0 | 1 => {
                let slot = Arc::new(Slot { runs: AtomicUsize::new(0), gone: AtomicU8::new(0) });
                let s = slot.clone();
                let reg = forest.sources[i].token().register(move || {
                    assert_eq!(s.gone.load(SeqCst), 0, "ran after unregister/drop returned");
                    assert_eq!(s.runs.fetch_add(1, SeqCst), 0, "ran twice");
                });
                slots.push(slot.clone());
                regs.push((slot, reg));
            }
            // (No fall-through to other operations: `contended` below
            // counts the cancelling operations by their code.)
            2 => {
                if !regs.is_empty() {
                    let (slot, reg) = regs.swap_remove(arg % regs.len());
                    if reg.unregister() {
                        slot.gone.store(1, SeqCst);
                    }
                }
            }
            3 => {
                if !regs.is_empty() {
                    let (slot, reg) = regs.swap_remove(arg % regs.len());
                    drop(reg);
                    slot.gone.store(2, SeqCst);
                }
            }
            4 => {
                forest.sources[i].cancel();
                // Every descendant is cancelled now, unless the other thread
                // claimed part of the subtree first and is still walking it
                // (cancel() does not wait for another thread's walk, as in
                // .NET and C++); that is checked after both threads are done.
                for &d in &forest.descendants[i] {
                    assert!(
                        forest.sources[d].is_cancelled() || *contended,
                        "descendant {d} of {i} not cancelled when cancel() returned"
                    );
                }
                for (p, child) in &inplace {
                    if *p == i || forest.descendants[i].contains(p) {
                        assert!(
                            child.as_ref().is_cancelled() || *contended,
                            "in-place child of {p} not cancelled when cancel() of {i} returned"
                        );
                    }
                }
            }
            5 => {
                let mut f = Box::pin(forest.sources[i].token().cancelled_owned());
                let ready = f.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready();
                assert!(!ready || forest.sources[i].is_cancelled());
                futs.push(f);
            }
            6 if arg % 2 == 1 => {
                let child = Box::pin(InplaceChild::new(&forest.sources[i].token()));
                // Its first use links it (or finds the parent cancelled).
                let cancelled_before = forest.sources[i].is_cancelled();
                assert!(!cancelled_before || child.as_ref().is_cancelled());
                inplace.push((i, child));
                if arg % 3 == 0 {
                    // Dropped, maybe while the other thread's cancel is on it.
                    inplace.clear();
                }
            }
            6 => {
                children.push(forest.sources[i].token().child());
                if arg % 3 == 0 {
                    children.clear();
                }
            }
            _ => forest.clock.advance(Duration::from_millis(1)),
        }
    }
    for (slot, reg) in regs {
        drop(reg);
        slot.gone.store(2, SeqCst);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// One long-lived second thread: a thread per input would make
/// LeakSanitizer report glibc's per-thread destructor list as a leak.
fn helper() -> &'static Mutex<mpsc::Sender<Job>> {
    static HELPER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    HELPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for job in rx {
                job();
            }
        });
        Mutex::new(tx)
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let forest = Arc::new(build(&mut data));
    let half = data.len() / 2 & !1;
    let (a, b) = data.split_at(half);
    let barrier = Arc::new(Barrier::new(2));
    // Whether both halves cancel: then a cancel() may return while the other
    // thread still walks a shared subtree.
    let cancels = |ops: &[u8]| ops.chunks(2).any(|p| p[0] % 8 == 4 || p[0] % 8 == 7);
    let contended = cancels(a) && cancels(b);
    let (done_tx, done_rx) = mpsc::channel();
    {
        let (forest, barrier, a, contended) = (forest.clone(), barrier.clone(), a.to_vec(), contended);
        let job: Job = Box::new(move || {
            let mut slots = Vec::new();
            barrier.wait();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| worker(&forest, &a, &mut slots, &contended)));
            drop(forest);
            done_tx.send((slots, result.is_ok())).unwrap();
        });
        helper().lock().unwrap().send(job).unwrap();
    }
    let mut slots_b = Vec::new();
    barrier.wait();
    worker(&forest, b, &mut slots_b, &contended);
    let (slots_a, ok) = done_rx.recv().unwrap();
    assert!(ok, "the helper thread's half failed");
    for (i, below) in forest.descendants.iter().enumerate() {
        if forest.sources[i].is_cancelled() {
            for &d in below {
                assert!(forest.sources[d].is_cancelled(), "descendant {d} of cancelled {i} not cancelled");
            }
        }
    }
    let clock = forest.clock.clone();
    drop(barrier);
    drop(Arc::try_unwrap(forest).ok().expect("both halves are done"));
    for slot in slots_a.iter().chain(&slots_b) {
        assert!(slot.runs.load(SeqCst) <= 1);
        assert_eq!(Arc::strong_count(slot), 1, "a callback closure was leaked");
    }
    assert_eq!(clock.armed(), 0, "a timeout outlived its source");
});
