//! A deliberately simple reference model of cancel-core's public semantics,
//! and an interpreter that decodes bytes into operations, runs them on both
//! the crate and the model, and compares every observable result.
//!
//! Shared by the stable tests (`tests/model_replay.rs`) and the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, through `#[path]`).
//!
//! What the model covers besides sources, tokens, links, callbacks and
//! futures:
//! - **Timers as cancellers.** An armed timeout counts like a live source
//!   handle in `can_be_cancelled` (so a token whose handles are gone keeps
//!   its observers while its timer is armed), on two clock slots whose
//!   handles are cloned and dropped; the last handle's drop stops the clock
//!   (its timers are disarmed, nothing is armed on it again). A due `advance`
//!   claims every due source (in deadline order), then drains each. A
//!   timeout armed with a cause (`cancel_after_with`, on a clock's timer or
//!   a source) expires with that cause as its reason; every arming replaces
//!   the cause (a plain one: `TimedOut`). `disarm` stops an armed timeout
//!   (answering whether one was armed), `try_reset` too (answering whether
//!   the source is uncancelled).
//! - **Origins.** Each state records where its cancellation came from: its
//!   own `cancel*` call, its own timeout (fired, or armed already due), or
//!   a parent (through a link's drain, or cancelled when the child was
//!   made).
//! - **Panics.** Callbacks that panic when run, closures whose capture
//!   panics when dropped (run, unregistered, dropped, refused by a token that
//!   can never be cancelled), and wakers whose `wake` panics. The model knows
//!   the execution order of every observer, so it predicts the exact payload
//!   that `cancel()` / `advance()` / `register()` / `unregister()` resume.
//! - **Shutdown scopes.** A scope is two states (`signal`, cancelled by
//!   `shutdown`; `done`, cancelled at completion) plus a count of work in
//!   flight, handles, and a hook on `signal` (a callback listed first in its
//!   list, so it runs last) that begins the scope's shutdown (sets it
//!   closed: `enter` and `child` refused) when the signal comes, from
//!   `shutdown` or a parent's. `close` begins it without the signal. A
//!   nested scope holds one unit of its parent's work until it completes; a
//!   scope with no handle left completes (without cancelling its token) when
//!   its last guard leaves. `finished()` futures are futures on `done`;
//!   scope and guard tokens fill token slots. Guards are plain, `track`ed
//!   futures' or `shutdown_on_panic`; dropped during an unwind, the last
//!   kind shuts its scope down (the panics of that drain are caught by the
//!   guard: only the unwind's own payload comes out).
//!
//! Checked after every operation: the callbacks that ran (and in what
//! order), every closure's drop count (once, and exactly when the model
//! says: unrun closures of registrations that can never run are dropped at
//! once), every future's wake count and stored-waker count (a future polled
//! while its token cannot be cancelled stores no waker), the armed count of
//! each live clock, and `is_cancelled` / `can_be_cancelled` / `reason` /
//! `origin` of every live token (and `reason` / `origin` through a source
//! handle of each state cancelled by the operation or whose source it
//! used); of every scope handle `is_shutting_down`, `is_finished`,
//! `in_flight` and whether `enter` is refused, and of every guard
//! `is_cancelled`. At the end: nothing alive in the model (every scope
//! freed), nothing left allocated.

#![allow(dead_code)]

use std::any::Any;
use std::cell::Cell;
use std::collections::HashSet;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, Once};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use cancel_core::{
    CancelOrigin, CancelReason, CancellationSource, CancellationToken, ManualClock, Registration,
    Shutdown, ShutdownOnPanic, Tracked, WorkGuard, WorkPanicked,
};

// ------------------------------------------------------------ allocations

#[path = "../common/counting.rs"]
mod counting;
pub use counting::Counting;

pub fn live_allocations() -> isize {
    counting::live()
}

// ------------------------------------------------------------------ trace

/// When set, `run` prints each decoded operation to stderr (for reading a
/// finding: see `replay_one` in tests/model_replay.rs). Off in every
/// counted run: printing allocates.
pub static TRACE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

macro_rules! trace {
    ($($arg:tt)*) => {
        if TRACE.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*);
        }
    };
}

// ----------------------------------------------------------------- panics

/// Every panic the interpreter provokes starts with this; the panic hook
/// keeps quiet about them (the default hook's output would be captured by
/// the test harness, whose buffer would count as live allocations; under
/// libFuzzer the hook it installed would abort).
const DELIBERATE: &str = "deliberate: ";

/// Installs the quiet hook (once per process) and makes this thread's first
/// panic (once per thread), which sets up state the runtime keeps for the
/// thread, before allocations are counted.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !message(info.payload()).starts_with(DELIBERATE) {
                previous(info);
            }
        }));
    });
    thread_local! {
        static WARM: Cell<bool> = const { Cell::new(false) };
    }
    if !WARM.get() {
        WARM.set(true);
        let _ = catch_unwind(|| panic!("deliberate: warm-up"));
    }
}

/// A panic payload's message (without allocating: the hook calls it).
fn message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else {
        "<non-string payload>"
    }
}

/// Compares the outcome of an operation that may panic with the model's
/// expectation (the message of the first panic, in execution order).
fn expect<T>(result: std::thread::Result<T>, want: Option<String>, what: &str) -> Option<T> {
    match (result, want) {
        (Ok(v), None) => Some(v),
        (Err(p), Some(w)) => {
            assert_eq!(message(&*p), w, "{what}: the panic resumed");
            None
        }
        (Ok(_), Some(w)) => panic!("{what}: expected the panic {w:?}, it returned"),
        (Err(p), None) => panic!("{what}: unexpected panic {:?}", message(&*p)),
    }
}

// ------------------------------------------------------------------ model

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum R {
    Requested,
    TimedOut,
    Custom(u8),
    /// A `shutdown_on_panic` guard dropped by a panic.
    WorkPanicked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obs {
    Callback(usize),
    Waiter(usize),
    Link(usize),
    /// A scope's hook on its own signal: begins its shutdown.
    Scope(usize),
}

#[derive(Debug)]
struct MState {
    alive: bool,
    reason: Option<R>,
    /// Where the cancellation came from (set with `reason`): the state's
    /// own `cancel*` call, its own timeout (fired, or armed already due),
    /// or a parent's drain (or a parent cancelled at birth).
    origin: Option<CancelOrigin>,
    sources: usize,
    refs: usize,
    /// Every parent this state holds a link reference to.
    parents: Vec<usize>,
    /// Observers in push order; cancellation pops from the back (LIFO).
    list: Vec<Obs>,
    /// The armed timeout: (clock, deadline on that clock).
    deadline: Option<(usize, u64)>,
    /// The armed timeout's cause (its reason on expiry: `Custom`), `None`
    /// for `TimedOut`; set by every arming, meaningful while `deadline` is.
    timer_cause: Option<u8>,
    /// The clock of the source's timer node, if it ever got one (where
    /// `CancellationSource::cancel_after` re-arms).
    timer_clock: Option<usize>,
    /// Check the reason and origin through a source handle after this
    /// operation: it was cancelled, or an operation acted on a source of it.
    recheck: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MRegState {
    Pending(usize),
    /// Ran, holding a reference to its state (a registration keeps one,
    /// for `Registration::token`, until it is dropped).
    Ran(Option<usize>),
    Removed,
    /// Refused (the token could never be cancelled), holding a reference
    /// like `Ran`.
    Inert(Option<usize>),
}

/// What a registered closure does besides logging its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    /// Its body panics.
    PanicRun,
    /// A capture's `Drop` panics (when run, unregistered or dropped unrun).
    PanicDrop,
}

#[derive(Debug)]
struct MReg {
    state: MRegState,
    kind: Kind,
    /// The closure was dropped (run or not).
    dropped: bool,
}

#[derive(Debug)]
struct MFut {
    state: Option<usize>,
    /// The first poll that found the token cancellable linked the node.
    attached: bool,
    /// Which of its two wakers is stored in the (listed) node.
    stored: Option<usize>,
    wakes: [usize; 2],
    panics: [bool; 2],
}

#[derive(Debug)]
struct MClock {
    handles: usize,
    now: u64,
}

/// A shutdown scope (`raw/tracker.rs`), at operation boundaries: nothing
/// runs between its steps, so "a completer is running" never shows.
#[derive(Debug)]
struct MScope {
    handles: usize,
    /// Shutdown (or `close`) began: `enter` and `child` refused.
    shutdown: bool,
    /// No handle left: nothing can enter any more.
    orphaned: bool,
    /// `done` cancelled (the completer ran).
    completed: bool,
    /// The tracker's memory is gone (its hook, its two source counts).
    freed: bool,
    /// Guards alive plus nested scopes not completed (`in_flight`).
    guards: usize,
    /// The state of the scope's token.
    signal: usize,
    /// The state `finished()` waits on.
    done: usize,
    /// The scope whose unit of work this one holds until it completes.
    parent: Option<usize>,
    /// The hook is in `signal`'s list (not run, not detached).
    hook_listed: bool,
}

/// The reference: plain collections, recursion, no concurrency.
#[derive(Default)]
pub struct Model {
    states: Vec<MState>,
    regs: Vec<MReg>,
    futs: Vec<MFut>,
    clocks: Vec<MClock>,
    scopes: Vec<MScope>,
    log: Vec<usize>,
    /// The first panic of the current operation, in execution order.
    panic: Option<String>,
}

impl Model {
    fn note_panic(&mut self, msg: impl FnOnce() -> String) {
        if self.panic.is_none() {
            self.panic = Some(msg());
        }
    }

    fn new_state(&mut self, parents: Vec<usize>, reason: Option<R>) -> usize {
        let id = self.states.len();
        for &p in &parents {
            self.states[p].list.push(Obs::Link(id));
            self.states[p].refs += 1;
        }
        self.states.push(MState {
            alive: true,
            // A state born cancelled is a child of a cancelled parent.
            origin: reason.as_ref().map(|_| CancelOrigin::Parent),
            reason,
            sources: 1,
            refs: 1,
            parents,
            list: Vec::new(),
            deadline: None,
            timer_cause: None,
            timer_clock: None,
            recheck: true,
        });
        id
    }

    fn new_linked(&mut self, parents: &[Option<usize>]) -> usize {
        let mut ps = Vec::new();
        for p in parents.iter().flatten() {
            if !ps.contains(p) {
                ps.push(*p);
            }
        }
        if let Some(r) = ps.iter().find_map(|&p| self.states[p].reason.clone()) {
            return self.new_state(Vec::new(), Some(r));
        }
        self.new_state(ps, None)
    }

    fn release(&mut self, s: usize) {
        self.states[s].refs -= 1;
        if self.states[s].refs > 0 {
            return;
        }
        let st = &mut self.states[s];
        st.alive = false;
        // A freed state's timer is disarmed: nothing can observe it.
        st.deadline = None;
        debug_assert!(st.list.is_empty(), "a dead state has no observers");
        for p in std::mem::take(&mut st.parents) {
            self.states[p].list.retain(|o| *o != Obs::Link(s));
            self.release(p);
        }
    }

    /// The crate's answer, conservative by design: the walk up the links
    /// follows the last parent in a loop and recurses into the others, and
    /// after `FORK_BUDGET` such branchings it answers "yes" (bounded work on
    /// any DAG; a DAG of diamonds has exponentially many paths). The same
    /// walk, in the same order, so that a wide DAG is judged alike. An
    /// armed timer is a canceller like a source handle.
    fn can_be_cancelled(&self, s: usize) -> bool {
        const FORK_BUDGET: u32 = 64;
        let mut budget = FORK_BUDGET;
        self.walk_can_be_cancelled(s, &mut budget)
    }

    fn walk_can_be_cancelled(&self, mut s: usize, budget: &mut u32) -> bool {
        loop {
            let st = &self.states[s];
            if st.reason.is_some() || st.sources > 0 || st.deadline.is_some() {
                return true;
            }
            let mut next = None;
            for &p in &st.parents {
                if let Some(other) = next.replace(p) {
                    if *budget == 0 {
                        return true;
                    }
                    *budget -= 1;
                    if self.walk_can_be_cancelled(other, budget) {
                        return true;
                    }
                }
            }
            match next {
                Some(p) => s = p,
                None => return false,
            }
        }
    }

    /// Sets the reason and origin; the state needs nothing more from its
    /// parents (its links leave their lists) nor from its timer.
    fn claim(&mut self, s: usize, r: &R, origin: CancelOrigin) {
        self.states[s].reason = Some(r.clone());
        self.states[s].origin = Some(origin);
        self.states[s].recheck = true;
        self.states[s].deadline = None;
        for p in self.states[s].parents.clone() {
            self.states[p].list.retain(|o| *o != Obs::Link(s));
        }
    }

    /// Runs every observer of `s` and of its linked descendants, depth first,
    /// each list LIFO; notes the first panic.
    fn drain(&mut self, s: usize, r: &R) {
        while let Some(obs) = self.states[s].list.pop() {
            match obs {
                Obs::Callback(id) => {
                    self.log.push(id);
                    let reg = &mut self.regs[id];
                    reg.state = MRegState::Ran(Some(s));
                    reg.dropped = true;
                    match reg.kind {
                        Kind::Plain => {}
                        Kind::PanicRun => self.note_panic(|| format!("deliberate: run {id}")),
                        Kind::PanicDrop => self.note_panic(|| format!("deliberate: drop {id}")),
                    }
                }
                Obs::Waiter(f) => {
                    let fut = &mut self.futs[f];
                    let w = fut.stored.take().expect("a listed future stores a waker");
                    fut.wakes[w] += 1;
                    if fut.panics[w] {
                        self.note_panic(|| format!("deliberate: wake {f}.{w}"));
                    }
                }
                Obs::Link(c) => {
                    if self.states[c].reason.is_none() {
                        self.claim(c, r, CancelOrigin::Parent);
                        self.drain(c, r);
                    }
                }
                Obs::Scope(sc) => {
                    self.scopes[sc].hook_listed = false;
                    self.scope_begin(sc);
                }
            }
        }
    }

    /// A cancellation of `s` itself: a `cancel*` call (`Cancel`) or its
    /// timeout (`Timeout`). False if it was cancelled already.
    fn cancel(&mut self, s: usize, r: R, origin: CancelOrigin) -> bool {
        self.states[s].recheck = true;
        if self.states[s].reason.is_some() {
            return false;
        }
        self.claim(s, &r, origin);
        self.drain(s, &r);
        true
    }

    fn register(&mut self, s: Option<usize>, kind: Kind) -> usize {
        let id = self.regs.len();
        let cancelled = s.is_some_and(|s| self.states[s].reason.is_some());
        let cancellable = s.is_some_and(|s| self.can_be_cancelled(s));
        // A registration keeps a reference to its state whether its closure
        // ran, was refused or is listed; none is made if the closure's panic
        // unwinds out of `register`.
        let quiet = self.panic.is_none();
        let state = if cancelled {
            // Run inline: its panic (body or capture drop) reaches the caller.
            self.log.push(id);
            match kind {
                Kind::Plain => {}
                Kind::PanicRun => self.note_panic(|| format!("deliberate: run {id}")),
                Kind::PanicDrop => self.note_panic(|| format!("deliberate: drop {id}")),
            }
            MRegState::Ran(s)
        } else if !cancellable {
            // Dropped unrun at once.
            if kind == Kind::PanicDrop {
                self.note_panic(|| format!("deliberate: drop {id}"));
            }
            MRegState::Inert(s)
        } else {
            let s = s.unwrap();
            self.states[s].list.push(Obs::Callback(id));
            MRegState::Pending(s)
        };
        let state = match state {
            _ if quiet && self.panic.is_some() => MRegState::Removed,
            state => {
                if let Some(s) = s {
                    self.states[s].refs += 1;
                }
                state
            }
        };
        self.regs.push(MReg {
            state,
            kind,
            dropped: !matches!(state, MRegState::Pending(_)),
        });
        id
    }

    /// `unregister` (or drop, which answers the same but discards it).
    fn unregister(&mut self, id: usize) -> bool {
        let (removed, held) = match self.regs[id].state {
            MRegState::Pending(s) => {
                self.states[s].list.retain(|o| *o != Obs::Callback(id));
                self.regs[id].dropped = true;
                if self.regs[id].kind == Kind::PanicDrop {
                    self.note_panic(|| format!("deliberate: drop {id}"));
                }
                (true, Some(s))
            }
            MRegState::Ran(held) | MRegState::Inert(held) => (false, held),
            MRegState::Removed => (false, None),
        };
        self.regs[id].state = MRegState::Removed;
        if let Some(s) = held {
            self.release(s);
        }
        removed
    }

    fn new_fut(&mut self, s: Option<usize>, panics: [bool; 2]) -> usize {
        if let Some(s) = s {
            self.states[s].refs += 1;
        }
        self.futs.push(MFut {
            state: s,
            attached: false,
            stored: None,
            wakes: [0; 2],
            panics,
        });
        self.futs.len() - 1
    }

    /// A poll with waker `w`: ready or not.
    fn poll(&mut self, f: usize, w: usize) -> bool {
        let Some(s) = self.futs[f].state else {
            return false;
        };
        if self.states[s].reason.is_some() {
            return true;
        }
        if self.futs[f].attached {
            // A re-poll: a different waker is swapped in.
            self.futs[f].stored = Some(w);
        } else if self.can_be_cancelled(s) {
            self.futs[f].attached = true;
            self.futs[f].stored = Some(w);
            self.states[s].list.push(Obs::Waiter(f));
        }
        false
    }

    fn drop_fut(&mut self, f: usize) {
        if let Some(s) = self.futs[f].state {
            if self.futs[f].stored.take().is_some() {
                self.states[s].list.retain(|o| *o != Obs::Waiter(f));
            }
            self.release(s);
        }
    }

    fn new_clock(&mut self) -> usize {
        self.clocks.push(MClock { handles: 1, now: 0 });
        self.clocks.len() - 1
    }

    fn drop_clock_handle(&mut self, c: usize) {
        self.clocks[c].handles -= 1;
        if self.clocks[c].handles == 0 {
            // Stopped: nobody can advance it; its timers are disarmed.
            for st in &mut self.states {
                if st.deadline.is_some_and(|(dc, _)| dc == c) {
                    st.deadline = None;
                }
            }
        }
    }

    /// Every source due on clock `c` is cancelled, one at a time in deadline
    /// order, each fully drained before the next is taken.
    fn advance(&mut self, c: usize, by: u64) {
        self.clocks[c].now += by;
        let now = self.clocks[c].now;
        // One due source at a time, in deadline order, each drained before
        // the next is looked at (a drain may cancel a later one through its
        // links).
        loop {
            let next = (0..self.states.len())
                .filter_map(|s| {
                    let st = &self.states[s];
                    match st.deadline {
                        Some((dc, d)) if st.alive && dc == c && d <= now => Some((d, s)),
                        _ => None,
                    }
                })
                .min();
            let Some((_, s)) = next else {
                return;
            };
            self.states[s].deadline = None;
            let r = self.states[s].timer_cause.map_or(R::TimedOut, R::Custom);
            self.cancel(s, r, CancelOrigin::Timeout);
        }
    }

    /// `clock.cancel_after(source, d)` (`cause` `None`), or
    /// `clock.timer().cancel_after_with(source, d, Code(cause))`; `d ==
    /// u64::MAX` is `Duration::MAX`. An arming replaces the cause too.
    fn clock_cancel_after(&mut self, c: usize, s: usize, d: u64, cause: Option<u8>) {
        self.states[s].recheck = true;
        if self.states[s].reason.is_some() {
            return;
        }
        if d == 0 {
            // Armed with a deadline already reached: the timeout expires.
            self.cancel(
                s,
                cause.map_or(R::TimedOut, R::Custom),
                CancelOrigin::Timeout,
            );
        } else if d == u64::MAX {
            // Disarms its timer, on whichever clock; the node stays.
            self.states[s].deadline = None;
        } else {
            self.states[s].deadline = Some((c, self.clocks[c].now + d));
            self.states[s].timer_cause = cause;
            self.states[s].timer_clock = Some(c);
        }
    }

    /// `source.cancel_after(d)` (`cause` `None`) or
    /// `source.cancel_after_with(d, Code(cause))`, for a source whose timer
    /// node is on a live manual clock (or that is cancelled).
    fn source_cancel_after(&mut self, s: usize, d: u64, cause: Option<u8>) {
        self.states[s].recheck = true;
        if self.states[s].reason.is_some() {
            return;
        }
        let c = self.states[s]
            .timer_clock
            .expect("a timer on a manual clock");
        if d == 0 {
            self.cancel(
                s,
                cause.map_or(R::TimedOut, R::Custom),
                CancelOrigin::Timeout,
            );
        } else if d == u64::MAX {
            self.states[s].deadline = None;
        } else {
            debug_assert!(self.clocks[c].handles > 0, "not used on a stopped clock");
            self.states[s].deadline = Some((c, self.clocks[c].now + d));
            self.states[s].timer_cause = cause;
        }
    }

    /// `source.disarm()`: whether a timeout was armed (none is, once
    /// cancelled or once its clock stopped); the timer node stays.
    fn disarm(&mut self, s: usize) -> bool {
        self.states[s].recheck = true;
        self.states[s].deadline.take().is_some()
    }

    /// `source.try_reset()`: disarms; true if not cancelled.
    fn try_reset(&mut self, s: usize) -> bool {
        self.disarm(s);
        self.states[s].reason.is_none()
    }

    fn has_deadline(&self, s: usize) -> bool {
        let mut seen = HashSet::new();
        let mut todo = vec![s];
        while let Some(s) = todo.pop() {
            if !seen.insert(s) {
                continue;
            }
            if self.states[s].deadline.is_some() {
                return true;
            }
            todo.extend(self.states[s].parents.iter().copied());
        }
        false
    }

    /// `Shutdown::new()`, or `parent.child()`: `None` if the parent's
    /// shutdown has begun. The nested scope takes a unit of the parent's
    /// work first, then links its signal to the parent's.
    fn new_scope(&mut self, parent: Option<usize>) -> Option<usize> {
        let signal = match parent {
            Some(p) => {
                if self.scopes[p].shutdown {
                    return None;
                }
                self.scopes[p].guards += 1;
                let ps = self.scopes[p].signal;
                self.new_linked(&[Some(ps)])
            }
            None => self.new_state(Vec::new(), None),
        };
        let done = self.new_state(Vec::new(), None);
        let sc = self.scopes.len();
        self.scopes.push(MScope {
            handles: 1,
            shutdown: false,
            orphaned: false,
            completed: false,
            freed: false,
            guards: 0,
            signal,
            done,
            parent,
            hook_listed: false,
        });
        // The hook's registration holds a reference to the signal. A
        // signal can always be cancelled (the scope holds a source count);
        // a cancelled one runs the hook at once.
        self.states[signal].refs += 1;
        if self.states[signal].reason.is_some() {
            self.scope_begin(sc);
        } else {
            self.states[signal].list.push(Obs::Scope(sc));
            self.scopes[sc].hook_listed = true;
        }
        Some(sc)
    }

    /// Sets SHUTDOWN; completes an open scope with nothing in flight. True
    /// if it was not set.
    fn scope_begin(&mut self, sc: usize) -> bool {
        let st = &mut self.scopes[sc];
        if st.shutdown {
            return false;
        }
        st.shutdown = true;
        // With no handle it was closed already: completed by whoever closed
        // it, or to be completed by its last guard.
        if st.guards == 0 && !st.orphaned {
            self.scope_complete(sc);
        }
        true
    }

    /// `shutdown()` / `shutdown_with()` (and a `shutdown_on_panic` guard
    /// dropped by a panic): cancels the signal, whose drain runs the hook
    /// last (it begins the shutdown, and may complete the scope), then
    /// begins it (already begun, between operations). True if this call
    /// cancelled the signal.
    fn scope_shutdown(&mut self, sc: usize, r: R) -> bool {
        let quiet = self.panic.is_none();
        let signal = self.scopes[sc].signal;
        let cancelled = self.cancel(signal, r, CancelOrigin::Cancel);
        // A panic of the drain is resumed before the second step.
        if quiet && self.panic.is_some() {
            debug_assert!(self.scopes[sc].shutdown, "the hook ran in the drain");
            return cancelled;
        }
        let began = self.scope_begin(sc);
        debug_assert!(!began, "the hook ran in the drain, or a parent's");
        cancelled
    }

    /// `enter()`: refused once shutdown began.
    fn scope_enter(&mut self, sc: usize) -> bool {
        let st = &mut self.scopes[sc];
        debug_assert!(!st.orphaned && !st.freed, "entered through a handle");
        if st.shutdown {
            return false;
        }
        st.guards += 1;
        true
    }

    /// A guard's drop (or a nested scope's completion): the leave that
    /// closes the scope with nothing in flight completes it.
    fn scope_leave(&mut self, sc: usize) {
        let st = &mut self.scopes[sc];
        st.guards -= 1;
        if st.guards == 0 && (st.shutdown || st.orphaned) {
            self.scope_complete(sc);
        }
    }

    fn scope_drop_handle(&mut self, sc: usize) {
        let st = &mut self.scopes[sc];
        st.handles -= 1;
        if st.handles > 0 {
            return;
        }
        st.orphaned = true;
        if st.guards != 0 {
            return; // the last guard's leave completes and frees
        }
        if !st.shutdown {
            // This drop closed the scope with nothing in flight.
            self.scope_complete(sc);
        } else {
            debug_assert!(st.completed, "no completer runs between operations");
            self.scope_free(sc);
        }
    }

    /// The completer: frees the memory if no handle is left, cancels
    /// `done` (its waiters are woken), then leaves the parent.
    fn scope_complete(&mut self, sc: usize) {
        let st = &mut self.scopes[sc];
        debug_assert!(!st.completed, "completed once");
        st.completed = true;
        let parent = st.parent.take();
        let done = st.done;
        // The completer's own reference to `done`, kept across the free.
        self.states[done].refs += 1;
        if self.scopes[sc].orphaned {
            self.scope_free(sc);
        }
        self.cancel(done, R::Requested, CancelOrigin::Cancel);
        if let Some(p) = parent {
            self.scope_leave(p);
        }
        self.release(done);
    }

    /// No handle, no guard, completed: the hook is detached (its reference
    /// given back) and so are the two source counts.
    fn scope_free(&mut self, sc: usize) {
        let st = &mut self.scopes[sc];
        debug_assert!(st.orphaned && st.completed && st.guards == 0 && !st.freed);
        st.freed = true;
        let (signal, done) = (st.signal, st.done);
        if std::mem::take(&mut st.hook_listed) {
            self.states[signal].list.retain(|o| *o != Obs::Scope(sc));
        }
        self.release(signal);
        self.states[signal].sources -= 1;
        self.release(signal);
        self.states[done].sources -= 1;
        self.release(done);
    }
}

// ------------------------------------------------------------ interpreter

#[derive(Debug)]
struct Code(u8);
impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "code {}", self.0)
    }
}
impl std::error::Error for Code {}

/// What the real side's closures and wakers report to.
#[derive(Default)]
struct Shared {
    /// Callback ids, in the order they ran.
    log: Mutex<Vec<usize>>,
    /// Per registration id: how many times its closure was dropped.
    drops: Mutex<Vec<u8>>,
}

/// Captured by every closure: counts its drop, and panics there for a
/// `Kind::PanicDrop` closure (unless already unwinding from a failure).
struct Probe {
    id: usize,
    shared: Arc<Shared>,
    bomb: bool,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.shared.drops.lock().unwrap()[self.id] += 1;
        if self.bomb && !std::thread::panicking() {
            panic!("deliberate: drop {}", self.id);
        }
    }
}

fn closure(id: usize, kind: Kind, shared: &Arc<Shared>) -> impl FnOnce() + Send + 'static {
    shared.drops.lock().unwrap().push(0);
    let probe = Probe {
        id,
        shared: shared.clone(),
        bomb: kind == Kind::PanicDrop,
    };
    move || {
        // Used by reference: the probe is dropped with the closure, after
        // the call (or during the unwind of a panicking body).
        let p = &probe;
        p.shared.log.lock().unwrap().push(p.id);
        if kind == Kind::PanicRun {
            panic!("deliberate: run {}", p.id);
        }
    }
}

const CLONE_DROP_PANIC: &str = "deliberate: a waker clone's drop";

/// A waker whose clones (data non-null) panic when dropped.
static CLONE_DROP_PANICS: std::task::RawWakerVTable =
    std::task::RawWakerVTable::new(cdp_clone, cdp_noop, cdp_noop, cdp_drop);

fn cdp_clone(_: *const ()) -> std::task::RawWaker {
    std::task::RawWaker::new(std::ptr::dangling(), &CLONE_DROP_PANICS)
}

fn cdp_noop(_: *const ()) {}

fn cdp_drop(data: *const ()) {
    if !data.is_null() && !std::thread::panicking() {
        panic!("{CLONE_DROP_PANIC}");
    }
}

fn clone_drop_panics() -> Waker {
    // SAFETY: the vtable's functions never dereference `data`.
    unsafe {
        Waker::from_raw(std::task::RawWaker::new(
            std::ptr::null(),
            &CLONE_DROP_PANICS,
        ))
    }
}

/// A waker that counts its wakes and may panic in `wake`.
struct W {
    wakes: AtomicUsize,
    panics: bool,
    fut: usize,
    which: usize,
}

impl Wake for W {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, SeqCst);
        if self.panics && !std::thread::panicking() {
            panic!("deliberate: wake {}.{}", self.fut, self.which);
        }
    }
}

struct Fut {
    /// A token's `cancelled_owned()` or a scope's `finished()`.
    fut: Pin<Box<dyn Future<Output = ()>>>,
    /// Two wakers, so that re-polls can swap the stored one.
    wakers: [Arc<W>; 2],
}

/// Reads operation arguments from the input; runs out into zeros.
struct Bytes<'a>(&'a [u8]);
impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn pick(&mut self, len: usize) -> Option<usize> {
        let b = self.byte();
        (len > 0).then(|| b as usize % len)
    }
    /// One byte: an index (`b / modes`, modulo `len`) and a mode (`b %
    /// modes`); `None`: nothing to pick.
    fn pick_mode(&mut self, len: usize, modes: u8) -> Option<(usize, u8)> {
        let b = self.byte();
        (len > 0).then(|| ((b / modes) as usize % len, b % modes))
    }
}

/// A guard as the interpreter holds it: plain, made to shut its scope down
/// if dropped by a panic, or held by a tracked future (never polled).
enum Guard {
    Plain(WorkGuard),
    OnPanic(ShutdownOnPanic),
    Tracked(Tracked<std::future::Ready<()>>),
}

impl Guard {
    fn get(&self) -> &WorkGuard {
        match self {
            Guard::Plain(g) => g,
            Guard::OnPanic(g) => g,
            Guard::Tracked(t) => t.guard(),
        }
    }
}

/// The crate under test, with handles indexed like the model's.
struct Real {
    /// Two clock slots; each holds the live handles of one clock (none once
    /// that clock is stopped, until a new clock takes the slot).
    clocks: [Vec<ManualClock>; 2],
    shared: Arc<Shared>,
    sources: Vec<(usize, CancellationSource)>,
    tokens: Vec<(Option<usize>, CancellationToken)>,
    regs: Vec<(usize, Registration)>,
    futs: Vec<(usize, Fut)>,
    /// Scope handles, with the model's scope id.
    scopes: Vec<(usize, Shutdown)>,
    /// Guards, with the model's id of their scope.
    guards: Vec<(usize, Guard)>,
}

fn reason_of(t: &CancellationToken) -> Option<R> {
    model_reason(t.reason())
}

/// A reason in the model's terms (without allocating: `check` calls it).
fn model_reason(reason: Option<CancelReason>) -> Option<R> {
    Some(match reason? {
        CancelReason::Requested => R::Requested,
        CancelReason::TimedOut => R::TimedOut,
        CancelReason::Custom(c) if c.downcast_ref::<WorkPanicked>().is_some() => R::WorkPanicked,
        CancelReason::Custom(c) => match c.downcast_ref::<Code>() {
            Some(code) => R::Custom(code.0),
            None => panic!("unknown cause {c:?}"),
        },
        other => panic!("unknown reason {other:?}"),
    })
}

/// Clock steps are whole milliseconds; every arming adds its own operation
/// number in nanoseconds, so no two timeouts on one clock share a deadline
/// and the firing order is the same in the crate and in the model.
const STEP: u64 = 1_000_000;

/// A delay argument: 0 (at once), `u64::MAX` (`Duration::MAX`: never), or
/// up to 15 steps plus the operation's number.
fn delay(b: u8, op_no: u64) -> u64 {
    match b {
        0 => 0,
        255 => u64::MAX,
        b => u64::from(b % 16) * STEP + op_no,
    }
}

fn duration(d: u64) -> Duration {
    if d == u64::MAX {
        Duration::MAX
    } else {
        Duration::from_nanos(d)
    }
}

/// The kind of a registered closure, from the high bits of its op byte
/// (0 for the op bytes below 32, as before panics were modelled).
fn kind_of(variant: u8) -> Kind {
    match variant {
        0..=3 => Kind::Plain,
        4 | 5 => Kind::PanicRun,
        _ => Kind::PanicDrop,
    }
}

/// Runs the operations encoded in `data` on the crate and on the model,
/// panicking at the first difference, and checks that nothing leaked.
pub fn run(data: &[u8]) {
    quiet_panics();
    let before = live_allocations();
    run_inner(data);
    assert_eq!(live_allocations(), before, "live allocations after the run");
}

/// The operations, by `op byte % 32`; `variant = op byte / 32` (0..=7)
/// picks a clock slot (bit 0), a waker (bit 0), a closure's kind
/// (`kind_of`), a future's panicking wakers, `unregister_async` (op 10) or
/// a scope operation (op 26, see `scope_op`; once an alias of op 12).
/// Bytes below 32 decode as they did before clocks and panics were
/// modelled (slot 0, plain closures, quiet wakers), except 26. The
/// operations added since are numbered from 32, on the variants 4..=7 of
/// observe (op 19) and its alias (31), which were all observe before:
/// 32 and 38 `disarm`, 33 and 39 `try_reset`, 34 and 35
/// `timer().cancel_after_with` (slot 0, 1), 36 and 37
/// `source.cancel_after_with` (falling back to slot 0, 1). A disarm or a
/// reset takes one argument byte, as observe did.
fn run_inner(data: &[u8]) {
    let mut m = Model::default();
    let mut slot_clock = [m.new_clock(), m.new_clock()];
    let mut r = Real {
        clocks: [vec![ManualClock::new()], vec![ManualClock::new()]],
        shared: Arc::new(Shared::default()),
        sources: Vec::new(),
        tokens: vec![(None, CancellationToken::none())],
        regs: Vec::new(),
        futs: Vec::new(),
        scopes: Vec::new(),
        guards: Vec::new(),
    };
    let mut input = Bytes(data);
    let mut op_no: u64 = 0;
    while !input.0.is_empty() {
        op_no += 1;
        let b = input.byte();
        let variant = b / 32;
        let slot = usize::from(variant & 1);
        let op = match b % 32 {
            // The new operations (numbered from 32), on the variants 4..=7
            // of observe (19) and its alias (31), which ignored the variant.
            19 if variant >= 4 => 32 + (variant - 4),
            31 if variant >= 4 => 36 + (variant - 4),
            // Aliases, for a useful mix of operations.
            24 => 8,
            25 => 17,
            27 => 14,
            29 => 5,
            30 => 15,
            31 => 19,
            op => op,
        };
        match op {
            // A new source.
            0 => {
                let s = m.new_state(Vec::new(), None);
                trace!("{op_no}: source {} = new() (state {s})", r.sources.len());
                r.sources.push((s, CancellationSource::new()));
            }
            // A linked source with up to three parents (token 0 is none()).
            1 => {
                let k = input.byte() % 4;
                let picks: Vec<usize> = (0..k).filter_map(|_| input.pick(r.tokens.len())).collect();
                let parents: Vec<Option<usize>> = picks.iter().map(|&i| r.tokens[i].0).collect();
                let tokens: Vec<&CancellationToken> =
                    picks.iter().map(|&i| &r.tokens[i].1).collect();
                let s = m.new_linked(&parents);
                trace!(
                    "{op_no}: source {} = linked(tokens {picks:?}) (state {s})",
                    r.sources.len()
                );
                r.sources.push((s, CancellationSource::linked(tokens)));
            }
            // token.child()
            2 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (p, ref t) = r.tokens[i];
                    let s = m.new_linked(&[p]);
                    trace!(
                        "{op_no}: source {} = token {i}.child() (state {s})",
                        r.sources.len()
                    );
                    r.sources.push((s, t.child()));
                }
            }
            3 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    m.states[s].sources += 1;
                    m.states[s].refs += 1;
                    trace!(
                        "{op_no}: source {} = source {i}.clone() (state {s})",
                        r.sources.len()
                    );
                    r.sources.push((s, src.clone()));
                }
            }
            4 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, src) = r.sources.swap_remove(i);
                    trace!("{op_no}: drop source {i} (state {s}; the last source moves to {i})");
                    drop(src);
                    m.states[s].sources -= 1;
                    m.release(s);
                }
            }
            5 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    m.states[s].refs += 1;
                    trace!(
                        "{op_no}: token {} = source {i}.token() (state {s})",
                        r.tokens.len()
                    );
                    r.tokens.push((Some(s), src.token()));
                }
            }
            6 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    if let Some(s) = s {
                        m.states[s].refs += 1;
                    }
                    trace!(
                        "{op_no}: token {} = token {i}.clone() (state {s:?})",
                        r.tokens.len()
                    );
                    r.tokens.push((s, t.clone()));
                }
            }
            7 => {
                if r.tokens.len() > 1 {
                    let i = 1 + input.pick(r.tokens.len() - 1).unwrap();
                    let (s, t) = r.tokens.swap_remove(i);
                    trace!("{op_no}: drop token {i} (state {s:?}; the last token moves to {i})");
                    drop(t);
                    if let Some(s) = s {
                        m.release(s);
                    }
                }
            }
            // register, with the variant's kind of closure
            8 | 9 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    let kind = kind_of(variant);
                    let id = m.register(s, kind);
                    trace!(
                        "{op_no}: registration {} = token {i} (state {s:?}).register(callback {id}, {kind:?}) -> model {:?}",
                        r.regs.len(),
                        m.regs[id].state
                    );
                    let f = closure(id, kind, &r.shared);
                    let result = catch_unwind(AssertUnwindSafe(|| t.register(f)));
                    if let Some(reg) = expect(result, m.panic.take(), "register") {
                        assert_eq!(
                            reg.is_pending(),
                            matches!(m.regs[id].state, MRegState::Pending(_)),
                            "is_pending after register"
                        );
                        r.regs.push((id, reg));
                    }
                }
            }
            // unregister(); variants 4 and 5: unregister_async() polled
            // (ready at once: nothing runs elsewhere; 5 with a waker whose
            // clone's drop panics, after the registration is settled: its
            // panic is the one resumed, a closure's drop panic dropped),
            // 6 and 7: dropped unpolled (which lets go as `unregister` does).
            10 => {
                if let Some(i) = input.pick(r.regs.len()) {
                    let (id, reg) = r.regs.swap_remove(i);
                    let want = m.unregister(id);
                    if variant < 4 {
                        trace!("{op_no}: registration {i} (callback {id}).unregister()");
                        let result = catch_unwind(AssertUnwindSafe(move || reg.unregister()));
                        if let Some(got) = expect(result, m.panic.take(), "unregister") {
                            assert_eq!(got, want, "unregister's answer");
                        }
                    } else if variant < 6 {
                        trace!(
                            "{op_no}: registration {i} (callback {id}).unregister_async(), polled"
                        );
                        let waker = if variant == 5 {
                            clone_drop_panics()
                        } else {
                            Waker::noop().clone()
                        };
                        let result = catch_unwind(AssertUnwindSafe(move || {
                            let mut fut = reg.unregister_async();
                            Pin::new(&mut fut).poll(&mut Context::from_waker(&waker))
                        }));
                        // The clone is made (and dropped, panicking) only
                        // if the registration still holds its node, which
                        // the model does not tell apart: either panic.
                        let result = match result {
                            Err(p) if message(&*p) == CLONE_DROP_PANIC => {
                                m.panic = None;
                                None
                            }
                            result => Some(result),
                        };
                        if let Some(got) = result
                            .and_then(|result| expect(result, m.panic.take(), "unregister_async"))
                        {
                            assert_eq!(
                                got,
                                std::task::Poll::Ready(want),
                                "unregister_async's answer"
                            );
                        }
                    } else {
                        trace!(
                            "{op_no}: registration {i} (callback {id}).unregister_async(), dropped"
                        );
                        let result =
                            catch_unwind(AssertUnwindSafe(move || drop(reg.unregister_async())));
                        expect(result, m.panic.take(), "unregister_async dropped");
                    }
                }
            }
            11 => {
                if let Some(i) = input.pick(r.regs.len()) {
                    let (id, reg) = r.regs.swap_remove(i);
                    trace!("{op_no}: drop registration {i} (callback {id})");
                    m.unregister(id);
                    let result = catch_unwind(AssertUnwindSafe(move || drop(reg)));
                    expect(result, m.panic.take(), "registration drop");
                }
            }
            12 | 13 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let code = input.byte();
                    if op == 12 {
                        trace!("{op_no}: source {i}.cancel() (state {s})");
                    } else {
                        trace!("{op_no}: source {i}.cancel_with(code {code}) (state {s})");
                    }
                    let (result, want) = if op == 12 {
                        (
                            catch_unwind(AssertUnwindSafe(|| src.cancel())),
                            m.cancel(s, R::Requested, CancelOrigin::Cancel),
                        )
                    } else {
                        (
                            catch_unwind(AssertUnwindSafe(|| src.cancel_with(Code(code)))),
                            m.cancel(s, R::Custom(code), CancelOrigin::Cancel),
                        )
                    };
                    if let Some(got) = expect(result, m.panic.take(), "cancel") {
                        assert_eq!(got, want, "cancel's answer");
                    } else {
                        assert!(want, "only the cancelling call runs observers");
                    }
                }
            }
            // Advance a clock.
            14 => {
                let by = u64::from(input.byte() % 8) * STEP;
                trace!("{op_no}: clock slot {slot}.advance({by} ns)");
                if let Some(clock) = r.clocks[slot].first() {
                    let result =
                        catch_unwind(AssertUnwindSafe(|| clock.advance(Duration::from_nanos(by))));
                    m.advance(slot_clock[slot], by);
                    expect(result, m.panic.take(), "advance");
                }
            }
            // clock.cancel_after(source, d)
            15 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let d = delay(input.byte(), op_no);
                    trace!(
                        "{op_no}: clock slot {slot}.cancel_after(source {i} (state {s}), {d} ns)"
                    );
                    if let Some(clock) = r.clocks[slot].first() {
                        let result =
                            catch_unwind(AssertUnwindSafe(|| clock.cancel_after(src, duration(d))));
                        m.clock_cancel_after(slot_clock[slot], s, d, None);
                        expect(result, m.panic.take(), "clock.cancel_after");
                    }
                }
            }
            // A future on a token, with the variant's panicking wakers.
            16 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    let panics = [variant == 5 || variant == 7, variant == 6 || variant == 7];
                    let f = m.new_fut(s, panics);
                    trace!(
                        "{op_no}: future {} (id {f}) = token {i} (state {s:?}).cancelled_owned(), panicking wakers {panics:?}",
                        r.futs.len()
                    );
                    let waker = |which: usize| {
                        Arc::new(W {
                            wakes: AtomicUsize::new(0),
                            panics: panics[which],
                            fut: f,
                            which,
                        })
                    };
                    r.futs.push((
                        f,
                        Fut {
                            fut: Box::pin(t.clone().cancelled_owned()),
                            wakers: [waker(0), waker(1)],
                        },
                    ));
                }
            }
            // Poll a future with its first or second waker.
            17 => {
                if let Some(i) = input.pick(r.futs.len()) {
                    let which = usize::from(variant & 1);
                    let (id, ref mut f) = r.futs[i];
                    trace!("{op_no}: poll future {i} (id {id}) with its waker {which}");
                    let waker = Waker::from(f.wakers[which].clone());
                    let ready = f
                        .fut
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_ready();
                    drop(waker);
                    assert_eq!(ready, m.poll(id, which), "future readiness");
                }
            }
            18 => {
                if let Some(i) = input.pick(r.futs.len()) {
                    let (id, f) = r.futs.swap_remove(i);
                    trace!("{op_no}: drop future {i} (id {id})");
                    drop(f);
                    m.drop_fut(id);
                }
            }
            // A clock handle: cloned, or a new clock for a stopped slot.
            20 => {
                trace!("{op_no}: clock slot {slot}: clone a handle (a new clock if stopped)");
                if let Some(clock) = r.clocks[slot].first() {
                    let clone = clock.clone();
                    r.clocks[slot].push(clone);
                    m.clocks[slot_clock[slot]].handles += 1;
                } else {
                    r.clocks[slot].push(ManualClock::new());
                    slot_clock[slot] = m.new_clock();
                }
            }
            // Drop a clock handle; the last one stops the clock.
            21 => {
                trace!("{op_no}: clock slot {slot}: drop a handle");
                if let Some(clock) = r.clocks[slot].pop() {
                    drop(clock);
                    m.drop_clock_handle(slot_clock[slot]);
                }
            }
            // source.cancel_after(d): on the clock of the source's timer
            // (only for a source that has one on a manual clock, else
            // `clock.cancel_after` on the slot's clock).
            22 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let d = delay(input.byte(), op_no);
                    let st = &m.states[s];
                    trace!(
                        "{op_no}: source {i} (state {s}).cancel_after({d} ns) (timer on {:?}; else clock slot {slot})",
                        st.timer_clock
                    );
                    // `source.cancel_after` re-arms on the source's manual
                    // clock; on a source with none, or whose clock stopped,
                    // it would use the default timer (real time): the
                    // interpreter arms on a manual clock instead.
                    let live_clock = st.timer_clock.is_some_and(|c| m.clocks[c].handles > 0);
                    if st.reason.is_some() || live_clock {
                        let result =
                            catch_unwind(AssertUnwindSafe(|| src.cancel_after(duration(d))));
                        m.source_cancel_after(s, d, None);
                        expect(result, m.panic.take(), "source.cancel_after");
                    } else if let Some(clock) = r.clocks[slot].first() {
                        let result =
                            catch_unwind(AssertUnwindSafe(|| clock.cancel_after(src, duration(d))));
                        m.clock_cancel_after(slot_clock[slot], s, d, None);
                        expect(result, m.panic.take(), "clock.cancel_after");
                    }
                }
            }
            // clock.with_timeout(d)
            23 => {
                let d = delay(input.byte(), op_no);
                if let Some(clock) = r.clocks[slot].first() {
                    let src = clock.with_timeout(duration(d));
                    let s = m.new_state(Vec::new(), None);
                    trace!(
                        "{op_no}: source {} = clock slot {slot}.with_timeout({d} ns) (state {s})",
                        r.sources.len()
                    );
                    m.clock_cancel_after(slot_clock[slot], s, d, None);
                    assert!(m.panic.take().is_none());
                    r.sources.push((s, src));
                }
            }
            26 => scope_op(&mut m, &mut r, &mut input, variant, op_no),
            // Drop every handle of a source (its timer may live on).
            28 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let s = r.sources[i].0;
                    trace!("{op_no}: drop every handle of state {s} (sources move)");
                    let mut k = 0;
                    while k < r.sources.len() {
                        if r.sources[k].0 == s {
                            drop(r.sources.swap_remove(k));
                            m.states[s].sources -= 1;
                            m.release(s);
                        } else {
                            k += 1;
                        }
                    }
                }
            }
            // source.disarm()
            32 | 38 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let want = m.disarm(s);
                    trace!("{op_no}: source {i} (state {s}).disarm() -> model {want}");
                    assert_eq!(src.disarm(), want, "disarm's answer");
                }
            }
            // source.try_reset()
            33 | 39 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let want = m.try_reset(s);
                    trace!("{op_no}: source {i} (state {s}).try_reset() -> model {want}");
                    assert_eq!(src.try_reset(), want, "try_reset's answer");
                }
            }
            // clock.timer().cancel_after_with(source, d, Code(code)), on
            // slot 0 (34) or 1 (35).
            34 | 35 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let d = delay(input.byte(), op_no);
                    let code = input.byte();
                    trace!(
                        "{op_no}: clock slot {slot}.timer().cancel_after_with(source {i} (state {s}), {d} ns, code {code})"
                    );
                    if let Some(clock) = r.clocks[slot].first() {
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            clock
                                .timer()
                                .cancel_after_with(src, duration(d), Code(code))
                        }));
                        m.clock_cancel_after(slot_clock[slot], s, d, Some(code));
                        expect(result, m.panic.take(), "timer.cancel_after_with");
                    }
                }
            }
            // source.cancel_after_with(d, Code(code)): as op 22, on the
            // source's manual clock (else on slot 0 (36) or 1 (37) through
            // `timer().cancel_after_with`).
            36 | 37 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let d = delay(input.byte(), op_no);
                    let code = input.byte();
                    let st = &m.states[s];
                    trace!(
                        "{op_no}: source {i} (state {s}).cancel_after_with({d} ns, code {code}) (timer on {:?}; else clock slot {slot})",
                        st.timer_clock
                    );
                    let live_clock = st.timer_clock.is_some_and(|c| m.clocks[c].handles > 0);
                    if st.reason.is_some() || live_clock {
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            src.cancel_after_with(duration(d), Code(code))
                        }));
                        m.source_cancel_after(s, d, Some(code));
                        expect(result, m.panic.take(), "source.cancel_after_with");
                    } else if let Some(clock) = r.clocks[slot].first() {
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            clock
                                .timer()
                                .cancel_after_with(src, duration(d), Code(code))
                        }));
                        m.clock_cancel_after(slot_clock[slot], s, d, Some(code));
                        expect(result, m.panic.take(), "timer.cancel_after_with");
                    }
                }
            }
            // Observe a token.
            _ => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    trace!("{op_no}: observe token {i} (state {s:?})");
                    let (cancelled, reason, origin, can, deadline) = match s {
                        Some(s) => (
                            m.states[s].reason.is_some(),
                            m.states[s].reason.clone(),
                            m.states[s].origin,
                            m.can_be_cancelled(s),
                            m.has_deadline(s),
                        ),
                        None => (false, None, None, false, false),
                    };
                    assert_eq!(t.is_cancelled(), cancelled, "is_cancelled");
                    assert_eq!(t.check().is_err(), cancelled, "check");
                    assert_eq!(reason_of(t), reason, "reason");
                    assert_eq!(t.origin(), origin, "origin");
                    assert_eq!(t.can_be_cancelled(), can, "can_be_cancelled");
                    assert_eq!(t.deadline().is_some(), deadline, "deadline");
                    assert_eq!(t.wait_timeout(Duration::ZERO), cancelled, "wait_timeout(0)");
                }
            }
        }
        assert!(m.panic.is_none(), "every expected panic was compared");
        check(&mut m, &r, &slot_clock, op_no, op);
    }
    // Tear down in a scrambled order; the model must end with nothing alive.
    // (Five ways while no scope is left: the order inputs without scopes
    // always had.)
    let mut turn = 0u8;
    while !r.futs.is_empty()
        || !r.regs.is_empty()
        || r.tokens.len() > 1
        || !r.sources.is_empty()
        || r.clocks.iter().any(|c| !c.is_empty())
        || !r.scopes.is_empty()
        || !r.guards.is_empty()
    {
        turn = turn.wrapping_add(1);
        let ways = if r.scopes.is_empty() && r.guards.is_empty() {
            5
        } else {
            7
        };
        match input.byte().wrapping_add(turn) % ways {
            0 if !r.futs.is_empty() => {
                let (id, f) = r.futs.pop().unwrap();
                drop(f);
                m.drop_fut(id);
            }
            1 if !r.regs.is_empty() => {
                let (id, reg) = r.regs.pop().unwrap();
                m.unregister(id);
                let result = catch_unwind(AssertUnwindSafe(move || drop(reg)));
                expect(result, m.panic.take(), "registration drop (teardown)");
            }
            2 if r.tokens.len() > 1 => {
                if let (Some(s), _) = r.tokens.pop().unwrap() {
                    m.release(s);
                }
            }
            3 if !r.sources.is_empty() => {
                let (s, _) = r.sources.pop().unwrap();
                m.states[s].sources -= 1;
                m.release(s);
            }
            4 => {
                let slot = usize::from(turn & 1);
                if r.clocks[slot].pop().is_some() {
                    m.drop_clock_handle(slot_clock[slot]);
                }
            }
            // A guard's drop or a handle's may complete a scope: its
            // `finished()` futures are woken (and a waker may panic).
            5 if !r.guards.is_empty() => {
                let (sc, g) = r.guards.pop().unwrap();
                let result = catch_unwind(AssertUnwindSafe(move || drop(g)));
                m.scope_leave(sc);
                expect(result, m.panic.take(), "guard drop (teardown)");
            }
            6 if !r.scopes.is_empty() => {
                let (sc, h) = r.scopes.pop().unwrap();
                let result = catch_unwind(AssertUnwindSafe(move || drop(h)));
                m.scope_drop_handle(sc);
                expect(result, m.panic.take(), "scope handle drop (teardown)");
            }
            _ => {}
        }
        check(&mut m, &r, &slot_clock, op_no, 255);
    }
    assert!(
        r.shared.log.lock().unwrap().is_empty(),
        "teardown ran no callback"
    );
    assert!(
        m.scopes.iter().all(|s| s.freed),
        "the model freed every scope"
    );
    assert!(
        m.states.iter().all(|s| !s.alive),
        "the model freed everything"
    );
    assert!(
        r.shared.drops.lock().unwrap().iter().all(|&d| d == 1),
        "every closure was dropped exactly once"
    );
}

/// The reason and origin of state `s` (`None`: the `none()` token's) as a
/// handle (`what`) answered them, against the model's.
fn check_reason_origin(
    m: &Model,
    s: Option<usize>,
    origin: Option<CancelOrigin>,
    reason: Option<CancelReason>,
    op_no: u64,
    op: u8,
    what: impl Fn() -> String,
) {
    let (want_origin, want_reason) = match s {
        Some(s) => (m.states[s].origin, m.states[s].reason.clone()),
        None => (None, None),
    };
    assert_eq!(
        model_reason(reason),
        want_reason,
        "reason of {} after operation {op_no} (op {op})",
        what()
    );
    assert_eq!(
        origin,
        want_origin,
        "origin of {} after operation {op_no} (op {op})",
        what()
    );
}

/// A waker pair for a future, the variant's wakers panicking.
fn wakers(f: usize, panics: [bool; 2]) -> [Arc<W>; 2] {
    [0, 1].map(|which| {
        Arc::new(W {
            wakes: AtomicUsize::new(0),
            panics: panics[which],
            fut: f,
            which,
        })
    })
}

/// The operations of shutdown scopes (op 26), by the variant: 0 a new
/// scope, 1 `child`, 2 a handle cloned, 3 a handle dropped (mode 1: every
/// handle of that scope), 4 `enter` (modes 0, 1; 2: `shutdown_on_panic`; 3:
/// `track` a future), 5 a guard dropped (mode 1: during an unwind), 6
/// `shutdown` (modes 0, 1; 2: `shutdown_with` a code; 3: `close`), 7 by
/// mode of 8: a `finished()` future (0..=3: quiet, quiet, waker 0 panics,
/// waker 1 panics), a token slot from a scope's `token()` (4, 5) or a
/// guard's (6, 7). An argument byte is a slot index (`b / modes`, modulo the
/// count) and a mode (`b % modes`).
fn scope_op(m: &mut Model, r: &mut Real, input: &mut Bytes<'_>, variant: u8, op_no: u64) {
    match variant {
        0 => {
            let sc = m.new_scope(None).expect("a root scope is never refused");
            trace!(
                "{op_no}: scope handle {} = Shutdown::new() (scope {sc}, signal state {}, done state {})",
                r.scopes.len(),
                m.scopes[sc].signal,
                m.scopes[sc].done
            );
            r.scopes.push((sc, Shutdown::new()));
        }
        1 => {
            if let Some(i) = input.pick(r.scopes.len()) {
                let (p, ref parent) = r.scopes[i];
                let want = m.new_scope(Some(p));
                trace!(
                    "{op_no}: scope handle {} = handle {i} (scope {p}).child() -> model scope {want:?}",
                    r.scopes.len()
                );
                let got = parent.child();
                assert_eq!(
                    got.is_ok(),
                    want.is_some(),
                    "child refused exactly once the parent's shutdown began"
                );
                if let (Ok(child), Some(c)) = (got, want) {
                    assert!(child != *parent, "a nested scope is a scope of its own");
                    r.scopes.push((c, child));
                }
            }
        }
        2 => {
            if let Some(i) = input.pick(r.scopes.len()) {
                let (sc, ref h) = r.scopes[i];
                trace!(
                    "{op_no}: scope handle {} = handle {i} (scope {sc}).clone()",
                    r.scopes.len()
                );
                let clone = h.clone();
                // Equal by identity: to its scope's handles, no other.
                for (other, h) in &r.scopes {
                    assert_eq!(*h == clone, *other == sc, "a handle's equality");
                }
                m.scopes[sc].handles += 1;
                r.scopes.push((sc, clone));
            }
        }
        3 => {
            if let Some((i, every)) = input.pick_mode(r.scopes.len(), 2) {
                let every = every == 1;
                let sc = r.scopes[i].0;
                trace!(
                    "{op_no}: drop {} scope {sc} (the last handle moves to each freed place)",
                    if every {
                        "every handle of"
                    } else {
                        "a handle of"
                    }
                );
                let mut k = i;
                while k < r.scopes.len() {
                    if r.scopes[k].0 != sc {
                        k += 1;
                        continue;
                    }
                    let (_, h) = r.scopes.swap_remove(k);
                    let result = catch_unwind(AssertUnwindSafe(move || drop(h)));
                    m.scope_drop_handle(sc);
                    expect(result, m.panic.take(), "scope handle drop");
                    if !every {
                        break;
                    }
                    k = 0;
                }
            }
        }
        4 => {
            if let Some((i, how)) = input.pick_mode(r.scopes.len(), 4) {
                let (sc, ref h) = r.scopes[i];
                let want = m.scope_enter(sc);
                trace!(
                    "{op_no}: guard {} = handle {i} (scope {sc}).{} -> model {}",
                    r.guards.len(),
                    [
                        "enter()",
                        "enter()",
                        "enter().shutdown_on_panic()",
                        "track(ready(()))"
                    ][usize::from(how)],
                    if want { "entered" } else { "refused" }
                );
                let got = match how {
                    0 | 1 => h.enter().map(Guard::Plain),
                    2 => h.enter().map(|g| Guard::OnPanic(g.shutdown_on_panic())),
                    _ => h.track(std::future::ready(())).map(Guard::Tracked),
                };
                match got {
                    Ok(g) => {
                        assert!(want, "enter refused exactly once shutdown began");
                        r.guards.push((sc, g));
                    }
                    Err(cancel_core::ShutdownStarted) => {
                        assert!(!want, "enter refused exactly once shutdown began")
                    }
                }
            }
        }
        5 => {
            if let Some((i, unwinding)) = input.pick_mode(r.guards.len(), 2) {
                let unwinding = unwinding == 1;
                let (sc, g) = r.guards.swap_remove(i);
                let on_panic = matches!(g, Guard::OnPanic(_));
                trace!(
                    "{op_no}: drop guard {i} (scope {sc}, shutdown on panic: {on_panic}){} (the last guard moves to {i})",
                    if unwinding { " during an unwind" } else { "" }
                );
                if unwinding {
                    let result = catch_unwind(AssertUnwindSafe(move || {
                        let _g = g;
                        panic!("deliberate: unwind");
                    }));
                    if on_panic {
                        m.scope_shutdown(sc, R::WorkPanicked);
                    }
                    m.scope_leave(sc);
                    // Every panic of that drop is caught (by the guard, or
                    // not raised: probes and wakers keep quiet while
                    // unwinding); the unwind's own payload comes out.
                    m.panic = None;
                    expect(
                        result,
                        Some("deliberate: unwind".into()),
                        "guard drop while unwinding",
                    );
                } else {
                    let result = catch_unwind(AssertUnwindSafe(move || drop(g)));
                    m.scope_leave(sc);
                    expect(result, m.panic.take(), "guard drop");
                }
            }
        }
        6 => {
            if let Some((i, how)) = input.pick_mode(r.scopes.len(), 4) {
                let (sc, ref h) = r.scopes[i];
                if how == 3 {
                    trace!("{op_no}: handle {i} (scope {sc}).close()");
                    let result = catch_unwind(AssertUnwindSafe(|| h.close()));
                    let want = m.scope_begin(sc);
                    if let Some(got) = expect(result, m.panic.take(), "close") {
                        assert_eq!(got, want, "close's answer");
                    }
                    return;
                }
                let code = if how == 2 { Some(input.byte()) } else { None };
                trace!("{op_no}: handle {i} (scope {sc}).shutdown(), cause code {code:?}");
                let result = catch_unwind(AssertUnwindSafe(|| match code {
                    Some(code) => h.shutdown_with(Code(code)),
                    None => h.shutdown(),
                }));
                let want = m.scope_shutdown(sc, code.map_or(R::Requested, R::Custom));
                if let Some(got) = expect(result, m.panic.take(), "shutdown") {
                    assert_eq!(got, want, "shutdown's answer");
                } else {
                    assert!(
                        want,
                        "only the call that cancelled the token runs observers"
                    );
                }
            }
        }
        _ => {
            let b = input.byte();
            let (mode, at) = (b % 8, usize::from(b / 8));
            if mode < 4 && !r.scopes.is_empty() {
                let i = at % r.scopes.len();
                let (sc, ref h) = r.scopes[i];
                let panics = [mode == 2, mode == 3];
                let f = m.new_fut(Some(m.scopes[sc].done), panics);
                trace!(
                    "{op_no}: future {} (id {f}) = handle {i} (scope {sc}).finished(), panicking wakers {panics:?}",
                    r.futs.len()
                );
                r.futs.push((
                    f,
                    Fut {
                        fut: Box::pin(h.finished()),
                        wakers: wakers(f, panics),
                    },
                ));
            } else if mode < 6 && !r.scopes.is_empty() {
                let i = at % r.scopes.len();
                let (sc, ref h) = r.scopes[i];
                let s = m.scopes[sc].signal;
                m.states[s].refs += 1;
                trace!(
                    "{op_no}: token {} = handle {i} (scope {sc}).token() (state {s})",
                    r.tokens.len()
                );
                r.tokens.push((Some(s), h.token()));
            } else if mode >= 6 && !r.guards.is_empty() {
                let i = at % r.guards.len();
                let (sc, ref g) = r.guards[i];
                let s = m.scopes[sc].signal;
                m.states[s].refs += 1;
                trace!(
                    "{op_no}: token {} = guard {i} (scope {sc}).token() (state {s})",
                    r.tokens.len()
                );
                r.tokens.push((Some(s), g.get().token()));
            }
        }
    }
}

/// The invariants checked after every operation.
fn check(m: &mut Model, r: &Real, slot_clock: &[usize; 2], op_no: u64, op: u8) {
    // Which callbacks ran, in what order.
    let got = std::mem::take(&mut *r.shared.log.lock().unwrap());
    let want = std::mem::take(&mut m.log);
    assert_eq!(got, want, "callbacks run by operation {op_no} (op {op})");
    // Every closure dropped exactly when the model says: once run, removed,
    // or refused (a registration that can never run keeps no closure).
    {
        let drops = r.shared.drops.lock().unwrap();
        assert_eq!(drops.len(), m.regs.len());
        if let Some(id) = (0..drops.len()).find(|&id| drops[id] != u8::from(m.regs[id].dropped)) {
            panic!(
                "closure {id} ({:?}) dropped {} times after operation {op_no} (op {op})",
                m.regs[id], drops[id]
            );
        }
    }
    // A registration is pending exactly while its callback is listed.
    for (i, (id, reg)) in r.regs.iter().enumerate() {
        assert_eq!(
            reg.is_pending(),
            matches!(m.regs[*id].state, MRegState::Pending(_)),
            "is_pending of registration {i} (callback {id}) after operation {op_no} (op {op})"
        );
    }
    // Every future woken once per listing (its stored waker), and a waker
    // clone stored exactly while listed (none for a future polled while its
    // token could not be cancelled).
    for (id, f) in &r.futs {
        let mf = &m.futs[*id];
        for w in 0..2 {
            assert_eq!(
                f.wakers[w].wakes.load(SeqCst),
                mf.wakes[w],
                "wake-ups of future {id}'s waker {w} after operation {op_no} (op {op})"
            );
            assert_eq!(
                Arc::strong_count(&f.wakers[w]),
                1 + usize::from(mf.stored == Some(w)),
                "stored clones of future {id}'s waker {w} after operation {op_no} (op {op})"
            );
        }
    }
    // Armed timeouts per live clock.
    let mut armed = [0; 2];
    for st in &m.states {
        if let (true, Some((c, _))) = (st.alive, st.deadline) {
            for slot in 0..2 {
                armed[slot] += usize::from(c == slot_clock[slot]);
            }
        }
    }
    for (slot, (handles, armed)) in r.clocks.iter().zip(armed).enumerate() {
        if let Some(clock) = handles.first() {
            assert_eq!(
                clock.armed(),
                armed,
                "armed timeouts of slot {slot} after operation {op_no} (op {op})"
            );
        }
    }
    // is_cancelled, can_be_cancelled, the reason and the origin of every
    // live token (the model's answer memoised per state; the reason and
    // origin once per state: its tokens read the same word).
    let mut memo: Vec<Option<bool>> = vec![None; m.states.len()];
    let mut seen = vec![false; m.states.len()];
    for (i, (s, t)) in r.tokens.iter().enumerate() {
        let (cancelled, can) = match *s {
            Some(s) => (
                m.states[s].reason.is_some(),
                *memo[s].get_or_insert_with(|| m.can_be_cancelled(s)),
            ),
            None => (false, false),
        };
        assert_eq!(
            t.is_cancelled(),
            cancelled,
            "is_cancelled of token {i} (state {s:?}) after operation {op_no} (op {op})"
        );
        assert_eq!(
            t.can_be_cancelled(),
            can,
            "can_be_cancelled of token {i} (state {s:?}) after operation {op_no} (op {op})"
        );
        if s.is_some_and(|s| std::mem::replace(&mut seen[s], true)) {
            continue;
        }
        check_reason_origin(m, *s, t.origin(), t.reason(), op_no, op, || {
            format!("token {i} (state {s:?})")
        });
    }
    // The reason and origin through a source handle, of each state that
    // was cancelled or whose source an operation acted on (not every
    // source after every operation: reading each one's state would halve
    // the fuzzer's speed, sources being many and tokens few).
    for (i, (s, src)) in r.sources.iter().enumerate() {
        if std::mem::take(&mut m.states[*s].recheck) {
            check_reason_origin(m, Some(*s), src.origin(), src.reason(), op_no, op, || {
                format!("source {i} (state {s})")
            });
        }
    }
    // The model's own scope invariants: complete exactly when closed with
    // nothing in flight (no completer runs between operations), freed
    // exactly when also without a handle.
    for (sc, ms) in m.scopes.iter().enumerate() {
        assert_eq!(
            ms.completed,
            (ms.shutdown || ms.orphaned) && ms.guards == 0,
            "model scope {sc} ({ms:?}) after operation {op_no} (op {op})"
        );
        assert_eq!(ms.completed, m.states[ms.done].reason.is_some());
        assert_eq!(ms.freed, ms.completed && ms.orphaned);
    }
    // Every scope handle: shutting down, finished, the work in flight, and
    // `enter` refused exactly once shutdown began (a guard taken here is
    // dropped at once: the scope is open and has a handle, so its leave
    // completes nothing).
    for (i, (sc, h)) in r.scopes.iter().enumerate() {
        let ms = &m.scopes[*sc];
        assert_eq!(
            h.is_shutting_down(),
            ms.shutdown,
            "is_shutting_down of scope handle {i} (scope {sc}) after operation {op_no} (op {op})"
        );
        assert_eq!(
            h.is_finished(),
            ms.completed,
            "is_finished of scope handle {i} (scope {sc}) after operation {op_no} (op {op})"
        );
        assert_eq!(
            h.in_flight(),
            ms.guards,
            "in_flight of scope handle {i} (scope {sc}) after operation {op_no} (op {op})"
        );
        assert_eq!(
            h.enter().is_err(),
            ms.shutdown,
            "enter refused, scope handle {i} (scope {sc}) after operation {op_no} (op {op})"
        );
    }
    // Every guard sees its scope's signal.
    for (i, (sc, g)) in r.guards.iter().enumerate() {
        let s = m.scopes[*sc].signal;
        assert_eq!(
            g.get().is_cancelled(),
            m.states[s].reason.is_some(),
            "is_cancelled of guard {i} (scope {sc}, state {s}) after operation {op_no} (op {op})"
        );
    }
}
