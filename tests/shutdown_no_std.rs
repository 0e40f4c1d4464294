//! Shutdown scopes built without the `std` feature, where a registration's
//! drop cannot wait for a callback running on another thread (no parking):
//! the scope's own hook on its signal must stay sound anyway.
//!
//! Runs in every configuration; the race below matters in
//! `--no-default-features` builds, where `scripts/miri.sh` runs it over many
//! seeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;

use cancel_core::Shutdown;

/// A completed child's last handle is dropped (freeing it) while the
/// parent's shutdown runs the child's hook on another thread. Failed before
/// the fix in a `--no-default-features` build (fourth review; Miri, seed
/// 22: a data race between the hook's read of the tracker and the free):
/// the free relied on the registration's drop waiting for a running hook.
#[test]
fn a_childs_last_handle_dropped_while_the_parents_shutdown_runs_its_hook() {
    for _ in 0..if cfg!(miri) { 4 } else { 2_000 } {
        let parent = Shutdown::new();
        let child = parent.child().unwrap();
        // Completed at once (no work), its handle alive: the last handle's
        // drop frees it.
        assert!(child.close());
        assert!(child.is_finished());
        // Runs on the shutter's thread just before the child's hook (the
        // hook is the signal's last observer), and lets the dropper go.
        let go = Arc::new(AtomicBool::new(false));
        let g = go.clone();
        let registration = child.token().register(move || g.store(true, SeqCst));
        let p = parent.clone();
        let shutter = thread::spawn(move || {
            p.shutdown();
        });
        let dropper = thread::spawn(move || {
            while !go.load(SeqCst) {
                std::hint::spin_loop();
            }
            drop(child);
        });
        shutter.join().unwrap();
        dropper.join().unwrap();
        drop(registration);
        assert!(parent.is_finished());
    }
}
