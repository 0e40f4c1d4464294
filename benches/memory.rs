//! Memory per object, cancel-core beside its peers (issues #6 and #14).
//!
//! A counting global allocator records the bytes requested (`Layout::size`,
//! without the allocator's own per-chunk overhead) and the number of
//! allocations. Each figure is the growth of live heap bytes while `N`
//! objects are created and kept alive, divided by `N` (so growth of a shared
//! parent, e.g. a children `Vec` or a slab, is included, amortized), plus the
//! inline size of the handle or future (`size_of`).
//!
//! Issue 15 (embedding) adds cancel-core's in-place kinds, which allocate
//! nothing: the `InplaceSource` (its size is the point: ≤ 32 B on 64-bit),
//! its `InplaceToken`, `NeverToken`, a pending future and a pinned callback
//! registration on an in-place token, each beside the heap kind's.
//!
//! Prints a table and writes `$CARGO_TARGET_DIR/cancel-core-bench/memory.json`
//! (default `target/`).

mod common;

use common::Flag;

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::mem::size_of;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::task::{Context, Waker};

use async_shutdown::{ShutdownManager, ShutdownSignal};
use cancel_core::{
    CancellationSource, CancellationToken, InplaceSource, InplaceToken, NeverToken,
    PinnedRegistration, Registration, WaitForCancellation,
};
use cancellation_token::{
    CancelCallback, CancellationTokenRegistration, CancellationTokenSource as CtSource,
};
use event_listener::EventListener;
use futures::future::{AbortHandle, Abortable};
use stop_token::{StopSource, StopToken};
use tokio_util::sync::{CancellationToken as TokioToken, WaitForCancellationFuture};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are
// plain atomics and never affect what is returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 1_000;

/// Heap bytes and allocations per object while `N` objects made by `make`
/// are alive (the `Vec` holding them is allocated before counting starts).
fn per_object<T>(mut make: impl FnMut() -> T) -> (f64, f64) {
    let mut keep: Vec<T> = Vec::with_capacity(N);
    let bytes0 = LIVE.load(Ordering::Relaxed);
    let allocs0 = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..N {
        keep.push(make());
    }
    let bytes = LIVE.load(Ordering::Relaxed) - bytes0;
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs0;
    drop(keep);
    (bytes as f64 / N as f64, allocs as f64 / N as f64)
}

/// Heap bytes and allocations of one object, made by `make` on its own.
fn one_object<T>(make: impl FnOnce() -> T) -> (isize, usize) {
    let bytes0 = LIVE.load(Ordering::Relaxed);
    let allocs0 = ALLOCS.load(Ordering::Relaxed);
    let object = make();
    let bytes = LIVE.load(Ordering::Relaxed) - bytes0;
    let allocs = ALLOCS.load(Ordering::Relaxed) - allocs0;
    drop(object);
    (bytes, allocs)
}

fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    future.poll(&mut cx).is_ready()
}

fn size_of_val_of<T>(_: &T) -> usize {
    size_of::<T>()
}

struct Row {
    item: &'static str,
    implementation: &'static str,
    inline_bytes: usize,
    heap_bytes: f64,
    allocations: f64,
    single_heap_bytes: Option<isize>,
    note: &'static str,
}

fn main() {
    let mut rows: Vec<Row> = Vec::new();

    // ---- source (a new, independent cancellation source)
    let (single, _) = one_object(CancellationSource::new);
    let (heap, allocs) = per_object(CancellationSource::new);
    rows.push(Row {
        item: "source",
        implementation: "cancel-core",
        inline_bytes: size_of::<CancellationSource>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "CancellationSource::new()",
    });
    let (single, _) = one_object(InplaceSource::new);
    let (heap, allocs) = per_object(InplaceSource::new);
    rows.push(Row {
        item: "source",
        implementation: "cancel-core-inplace",
        inline_bytes: size_of::<InplaceSource>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "InplaceSource::new(): the state word and observer list, inline (const fn, no allocator)",
    });
    let (single, _) = one_object(TokioToken::new);
    let (heap, allocs) = per_object(TokioToken::new);
    rows.push(Row {
        item: "source",
        implementation: "tokio-util",
        inline_bytes: size_of::<TokioToken>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "CancellationToken::new()",
    });
    let (single, _) = one_object(|| Arc::new(Flag::new()));
    let (heap, allocs) = per_object(|| Arc::new(Flag::new()));
    rows.push(Row {
        item: "source",
        implementation: "atomic-bool+event-listener",
        inline_bytes: size_of::<Arc<Flag>>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "Arc<(AtomicBool, Event)>; the Event allocates its list on the first listen()",
    });
    let (single, _) = one_object(CtSource::new);
    let (heap, allocs) = per_object(CtSource::new);
    rows.push(Row {
        item: "source",
        implementation: "cancellation-token",
        inline_bytes: size_of::<CtSource>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "CancellationTokenSource::new()",
    });
    let (single, _) = one_object(StopSource::new);
    let (heap, allocs) = per_object(StopSource::new);
    rows.push(Row {
        item: "source",
        implementation: "stop-token",
        inline_bytes: size_of::<StopSource>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "StopSource::new(): an async-channel (bounded, capacity 1)",
    });
    let (single, _) = one_object(triggered::trigger);
    let (heap, allocs) = per_object(triggered::trigger);
    rows.push(Row {
        item: "source",
        implementation: "triggered",
        inline_bytes: size_of::<(triggered::Trigger, triggered::Listener)>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "triggered::trigger(): Arc<(flag, Mutex<HashMap>, Condvar)>",
    });
    let (single, _) = one_object(ShutdownManager::<()>::new);
    let (heap, allocs) = per_object(ShutdownManager::<()>::new);
    rows.push(Row {
        item: "source",
        implementation: "async-shutdown",
        inline_bytes: size_of::<ShutdownManager<()>>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "ShutdownManager::new(): Arc<Mutex<two waker Vecs + state>>",
    });
    let (single, _) = one_object(AbortHandle::new_pair);
    let (heap, allocs) = per_object(AbortHandle::new_pair);
    rows.push(Row {
        item: "source",
        implementation: "futures-abort",
        inline_bytes: size_of::<(AbortHandle, futures::future::AbortRegistration)>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "AbortHandle::new_pair(): Arc<(AtomicWaker, flag)>; one waiter per pair",
    });
    let (single, _) = one_object(stream_cancel::Tripwire::new);
    let (heap, allocs) = per_object(stream_cancel::Tripwire::new);
    rows.push(Row {
        item: "source",
        implementation: "stream-cancel",
        inline_bytes: size_of::<(stream_cancel::Trigger, stream_cancel::Tripwire)>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "Tripwire::new(): a tokio watch channel",
    });
    let (single, _) = one_object(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let (heap, allocs) = per_object(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
    rows.push(Row {
        item: "source",
        implementation: "arc-atomic-bool",
        inline_bytes: size_of::<Arc<std::sync::atomic::AtomicBool>>(),
        heap_bytes: heap,
        allocations: allocs,
        single_heap_bytes: Some(single),
        note: "Arc<AtomicBool>: polling only",
    });

    // ---- token (a handle that observes; a clone of one kept alive)
    {
        let source = CancellationSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| token.clone());
        rows.push(Row {
            item: "token",
            implementation: "cancel-core",
            inline_bytes: size_of::<CancellationToken>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "token.clone(): a counted pointer to the source's state",
        });
    }
    {
        let source = InplaceSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| token);
        rows.push(Row {
            item: "token",
            implementation: "cancel-core-inplace",
            inline_bytes: size_of::<InplaceToken<'static>>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "InplaceToken: Copy, a borrowed pointer to the source",
        });
    }
    {
        let (heap, allocs) = per_object(|| NeverToken);
        rows.push(Row {
            item: "token",
            implementation: "never-token",
            inline_bytes: size_of::<NeverToken>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "NeverToken: zero-sized, never cancelled",
        });
    }

    // ---- child of a live parent
    {
        let parent = CancellationSource::new();
        let token = parent.token();
        let lone = CancellationSource::new();
        let lone_token = lone.token();
        let (single, _) = one_object(|| lone_token.child());
        let (heap, allocs) = per_object(|| token.child());
        rows.push(Row {
            item: "child",
            implementation: "cancel-core",
            inline_bytes: size_of::<CancellationSource>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: Some(single),
            note: "token.child(): state + one link node, one allocation",
        });
    }
    {
        let parent = TokioToken::new();
        let lone = TokioToken::new();
        let (single, _) = one_object(|| lone.child_token());
        let (heap, allocs) = per_object(|| parent.child_token());
        rows.push(Row {
            item: "child",
            implementation: "tokio-util",
            inline_bytes: size_of::<TokioToken>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: Some(single),
            note: "child_token(): Arc<TreeNode> + a slot in the parent's children Vec",
        });
    }
    {
        let parent = CtSource::new();
        let token = parent.token();
        let lone = CtSource::new();
        let lone_token = lone.token();
        let (single, _) = one_object(|| CtSource::with_parent(&lone_token));
        let (heap, allocs) = per_object(|| CtSource::with_parent(&token));
        rows.push(Row {
            item: "child",
            implementation: "cancellation-token",
            inline_bytes: size_of::<CtSource>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: Some(single),
            note: "with_parent(): Arc + a slot in the parent's slab",
        });
    }

    // ---- pending future (created and polled once with a no-op waker)
    {
        let source = CancellationSource::new();
        let token = source.token();
        let inline = size_of::<WaitForCancellation<'static>>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(token.cancelled());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "cancel-core",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "token.cancelled(): the waiter node lives in the future",
        });
    }
    {
        let source = InplaceSource::new();
        let token = source.token();
        let inline = size_of::<WaitForCancellation<'static>>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(token.cancelled());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "cancel-core-inplace",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "InplaceToken::cancelled(): the same future, borrowing the source",
        });
    }
    {
        let token = TokioToken::new();
        let inline = size_of::<WaitForCancellationFuture<'static>>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(token.cancelled());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "tokio-util",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "token.cancelled(): a Notified inside the future",
        });
    }
    {
        let flag = Flag::new();
        let inline = size_of::<EventListener>();
        // The Event's shared list is allocated on the first listen(); keep one
        // listener around so that it is not counted per waiter.
        let _first = flag.listen();
        let (heap, allocs) = per_object(|| {
            let mut l = flag.listen().expect("not cancelled");
            assert!(!poll_once(Pin::new(&mut l)));
            l
        });
        rows.push(Row {
            item: "pending future",
            implementation: "atomic-bool+event-listener",
            inline_bytes: inline,
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "event.listen(): a boxed listener node",
        });
    }
    {
        let source = CtSource::new();
        let token = source.token();
        let inline = size_of_val_of(&token.wait());
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(token.wait());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "cancellation-token",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "token.wait(): an async fn future + a waker slot in the slab",
        });
    }
    {
        // The token is the future: a clone, polled.
        let source = StopSource::new();
        let token = source.token();
        let inline = size_of::<StopToken>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(token.clone());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "stop-token",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "token.clone() polled: a channel receiver + its event-listener entry",
        });
    }
    {
        // The listener is the future: a clone, polled.
        let (_trigger, listener) = triggered::trigger();
        let inline = size_of::<triggered::Listener>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(listener.clone());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "triggered",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "listener.clone() polled: a waker entry in the shared HashMap",
        });
    }
    {
        let manager = ShutdownManager::<()>::new();
        let inline = size_of::<ShutdownSignal<()>>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(manager.wait_shutdown_triggered());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "async-shutdown",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "wait_shutdown_triggered(): a waker slot in the shared Vec",
        });
    }
    {
        let inline = size_of::<Abortable<std::future::Pending<()>>>();
        let (heap, allocs) = per_object(|| {
            let (handle, reg) = AbortHandle::new_pair();
            let mut f = Box::pin(Abortable::new(std::future::pending::<()>(), reg));
            assert!(!poll_once(f.as_mut()));
            (handle, f)
        });
        rows.push(Row {
            item: "pending future",
            implementation: "futures-abort",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "Abortable::new(pending(), reg) polled: the pair's shared state, one per waiter",
        });
    }
    {
        // The tripwire is the future: a clone, polled.
        let (_trigger, tripwire) = stream_cancel::Tripwire::new();
        let inline = size_of::<stream_cancel::Tripwire>();
        let (heap, allocs) = per_object(|| {
            let mut f = Box::pin(tripwire.clone());
            assert!(!poll_once(f.as_mut()));
            f
        });
        rows.push(Row {
            item: "pending future",
            implementation: "stream-cancel",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "tripwire.clone() polled: a boxed watch-changed future (first poll)",
        });
    }

    // ---- callback registration (a closure capturing 8 bytes)
    {
        let source = CancellationSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| {
            let x = std::hint::black_box(7u64);
            token.register(move || {
                std::hint::black_box(x);
            })
        });
        rows.push(Row {
            item: "callback registration",
            implementation: "cancel-core",
            inline_bytes: size_of::<Registration>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "token.register(closure): node + closure, one allocation",
        });
    }
    {
        let source = CtSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| {
            let x = std::hint::black_box(7u64);
            token.register(CancelCallback::FnOnce(Box::new(move || {
                std::hint::black_box(x);
            })))
        });
        rows.push(Row {
            item: "callback registration",
            implementation: "cancellation-token",
            inline_bytes: size_of::<CancellationTokenRegistration>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "register(CancelCallback::FnOnce(Box)): boxed closure + slab slot",
        });
    }
    // ---- pinned callback registration (a closure capturing 8 bytes), boxed
    // here only to keep N of them pinned; the box is not counted.
    {
        let source = CancellationSource::new();
        let token = source.token();
        let make = || {
            let x = std::hint::black_box(7u64);
            PinnedRegistration::new(token.clone(), move || {
                std::hint::black_box(x);
            })
        };
        let inline = size_of_val_of(&make());
        let (heap, allocs) = per_object(|| {
            let mut r = Box::pin(make());
            assert!(r.as_mut().register());
            r
        });
        rows.push(Row {
            item: "pinned callback registration",
            implementation: "cancel-core",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "PinnedRegistration::new(token.clone(), closure), registered: node + closure + token inline",
        });
    }
    {
        let source = InplaceSource::new();
        let token = source.token();
        let make = || {
            let x = std::hint::black_box(7u64);
            PinnedRegistration::new(token, move || {
                std::hint::black_box(x);
            })
        };
        let inline = size_of_val_of(&make());
        let (heap, allocs) = per_object(|| {
            let mut r = Box::pin(make());
            assert!(r.as_mut().register());
            r
        });
        rows.push(Row {
            item: "pinned callback registration",
            implementation: "cancel-core-inplace",
            inline_bytes: inline,
            heap_bytes: heap - inline as f64,
            allocations: allocs - 1.0,
            single_heap_bytes: None,
            note: "PinnedRegistration::new(inplace_token, closure), registered: node + closure + token inline",
        });
    }

    // ---- callback registration, a closure capturing nothing
    {
        let source = CancellationSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| token.register(|| {}));
        rows.push(Row {
            item: "callback registration, no capture",
            implementation: "cancel-core",
            inline_bytes: size_of::<Registration>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "token.register(closure capturing nothing)",
        });
    }
    {
        let source = CtSource::new();
        let token = source.token();
        let (heap, allocs) = per_object(|| token.register(CancelCallback::FnOnce(Box::new(|| {}))));
        rows.push(Row {
            item: "callback registration, no capture",
            implementation: "cancellation-token",
            inline_bytes: size_of::<CancellationTokenRegistration>(),
            heap_bytes: heap,
            allocations: allocs,
            single_heap_bytes: None,
            note: "register(CancelCallback::FnOnce(Box::new(closure capturing nothing))): a slab slot (a Box of a zero-sized closure does not allocate)",
        });
    }

    println!(
        "{:<34} {:<28} {:>7} {:>10} {:>7} {:>8}",
        "item", "implementation", "inline", "heap/obj", "allocs", "single"
    );
    for r in &rows {
        println!(
            "{:<34} {:<28} {:>7} {:>10.1} {:>7.2} {:>8}",
            r.item,
            r.implementation,
            r.inline_bytes,
            r.heap_bytes,
            r.allocations,
            r.single_heap_bytes
                .map_or_else(|| "-".to_string(), |b| b.to_string())
        );
    }

    let mut json = String::from("{\n  \"objects_per_measurement\": ");
    json.push_str(&N.to_string());
    json.push_str(",\n  \"rows\": [\n");
    for (i, r) in rows.iter().enumerate() {
        json.push_str(&format!(
            "    {{\"item\": \"{}\", \"implementation\": \"{}\", \"inline_bytes\": {}, \
             \"heap_bytes\": {:.2}, \"allocations\": {:.3}, \"single_heap_bytes\": {}, \
             \"note\": \"{}\"}}{}\n",
            r.item,
            r.implementation,
            r.inline_bytes,
            r.heap_bytes,
            r.allocations,
            r.single_heap_bytes
                .map_or_else(|| "null".to_string(), |b| b.to_string()),
            r.note,
            if i + 1 == rows.len() { "" } else { "," }
        ));
    }
    json.push_str("  ]\n}\n");
    let path = common::write_result("memory.json", json);
    println!("wrote {}", path.display());
}
