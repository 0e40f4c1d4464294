//! Loom models of the concurrency core.
//!
//! Run with `scripts/loom.sh`, which gives `--cfg loom` to this crate only
//! (a global `RUSTFLAGS="--cfg loom"` breaks dev-dependencies with loom code
//! of their own). Under `--cfg loom` the crate's `src/sync.rs` swaps every
//! atomic, cell, spin and park for loom's, so these models explore the code
//! that ships.
//!
//! Leaks: every model threads a `loom::sync::Arc` through the things the
//! crate must free (callback closures, custom causes stored in a state,
//! wakers). Loom fails an execution that ends with a live loom `Arc`, so a
//! leaked closure, state with a cause, or waker fails the model. Callback
//! nodes are freed after their closure is gone, so they are counted
//! separately: every callback closure carries a 512-aligned marker, which
//! makes its node the only 512-aligned allocation; a counting global
//! allocator checks that none is live at the end of each execution.
//!
//! Structure: the main thread only sets up and joins; the racing operations
//! run on spawned threads. (Loom explores a race between the main thread and
//! a thread it has just spawned far less thoroughly: a model of the same
//! race with the main thread as one party missed a lost wake-up that the
//! two-spawned-threads form finds at once.)
#![cfg(loom)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::AtomicIsize;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use cancel_core::{CancelReason, CancellationSource, CancellationToken, ManualClock};
use loom::sync::Arc;
use loom::sync::atomic::AtomicUsize;
use loom::sync::atomic::Ordering::{Relaxed, SeqCst};
use loom::thread;

// ------------------------------------------------------------------ helpers

/// Makes the callback node holding a closure that captures it a 512-aligned
/// allocation, which nothing else in these tests allocates.
#[repr(align(512))]
#[derive(Clone, Copy)]
struct NodeMarker;

const MARKER_ALIGN: usize = std::mem::align_of::<NodeMarker>();

/// Live 512-aligned allocations: callback nodes of marked closures.
static LIVE_NODES: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting the marked callback nodes.
struct CountingAlloc;

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && layout.align() >= MARKER_ALIGN {
            LIVE_NODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && layout.align() >= MARKER_ALIGN {
            LIVE_NODES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() >= MARKER_ALIGN {
            LIVE_NODES.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract (the alignment does not change).
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// `loom::model`, plus the check that no callback node outlives an
/// execution (everything the body made has been dropped when it returns).
fn model<F: Fn() + Sync + Send + 'static>(body: F) {
    loom::model(move || {
        body();
        let live = LIVE_NODES.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(live, 0, "{live} callback node(s) leaked");
    });
}

/// Marks a callback closure so that its node is counted (see [`model`]).
fn marked(f: impl FnOnce() + Send + 'static) -> impl FnOnce() + Send + 'static {
    let marker = NodeMarker;
    move || {
        std::hint::black_box(&marker);
        f()
    }
}

/// A custom cancellation cause that carries a loom `Arc`: if the state that
/// stores it (or a child that copied it) is never freed, loom reports a leak.
#[derive(Debug)]
struct Tagged {
    tag: &'static str,
    _track: Arc<()>,
}

impl Tagged {
    fn new(tag: &'static str) -> Self {
        Self {
            tag,
            _track: Arc::new(()),
        }
    }
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag)
    }
}

impl Error for Tagged {}

/// The tag of a token's reason: `None` if not cancelled, "requested" for
/// `Requested`, the `Tagged` text for a custom cause.
fn reason_tag(token: &CancellationToken) -> Option<String> {
    match token.reason()? {
        CancelReason::Requested => Some("requested".to_string()),
        CancelReason::Custom(cause) => Some(cause.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A shared counter; the closure returned by `bump` captures a clone of it,
/// so a callback node that is never freed leaks a loom `Arc`.
#[derive(Clone)]
struct Counter(Arc<AtomicUsize>);

impl Counter {
    fn new() -> Self {
        Self(Arc::new(AtomicUsize::new(0)))
    }

    fn bump(&self) -> impl FnOnce() + Send + 'static {
        let c = self.0.clone();
        marked(move || {
            c.fetch_add(1, Relaxed);
        })
    }

    /// Read after a join (or otherwise after a happens-before edge).
    fn get(&self) -> usize {
        self.0.load(Relaxed)
    }
}

/// A waker that counts its wake-ups. Holds a loom `Arc` so a waker the crate
/// forgets to drop is reported as a leak.
struct CountWaker {
    wakes: AtomicUsize,
    _track: Arc<()>,
}

impl Wake for CountWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
    }
}

fn count_waker() -> (std::sync::Arc<CountWaker>, Waker) {
    let inner = std::sync::Arc::new(CountWaker {
        wakes: AtomicUsize::new(0),
        _track: Arc::new(()),
    });
    let waker = Waker::from(inner.clone());
    (inner, waker)
}

/// A loom `UnsafeCell` that may be shared between threads: the models use it
/// for data whose accesses must be ordered by the crate (loom reports a race
/// if they are not).
struct Cell(loom::cell::UnsafeCell<usize>);

// SAFETY: every access goes through loom's checked `with`/`with_mut`; an
// unsynchronised pair of accesses is a reported model failure.
unsafe impl Sync for Cell {}

impl Cell {
    fn new() -> Arc<Self> {
        Arc::new(Cell(loom::cell::UnsafeCell::new(0)))
    }

    fn get(&self) -> usize {
        // SAFETY: loom checks the access.
        self.0.with(|p| unsafe { *p })
    }

    fn set(&self, value: usize) {
        // SAFETY: loom checks the access.
        self.0.with_mut(|p| unsafe { *p = value });
    }

    fn incr(&self) {
        // SAFETY: loom checks the access.
        self.0.with_mut(|p| unsafe { *p += 1 });
    }
}

/// Wakes the loom thread blocked in [`block_on`].
///
/// A mutex and condition variable rather than `park`/`unpark`: loom 0.7.2
/// drops an `unpark` aimed at a running thread whose last scheduling event
/// was a `yield_now` (its state is still "yielded", and `set_unparked` then
/// just makes it runnable instead of saving the token), so a parking
/// executor that spun on the crate's bit lock just before could report a
/// deadlock that real threads cannot have.
struct Notifier {
    notified: loom::sync::Mutex<bool>,
    cond: loom::sync::Condvar,
    _track: Arc<()>,
}

impl Wake for Notifier {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        *self.notified.lock().unwrap() = true;
        self.cond.notify_one();
    }
}

/// Polls `fut` to completion on the current loom thread, blocking between
/// polls. A lost wake-up leaves the thread blocked forever: loom reports a
/// deadlock.
fn block_on<F: Future>(fut: F) -> F::Output {
    let notifier = std::sync::Arc::new(Notifier {
        notified: loom::sync::Mutex::new(false),
        cond: loom::sync::Condvar::new(),
        _track: Arc::new(()),
    });
    let waker = Waker::from(notifier.clone());
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(out) = poll_once(fut.as_mut(), &waker) {
            return out;
        }
        let mut notified = notifier.notified.lock().unwrap();
        while !*notified {
            notified = notifier.cond.wait(notified).unwrap();
        }
        *notified = false;
    }
}

fn poll_once<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

// ------------------------------------------------- 1-4: callbacks vs cancel

// ------------------------------------------------- 1-4: callbacks vs cancel

/// 1. A register racing a cancel: the callback runs exactly once, either
/// inline in `register` or on the cancelling thread.
#[test]
fn cancel_vs_register() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let hits = Counter::new();

        let h = hits.clone();
        let registrar = thread::spawn(move || token.register(h.bump()));
        let canceller = thread::spawn(move || assert!(source.cancel()));

        let registration = registrar.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(hits.get(), 1, "the callback must run exactly once");
        assert!(!registration.is_pending());
        drop(registration);
        assert_eq!(hits.get(), 1);
    });
}

/// 1b. Two registers racing each other and a cancel (list pushes racing a
/// push and the drain): each callback runs exactly once. The second
/// registrar cancels right after registering (two threads: a third thread
/// spinning on the bit lock makes the model too large for loom).
#[test]
fn two_registers_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let hits = Counter::new();

        let (t1, h1) = (source.token(), hits.clone());
        let a = thread::spawn(move || t1.register(h1.bump()));
        let (t2, h2) = (source.token(), hits.clone());
        let b = thread::spawn(move || {
            let registration = t2.register(h2.bump());
            assert!(source.cancel());
            registration
        });

        let r1 = a.join().unwrap();
        let r2 = b.join().unwrap();
        assert_eq!(hits.get(), 2, "each callback must run exactly once");
        drop((r1, r2));
    });
}

/// 2. Two cancels at once (one with a custom cause): exactly one wins, the
/// callback runs once, and the reason is the winner's.
#[test]
fn two_concurrent_cancels() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let s1 = source.clone();
        let a = thread::spawn(move || s1.cancel());
        let b = thread::spawn(move || source.cancel_with(Tagged::new("b")));

        let won_a = a.join().unwrap();
        let won_b = b.join().unwrap();
        assert!(
            won_a ^ won_b,
            "exactly one cancel returns true ({won_a}, {won_b})"
        );
        assert_eq!(hits.get(), 1, "the callback must run exactly once");
        let expected = if won_a { "requested" } else { "b" };
        assert_eq!(reason_tag(&token).as_deref(), Some(expected));
        drop(registration);
    });
}

/// 3. `unregister` racing a cancel: either the callback was removed before it
/// started (unregister returns true and it never runs) or it ran; never both,
/// never neither.
#[test]
fn unregister_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || registration.unregister());
        let b = thread::spawn(move || assert!(source.cancel()));

        let removed = a.join().unwrap();
        b.join().unwrap();
        let ran = hits.get();
        assert_eq!(usize::from(removed) + ran, 1, "removed={removed} ran={ran}");
    });
}

/// 4. Dropping a `Registration` while the cancelling thread may be running
/// its callback: once the drop returns, the callback is not running and
/// never runs again. The callback writes a loom `UnsafeCell`; the dropping
/// thread reads it right after the drop, so a drop that returned before the
/// callback finished is a data race (loom reports it), and a run after the
/// drop changes the value read after the joins.
#[test]
fn registration_drop_vs_running_callback() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let cell = Cell::new();
        let c = cell.clone();
        let registration = token.register(marked(move || c.incr()));

        let c = cell.clone();
        let dropper = thread::spawn(move || {
            drop(registration);
            // A race (reported by loom) if the callback could still be running.
            c.get()
        });
        let canceller = thread::spawn(move || assert!(source.cancel()));

        let seen = dropper.join().unwrap();
        canceller.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(
            seen,
            cell.get(),
            "the callback ran after its registration was dropped"
        );
        drop(token);
    });
}

/// 4b. The same through a link: the callback is on a child's token and runs
/// inside the parent's cancel (the child is reached through its link node).
#[test]
fn registration_drop_vs_callback_run_by_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let child = parent.token().child();
        let cell = Cell::new();
        let c = cell.clone();
        let registration = child.token().register(marked(move || c.incr()));

        let c = cell.clone();
        let dropper = thread::spawn(move || {
            drop(registration);
            // A race (reported by loom) if the callback could still be running.
            c.get()
        });
        let canceller = thread::spawn(move || assert!(parent.cancel()));

        let seen = dropper.join().unwrap();
        canceller.join().unwrap();
        assert!(child.is_cancelled());
        assert_eq!(
            seen,
            cell.get(),
            "the callback ran after its registration was dropped"
        );
    });
}

// ------------------------------------------------------- 5: publication

/// 5. What the canceller wrote before `cancel()` is visible to a thread that
/// saw `is_cancelled()`, and `reason()` is then `Some`. The data is a loom
/// `UnsafeCell`, so a missing happens-before edge is a reported race.
#[test]
fn publication_through_is_cancelled() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let data = Cell::new();

        let d = data.clone();
        let reader = thread::spawn(move || {
            while !token.is_cancelled() {
                thread::yield_now();
            }
            // A race (reported by loom) if cancel did not publish the write.
            assert_eq!(d.get(), 42);
            assert_eq!(reason_tag(&token).as_deref(), Some("w"));
            assert!(token.check().is_err());
        });
        let d = data.clone();
        let writer = thread::spawn(move || {
            d.set(42);
            assert!(source.cancel_with(Tagged::new("w")));
        });
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

/// 5b. The same for a plain `cancel()` (reason `Requested`), which claims
/// the state by another path than a cancel with a custom cause.
#[test]
fn publication_through_is_cancelled_plain_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let data = Cell::new();

        let d = data.clone();
        let reader = thread::spawn(move || {
            while !token.is_cancelled() {
                thread::yield_now();
            }
            // A race (reported by loom) if cancel did not publish the write.
            assert_eq!(d.get(), 42);
            assert_eq!(reason_tag(&token).as_deref(), Some("requested"));
        });
        let d = data.clone();
        let writer = thread::spawn(move || {
            d.set(42);
            assert!(source.cancel());
        });
        reader.join().unwrap();
        writer.join().unwrap();
    });
}

// ------------------------------------------- 6: last-handle drops vs cancel

/// 6a. The last token and the registration are dropped on one thread while
/// the (last) source cancels with a custom cause and is dropped on another:
/// whoever is last frees the state, the cause and the callback node.
#[test]
fn last_token_and_registration_drop_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || {
            drop(registration);
            drop(token);
        });
        let b = thread::spawn(move || {
            assert!(source.cancel_with(Tagged::new("b")));
            drop(source);
        });
        a.join().unwrap();
        b.join().unwrap();
        assert!(hits.get() <= 1);
    });
}

/// 6b. One source handle is dropped while another cancels: the cancel still
/// runs the callback, and the token stays cancelled and "cancellable".
#[test]
fn source_drop_vs_cancel() {
    model(|| {
        let s1 = CancellationSource::new();
        let s2 = s1.clone();
        let token = s1.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || drop(s1));
        let b = thread::spawn(move || assert!(s2.cancel_with(Tagged::new("b"))));
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(hits.get(), 1);
        assert!(token.is_cancelled());
        assert!(token.can_be_cancelled());
        drop(registration);
    });
}

/// 6c. An unregister (owner gives the node up) racing a cancel, with the
/// last token dropped by the unregistering thread: a node orphaned while
/// its callback runs must be freed by the canceller (a leak otherwise).
#[test]
fn unregister_and_last_token_drop_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || {
            let removed = registration.unregister();
            drop(token);
            removed
        });
        let b = thread::spawn(move || assert!(source.cancel_with(Tagged::new("b"))));
        let removed = a.join().unwrap();
        b.join().unwrap();
        assert_eq!(usize::from(removed) + hits.get(), 1);
    });
}

// ------------------------------------------------------------ 7: linking

/// 7a. A parent cancels while its child's last handles (source and a
/// registration) are dropped: no leak of the child, of its copy of the cause
/// or of the callback; the parent ends cancelled.
#[test]
fn parent_cancel_vs_child_last_handle_drop() {
    model(|| {
        let parent = CancellationSource::new();
        let child = parent.token().child();
        let hits = Counter::new();
        let registration = child.token().register(hits.bump());

        let a = thread::spawn(move || {
            drop(registration);
            drop(child);
        });
        let b = thread::spawn(move || {
            assert!(parent.cancel_with(Tagged::new("p")));
            parent
        });
        a.join().unwrap();
        let parent = b.join().unwrap();
        assert!(parent.is_cancelled());
        assert!(hits.get() <= 1);
    });
}

/// 7a'. The same for a child that is never a leaf for its parent's
/// canceller (a second parent, and a timer node in its list): the canceller
/// claims it under the parent's lock and must not take a reference to a
/// dying child, which in turn frees its list and timer only once the
/// canceller is done. No leak, nothing left armed.
#[test]
fn parent_cancel_vs_last_drop_of_a_timed_two_parent_child() {
    model(|| {
        let p1 = CancellationSource::new();
        let p2 = CancellationSource::new();
        let clock = ManualClock::new();
        let child = CancellationSource::linked([&p1.token(), &p2.token()]);
        clock.cancel_after(&child, Duration::from_secs(1));
        assert_eq!(clock.armed(), 1);

        let a = thread::spawn(move || drop(child));
        let b = thread::spawn(move || {
            assert!(p1.cancel_with(Tagged::new("p1")));
            p1
        });
        a.join().unwrap();
        let p1 = b.join().unwrap();
        assert!(p1.is_cancelled());
        assert!(!p2.is_cancelled());
        assert_eq!(clock.armed(), 0);
    });
}

/// 7b. A parent and its child are cancelled at once with different causes:
/// the child's reason is the cause of whichever claimed it, and the parent's
/// reason is its own. The child's callback runs once.
#[test]
fn parent_cancel_vs_child_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let child = parent.token().child();
        let parent_token = parent.token();
        let child_token = child.token();
        let hits = Counter::new();
        let registration = child_token.register(hits.bump());

        let a = thread::spawn(move || assert!(parent.cancel_with(Tagged::new("p"))));
        let b = thread::spawn(move || child.cancel_with(Tagged::new("c")));
        a.join().unwrap();
        let child_won = b.join().unwrap();

        assert_eq!(hits.get(), 1);
        assert_eq!(reason_tag(&parent_token).as_deref(), Some("p"));
        let expected = if child_won { "c" } else { "p" };
        assert_eq!(reason_tag(&child_token).as_deref(), Some(expected));
        drop(registration);
    });
}

/// 7c. Both parents of a linked source are cancelled at once: the child is
/// cancelled exactly once (its callback runs once) with one of the causes.
#[test]
fn two_parents_cancel_at_once() {
    model(|| {
        let p1 = CancellationSource::new();
        let p2 = CancellationSource::new();
        let child = CancellationSource::linked([&p1.token(), &p2.token()]);
        let child_token = child.token();
        let hits = Counter::new();
        let registration = child_token.register(hits.bump());

        let a = thread::spawn(move || assert!(p1.cancel_with(Tagged::new("p1"))));
        let b = thread::spawn(move || assert!(p2.cancel_with(Tagged::new("p2"))));
        a.join().unwrap();
        b.join().unwrap();

        assert!(child.is_cancelled());
        assert_eq!(hits.get(), 1, "the child's callback must run exactly once");
        let tag = reason_tag(&child_token).unwrap();
        assert!(tag == "p1" || tag == "p2", "unexpected child reason {tag}");
        drop(registration);
    });
}

/// 7d. A child is linked to a parent while the parent cancels: afterwards
/// the child is cancelled, with the parent's reason.
#[test]
fn link_creation_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let token = parent.token();

        let a = thread::spawn(move || CancellationSource::linked([&token]));
        let b = thread::spawn(move || assert!(parent.cancel_with(Tagged::new("p"))));
        let child = a.join().unwrap();
        b.join().unwrap();
        assert!(
            child.is_cancelled(),
            "a child linked during its parent's cancel must end cancelled"
        );
        assert_eq!(reason_tag(&child.token()).as_deref(), Some("p"));
    });
}

/// 7d'. Same with two parents, the second cancelling while the child links:
/// exercises the path where a link is already in the first parent's list
/// when the second parent is found cancelled.
#[test]
fn two_parent_link_creation_vs_second_parent_cancel() {
    model(|| {
        let p1 = CancellationSource::new();
        let p2 = CancellationSource::new();
        let t1 = p1.token();
        let t2 = p2.token();

        let a = thread::spawn(move || CancellationSource::linked([&t1, &t2]));
        let b = thread::spawn(move || assert!(p2.cancel_with(Tagged::new("p2"))));
        let child = a.join().unwrap();
        b.join().unwrap();
        assert!(child.is_cancelled());
        assert_eq!(reason_tag(&child.token()).as_deref(), Some("p2"));
        // p1 cancelling later must not disturb the already cancelled child.
        assert!(p1.cancel());
        assert_eq!(reason_tag(&child.token()).as_deref(), Some("p2"));
    });
}

/// 7e. Reason visibility through a link: a thread that sees the child
/// cancelled sees its reason (the parent's custom cause), and `check()`
/// carries it.
#[test]
fn child_reason_visible_once_cancelled() {
    model(|| {
        let parent = CancellationSource::new();
        let child = parent.token().child();
        let child_token = child.token();

        let observer = thread::spawn(move || {
            if child_token.is_cancelled() {
                assert_eq!(reason_tag(&child_token).as_deref(), Some("p"));
                let err = child_token.check().unwrap_err();
                let cause = err.reason().cause().map(|c| c.to_string());
                assert_eq!(cause.as_deref(), Some("p"), "{err:?}");
            }
            child_token
        });
        let a = thread::spawn(move || assert!(parent.cancel_with(Tagged::new("p"))));
        let child_token = observer.join().unwrap();
        a.join().unwrap();
        assert!(child.is_cancelled());
        assert_eq!(reason_tag(&child_token).as_deref(), Some("p"));
    });
}

/// 7f. A child cancelled through its parent while the child's only source
/// handle is gone: a callback registered on the child's token at the same
/// time must run (the token does end cancelled).
#[test]
fn register_on_sourceless_child_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let child_token = parent.token().child().token(); // child source dropped
        assert!(child_token.can_be_cancelled());
        let hits = Counter::new();

        let h = hits.clone();
        let a = thread::spawn(move || {
            let registration = child_token.register(h.bump());
            (registration, child_token)
        });
        let b = thread::spawn(move || assert!(parent.cancel()));
        let (registration, child_token) = a.join().unwrap();
        b.join().unwrap();
        assert!(child_token.is_cancelled());
        assert_eq!(
            hits.get(),
            1,
            "the child token ended cancelled but the callback registered on it never ran"
        );
        drop(registration);
    });
}

/// 7g. A grandchild through a child cancelled at once by the root and by the
/// child itself: the grandchild's callback runs once and its reason is the
/// child's.
#[test]
fn grandchild_via_root_cancel_vs_child_cancel() {
    model(|| {
        let root = CancellationSource::new();
        let child = root.token().child();
        let grandchild = child.token().child();
        let child_token = child.token();
        let grandchild_token = grandchild.token();
        let hits = Counter::new();
        let registration = grandchild_token.register(hits.bump());

        let a = thread::spawn(move || assert!(root.cancel_with(Tagged::new("r"))));
        let b = thread::spawn(move || {
            child.cancel_with(Tagged::new("c"));
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(hits.get(), 1);
        let child_reason = reason_tag(&child_token).unwrap();
        assert_eq!(reason_tag(&grandchild_token), Some(child_reason));
        drop(registration);
        drop(grandchild);
    });
}

/// 7h. A child cancels itself while its parent's last handles are dropped:
/// the link keeps the parent alive until the child is gone; nothing leaks.
#[test]
fn child_cancel_vs_parent_last_handle_drop() {
    model(|| {
        let parent = CancellationSource::new();
        let parent_token = parent.token();
        let child = parent_token.child();
        let child_token = child.token();

        let a = thread::spawn(move || {
            drop(parent);
            drop(parent_token);
        });
        let b = thread::spawn(move || child.cancel_with(Tagged::new("c")));
        a.join().unwrap();
        assert!(b.join().unwrap());
        assert_eq!(reason_tag(&child_token).as_deref(), Some("c"));
    });
}

/// 7i. A grandchild is created from a child while the root cancels: the
/// grandchild either links to the child before the root's cancel reaches the
/// child (and is then cancelled through the link) or finds the child
/// cancelled; either way it ends cancelled with the root's reason.
#[test]
fn grandchild_creation_vs_root_cancel() {
    model(|| {
        let root = CancellationSource::new();
        let child = root.token().child();
        let child_token = child.token();

        let a = thread::spawn(move || child_token.child());
        let b = thread::spawn(move || assert!(root.cancel_with(Tagged::new("r"))));
        let grandchild = a.join().unwrap();
        b.join().unwrap();
        assert!(child.is_cancelled());
        assert!(
            grandchild.is_cancelled(),
            "the grandchild missed the root's cancel"
        );
        assert_eq!(reason_tag(&grandchild.token()).as_deref(), Some("r"));
    });
}

/// 7.x A chain's cancel, which descends into a non-leaf child and comes
/// back to the root without relocking it when the root's list was empty at
/// the descent (`PARENT_EMPTY`), racing a new child of the root with a
/// callback of its own: the new child is linked before the claim (so the
/// root's list is not empty at a descent, and the drain relocks the root
/// and reaches it) or its creation finds the root cancelled. Either way
/// both children end cancelled and each callback runs exactly once.
#[test]
fn chain_cancel_vs_new_child_of_the_root() {
    model(|| {
        let root = CancellationSource::new();
        let a = root.token().child();
        let ran_a = Arc::new(AtomicUsize::new(0));
        let r = ran_a.clone();
        let reg_a = a.token().register(marked(move || {
            r.fetch_add(1, SeqCst);
        }));
        let root_token = root.token();
        let ran_c = Arc::new(AtomicUsize::new(0));
        let rc = ran_c.clone();
        let t = thread::spawn(move || {
            let c = root_token.child();
            let reg = c.token().register(marked(move || {
                rc.fetch_add(1, SeqCst);
            }));
            (c, reg)
        });
        assert!(root.cancel());
        let (c, reg_c) = t.join().unwrap();
        assert!(a.is_cancelled() && c.is_cancelled());
        assert_eq!(ran_a.load(SeqCst), 1);
        assert_eq!(
            ran_c.load(SeqCst),
            1,
            "the new child's callback missed the root's cancel"
        );
        drop((reg_a, reg_c));
    });
}

// ----------------------------------------------------------- 8: futures

/// 8a. A cancel racing the first poll of a cancellation future: if the poll
/// returned Pending, the waker it was given has been woken by the time the
/// cancel has returned, and a re-poll is Ready; if it returned Ready, the
/// canceller's writes are visible.
#[test]
fn cancel_vs_first_poll() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let (count, waker) = count_waker();
        let data = Cell::new();

        let d = data.clone();
        let poller = thread::spawn(move || {
            let mut fut = Box::pin(token.cancelled_owned());
            let first = poll_once(fut.as_mut(), &waker);
            if first.is_ready() {
                // A race (reported by loom) if Ready did not publish the write.
                assert_eq!(d.get(), 1);
            }
            (first.is_pending(), fut, waker)
        });
        let d = data.clone();
        let canceller = thread::spawn(move || {
            d.set(1);
            assert!(source.cancel());
        });
        let (pending, mut fut, waker) = poller.join().unwrap();
        canceller.join().unwrap();
        if pending {
            assert!(
                count.wakes.load(SeqCst) >= 1,
                "lost wake-up on the first poll"
            );
        }
        assert!(poll_once(fut.as_mut(), &waker).is_ready());
    });
}

/// 8b. A cancel racing a re-poll with a different waker: if the re-poll
/// returned Pending, the new waker is woken (the task is not lost); if it
/// returned Ready, the canceller's writes are visible.
#[test]
fn cancel_vs_repoll_with_new_waker() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let (_c1, w1) = count_waker();
        let (c2, w2) = count_waker();
        let data = Cell::new();

        let mut fut = Box::pin(token.cancelled_owned());
        assert!(poll_once(fut.as_mut(), &w1).is_pending());
        drop(w1);

        let d = data.clone();
        let poller = thread::spawn(move || {
            let second = poll_once(fut.as_mut(), &w2);
            if second.is_ready() {
                // A race (reported by loom) if Ready did not publish the write.
                assert_eq!(d.get(), 1);
            }
            (second.is_pending(), fut, w2)
        });
        let d = data.clone();
        let canceller = thread::spawn(move || {
            d.set(1);
            assert!(source.cancel());
        });
        let (pending, mut fut, w2) = poller.join().unwrap();
        canceller.join().unwrap();
        if pending {
            assert!(
                c2.wakes.load(SeqCst) >= 1,
                "the waker of the last poll was not woken"
            );
        }
        assert!(poll_once(fut.as_mut(), &w2).is_ready());
    });
}

/// 8c. A cancel racing a re-poll with the same waker (the lock-free path):
/// as 8b.
#[test]
fn cancel_vs_repoll_with_same_waker() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let (count, waker) = count_waker();
        let data = Cell::new();

        let mut fut = Box::pin(token.cancelled_owned());
        assert!(poll_once(fut.as_mut(), &waker).is_pending());

        let d = data.clone();
        let poller = thread::spawn(move || {
            let second = poll_once(fut.as_mut(), &waker);
            if second.is_ready() {
                // A race (reported by loom) if Ready did not publish the write.
                assert_eq!(d.get(), 1);
            }
            (second.is_pending(), fut, waker)
        });
        let d = data.clone();
        let canceller = thread::spawn(move || {
            d.set(1);
            assert!(source.cancel());
        });
        let (pending, mut fut, waker) = poller.join().unwrap();
        canceller.join().unwrap();
        if pending {
            assert!(count.wakes.load(SeqCst) >= 1, "lost wake-up on a re-poll");
        }
        assert!(poll_once(fut.as_mut(), &waker).is_ready());
    });
}

/// 8d. A pending future dropped while the source cancels: no crash, the
/// stored waker is dropped (loom reports a leak otherwise; the strong count
/// checks it too) and woken at most once.
#[test]
fn cancel_vs_drop_of_pending_future() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let (count, waker) = count_waker();

        let mut fut = Box::pin(token.clone().cancelled_owned());
        assert!(poll_once(fut.as_mut(), &waker).is_pending());
        drop(waker);

        let dropper = thread::spawn(move || drop(fut));
        let canceller = thread::spawn(move || assert!(source.cancel()));
        dropper.join().unwrap();
        canceller.join().unwrap();
        assert!(count.wakes.load(SeqCst) <= 1);
        assert_eq!(
            std::sync::Arc::strong_count(&count),
            1,
            "a waker clone was leaked"
        );
        assert!(token.is_cancelled());
    });
}

/// 8d'. Two pending futures, one dropped while the cancel wakes them in a
/// batch: the other one's waker is woken, the dropped one's waker is freed.
#[test]
fn cancel_vs_drop_of_one_of_two_pending_futures() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let (c1, w1) = count_waker();
        let (c2, w2) = count_waker();

        let mut f1 = Box::pin(token.clone().cancelled_owned());
        let mut f2 = Box::pin(token.clone().cancelled_owned());
        assert!(poll_once(f1.as_mut(), &w1).is_pending());
        assert!(poll_once(f2.as_mut(), &w2).is_pending());
        drop(w1);

        let dropper = thread::spawn(move || drop(f1));
        let canceller = thread::spawn(move || assert!(source.cancel()));
        dropper.join().unwrap();
        canceller.join().unwrap();
        assert!(c1.wakes.load(SeqCst) <= 1);
        assert_eq!(
            std::sync::Arc::strong_count(&c1),
            1,
            "the dropped future's waker leaked"
        );
        assert_eq!(
            c2.wakes.load(SeqCst),
            1,
            "the remaining future was not woken"
        );
        assert!(poll_once(f2.as_mut(), &w2).is_ready());
    });
}

/// 8e. An owned future awaited on another thread with a parking executor:
/// a lost wake-up leaves the waiter parked forever, which loom reports as
/// a deadlock.
#[test]
fn block_on_cancelled_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();

        let waiter = thread::spawn(move || block_on(token.cancelled_owned()));
        let canceller = thread::spawn(move || assert!(source.cancel()));
        waiter.join().unwrap();
        canceller.join().unwrap();
    });
}

/// 8f. `run_until_cancelled` on a future that never completes, awaited while
/// the source cancels with a cause: it ends with `Err` carrying that cause.
#[test]
fn run_until_cancelled_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();

        let runner = thread::spawn(move || {
            let out = block_on(token.run_until_cancelled(std::future::pending::<()>()));
            // The cause is the error's source (the error-chain convention).
            let cause = out.unwrap_err().reason().cause().map(|c| c.to_string());
            cause.unwrap_or_default()
        });
        let canceller = thread::spawn(move || assert!(source.cancel_with(Tagged::new("x"))));
        let cause = runner.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(cause, "x");
    });
}

/// 8g. A future on a child whose source handle is gone, polled while the
/// parent cancels: the child ends cancelled, so a Pending poll must have
/// left a waker that the cancel woke.
#[test]
fn poll_on_sourceless_child_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let child_token = parent.token().child().token(); // child source dropped
        let (count, waker) = count_waker();

        let t = child_token.clone();
        let poller = thread::spawn(move || {
            let mut fut = Box::pin(t.cancelled_owned());
            let first = poll_once(fut.as_mut(), &waker);
            (first.is_pending(), fut, waker)
        });
        let canceller = thread::spawn(move || assert!(parent.cancel()));
        let (pending, mut fut, waker) = poller.join().unwrap();
        canceller.join().unwrap();
        assert!(child_token.is_cancelled());
        if pending {
            assert!(
                count.wakes.load(SeqCst) >= 1,
                "lost wake-up: the child was cancelled but the pending future's waker was never woken"
            );
        }
        assert!(poll_once(fut.as_mut(), &waker).is_ready());
    });
}

// ----------------------------------------------------- 9: blocking waits

/// 9. A thread blocked in `wait()` while another cancels: it returns (a lost
/// unpark is a reported deadlock) and sees the canceller's writes.
#[test]
fn wait_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let data = Cell::new();

        let d = data.clone();
        let waiter = thread::spawn(move || {
            token.wait();
            // A race (reported by loom) if the wake did not publish the write.
            assert_eq!(d.get(), 7);
            assert!(token.is_cancelled());
        });
        let d = data.clone();
        let canceller = thread::spawn(move || {
            d.set(7);
            assert!(source.cancel());
        });
        waiter.join().unwrap();
        canceller.join().unwrap();
    });
}

/// 9b. `wait()` on a child token while the parent cancels: it returns, and
/// the child's reason is the parent's cause.
#[test]
fn wait_on_child_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let child = parent.token().child();
        let token = child.token();

        let waiter = thread::spawn(move || {
            token.wait();
            assert_eq!(reason_tag(&token).as_deref(), Some("p"));
        });
        let canceller = thread::spawn(move || assert!(parent.cancel_with(Tagged::new("p"))));
        waiter.join().unwrap();
        canceller.join().unwrap();
        drop(child);
    });
}

/// 9c. `wait()` on a child whose source handle is gone while the parent
/// cancels: the child ends cancelled, so the wait must return (a wait that
/// decided "never cancellable" parks forever: loom reports a deadlock).
#[test]
fn wait_on_sourceless_child_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let token = parent.token().child().token(); // child source dropped

        let waiter = thread::spawn(move || token.wait());
        let canceller = thread::spawn(move || assert!(parent.cancel()));
        waiter.join().unwrap();
        canceller.join().unwrap();
    });
}

// -------------------------------------------------- 10: manual clock timeouts

/// 10a. A timeout coming due (`ManualClock::advance`) while the source is
/// cancelled by hand: exactly one of them cancels, the reason says which,
/// the callback runs once, and the clock keeps no entry.
#[test]
fn clock_advance_vs_cancel() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(Duration::from_secs(1));
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let c = clock.clone();
        let a = thread::spawn(move || c.advance(Duration::from_secs(1)));
        let b = thread::spawn(move || source.cancel());
        a.join().unwrap();
        let cancel_won = b.join().unwrap();

        assert_eq!(hits.get(), 1, "the callback must run exactly once");
        let expected = if cancel_won { "requested" } else { "TimedOut" };
        assert_eq!(reason_tag(&token).as_deref(), Some(expected));
        assert_eq!(clock.armed(), 0);
        drop(registration);
    });
}

/// 10b. A timeout coming due while the source's last handles (source, token,
/// registration) are dropped: no crash, the clock ends with no entry.
#[test]
fn clock_advance_vs_last_handle_drop() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(Duration::from_secs(1));
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let c = clock.clone();
        let a = thread::spawn(move || c.advance(Duration::from_secs(1)));
        let b = thread::spawn(move || {
            drop(registration);
            drop(token);
            drop(source);
        });
        a.join().unwrap();
        b.join().unwrap();
        assert!(hits.get() <= 1);
        assert_eq!(clock.armed(), 0);
    });
}

/// 10c. A timeout re-armed for later while the clock reaches the old
/// deadline: either it fired (the source is cancelled, `TimedOut`) or the
/// new deadline holds (one entry armed) and reaching it cancels the source.
#[test]
fn clock_rearm_vs_advance() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(Duration::from_secs(1));
        let token = source.token();

        let c = clock.clone();
        let a = thread::spawn(move || c.advance(Duration::from_secs(1)));
        let c = clock.clone();
        let b = thread::spawn(move || {
            c.cancel_after(&source, Duration::from_secs(10));
            source
        });
        a.join().unwrap();
        let source = b.join().unwrap();

        if !token.is_cancelled() {
            assert_eq!(clock.armed(), 1, "a re-armed timeout was lost");
            clock.advance(Duration::from_secs(10));
        }
        assert!(token.is_cancelled());
        assert_eq!(reason_tag(&token).as_deref(), Some("TimedOut"));
        assert_eq!(clock.armed(), 0);
        drop(source);
    });
}

// ------------------------------------------------- pinned registration

/// The inline (allocation-free) registration: its drop on another thread
/// waits for the running callback, exactly like a boxed registration's.
#[test]
fn pinned_registration_drop_vs_running_callback() {
    model(|| {
        let source = CancellationSource::new();
        let cell = Cell::new();
        let c = cell.clone();
        let mut registration = Box::pin(cancel_core::PinnedRegistration::new(
            source.token(),
            move || c.incr(),
        ));
        registration.as_mut().register();

        let c = cell.clone();
        let dropper = thread::spawn(move || {
            drop(registration);
            c.get()
        });
        let canceller = thread::spawn(move || assert!(source.cancel()));

        let seen = dropper.join().unwrap();
        canceller.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(
            seen,
            cell.get(),
            "the callback ran after its pinned registration was dropped"
        );
    });
}

/// `unregister` never waits: racing a running callback on another thread,
/// it orphans the boxed node (the canceller frees it after the call), and
/// exactly one of "removed" and "ran" holds; loom and the counting
/// allocator catch a use after free or a leak.
#[test]
fn unregister_orphans_a_running_callback() {
    model(|| {
        let source = CancellationSource::new();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let registration = source.token().register(marked(move || {
            r.fetch_add(1, SeqCst);
        }));
        let unregisterer = thread::spawn(move || registration.unregister());
        let canceller = thread::spawn(move || assert!(source.cancel()));
        let removed = unregisterer.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(usize::from(removed) + ran.load(SeqCst), 1);
    });
}

/// A borrowing callback (`callback_scope`) unregistered while it runs on
/// the cancelling thread: `unregister` does not wait, but the scope's end
/// does, so when `callback_scope` returns the callback either was removed
/// before it ran or has returned (what it borrows may go then).
///
/// Failed before the fix (sixth review of the shutdown work's tree): the
/// scoped `unregister` orphaned the running node and forgot it, so the
/// scope's end had nothing to wait for and returned while the callback ran
/// (Miri: the borrowed local freed under the running callback).
#[test]
fn scoped_unregister_vs_running_callback_still_waits_at_the_scope_end() {
    model(|| {
        let source = CancellationSource::new();
        let token = source.token();
        let canceller = thread::spawn(move || assert!(source.cancel()));
        let owner = thread::spawn(move || {
            let finished = AtomicUsize::new(0);
            let mut removed = false;
            cancel_core::callback_scope(|scope| {
                let registration = scope.register(&token, || {
                    finished.fetch_add(1, SeqCst);
                });
                removed = registration.unregister();
            });
            assert_eq!(
                usize::from(removed) + finished.load(SeqCst),
                1,
                "the scope returned while its callback ran, or it ran after removal"
            );
        });
        owner.join().unwrap();
        canceller.join().unwrap();
    });
}

// ------------------------------------------------ models from the review of 409be11

/// 7a''. A grandparent cancels while the last handle of a grandchild drops;
/// the middle state (timed, source gone) is kept alive only by the
/// grandchild's link, so it dies in the same `destroy_chain` loop while
/// still linked to the grandparent (retired under its own lock, then
/// unlinked).
#[test]
fn grandparent_cancel_vs_grandchild_drop_freeing_its_timed_parent() {
    model(|| {
        let gp = CancellationSource::new();
        let clock = ManualClock::new();
        let p = gp.token().child();
        clock.cancel_after(&p, Duration::from_secs(1));
        let c = p.token().child();
        drop(p);
        assert_eq!(clock.armed(), 1);

        let a = thread::spawn(move || drop(c));
        let b = thread::spawn(move || {
            assert!(gp.cancel_with(Tagged::new("gp")));
            gp
        });
        a.join().unwrap();
        let gp = b.join().unwrap();
        assert!(gp.is_cancelled());
        assert_eq!(clock.armed(), 0);
    });
}

/// 10d. A timeout comes due while the last handle of a timed two-parent
/// child drops (upgrade vs the lock-free retire).
#[test]
fn clock_advance_vs_last_drop_of_a_timed_two_parent_child() {
    model(|| {
        let p1 = CancellationSource::new();
        let p2 = CancellationSource::new();
        let clock = ManualClock::new();
        let child = CancellationSource::linked([&p1.token(), &p2.token()]);
        clock.cancel_after(&child, Duration::from_secs(1));
        let c = clock.clone();
        let a = thread::spawn(move || drop(child));
        let b = thread::spawn(move || c.advance(Duration::from_secs(1)));
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(clock.armed(), 0);
        assert!(!p1.is_cancelled() && !p2.is_cancelled());
    });
}

/// 8x. Three pending futures in one batch: one dropped and one re-polled
/// with a new waker while the cancel cuts and wakes the batch.
#[test]
fn waiter_batch_vs_drop_and_repoll_with_a_new_waker() {
    model(|| {
        let source = CancellationSource::new();
        let t = source.token();
        let (c1, w1) = count_waker();
        let (c2, w2) = count_waker();
        let (c3, w3) = count_waker();
        let (c4, w4) = count_waker();
        let mut f1 = Box::pin(t.clone().cancelled_owned());
        let mut f2 = Box::pin(t.clone().cancelled_owned());
        let mut f3 = Box::pin(t.clone().cancelled_owned());
        assert!(poll_once(f1.as_mut(), &w1).is_pending());
        assert!(poll_once(f2.as_mut(), &w2).is_pending());
        assert!(poll_once(f3.as_mut(), &w3).is_pending());
        let a = thread::spawn(move || source.cancel());
        let w4b = w4.clone();
        let b = thread::spawn(move || {
            drop(f2);
            let r = poll_once(f3.as_mut(), &w4b);
            (f3, r.is_ready())
        });
        assert!(a.join().unwrap());
        let (mut f3, ready) = b.join().unwrap();
        // f3 was either Ready at the re-poll, or its new waker was woken.
        assert!(ready || c4.wakes.load(SeqCst) == 1);
        assert!(poll_once(f3.as_mut(), &w4).is_ready());
        assert_eq!(c1.wakes.load(SeqCst), 1);
        assert!(c2.wakes.load(SeqCst) <= 1);
        drop((w1, w2, w3, w4, c1, c2, c3, c4, f1, f3, t));
    });
}

// ------------------------------- 11: timers as cancellers (commit cdfa96d)
//
// An armed timeout's queue entry holds one count in the state word's source
// count (taken before queueing, given back when the entry leaves the queue:
// disarm, re-arm, `cancel()` popping the timer node, a fire after its claim,
// or the clock stopping). A fire claims each due source under the queue's
// lock, so `advance` returns only once every due source is cancelled. The
// last `ManualClock` handle's drop stops the clock.
//
// The handles a racing thread uses (clock clones, tokens) are handed back
// to the main thread and dropped there after the join where the race does
// not need the drop: each drop is an atomic operation, and so one more
// scheduling point for loom to explore.

const SEC: Duration = Duration::from_secs(1);

fn timed_out(token: &CancellationToken) -> bool {
    matches!(token.reason(), Some(CancelReason::TimedOut))
}

/// 11.1. Two threads advance a clock past one source's deadline at once:
/// whichever takes the entry, each `advance` returns only once the source
/// is cancelled; the callback runs once; nothing stays armed. (Two sources
/// due at once are 11.8, at a lower bound: at the default one the model
/// takes 190 s to 700 s.)
#[test]
fn timer_two_advances_one_due_source() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let hits = Counter::new();
        let registration = source.token().register(hits.bump());

        let advancer = |clock: ManualClock, token: CancellationToken| {
            thread::spawn(move || {
                clock.advance(SEC);
                assert!(
                    token.is_cancelled(),
                    "advance returned before the due source was cancelled"
                );
                (clock, token)
            })
        };
        let a = advancer(clock.clone(), source.token());
        let b = advancer(clock.clone(), source.token());
        let handles = (a.join().unwrap(), b.join().unwrap());

        assert_eq!(hits.get(), 1, "the callback must run exactly once");
        assert!(timed_out(&source.token()));
        assert_eq!(clock.armed(), 0);
        drop((handles, registration, source));
        assert_eq!(hits.get(), 1);
    });
}

/// 11.2a. The last source handle of a timed source is dropped while the
/// clock reaches its deadline. The armed timer still counts as a canceller:
/// right after the drop the token can be cancelled, a callback registered
/// then is kept (or run inline if the fire came first), and both it and the
/// one registered before run exactly once.
#[test]
fn timer_advance_vs_last_source_drop_then_register() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let (early, late) = (Counter::new(), Counter::new());
        let registration = token.register(early.bump());

        let (t, l) = (token.clone(), late.clone());
        let dropper = thread::spawn(move || {
            drop(source);
            assert!(
                t.can_be_cancelled(),
                "an armed timer must keep the token cancellable"
            );
            let r = t.register(l.bump());
            (t, r)
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let (t, late_registration) = dropper.join().unwrap();
        let c = advancer.join().unwrap();

        assert_eq!(early.get(), 1, "the early callback must run exactly once");
        assert_eq!(late.get(), 1, "the late callback was lost or ran twice");
        assert!(timed_out(&token));
        assert!(token.can_be_cancelled());
        assert_eq!(clock.armed(), 0);
        drop((t, c, late_registration, registration));
        assert_eq!((early.get(), late.get()), (1, 1));
    });
}

/// 11.2b. The same with a future: after dropping the last source handle a
/// thread blocks on `token.cancelled()` while the clock reaches the
/// deadline. A future first polled when the token looked uncancellable
/// would store no waker and never wake (loom reports a deadlock). A future
/// polled before the race is woken exactly once.
#[test]
fn timer_advance_vs_last_source_drop_then_block_on() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let (count, waker) = count_waker();
        let mut early = Box::pin(token.clone().cancelled_owned());
        assert!(poll_once(early.as_mut(), &waker).is_pending());

        let t = token.clone();
        let waiter = thread::spawn(move || {
            drop(source);
            block_on(t.cancelled());
            assert!(timed_out(&t));
            t
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let t = waiter.join().unwrap();
        let c = advancer.join().unwrap();

        assert_eq!(
            count.wakes.load(SeqCst),
            1,
            "the early future must be woken once"
        );
        assert!(poll_once(early.as_mut(), &waker).is_ready());
        assert_eq!(clock.armed(), 0);
        drop((t, c, early, waker, count));
    });
}

/// 11.3. A disarm (`cancel_after(Duration::MAX)`) racing the fire: either
/// the fire cancelled the source (callback run once, `TimedOut`), or the
/// disarm won and the source is untouched and still cancellable through its
/// handle. Nothing stays armed; once the last handle is dropped the token
/// can be cancelled iff it was.
#[test]
fn timer_disarm_vs_advance() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let c = clock.clone();
        let disarmer = thread::spawn(move || {
            c.cancel_after(&source, Duration::MAX);
            (c, source)
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let (c1, source) = disarmer.join().unwrap();
        let c2 = advancer.join().unwrap();

        let fired = token.is_cancelled();
        assert_eq!(hits.get(), usize::from(fired));
        assert_eq!(clock.armed(), 0, "a disarmed or fired timer stayed queued");
        if fired {
            assert!(timed_out(&token));
        } else {
            assert!(token.can_be_cancelled());
            // Disarmed: no later time fires it.
            clock.advance(Duration::from_secs(10));
            assert!(!token.is_cancelled());
        }
        drop(source);
        assert_eq!(
            token.can_be_cancelled(),
            fired,
            "a source count was leaked or given back twice"
        );
        drop((c1, c2, registration));
        assert_eq!(hits.get(), usize::from(fired));
    });
}

/// 11.4. A re-arm for later racing the fire at the old deadline, with the
/// last source handle dropped right after the re-arm: only the token is
/// left. Either the old deadline fired, or the new entry (holding the
/// count) keeps the token cancellable; then the token is not cancelled
/// before the new deadline and is cancelled at it. (No callback: with one
/// the model is too large for loom at the default bound; 11.2 and 11.6
/// check the callbacks of a fire.)
#[test]
fn timer_rearm_then_last_source_drop_vs_advance() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();

        let c = clock.clone();
        let rearmer = thread::spawn(move || {
            // New deadline: 10 s, or 11 s if the advance moved the clock first.
            c.cancel_after(&source, Duration::from_secs(10));
            drop(source);
            c
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let c1 = rearmer.join().unwrap();
        let c2 = advancer.join().unwrap();

        if !token.is_cancelled() {
            assert!(
                token.can_be_cancelled(),
                "the re-armed timer's count was lost"
            );
            assert_eq!(clock.armed(), 1, "a re-armed timeout was lost");
            clock.advance(Duration::from_secs(8)); // at 9 s: before either new deadline
            assert!(!token.is_cancelled(), "fired before its new deadline");
            clock.advance(Duration::from_secs(2)); // at 11 s: past both
        }
        assert!(token.is_cancelled(), "the token was never cancelled");
        assert!(timed_out(&token));
        assert_eq!(clock.armed(), 0);
        drop((c1, c2));
    });
}

/// 11.5a. The last clock handle is dropped (the clock stops) while the last
/// source handle is dropped: whichever comes first, the armed timer's count
/// is given back once, so the token ends uncancellable and uncancelled,
/// with its callback unrun and freed.
#[test]
fn timer_clock_last_drop_vs_last_source_drop() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || drop(clock));
        let b = thread::spawn(move || drop(source));
        a.join().unwrap();
        b.join().unwrap();

        assert!(!token.is_cancelled());
        assert!(
            !token.can_be_cancelled(),
            "no source and a stopped clock: nothing can cancel the token"
        );
        drop(registration);
        let late = token.register(hits.bump());
        assert!(!late.is_pending(), "an uncancellable token stores nothing");
        drop(late);
        assert_eq!(hits.get(), 0);
    });
}

/// 11.5b. The last clock handle is dropped while the last source handle
/// disarms its timer through `source.cancel_after` ("never") and then drops:
/// the stop and the disarm race for the one entry; whichever takes it gives
/// its count back, exactly once, and the token ends uncancellable and
/// uncancelled. (A `source.cancel_after(d)` after the stop re-arms on the
/// default timer, a real thread loom cannot run: `tests/timer_lifetime.rs`
/// covers it.)
#[test]
fn timer_clock_last_drop_vs_source_rearm() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || drop(clock));
        let t = token.clone();
        let b = thread::spawn(move || {
            source.cancel_after(Duration::MAX);
            assert!(t.can_be_cancelled(), "the source handle is still alive");
            drop(source);
            t
        });
        a.join().unwrap();
        let t = b.join().unwrap();

        assert!(!token.is_cancelled());
        assert!(
            !token.can_be_cancelled(),
            "a timer on a stopped clock still holds a source count"
        );
        drop((t, registration));
        assert_eq!(hits.get(), 0);
    });
}

/// 11.5c. The last clock handle is dropped while every handle of a timed
/// source (source, token, registration) is dropped: the stop and the
/// state's destruction meet on the queue's lock; no crash, no leak (the
/// callback's closure and node are freed).
#[test]
fn timer_clock_last_drop_vs_last_handles_drop() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let a = thread::spawn(move || drop(clock));
        let b = thread::spawn(move || {
            drop(registration);
            drop(token);
            drop(source);
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(hits.get(), 0);
    });
}

/// 11.6. An explicit `cancel()` by the last source handle (dropped right
/// after) racing the clock reaching the deadline: exactly one claim wins,
/// the reason says which, the callback runs once, the advancing thread sees
/// the source cancelled when `advance` returns, and nothing stays armed.
#[test]
fn timer_advance_vs_cancel_by_last_source() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let h = hits.clone();
        let canceller = thread::spawn(move || {
            let won = source.cancel();
            if won {
                // The winner runs the callbacks before returning.
                assert_eq!(h.get(), 1);
            }
            drop(source);
            won
        });
        let (c, t) = (clock.clone(), token.clone());
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            assert!(
                t.is_cancelled(),
                "advance returned before the due source was cancelled"
            );
            (c, t)
        });
        let cancel_won = canceller.join().unwrap();
        let handles = advancer.join().unwrap();

        assert_eq!(hits.get(), 1, "the callback must run exactly once");
        let expected = if cancel_won { "requested" } else { "TimedOut" };
        assert_eq!(reason_tag(&token).as_deref(), Some(expected));
        assert_eq!(clock.armed(), 0);
        assert!(token.can_be_cancelled());
        drop((handles, registration));
        assert_eq!(hits.get(), 1);
    });
}

/// 11.7. The source handle was dropped before the race, so the armed timer
/// is the state's only canceller; the last registration (unregistered) and
/// the last token are dropped, freeing the state, while the clock reaches
/// the deadline. The fire either upgrades the state first (and runs the
/// callback, unless it was removed) or finds it dying and skips it; the
/// callback is removed or run, exactly one of the two; nothing leaks or
/// stays armed.
#[test]
fn timer_advance_vs_last_token_drop_of_a_sourceless_timed_state() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());
        drop(source);
        assert!(token.can_be_cancelled());

        let dropper = thread::spawn(move || {
            let removed = registration.unregister();
            drop(token);
            removed
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let removed = dropper.join().unwrap();
        let c = advancer.join().unwrap();

        assert_eq!(
            usize::from(removed) + hits.get(),
            1,
            "the callback must be either removed or run, once"
        );
        assert_eq!(clock.armed(), 0);
        drop(c);
    });
}

/// 11.8. Two sources due at once, two threads advancing: the fire takes one
/// due timeout per hold of the queue's lock and drains it before taking the
/// next, so the two threads may each take one. Each `advance` still returns
/// only once both sources are cancelled (the other thread's is claimed:
/// cancelled, its observers maybe still running there), and each callback
/// runs once. At most two preemptions: at three the model takes minutes.
#[test]
fn timer_two_advances_two_due_sources() {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(|| {
        let clock = ManualClock::new();
        let a = clock.with_timeout(SEC);
        let b = clock.with_timeout(SEC);
        let hits = Counter::new();
        let reg_a = a.token().register(hits.bump());
        let reg_b = b.token().register(hits.bump());
        let advancer = |clock: ManualClock, a: CancellationToken, b: CancellationToken| {
            thread::spawn(move || {
                clock.advance(SEC);
                assert!(
                    a.is_cancelled() && b.is_cancelled(),
                    "advance returned before every due source was cancelled"
                );
                clock
            })
        };
        let t1 = advancer(clock.clone(), a.token(), b.token());
        let t2 = advancer(clock.clone(), a.token(), b.token());
        let c1 = t1.join().unwrap();
        let c2 = t2.join().unwrap();
        assert_eq!(hits.get(), 2, "each callback ran once");
        assert_eq!(clock.armed(), 0);
        drop((c1, c2, reg_a, reg_b, a, b));
    });
}

/// 11.9. A second review's finding: arming checked "already due?" without
/// the queue's lock and queued later, so an `advance` in between moved past
/// the deadline and fired nothing, leaving a timeout due at 1 s armed with
/// the clock at 10 s. Arming now re-checks a manual clock's time under its
/// lock. After both calls return, the source is cancelled, or it is not
/// yet due.
#[test]
fn timer_arm_vs_advance_leaves_no_overdue_timeout() {
    model(|| {
        let clock = ManualClock::new();
        let source = CancellationSource::new();
        let (c, s) = (clock.clone(), source.clone());
        let arm = thread::spawn(move || {
            c.cancel_after(&s, SEC);
            (c, s)
        });
        let c = clock.clone();
        let advance = thread::spawn(move || {
            c.advance(10 * SEC);
            c
        });
        let (c1, s1) = arm.join().unwrap();
        let c2 = advance.join().unwrap();
        let cancelled_after_both = source.is_cancelled();
        clock.advance(Duration::ZERO);
        assert!(
            cancelled_after_both || !source.is_cancelled(),
            "a timeout due at 1 s was left armed and unfired with the clock at 10 s"
        );
        if !cancelled_after_both {
            // Armed after the advance: due at 11 s.
            assert_eq!(clock.armed(), 1);
            clock.advance(SEC);
            assert!(source.is_cancelled());
        }
        assert_eq!(clock.armed(), 0);
        drop((c1, s1, c2));
    });
}

// ------------------------------------------- 12: shutdown scopes (Shutdown)

/// 12.1. The last guard leaves while shutdown begins: whichever comes
/// second completes the scope, exactly once; a waiter woken by the
/// completion sees the work's writes; nothing leaks (the scope's memory is
/// freed by the last handle or the completer).
#[test]
fn shutdown_vs_last_guard_leaving() {
    model(|| {
        let scope = cancel_core::Shutdown::new();
        let guard = scope.enter().unwrap();
        let written = Cell::new();
        let w = written.clone();
        let worker = thread::spawn(move || {
            w.set(1); // the work's last write
            drop(guard);
        });
        let s = scope.clone();
        let stopper = thread::spawn(move || {
            s.shutdown();
            s
        });
        let s = stopper.join().unwrap();
        worker.join().unwrap();
        assert!(scope.is_finished());
        assert_eq!(written.get(), 1);
        assert_eq!(scope.in_flight(), 0);
        drop(s);
    });
}

/// 12.2. Entering races shutdown: an enter either is counted (and the wait
/// includes it) or is refused, and then shutdown had begun.
#[test]
fn enter_vs_shutdown() {
    model(|| {
        let scope = cancel_core::Shutdown::new();
        let s = scope.clone();
        let enterer = thread::spawn(move || match s.enter() {
            Ok(guard) => {
                drop(guard);
                true
            }
            Err(_) => {
                assert!(s.is_shutting_down(), "refused only after shutdown began");
                false
            }
        });
        let s = scope.clone();
        let stopper = thread::spawn(move || {
            s.shutdown();
            s
        });
        let _entered = enterer.join().unwrap();
        drop(stopper.join().unwrap());
        assert!(scope.is_finished());
        assert!(scope.enter().is_err());
    });
}

/// 12.3. A waiter on the finished future races the last guard's leave: no
/// lost wake-up (a lost one is a loom deadlock in `block_on`), and the
/// waiter sees the work's last write (the completion is a happens-before
/// edge from every leave: loom reports a race on the cell otherwise).
#[test]
fn finished_waiter_vs_last_exit() {
    model(|| {
        let scope = cancel_core::Shutdown::new();
        let guard = scope.enter().unwrap();
        scope.shutdown();
        let finished = scope.finished();
        let written = Cell::new();
        let w = written.clone();
        let waiter = thread::spawn(move || {
            block_on(finished);
            assert_eq!(w.get(), 1, "the work's write is visible");
        });
        let w = written.clone();
        let leaver = thread::spawn(move || {
            w.set(1);
            drop(guard);
        });
        leaver.join().unwrap();
        waiter.join().unwrap();
        assert!(scope.is_finished());
    });
}

/// 12.4. Nested scopes shut down from both ends: the parent's shutdown
/// (cascading through the signal's link) races the child's own shutdown
/// and its last guard's leave. Both finish; the child releases its parent
/// exactly once.
#[test]
fn nested_shutdown_from_both_ends() {
    model(|| {
        let parent = cancel_core::Shutdown::new();
        let child = parent.child().unwrap();
        let guard = child.enter().unwrap();
        let p = parent.clone();
        let top = thread::spawn(move || {
            p.shutdown();
            p
        });
        let c = child.clone();
        let bottom = thread::spawn(move || {
            c.shutdown();
            drop(guard);
            c
        });
        drop(top.join().unwrap());
        drop(bottom.join().unwrap());
        assert!(child.is_finished());
        assert!(parent.is_finished());
        assert_eq!(parent.in_flight(), 0);
    });
}

/// 12.5. `unregister_async` while the callback may be running on the
/// cancelling thread: it resolves once the callback has returned (if it
/// ran) and the callback runs at most once; the node is freed either way.
#[test]
fn unregister_async_vs_cancel() {
    model(|| {
        let source = CancellationSource::new();
        let hits = Counter::new();
        let registration = source.token().register(hits.bump());
        let s = source.clone();
        let canceller = thread::spawn(move || assert!(s.cancel()));
        let h = hits.clone();
        let unregisterer = thread::spawn(move || {
            let removed = block_on(registration.unregister_async());
            // Returned: the callback is not running, and ran iff not removed.
            assert_eq!(h.get(), usize::from(!removed));
            removed
        });
        let removed = unregisterer.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(hits.get(), usize::from(!removed));
    });
}

/// 12.6. The last handle's drop races the last guard's leave (no shutdown:
/// a scope whose handles are all gone closes, and completes when its work
/// is done), and a waiter's first poll of the finished future races both.
/// Exactly one completer, whichever RMW comes second; the completion is not
/// lost; the memory is freed once, by the last of the completer and the
/// last handle.
///
/// Failed before the fix (`tracker.rs`: `complete`): the completer gave
/// back `done`'s source count (in the free) before it cancelled `done`, and
/// a first poll in between found nothing that could cancel it, stored no
/// waker, and never woke. Found by Miri (many seeds) on
/// `the_last_handle_and_the_last_guard_dropped_at_once`; an earlier model,
/// with the waiter on the main thread, missed it: loom did not schedule the
/// spawned threads' stores before the main thread's first load. So here
/// the waiter is spawned first and the leave runs on the main thread.
#[test]
fn orphaned_scope_vs_last_guard_and_first_poll() {
    model(|| {
        let scope = cancel_core::Shutdown::new();
        let guard = scope.enter().unwrap();
        let finished = scope.finished();
        let waiter = thread::spawn(move || block_on(finished));
        let dropper = thread::spawn(move || drop(scope));
        drop(guard);
        dropper.join().unwrap();
        waiter.join().unwrap();
    });
}

/// 12.7. A waiter that sees the scope finished sees its token cancelled:
/// `shutdown` cancels the signal before it closes the scope (the other
/// order let a waiter woken by the completion see an uncancelled token).
#[test]
fn finished_implies_the_token_is_cancelled() {
    model(|| {
        let scope = cancel_core::Shutdown::new();
        let token = scope.token();
        let finished = scope.finished();
        let waiter = thread::spawn(move || {
            block_on(finished);
            assert!(
                token.is_cancelled(),
                "finished before the token was cancelled"
            );
        });
        scope.shutdown();
        waiter.join().unwrap();
    });
}

/// A waker that panics when woken (a loom `Arc` inside, so one the crate
/// never drops is reported as a leak). Its panics are kept out of the test
/// output; every other panic (loom's reports) is printed as usual.
struct PanickingWaker(#[allow(dead_code)] Arc<()>);

const WAKER_PANIC: &str = "a completion waker panics";

impl Wake for PanickingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        panic!("{WAKER_PANIC}");
    }
}

fn quiet_waker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = info
                .payload()
                .downcast_ref::<String>()
                .is_some_and(|s| s == WAKER_PANIC);
            if !ours {
                default(info);
            }
        }));
    });
}

/// 12.8. A nested scope made while its parent shuts down, with a waker on
/// the parent's completion that panics: the child's `enter` into the parent
/// may come before the parent closes and its link after the parent's signal
/// is cancelled, so the child is born cancelled, its hook runs inside
/// `child()`, completes it, and gives back the parent's guard, which
/// completes the parent and runs the panicking waker inside `child()`.
/// Nothing leaks either way (the cause's loom `Arc` is copied into the
/// child's signal).
///
/// Failed before the fix (second review of the shutdown work): the hook
/// was registered before the child's handle existed, so that panic
/// unwound out of `child()` with nothing left to free the child (found
/// natively, about once per 100,000 races).
#[test]
fn child_creation_vs_parent_shutdown_with_a_panicking_completion_waker() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    quiet_waker_panics();
    model(|| {
        let parent = cancel_core::Shutdown::new();
        let waker = Waker::from(std::sync::Arc::new(PanickingWaker(Arc::new(()))));
        let mut finished = Box::pin(parent.finished());
        assert!(poll_once(finished.as_mut(), &waker).is_pending());
        drop(waker);
        let p = parent.clone();
        let shutter = thread::spawn(move || {
            let _ = catch_unwind(AssertUnwindSafe(|| p.shutdown_with(Tagged::new("stop"))));
        });
        let p = parent.clone();
        let maker = thread::spawn(move || {
            // The child's drop inside too: with no shutdown of its own, it
            // completes the child there, which may complete the parent.
            let _ = catch_unwind(AssertUnwindSafe(|| drop(p.child())));
        });
        shutter.join().unwrap();
        maker.join().unwrap();
        assert!(parent.is_finished());
        assert!(poll_once(finished.as_mut(), Waker::noop()).is_ready());
    });
}

// 13. Issue 16: disarm, try_reset and timeouts with a cause, racing the
// fire and a cancel.

/// 13.1. `disarm()` racing the fire: it returns `true` iff the fire did not
/// take the entry first; then the source is untouched (callback not run,
/// no later time fires it) and still cancellable through its handle; else
/// it was cancelled with `TimedOut` by its timer. Nothing stays armed, and
/// no source count is leaked or given back twice.
#[test]
fn disarm_vs_fire() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let hits = Counter::new();
        let registration = token.register(hits.bump());

        let disarmer = thread::spawn(move || {
            let disarmed = source.disarm();
            (disarmed, source)
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let (disarmed, source) = disarmer.join().unwrap();
        let c = advancer.join().unwrap();

        assert_eq!(disarmed, !token.is_cancelled(), "disarm() answered wrong");
        assert_eq!(hits.get(), usize::from(!disarmed));
        assert_eq!(clock.armed(), 0);
        if disarmed {
            clock.advance(Duration::from_secs(10));
            assert!(!token.is_cancelled());
        } else {
            assert!(timed_out(&token));
            assert_eq!(token.origin(), Some(cancel_core::CancelOrigin::Timeout));
        }
        drop(source);
        assert_eq!(token.can_be_cancelled(), !disarmed);
        drop((c, registration));
    });
}

/// 13.2. `try_reset()` racing the fire: `true` iff the timer had not
/// fired; then it never fires (the source is reusable and untouched);
/// `false` iff it timed out.
#[test]
fn try_reset_vs_fire() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let token = source.token();
        let resetter = thread::spawn(move || {
            let reset = source.try_reset();
            (reset, source)
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let (reset, source) = resetter.join().unwrap();
        let c = advancer.join().unwrap();
        assert_eq!(reset, !timed_out(&token));
        assert_eq!(clock.armed(), 0);
        if reset {
            clock.advance(Duration::from_secs(10));
            assert!(!token.is_cancelled(), "a reset source's old timeout fired");
            assert!(source.try_reset());
        }
        drop((c, source));
    });
}

/// 13.3. `try_reset()` racing `cancel()` on another handle, with a timer
/// armed: `false` only if the cancel came first; either way the source
/// ends cancelled by that cancel (origin `Cancel`), nothing stays armed,
/// and the timer never fires later.
#[test]
fn try_reset_vs_cancel() {
    model(|| {
        let clock = ManualClock::new();
        let source = clock.with_timeout(SEC);
        let other = source.clone();
        let token = source.token();
        let resetter = thread::spawn(move || {
            let reset = source.try_reset();
            let cancelled_after = source.is_cancelled();
            (reset, cancelled_after)
        });
        let canceller = thread::spawn(move || {
            other.cancel();
        });
        let (reset, cancelled_after) = resetter.join().unwrap();
        canceller.join().unwrap();
        if !reset {
            assert!(cancelled_after, "refused while not cancelled");
        }
        assert!(token.is_cancelled());
        assert_eq!(token.origin(), Some(cancel_core::CancelOrigin::Cancel));
        assert_eq!(clock.armed(), 0);
        clock.advance(SEC);
        assert_eq!(token.reason(), Some(CancelReason::Requested));
    });
}

/// 13.4. A timeout with a cause firing while another thread re-arms it
/// with a second cause: the reason is the first cause (fired first) or,
/// if the re-arm came first, the second one at the later deadline; each
/// cause is dropped once (loom's `Arc` inside them checks no leak).
#[test]
fn a_timeout_with_a_cause_fires_vs_rearm_with_another() {
    model(|| {
        let clock = ManualClock::new();
        let timer = clock.timer();
        let source = CancellationSource::new();
        timer.cancel_after_with(&source, SEC, Tagged::new("first"));
        let token = source.token();
        let t = timer.clone();
        let rearmer = thread::spawn(move || {
            t.cancel_after_with(&source, 2 * SEC, Tagged::new("second"));
            source
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let source = rearmer.join().unwrap();
        let c = advancer.join().unwrap();
        match reason_tag(&token).as_deref() {
            Some("first") => assert_eq!(clock.armed(), 0),
            None => {
                // Re-armed first: 2 s from when it read the clock (0 or 1 s).
                assert_eq!(clock.armed(), 1);
                clock.advance(2 * SEC);
                assert_eq!(reason_tag(&token).as_deref(), Some("second"));
            }
            other => panic!("reason {other:?}"),
        }
        assert_eq!(token.origin(), Some(cancel_core::CancelOrigin::Timeout));
        drop((c, source, timer));
    });
}

/// A cause whose `Drop` panics (13.5). The `Arc` is only held: its count
/// tells whether the cause was dropped.
#[derive(Debug)]
struct PanicOnDrop(#[allow(dead_code)] Arc<()>);

impl fmt::Display for PanicOnDrop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("panics on drop")
    }
}

impl Error for PanicOnDrop {}

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{WAKER_PANIC}");
        }
    }
}

/// 13.5. The seventh review's due path: a re-arm whose deadline an
/// `advance` on another thread reaches between the re-arm's look at the
/// clock and its queueing, over an old entry whose cause panics in `Drop`.
/// Whatever the order, the source ends timed out (by the re-arm's expiry
/// or by the fire), nothing stays armed, the old cause is dropped exactly
/// once (loom's `Arc` inside it checks no leak), and its panic reaches the
/// re-arming thread only.
#[test]
fn a_due_rearm_over_a_panicking_cause_vs_advance() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    quiet_waker_panics();
    model(|| {
        let clock = ManualClock::new();
        let timer = clock.timer();
        let source = CancellationSource::new();
        timer.cancel_after_with(&source, 2 * SEC, PanicOnDrop(Arc::new(())));
        let token = source.token();
        let t = timer.clone();
        let rearmer = thread::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| t.cancel_after(&source, SEC)));
            (r.is_err(), source)
        });
        let c = clock.clone();
        let advancer = thread::spawn(move || {
            c.advance(SEC);
            c
        });
        let (panicked, source) = rearmer.join().unwrap();
        let c = advancer.join().unwrap();
        assert!(panicked, "the old cause is dropped on the re-arming thread");
        if !token.is_cancelled() {
            // The re-arm read the clock after the advance: armed for 2 s.
            assert_eq!(clock.armed(), 1);
            clock.advance(SEC);
        }
        assert!(timed_out(&token), "a due re-arm lost its expiry");
        assert_eq!(clock.armed(), 0);
        drop((c, source, timer));
    });
}

// ------------------------------------- 14: the in-place source (issue 15)
//
// The in-place source is the same state and list, owned in place and
// observed through borrows. Loom threads need `'static` closures, so each
// model shares the source through a loom `Arc` and each thread borrows its
// tokens, futures and pinned registrations from its own clone: the last
// clone's drop frees the source, as a scope's end would drop it.

use cancel_core::{InplaceSource, PinnedRegistration};

/// 14.1 A pinned callback and a future on one thread, the cancel on
/// another. The future may complete before the callback runs (LIFO: the
/// future's node is in front), so `unregister` then either removes the
/// callback or finds it run or running; after the registration's drop
/// (which waits for a running callback) exactly one of the two holds, and
/// loom checks that the callback's write happens-before the read.
#[test]
fn inplace_register_and_await_vs_cancel() {
    model(|| {
        let source = Arc::new(InplaceSource::new());
        let cell = Cell::new();
        let (s, c) = (source.clone(), cell.clone());
        let owner = thread::spawn(move || {
            let token = s.token();
            let c2 = c.clone();
            let mut registration =
                Box::pin(PinnedRegistration::new(token, marked(move || c2.incr())));
            registration.as_mut().register();
            block_on(token.cancelled());
            let removed = registration.as_mut().unregister();
            drop(registration);
            assert_eq!(usize::from(removed) + c.get(), 1);
        });
        let s = source.clone();
        let canceller = thread::spawn(move || assert!(s.cancel()));
        owner.join().unwrap();
        canceller.join().unwrap();
        assert!(source.is_cancelled());
    });
}

/// 14.2 A pinned callback removed while it runs: `unregister` on one thread
/// races the cancel on another. Exactly one of "removed" and "ran" holds,
/// and the drop after `unregister` waits for a callback still running.
#[test]
fn inplace_callback_removed_while_running() {
    model(|| {
        let source = Arc::new(InplaceSource::new());
        let cell = Cell::new();
        let (s, c) = (source.clone(), cell.clone());
        let owner = thread::spawn(move || {
            let c2 = c.clone();
            let mut registration = Box::pin(PinnedRegistration::new(
                s.token(),
                marked(move || c2.incr()),
            ));
            registration.as_mut().register();
            let removed = registration.as_mut().unregister();
            drop(registration);
            assert_eq!(usize::from(removed) + c.get(), 1);
        });
        let s = source.clone();
        let canceller = thread::spawn(move || {
            s.cancel();
        });
        owner.join().unwrap();
        canceller.join().unwrap();
    });
}

/// 14.3 The source dropped right after `cancel` returns: the canceller
/// drops its clone at once, while the owner's future and pinned callback
/// are still being finished; whichever clone is last frees the source.
/// Nothing may touch the state after `cancel` returns (loom reports a
/// use of a freed cell), and nothing leaks.
#[test]
fn inplace_source_dropped_right_after_cancel() {
    model(|| {
        let source = Arc::new(InplaceSource::new());
        let counter = Counter::new();
        let (s, bump) = (source.clone(), counter.bump());
        let owner = thread::spawn(move || {
            let (wakes, waker) = count_waker();
            let first = {
                let token = s.token();
                let mut registration = pin!(PinnedRegistration::new(token, bump));
                registration.as_mut().register();
                let mut waiting = pin!(token.cancelled());
                poll_once(waiting.as_mut(), &waker)
            };
            drop(s);
            (first, wakes)
        });
        let canceller = thread::spawn(move || {
            assert!(source.cancel());
            drop(source);
        });
        let (first, wakes) = owner.join().unwrap();
        canceller.join().unwrap();
        assert!(counter.get() <= 1, "the callback ran twice");
        let woken = wakes.wakes.load(SeqCst);
        assert!(woken <= 1, "woken twice");
        if first.is_ready() {
            assert_eq!(woken, 0, "a future ready at once stores no waker");
        }
    });
}

/// 14.4 Two threads cancel one in-place source: one call wins and the
/// pinned callback runs once.
#[test]
fn inplace_two_cancels() {
    model(|| {
        let source = Arc::new(InplaceSource::new());
        let counter = Counter::new();
        let mut registered = Box::pin(PinnedRegistration::new(source.token(), counter.bump()));
        assert!(registered.as_mut().register());
        let (a, b) = (source.clone(), source.clone());
        let one = thread::spawn(move || a.cancel());
        let two = thread::spawn(move || b.cancel());
        let wins = usize::from(one.join().unwrap()) + usize::from(two.join().unwrap());
        assert_eq!(wins, 1);
        assert_eq!(counter.get(), 1);
        drop(registered);
    });
}

/// 14.5 A clock's fire vs the drop of the pinned, armed in-place source:
/// the fire may have taken its reference (under the queue's lock) before
/// the drop retired the timer, and may even have popped the timer node in
/// its drain; the drop returns only once the fire gave the reference back.
/// A leaked callback on the source (run by the fire's drain) writes a
/// cell that the dropper reads once the drop has returned: loom reports
/// the race if the drop returned while the drain still ran. Fails if the
/// drop skips the wait when it finds no timer node in the list.
#[test]
fn inplace_fire_vs_drop_of_the_armed_source() {
    loom::lazy_static! {
        static ref FIRED: Cell = Cell(loom::cell::UnsafeCell::new(0));
    }
    model(|| {
        let clock = ManualClock::new();
        let source = std::sync::Arc::pin(InplaceSource::new());
        let mut leaked = Box::pin(PinnedRegistration::new(source.token(), || FIRED.incr()));
        leaked.as_mut().register();
        // Leaked: never dropped, so the dropper may drop the source.
        std::mem::forget(leaked);
        clock.cancel_after(source.as_ref(), Duration::from_secs(1));
        let c = clock.clone();
        let firer = thread::spawn(move || c.advance(Duration::from_secs(1)));
        let dropper = thread::spawn(move || {
            drop(source);
            FIRED.get()
        });
        firer.join().unwrap();
        assert!(dropper.join().unwrap() <= 1);
        assert_eq!(clock.armed(), 0);
    });
}

/// 14.6 A heap parent's cancel vs the drop of its in-place child (pinned,
/// linked): the parent's drain may have popped the link and descended into
/// the child, holding a reference; the child's drop unlinks, waits for
/// that reference, then gives back its own to the parent. A leaked
/// callback on the child writes a cell that the dropper reads after the
/// drop: loom reports the race if the drop returned while the drain ran.
#[test]
fn inplace_child_drop_vs_parent_cancel() {
    loom::lazy_static! {
        static ref CHILD_RAN: Cell = Cell(loom::cell::UnsafeCell::new(0));
    }
    model(|| {
        let parent = CancellationSource::new();
        let child = Box::pin(cancel_core::InplaceChild::new(&parent.token()));
        let mut leaked = Box::pin(PinnedRegistration::new(child.as_ref().token(), || {
            CHILD_RAN.incr()
        }));
        leaked.as_mut().register();
        std::mem::forget(leaked);
        let canceller = thread::spawn(move || assert!(parent.cancel()));
        let dropper = thread::spawn(move || {
            drop(child);
            CHILD_RAN.get()
        });
        canceller.join().unwrap();
        assert!(dropper.join().unwrap() <= 1);
    });
}

/// 14.7 (from the review of issue 15) An in-place child's first link (its
/// first `token()`), a pinned callback on it and its own cancel, on one
/// thread, race the heap parent's cancel on another: the callback runs
/// exactly once, and the child's drop (after everything) waits for a drain
/// still in it.
#[test]
fn inplace_child_first_link_and_own_cancel_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let token = parent.token();
        let counter = Counter::new();
        let bump = counter.bump();
        let owner = thread::spawn(move || {
            let child = pin!(cancel_core::InplaceChild::new(&token));
            let t = child.as_ref().token();
            let mut registration = pin!(PinnedRegistration::new(t, bump));
            registration.as_mut().register();
            child.as_ref().cancel();
            assert!(t.is_cancelled());
        });
        let canceller = thread::spawn(move || {
            parent.cancel();
        });
        owner.join().unwrap();
        canceller.join().unwrap();
        assert_eq!(counter.get(), 1);
    });
}

/// 14.8 (from the review of issue 15) A leaf in-place child (nothing
/// listed: the parent's drain finishes it under the parent's lock, holding
/// no reference) dropped while the parent cancels: the drop's unlink takes
/// the parent's lock, so it waits out the leaf's finish.
#[test]
fn inplace_leaf_child_drop_vs_parent_cancel() {
    model(|| {
        let parent = CancellationSource::new();
        let token = parent.token();
        let owner = thread::spawn(move || {
            let child = Box::pin(cancel_core::InplaceChild::new(&token));
            assert!(child.as_ref().token().can_be_cancelled());
            drop(child);
        });
        let canceller = thread::spawn(move || assert!(parent.cancel()));
        owner.join().unwrap();
        canceller.join().unwrap();
    });
}
