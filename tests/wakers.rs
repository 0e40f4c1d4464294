//! Wakers as the `Waker` contract allows them, not only as the common
//! executors make them: a `clone` may return a new data pointer, and a
//! freed waker's address may be reused by another task's waker.
//!
//! The test marked "review finding" failed on `a8d10ee`, before its fix.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

use cancel_core::CancellationSource;

/// A task's waker "slot": the memory a waker's data pointer points to. Here
/// the slot's task id can be rewritten to stand for the slot being freed and
/// its address reused by another task's waker.
struct Slot {
    task: AtomicUsize,
}

/// A cloned waker: a fresh allocation naming the task the slot named when
/// the clone was made (a legal `clone` that returns a new data pointer).
struct Clone {
    task: usize,
}

/// Wake-ups received, per task id.
static WOKEN: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

static SLOT_VTABLE: RawWakerVTable = RawWakerVTable::new(
    slot_clone,
    |_| unreachable!("never consumed"),
    |_| {},
    |_| {},
);
static CLONE_VTABLE: RawWakerVTable =
    RawWakerVTable::new(clone_clone, clone_wake, clone_wake_by_ref, clone_drop);

fn slot_clone(data: *const ()) -> RawWaker {
    // SAFETY: a slot waker's data is a `&'static Slot`.
    let slot = unsafe { &*data.cast::<Slot>() };
    new_clone(slot.task.load(SeqCst))
}

fn new_clone(task: usize) -> RawWaker {
    RawWaker::new(
        Box::into_raw(Box::new(Clone { task })).cast(),
        &CLONE_VTABLE,
    )
}

fn clone_clone(data: *const ()) -> RawWaker {
    // SAFETY: a clone's data is a live `Box<Clone>`.
    new_clone(unsafe { &*data.cast::<Clone>() }.task)
}

fn clone_wake(data: *const ()) {
    clone_wake_by_ref(data);
    clone_drop(data);
}

fn clone_wake_by_ref(data: *const ()) {
    // SAFETY: as above.
    let task = unsafe { &*data.cast::<Clone>() }.task;
    WOKEN[task].fetch_add(1, SeqCst);
}

fn clone_drop(data: *const ()) {
    // SAFETY: made by `Box::into_raw` in `new_clone`, dropped once.
    drop(unsafe { Box::from_raw(data.cast_mut().cast::<Clone>()) });
}

/// Review finding 4: the future remembered the identity of the waker it was
/// *given*, not of the clone it *stored*. When the given waker's address was
/// reused by another task's waker, the next poll compared equal, skipped the
/// swap, and `cancel` woke the first task instead of the one now polling.
#[test]
fn a_reused_waker_address_still_gets_its_own_task_woken() {
    static SLOT: Slot = Slot {
        task: AtomicUsize::new(1),
    };
    let source = CancellationSource::new();
    let token = source.token();
    let mut fut = pin!(token.cancelled());
    // SAFETY: the vtable's functions match a `&'static Slot` data pointer.
    let first = unsafe { Waker::from_raw(RawWaker::new((&raw const SLOT).cast(), &SLOT_VTABLE)) };
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&first))
            .is_pending()
    );
    // Task 1's waker is freed and task 2's waker takes its address.
    SLOT.task.store(2, SeqCst);
    let second = first;
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&second))
            .is_pending()
    );
    source.cancel();
    assert_eq!(WOKEN[2].load(SeqCst), 1, "the task polling last is woken");
    assert_eq!(WOKEN[1].load(SeqCst), 0, "the earlier task is not");
}

/// Second review, finding 3: a re-poll with a new waker stored its clone,
/// then dropped the replaced one before recording the new identity; when
/// that drop panicked, the future kept the old identity. Polled again by the
/// first task, it took the fast path and stored nothing: the first task was
/// never woken.
#[test]
fn a_repoll_after_a_panicking_waker_drop_still_wakes_the_polling_task() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;
    use std::task::Wake;

    static A_WAKES: AtomicUsize = AtomicUsize::new(0);
    static PANIC_ON_DROP: AtomicUsize = AtomicUsize::new(0);
    static A_VTABLE: RawWakerVTable = RawWakerVTable::new(
        |data| RawWaker::new(data, &A_VTABLE),
        |_| {
            A_WAKES.fetch_add(1, SeqCst);
        },
        |_| {
            A_WAKES.fetch_add(1, SeqCst);
        },
        |_| {
            if PANIC_ON_DROP.swap(0, SeqCst) == 1 {
                panic!("task A's waker: its drop panics once");
            }
        },
    );
    #[derive(Default)]
    struct CountWaker(AtomicUsize);
    impl Wake for CountWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    let source = CancellationSource::new();
    let token = source.token();
    let mut fut = Box::pin(token.cancelled());
    // SAFETY: the vtable never dereferences the data pointer.
    let a =
        unsafe { Waker::from_raw(RawWaker::new(&A_VTABLE as *const _ as *const (), &A_VTABLE)) };
    assert!(fut.as_mut().poll(&mut Context::from_waker(&a)).is_pending());
    let b_count = Arc::new(CountWaker::default());
    let b = Waker::from(b_count.clone());
    PANIC_ON_DROP.store(1, SeqCst);
    let replaced = catch_unwind(AssertUnwindSafe(|| {
        fut.as_mut().poll(&mut Context::from_waker(&b)).is_pending()
    }));
    assert!(replaced.is_err(), "the replaced waker's drop panicked");
    assert!(fut.as_mut().poll(&mut Context::from_waker(&a)).is_pending());
    source.cancel();
    assert_eq!(A_WAKES.load(SeqCst), 1, "task A polled last: it is woken");
    assert_eq!(b_count.0.load(SeqCst), 0);
}
