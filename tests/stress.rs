//! Multi-thread stress: random register / unregister / drop / cancel on a
//! shared family of sources, checking the exactly-once rules. Bounded: a
//! fixed number of rounds, a few seconds in release.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::thread;

use cancel_core::{CancellationSource, Registration};

// A deterministic generator, seeded per thread.
#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

/// Per callback: 0 = pending, 1 = ran, 2 = removed by unregister.
struct Slot {
    state: AtomicU8,
    runs: AtomicUsize,
    after_drop: AtomicU8,
}

const ROUNDS: usize = if cfg!(miri) { 2 } else { 300 };
const OPS: usize = if cfg!(miri) { 20 } else { 3_000 };
const THREADS: usize = 4;

#[test]
fn random_register_unregister_drop_cancel() {
    for round in 0..ROUNDS {
        let root = CancellationSource::new();
        let mid = root.token().child();
        let other = CancellationSource::new();
        let leaf = CancellationSource::linked([&mid.token(), &other.token()]);
        let sources = Arc::new([root, mid, other, leaf]);
        let barrier = Arc::new(Barrier::new(THREADS));
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (sources, barrier) = (sources.clone(), barrier.clone());
                thread::spawn(move || {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((round * THREADS + t) as u64 + 1));
                    let mut live: Vec<(Arc<Slot>, Registration)> = Vec::new();
                    let mut all: Vec<Arc<Slot>> = Vec::new();
                    barrier.wait();
                    for _ in 0..OPS {
                        match rng.next() % 10 {
                            0..=4 => {
                                let s = &sources[(rng.next() % 4) as usize];
                                let slot = Arc::new(Slot {
                                    state: AtomicU8::new(0),
                                    runs: AtomicUsize::new(0),
                                    after_drop: AtomicU8::new(0),
                                });
                                let sl = slot.clone();
                                let reg = s.token().register(move || {
                                    sl.runs.fetch_add(1, SeqCst);
                                    // Only with `std` does a drop wait for the
                                    // callback running on another thread.
                                    if cfg!(feature = "std") {
                                        assert_eq!(
                                            sl.after_drop.load(SeqCst),
                                            0,
                                            "ran after its registration's drop returned"
                                        );
                                    }
                                    assert_ne!(
                                        sl.state.swap(1, SeqCst),
                                        2,
                                        "ran after unregister returned true"
                                    );
                                });
                                all.push(slot.clone());
                                live.push((slot, reg));
                            }
                            5..=6 if !live.is_empty() => {
                                let i = (rng.next() as usize) % live.len();
                                let (slot, reg) = live.swap_remove(i);
                                if reg.unregister() {
                                    assert_ne!(
                                        slot.state.swap(2, SeqCst),
                                        1,
                                        "unregister true but it ran"
                                    );
                                }
                            }
                            7..=8 if !live.is_empty() => {
                                let i = (rng.next() as usize) % live.len();
                                let (slot, reg) = live.swap_remove(i);
                                drop(reg);
                                slot.after_drop.store(1, SeqCst);
                            }
                            _ => {
                                sources[(rng.next() % 4) as usize].cancel();
                            }
                        }
                    }
                    drop(live);
                    all
                })
            })
            .collect();
        let slots: Vec<Arc<Slot>> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        for s in &slots {
            assert!(s.runs.load(SeqCst) <= 1, "a callback ran twice");
        }
        // After cancelling everything, every source and descendant is cancelled.
        for s in sources.iter() {
            s.cancel();
            assert!(s.is_cancelled());
        }
    }
}
