//! Shared by the bench binaries (each includes it with `mod common;` and
//! uses what it needs): the hand-rolled baseline every peer table compares
//! against, and where the result files go.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use event_listener::{Event, EventListener};

/// The hand-rolled baseline: a flag and an event.
pub struct Flag {
    cancelled: AtomicBool,
    event: Event,
}

impl Flag {
    pub fn new() -> Self {
        Flag {
            cancelled: AtomicBool::new(false),
            event: Event::new(),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub fn cancel(&self) {
        if !self.cancelled.swap(true, Ordering::AcqRel) {
            self.event.notify(usize::MAX);
        }
    }

    /// The idiom's waiter: listen, then check the flag (the check after
    /// `listen` closes the race with a concurrent `cancel`).
    pub fn listen(&self) -> Option<EventListener> {
        let listener = self.event.listen();
        if self.is_cancelled() {
            None
        } else {
            Some(listener)
        }
    }
}

/// `target/cancel-core-bench` in the workspace root (or under
/// `CARGO_TARGET_DIR`, a relative one taken from the workspace root, as
/// `scripts/bench_report.py` does), where `scripts/bench_report.py` reads
/// the results. This package is `benches/`, one level below the root.
pub fn out_dir() -> PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("benches/ has a parent, the workspace root");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| root.join(dir))
        .unwrap_or_else(|| root.join("target"));
    target.join("cancel-core-bench")
}

/// Writes `contents` to `name` in [`out_dir`], creating it.
pub fn write_result(name: &str, contents: String) -> PathBuf {
    let dir = out_dir();
    std::fs::create_dir_all(&dir).expect("create the output directory");
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// A stand-in for a runtime's task, for the fan-out rows with realistic
/// wakers: each pending future gets a `Waker` of its own, made from an
/// `Arc<Task>`, whose `wake` writes to that task's own heap allocation (as a
/// runtime's wake sets its task's state), so that a cancel touches one more
/// cold cache line per waiter, as it does under a runtime. Aligned to 128
/// bytes (two cache lines, the prefetcher's pair) so no two tasks share a
/// line.
#[repr(align(128))]
pub struct Task {
    woken: std::sync::atomic::AtomicU64,
}

impl Task {
    /// A new task's waker (one allocation: the task).
    pub fn waker() -> std::task::Waker {
        std::task::Waker::from(std::sync::Arc::new(Task {
            woken: std::sync::atomic::AtomicU64::new(0),
        }))
    }
}

impl std::task::Wake for Task {
    fn wake(self: std::sync::Arc<Self>) {
        self.woken.fetch_add(1, Ordering::Release);
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.woken.fetch_add(1, Ordering::Release);
    }
}

/// The hand-written minimum for polling: a shared flag.
pub type ArcFlag = std::sync::Arc<AtomicBool>;
