//! A fixed-count driver for instruction counts under
//! `valgrind --tool=callgrind` (a second opinion beside criterion's wall
//! times, immune to the noise of a shared machine).
//!
//! `instructions <op> <impl> <count>` runs `op` `count` times on one thread.
//! Under `cargo bench` (no such arguments) it does nothing.
//!
//! Per-operation rows: `scripts/bench.sh` runs the driver twice with
//! different counts and divides the difference in instructions by the
//! difference in counts, which cancels start-up and set-up. Ops:
//! `is_cancelled`, `token_clone_drop`, `child_new_drop`,
//! `register_unregister` (a closure capturing nothing, `|| {}`),
//! `register_unregister_capture8` (a closure capturing 8 bytes, as in
//! `benches/ops.rs`), `cancelled_future_poll_drop`, `work_enter_leave`.
//!
//! Cancel rows (`count` rounds of set-up + cancel + tear-down):
//! `cancel_pending_1`, `cancel_pending_1000` (no-op wakers),
//! `cancel_pending_tasks_1000` (a real waker per future, see
//! `common::Task`), `cancel_children_10000`, `cancel_chain_100000`. Every
//! impl's cancel call is wrapped in an `#[inline(never)] fn cancel_<impl>`
//! (`-` and `+` spelled `_`); `bench.sh` counts the instructions run inside
//! these wrappers (`valgrind --tool=callgrind
//! --toggle-collect='instructions::cancel_*'`, callees included) and divides
//! by the waiters, children or levels cancelled. For cancel-core the same drivers, run
//! twice with different counts, give the "/ round" rows of
//! `benches/instruction_history.tsv` (set-up, cancel and tear-down of one
//! round).
//!
//! Impls: `cancel-core`, `cancel-core-inplace` (an `InplaceSource` on the
//! driver's stack and its `InplaceToken`), `tokio-util`,
//! `cancellation-token`, `stop-token`, `triggered`, `async-shutdown`,
//! `futures-abort`, `stream-cancel`, `arc-atomic-bool`,
//! `atomic-bool+event-listener`, `arc-clone-drop` (`work_enter_leave`
//! only); each only where it has the operation (the report says which it
//! lacks).
//!
//! Issue 15 (embedding): `pinned_register_unregister` (a
//! `PinnedRegistration` on the stack, on a heap token, which it owns a
//! clone of, or on an in-place token), and the generic rows
//! `generic_check` and `generic_guarded`: one `#[inline(never)]` generic
//! function over `T: Token` (resp. `CallbackToken`) instantiated for
//! `never-token`, `cancel-core` and `cancel-core-inplace`, beside
//! `baseline`, the same body with no token. `bench.sh` counts only the
//! instructions run inside the `generic_*` functions
//! (`--toggle-collect='instructions::generic_*'`), two counts each: the
//! caller's loop and `black_box` are not the function's, and passing a
//! zero-sized token's address would otherwise count against it.

mod common;

use common::{ArcFlag, Flag, Task};

use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};

use async_shutdown::ShutdownManager;
use cancel_core::{
    CallbackToken, CancellationSource, Cancelled, InplaceSource, NeverToken, PinnedCallback,
    PinnedRegistration, Token,
};
use cancellation_token::{
    CancelCallback, CancellationToken as CtToken, CancellationTokenSource as CtSource,
};
use futures::future::{AbortHandle, AbortRegistration, Abortable};
use stop_token::StopSource;
use tokio_util::sync::CancellationToken as TokioToken;

#[inline(never)]
fn poll_once<F: Future + ?Sized>(future: Pin<&mut F>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    future.poll(&mut cx).is_ready()
}

#[inline(never)]
fn poll_with<F: Future + ?Sized>(future: Pin<&mut F>, waker: &Waker) -> bool {
    let mut cx = Context::from_waker(waker);
    future.poll(&mut cx).is_ready()
}

/// cancellation-token's waiter future (an `async fn` borrowing its token),
/// made `'static` by owning the token.
async fn ct_wait_owned(token: CtToken) {
    token.wait().await
}

// ---- the cancel calls, one symbol per impl: bench.sh counts only the
// instructions run inside them (callgrind's `--toggle-collect` on
// `instructions::cancel_*`, callees included). Those that cancel by dropping
// take the handle by value, so their cancel includes that drop.

#[inline(never)]
fn cancel_cancel_core(s: &CancellationSource) {
    let _ = s.cancel();
}

#[inline(never)]
fn cancel_cancel_core_inplace(s: &InplaceSource) {
    let _ = s.cancel();
}

#[inline(never)]
fn cancel_tokio_util(t: &TokioToken) {
    t.cancel();
}

#[inline(never)]
fn cancel_cancellation_token(s: &CtSource) {
    s.cancel();
}

#[inline(never)]
fn cancel_stop_token(s: StopSource) {
    drop(s);
}

#[inline(never)]
fn cancel_triggered(t: &triggered::Trigger) {
    t.trigger();
}

#[inline(never)]
fn cancel_async_shutdown(m: &ShutdownManager<()>) {
    let _ = m.trigger_shutdown(());
}

#[inline(never)]
fn cancel_futures_abort(h: &AbortHandle) {
    h.abort();
}

#[inline(never)]
fn cancel_stream_cancel(t: stream_cancel::Trigger) {
    t.cancel();
}

#[inline(never)]
fn cancel_atomic_bool_event_listener(f: &Flag) {
    f.cancel();
}

// ---- issue 15: generic code over a token. The claim is that an
// instantiation for `NeverToken` keeps none of its cancellation code, i.e.
// runs exactly the instructions of `generic_sum_baseline`, the body a
// caller would write with no token at all. Same signature but the token,
// same result type, so the two can differ only by what the token left.
// LLVM folds identical functions into one symbol (in the first build the
// baseline became `generic_sum_guarded::<NeverToken>`, and
// `generic_sum_checked::<NeverToken>` kept its own, instruction for
// instruction the same): the toggle's `generic_*` covers whichever survives.

/// Elements summed per call (enough that a per-element check shows).
const GENERIC_LEN: usize = 64;

/// The baseline: the loop with no token.
#[inline(never)]
fn generic_sum_baseline(xs: &[u64]) -> Result<u64, Cancelled> {
    let mut total = 0u64;
    for &x in xs {
        total = total.wrapping_add(x);
    }
    Ok(total)
}

/// A library's cancellable loop: one `check()?` per element.
#[inline(never)]
fn generic_sum_checked<T: Token>(token: &T, xs: &[u64]) -> Result<u64, Cancelled> {
    let mut total = 0u64;
    for &x in xs {
        token.check()?;
        total = total.wrapping_add(x);
    }
    Ok(total)
}

/// What a callback of `generic_sum_guarded` sets (it never runs here).
static STOPPED: AtomicBool = AtomicBool::new(false);

/// The loop of `generic_sum_checked`, plus what an operation sets up around
/// it: a pinned callback (registered, unregistered by its drop) and one
/// poll of `cancelled()` with the no-op waker.
#[inline(never)]
fn generic_sum_guarded<T: CallbackToken>(token: &T, xs: &[u64]) -> Result<u64, Cancelled> {
    let mut on_cancel = pin!(token.callback(|| STOPPED.store(true, Ordering::Relaxed)));
    on_cancel.as_mut().register();
    let mut cx = Context::from_waker(Waker::noop());
    if pin!(token.cancelled()).poll(&mut cx).is_ready() {
        token.check()?;
    }
    let mut total = 0u64;
    for &x in xs {
        token.check()?;
        total = total.wrapping_add(x);
    }
    Ok(total)
}

/// `count` calls of `f` on the same elements, the slice and the whole
/// result passed through `black_box` every time, so that no call can be
/// hoisted, folded or (the callees being pure) deleted. Not named
/// `generic_*`: callgrind's toggle would count this loop instead.
fn calls_of(count: u64, f: impl Fn(&[u64]) -> Result<u64, Cancelled>) {
    let xs: Vec<u64> = (0..GENERIC_LEN as u64).collect();
    for _ in 0..count {
        drop(black_box(f(black_box(xs.as_slice()))));
    }
}

/// `rounds` times: a source (`source`) with `n` boxed futures (`future`),
/// each polled once (pending), then `cancel`, then the futures and what
/// `cancel` returned are dropped. With `tasks`, each future is polled with a
/// waker of its own (`common::Task`, made before the future); otherwise with
/// the no-op waker, in a loop shaped exactly as the one the history rows of
/// `benches/instruction_history.tsv` were measured with.
fn fanout<S, F: Future, K>(
    n: usize,
    rounds: u64,
    tasks: bool,
    source: impl Fn() -> S,
    future: impl Fn(&S) -> F,
    cancel: impl Fn(S) -> K,
) {
    if !tasks {
        for _ in 0..rounds {
            let s = source();
            let futures: Vec<Pin<Box<F>>> = (0..n)
                .map(|_| {
                    let mut f = Box::pin(future(&s));
                    assert!(!poll_once(f.as_mut()));
                    f
                })
                .collect();
            let kept = cancel(s);
            drop(futures);
            drop(kept);
        }
        return;
    }
    for _ in 0..rounds {
        let s = source();
        let wakers: Vec<Waker> = (0..n).map(|_| Task::waker()).collect();
        let futures: Vec<Pin<Box<F>>> = wakers
            .iter()
            .map(|w| {
                let mut f = Box::pin(future(&s));
                assert!(!poll_with(f.as_mut(), w));
                f
            })
            .collect();
        let kept = cancel(s);
        drop(futures);
        drop(kept);
        drop(wakers);
    }
}

/// The fan-out rows: `cancel_pending_<n>` (no-op wakers) and
/// `cancel_pending_tasks_<n>` (a waker per task). futures-abort serves one
/// waiter per handle, so it has only `n = 1`.
fn fanout_impl(imp: &str, n: usize, rounds: u64, tasks: bool) -> bool {
    match imp {
        "cancel-core" => fanout(
            n,
            rounds,
            tasks,
            CancellationSource::new,
            |s| s.token().cancelled_owned(),
            |s| {
                cancel_cancel_core(&s);
                s
            },
        ),
        "tokio-util" => fanout(
            n,
            rounds,
            tasks,
            TokioToken::new,
            |t| t.clone().cancelled_owned(),
            |t| {
                cancel_tokio_util(&t);
                t
            },
        ),
        "cancellation-token" => fanout(
            n,
            rounds,
            tasks,
            CtSource::new,
            |s| ct_wait_owned(s.token()),
            |s| {
                cancel_cancellation_token(&s);
                s
            },
        ),
        "atomic-bool+event-listener" => fanout(
            n,
            rounds,
            tasks,
            Flag::new,
            |f| f.listen().expect("not cancelled"),
            |f| {
                cancel_atomic_bool_event_listener(&f);
                f
            },
        ),
        "stop-token" => fanout(
            n,
            rounds,
            tasks,
            StopSource::new,
            |s| s.token(),
            cancel_stop_token,
        ),
        "triggered" => fanout(
            n,
            rounds,
            tasks,
            triggered::trigger,
            |(_, l)| l.clone(),
            |s| {
                cancel_triggered(&s.0);
                s
            },
        ),
        "async-shutdown" => fanout(
            n,
            rounds,
            tasks,
            ShutdownManager::<()>::new,
            |m| m.wait_shutdown_triggered(),
            |m| {
                cancel_async_shutdown(&m);
                m
            },
        ),
        "stream-cancel" => fanout(
            n,
            rounds,
            tasks,
            stream_cancel::Tripwire::new,
            |(_, w)| w.clone(),
            |(t, w)| {
                cancel_stream_cancel(t);
                w
            },
        ),
        "futures-abort" if n == 1 => fanout(
            n,
            rounds,
            tasks,
            || {
                let (h, r) = AbortHandle::new_pair();
                (h, Cell::new(Some(r)))
            },
            |(_, r): &(AbortHandle, Cell<Option<AbortRegistration>>)| {
                Abortable::new(std::future::pending::<()>(), r.take().expect("one waiter"))
            },
            |s| {
                cancel_futures_abort(&s.0);
                s
            },
        ),
        _ => return false,
    }
    true
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (op, imp, count) = match args.as_slice() {
        [op, imp, count] if !op.starts_with('-') => match count.parse::<u64>() {
            Ok(count) => (op.as_str(), imp.as_str(), count),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    if !run(op, imp, count) {
        eprintln!("instructions: unknown op/impl {op} {imp}");
        std::process::exit(2);
    }
}

fn run(op: &str, imp: &str, count: u64) -> bool {
    match (op, imp) {
        // ---- is_cancelled
        ("is_cancelled", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(black_box(&t).is_cancelled());
            }
        }
        // The same loop over an in-place token (issue 15: the same
        // instructions as the heap token's).
        ("is_cancelled", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(black_box(&t).is_cancelled());
            }
        }
        ("is_cancelled", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                black_box(black_box(&t).is_cancelled());
            }
        }
        ("is_cancelled", "atomic-bool+event-listener") => {
            let flag = AtomicBool::new(false);
            for _ in 0..count {
                black_box(black_box(&flag).load(Ordering::Acquire));
            }
        }
        ("is_cancelled", "arc-atomic-bool") => {
            let flag: ArcFlag = Arc::new(AtomicBool::new(false));
            for _ in 0..count {
                black_box(black_box(&flag).load(Ordering::Acquire));
            }
        }
        ("is_cancelled", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(black_box(&t).is_canceled());
            }
        }
        ("is_cancelled", "triggered") => {
            let (_t, l) = triggered::trigger();
            for _ in 0..count {
                black_box(black_box(&l).is_triggered());
            }
        }
        ("is_cancelled", "async-shutdown") => {
            let m = ShutdownManager::<()>::new();
            for _ in 0..count {
                black_box(black_box(&m).is_shutdown_triggered());
            }
        }
        ("is_cancelled", "futures-abort") => {
            let (h, _r) = AbortHandle::new_pair();
            for _ in 0..count {
                black_box(black_box(&h).is_aborted());
            }
        }
        // ---- token clone + drop
        ("token_clone_drop", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(black_box(&t).clone()));
            }
        }
        // `InplaceToken` is `Copy` (its clone is a copy, its drop nothing):
        // what is left is the loop.
        ("token_clone_drop", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            for _ in 0..count {
                black_box(*black_box(&t));
            }
        }
        ("token_clone_drop", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                drop(black_box(black_box(&t).clone()));
            }
        }
        ("token_clone_drop", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(black_box(&t).clone()));
            }
        }
        ("token_clone_drop", "stop-token") => {
            let s = StopSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(black_box(&t).clone()));
            }
        }
        ("token_clone_drop", "triggered") => {
            let (_t, l) = triggered::trigger();
            for _ in 0..count {
                drop(black_box(black_box(&l).clone()));
            }
        }
        ("token_clone_drop", "async-shutdown") => {
            let m = ShutdownManager::<()>::new();
            for _ in 0..count {
                drop(black_box(black_box(&m).clone()));
            }
        }
        ("token_clone_drop", "futures-abort") => {
            let (h, _r) = AbortHandle::new_pair();
            for _ in 0..count {
                drop(black_box(black_box(&h).clone()));
            }
        }
        ("token_clone_drop", "stream-cancel") => {
            let (_t, w) = stream_cancel::Tripwire::new();
            for _ in 0..count {
                drop(black_box(black_box(&w).clone()));
            }
        }
        ("token_clone_drop", "arc-atomic-bool") => {
            let flag: ArcFlag = Arc::new(AtomicBool::new(false));
            for _ in 0..count {
                drop(black_box(black_box(&flag).clone()));
            }
        }
        ("token_clone_drop", "atomic-bool+event-listener") => {
            let flag = Arc::new(Flag::new());
            for _ in 0..count {
                drop(black_box(black_box(&flag).clone()));
            }
        }
        // ---- work enter + leave (shutdown scopes)
        ("work_enter_leave", "cancel-core") => {
            let scope = cancel_core::Shutdown::new();
            for _ in 0..count {
                drop(black_box(black_box(&scope).enter()));
            }
        }
        ("work_enter_leave", "tokio-util") => {
            let tracker = tokio_util::task::TaskTracker::new();
            for _ in 0..count {
                drop(black_box(black_box(&tracker).token()));
            }
        }
        ("work_enter_leave", "async-shutdown") => {
            let m = ShutdownManager::<()>::new();
            for _ in 0..count {
                drop(black_box(black_box(&m).delay_shutdown_token()));
            }
        }
        ("work_enter_leave", "arc-clone-drop") => {
            let arc = Arc::new(0u64);
            for _ in 0..count {
                drop(black_box(black_box(&arc).clone()));
            }
        }
        // ---- child create + drop (live parent)
        ("child_new_drop", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(black_box(&t).child()));
            }
        }
        ("child_new_drop", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                drop(black_box(black_box(&t).child_token()));
            }
        }
        ("child_new_drop", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                drop(black_box(CtSource::with_parent(black_box(&t))));
            }
        }
        // ---- callback register + unregister
        ("register_unregister", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                let r = black_box(&t).register(|| {});
                drop(black_box(r));
            }
        }
        ("register_unregister", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                let r = black_box(&t).register(CancelCallback::FnOnce(Box::new(|| {})));
                drop(black_box(r));
            }
        }
        ("register_unregister_capture8", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                let x = black_box(7u64);
                let r = black_box(&t).register(move || {
                    black_box(x);
                });
                drop(black_box(r));
            }
        }
        ("register_unregister_capture8", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                let x = black_box(7u64);
                let r = black_box(&t).register(CancelCallback::FnOnce(Box::new(move || {
                    black_box(x);
                })));
                drop(black_box(r));
            }
        }
        // ---- pinned callback register + unregister (its drop), no
        // allocation; on a heap token the registration owns a clone of it.
        ("pinned_register_unregister", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                let mut r = pin!(PinnedRegistration::new(black_box(&t).clone(), || {}));
                black_box(r.as_mut().register());
            }
        }
        ("pinned_register_unregister", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            for _ in 0..count {
                let mut r = pin!(PinnedRegistration::new(*black_box(&t), || {}));
                black_box(r.as_mut().register());
            }
        }
        // ---- `cancelled()`-style future: create + first poll + drop
        ("cancelled_future_poll_drop", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).cancelled());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).cancelled());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "tokio-util") => {
            let t = TokioToken::new();
            for _ in 0..count {
                let f = pin!(black_box(&t).cancelled());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "cancellation-token") => {
            let s = CtSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).wait());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "atomic-bool+event-listener") => {
            let flag = Flag::new();
            for _ in 0..count {
                let ready = match black_box(&flag).listen() {
                    Some(mut l) => poll_once(Pin::new(&mut l)),
                    None => true,
                };
                black_box(ready);
            }
        }
        ("cancelled_future_poll_drop", "stop-token") => {
            // The token is the future: a clone of it, polled.
            let s = StopSource::new();
            let t = s.token();
            for _ in 0..count {
                let f = pin!(black_box(&t).clone());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "triggered") => {
            // The listener is the future: a clone of it, polled.
            let (_t, l) = triggered::trigger();
            for _ in 0..count {
                let f = pin!(black_box(&l).clone());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "async-shutdown") => {
            let m = ShutdownManager::<()>::new();
            for _ in 0..count {
                let f = pin!(black_box(&m).wait_shutdown_triggered());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "stream-cancel") => {
            // The tripwire is the future: a clone of it, polled.
            let (_t, w) = stream_cancel::Tripwire::new();
            for _ in 0..count {
                let f = pin!(black_box(&w).clone());
                black_box(poll_once(f));
            }
        }
        ("cancelled_future_poll_drop", "futures-abort") => {
            // One waiter per handle pair: the pair is made per future (its
            // shared state included), the handle kept alive until the drop.
            for _ in 0..count {
                let (h, r) = AbortHandle::new_pair();
                let f = pin!(Abortable::new(std::future::pending::<()>(), black_box(r)));
                black_box(poll_once(f));
                drop(black_box(h));
            }
        }
        // ---- cancel rows (rounds; bench.sh reads the `cancel_<impl>` symbols)
        // cancel-core's no-op-waker rounds keep the driver the history rows
        // were measured with (`rounds_pending_ours`), verbatim.
        ("cancel_pending_1", "cancel-core") => rounds_pending_ours(1, count),
        ("cancel_pending_1000", "cancel-core") => rounds_pending_ours(1000, count),
        ("cancel_pending_1", "cancel-core-inplace") => rounds_pending_inplace(count),
        ("cancel_pending_1", _) => return fanout_impl(imp, 1, count, false),
        ("cancel_pending_1000", _) => return fanout_impl(imp, 1000, count, false),
        ("cancel_pending_tasks_1000", _) => return fanout_impl(imp, 1000, count, true),
        ("cancel_children_10000", "cancel-core") => {
            for _ in 0..count {
                let parent = CancellationSource::new();
                let token = parent.token();
                let children: Vec<_> = (0..10_000).map(|_| token.child()).collect();
                cancel_cancel_core(&parent);
                drop(children);
            }
        }
        ("cancel_children_10000", "tokio-util") => {
            for _ in 0..count {
                let parent = TokioToken::new();
                let children: Vec<_> = (0..10_000).map(|_| parent.child_token()).collect();
                cancel_tokio_util(&parent);
                drop(children);
            }
        }
        ("cancel_children_10000", "cancellation-token") => {
            for _ in 0..count {
                let parent = CtSource::new();
                let token = parent.token();
                let children: Vec<_> = (0..10_000).map(|_| CtSource::with_parent(&token)).collect();
                cancel_cancellation_token(&parent);
                drop(children);
            }
        }
        ("cancel_chain_100000", "cancel-core") => {
            for _ in 0..count {
                let mut chain = Vec::with_capacity(100_000);
                chain.push(CancellationSource::new());
                for i in 1..100_000 {
                    let child = chain[i - 1].token().child();
                    chain.push(child);
                }
                cancel_cancel_core(&chain[0]);
                assert!(chain[100_000 - 1].is_cancelled());
                drop(chain);
            }
        }
        ("cancel_chain_100000", "tokio-util") => {
            for _ in 0..count {
                let mut chain = Vec::with_capacity(100_000);
                chain.push(TokioToken::new());
                for i in 1..100_000 {
                    let child = chain[i - 1].child_token();
                    chain.push(child);
                }
                cancel_tokio_util(&chain[0]);
                assert!(chain[100_000 - 1].is_cancelled());
                drop(chain);
            }
        }
        // ---- issue 15: the generic rows (bench.sh collects in `generic_*`)
        ("generic_check", "baseline") | ("generic_guarded", "baseline") => {
            calls_of(count, generic_sum_baseline)
        }
        ("generic_check", "never-token") => {
            calls_of(count, |xs| generic_sum_checked(black_box(&NeverToken), xs))
        }
        ("generic_check", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            calls_of(count, |xs| generic_sum_checked(black_box(&t), xs))
        }
        ("generic_check", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            calls_of(count, |xs| generic_sum_checked(black_box(&t), xs))
        }
        ("generic_guarded", "never-token") => {
            calls_of(count, |xs| generic_sum_guarded(black_box(&NeverToken), xs))
        }
        ("generic_guarded", "cancel-core") => {
            let s = CancellationSource::new();
            let t = s.token();
            calls_of(count, |xs| generic_sum_guarded(black_box(&t), xs))
        }
        ("generic_guarded", "cancel-core-inplace") => {
            let s = InplaceSource::new();
            let t = s.token();
            calls_of(count, |xs| generic_sum_guarded(black_box(&t), xs))
        }
        _ => return false,
    }
    true
}

/// `rounds` times: a source with `n` pending (polled) futures, cancelled
/// (the driver of the "/ round" history rows; only the cancel is wrapped).
fn rounds_pending_ours(n: usize, rounds: u64) {
    for _ in 0..rounds {
        let source = CancellationSource::new();
        let futures: Vec<_> = (0..n)
            .map(|_| {
                let mut f = Box::pin(source.token().cancelled_owned());
                assert!(!poll_once(f.as_mut()));
                f
            })
            .collect();
        cancel_cancel_core(&source);
        drop(futures);
    }
}

/// `rounds` times: an in-place source on the stack with one pending
/// (polled) future pinned beside it, cancelled: the round of
/// `rounds_pending_ours(1, ..)` with nothing on the heap.
fn rounds_pending_inplace(rounds: u64) {
    for _ in 0..rounds {
        let source = InplaceSource::new();
        let mut f = pin!(source.token().cancelled());
        assert!(!poll_once(f.as_mut()));
        cancel_cancel_core_inplace(&source);
    }
}

fn usage() {
    println!(
        "instructions: a driver for callgrind (scripts/bench.sh); \
         usage: instructions <op> <impl> <count>"
    );
}
