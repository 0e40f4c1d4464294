//! A deliberately simple reference model of cancel-core's public semantics,
//! and an interpreter that decodes bytes into operations, runs them on both
//! the crate and the model, and compares every observable result.
//!
//! Shared by the stable tests (`tests/model_replay.rs`) and the fuzz targets
//! (`fuzz/fuzz_targets/*.rs`, through `#[path]`).

#![allow(dead_code)]

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use cancel_core::{
    CancelReason, CancellationSource, CancellationToken, ManualClock, Registration,
    WaitForCancellationOwned,
};

// ------------------------------------------------------------ allocations

#[path = "../common/counting.rs"]
mod counting;
pub use counting::Counting;

pub fn live_allocations() -> isize {
    counting::live()
}

// ------------------------------------------------------------------ model

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum R {
    Requested,
    TimedOut,
    Custom(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Obs {
    Callback(usize),
    Link(usize),
}

#[derive(Debug)]
struct MState {
    alive: bool,
    reason: Option<R>,
    sources: usize,
    refs: usize,
    /// Every parent this state holds a link reference to.
    parents: Vec<usize>,
    /// Observers in push order; cancellation pops from the back (LIFO).
    list: Vec<Obs>,
    deadline: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MReg {
    Pending(usize),
    Ran(Option<usize>),
    Removed,
    Inert,
}

/// The reference: plain collections, recursion, no concurrency.
#[derive(Default)]
pub struct Model {
    states: Vec<MState>,
    regs: Vec<MReg>,
    log: Vec<usize>,
    now: u64,
}

impl Model {
    fn new_state(&mut self, parents: Vec<usize>, reason: Option<R>) -> usize {
        let id = self.states.len();
        for &p in &parents {
            self.states[p].list.push(Obs::Link(id));
            self.states[p].refs += 1;
        }
        self.states.push(MState {
            alive: true,
            reason,
            sources: 1,
            refs: 1,
            parents,
            list: Vec::new(),
            deadline: None,
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
    /// walk, in the same order, so that a wide DAG is judged alike.
    fn can_be_cancelled(&self, s: usize) -> bool {
        const FORK_BUDGET: u32 = 64;
        let mut budget = FORK_BUDGET;
        self.walk_can_be_cancelled(s, &mut budget)
    }

    fn walk_can_be_cancelled(&self, mut s: usize, budget: &mut u32) -> bool {
        loop {
            let st = &self.states[s];
            if st.reason.is_some() || st.sources > 0 {
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

    fn claim(&mut self, s: usize, r: &R) {
        self.states[s].reason = Some(r.clone());
        self.states[s].deadline = None;
        for p in self.states[s].parents.clone() {
            self.states[p].list.retain(|o| *o != Obs::Link(s));
        }
    }

    fn drain(&mut self, s: usize, r: &R) {
        while let Some(obs) = self.states[s].list.pop() {
            match obs {
                Obs::Callback(id) => {
                    self.log.push(id);
                    self.regs[id] = MReg::Ran(Some(s));
                }
                Obs::Link(c) => {
                    if self.states[c].reason.is_none() {
                        self.claim(c, r);
                        self.drain(c, r);
                    }
                }
            }
        }
    }

    fn cancel(&mut self, s: usize, r: R) -> bool {
        if self.states[s].reason.is_some() {
            return false;
        }
        self.claim(s, &r);
        self.drain(s, &r);
        true
    }

    fn register(&mut self, s: usize) -> usize {
        let id = self.regs.len();
        if self.states[s].reason.is_some() {
            self.log.push(id);
            self.regs.push(MReg::Ran(None));
        } else if !self.can_be_cancelled(s) {
            self.regs.push(MReg::Inert);
        } else {
            self.states[s].list.push(Obs::Callback(id));
            self.states[s].refs += 1;
            self.regs.push(MReg::Pending(s));
        }
        id
    }

    /// `unregister` (or drop, which answers the same but discards it).
    fn unregister(&mut self, id: usize) -> bool {
        let (removed, held) = match self.regs[id] {
            MReg::Pending(s) => {
                self.states[s].list.retain(|o| *o != Obs::Callback(id));
                (true, Some(s))
            }
            MReg::Ran(held) => (false, held),
            MReg::Removed | MReg::Inert => (false, None),
        };
        self.regs[id] = MReg::Removed;
        if let Some(s) = held {
            self.release(s);
        }
        removed
    }

    fn earliest_due(&self) -> Option<usize> {
        (0..self.states.len())
            .filter(|&s| {
                self.states[s].alive && self.states[s].deadline.is_some_and(|d| d <= self.now)
            })
            .min_by_key(|&s| self.states[s].deadline)
    }

    fn advance(&mut self, by: u64) {
        self.now += by;
        while let Some(s) = self.earliest_due() {
            self.states[s].deadline = None;
            self.cancel(s, R::TimedOut);
        }
    }

    fn cancel_after(&mut self, s: usize, d: u64) {
        if self.states[s].reason.is_some() {
            return;
        }
        if d == 0 {
            self.cancel(s, R::TimedOut);
        } else if d == u64::MAX {
            self.states[s].deadline = None;
        } else {
            self.states[s].deadline = Some(self.now + d);
        }
    }

    fn has_deadline(&self, s: usize) -> bool {
        self.states[s].deadline.is_some()
            || self.states[s].parents.iter().any(|&p| self.has_deadline(p))
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

#[derive(Default)]
struct CountWaker(AtomicUsize);
impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

struct Fut {
    state: usize,
    fut: Pin<Box<WaitForCancellationOwned>>,
    wakes: Arc<CountWaker>,
    attached: bool,
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
}

/// The crate under test, with handles indexed like the model's.
struct Real {
    clock: ManualClock,
    log: Arc<Mutex<Vec<usize>>>,
    sources: Vec<(usize, CancellationSource)>,
    tokens: Vec<(Option<usize>, CancellationToken)>,
    regs: Vec<(usize, Registration)>,
    futs: Vec<Fut>,
}

fn reason_of(t: &CancellationToken) -> Option<R> {
    Some(match t.reason()? {
        CancelReason::Requested => R::Requested,
        CancelReason::TimedOut => R::TimedOut,
        CancelReason::Custom(c) => {
            let text = c.to_string();
            R::Custom(
                text.trim_start_matches("code ")
                    .parse()
                    .expect("a Code cause"),
            )
        }
        other => panic!("unknown reason {other:?}"),
    })
}

/// Clock steps are whole milliseconds; every arming adds its own operation
/// number in nanoseconds, so no two timeouts share a deadline and the firing
/// order is the same in the crate and in the model.
const STEP: u64 = 1_000_000;

/// Runs the operations encoded in `data` on the crate and on the model,
/// panicking at the first difference, and checks that nothing leaked.
pub fn run(data: &[u8]) {
    let before = live_allocations();
    run_inner(data);
    assert_eq!(live_allocations(), before, "live allocations after the run");
}

fn run_inner(data: &[u8]) {
    let mut m = Model::default();
    let mut r = Real {
        clock: ManualClock::new(),
        log: Arc::new(Mutex::new(Vec::new())),
        sources: Vec::new(),
        tokens: vec![(None, CancellationToken::none())],
        regs: Vec::new(),
        futs: Vec::new(),
    };
    let mut reg_ids: Vec<usize> = Vec::new();
    let mut input = Bytes(data);
    let mut op_no: u64 = 0;
    while !input.0.is_empty() {
        op_no += 1;
        let op = input.byte() % 20;
        match op {
            // A new source.
            0 => {
                let s = m.new_state(Vec::new(), None);
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
                r.sources.push((s, CancellationSource::linked(tokens)));
            }
            // token.child()
            2 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (p, ref t) = r.tokens[i];
                    let s = m.new_linked(&[p]);
                    r.sources.push((s, t.child()));
                }
            }
            3 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    m.states[s].sources += 1;
                    m.states[s].refs += 1;
                    r.sources.push((s, src.clone()));
                }
            }
            4 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, src) = r.sources.swap_remove(i);
                    drop(src);
                    m.states[s].sources -= 1;
                    m.release(s);
                }
            }
            5 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    m.states[s].refs += 1;
                    r.tokens.push((Some(s), src.token()));
                }
            }
            6 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    if let Some(s) = s {
                        m.states[s].refs += 1;
                    }
                    r.tokens.push((s, t.clone()));
                }
            }
            7 => {
                if r.tokens.len() > 1 {
                    let i = 1 + input.pick(r.tokens.len() - 1).unwrap();
                    let (s, t) = r.tokens.swap_remove(i);
                    drop(t);
                    if let Some(s) = s {
                        m.release(s);
                    }
                }
            }
            // register
            8 | 9 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    let id = match s {
                        Some(s) => m.register(s),
                        None => {
                            m.regs.push(MReg::Inert);
                            m.regs.len() - 1
                        }
                    };
                    let log = r.log.clone();
                    let reg = t.register(move || log.lock().unwrap().push(id));
                    assert_eq!(
                        reg.is_pending(),
                        matches!(m.regs[id], MReg::Pending(_)),
                        "is_pending after register"
                    );
                    r.regs.push((id, reg));
                    reg_ids.push(id);
                }
            }
            10 => {
                if let Some(i) = input.pick(r.regs.len()) {
                    let (id, reg) = r.regs.swap_remove(i);
                    assert_eq!(reg.unregister(), m.unregister(id), "unregister's answer");
                }
            }
            11 => {
                if let Some(i) = input.pick(r.regs.len()) {
                    let (id, reg) = r.regs.swap_remove(i);
                    drop(reg);
                    m.unregister(id);
                }
            }
            12 | 13 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let code = input.byte();
                    let (got, want) = if op == 12 {
                        (src.cancel(), m.cancel(s, R::Requested))
                    } else {
                        (src.cancel_with(Code(code)), m.cancel(s, R::Custom(code)))
                    };
                    assert_eq!(got, want, "cancel's answer");
                }
            }
            14 => {
                let by = u64::from(input.byte() % 8) * STEP;
                r.clock.advance(Duration::from_nanos(by));
                m.advance(by);
            }
            15 => {
                if let Some(i) = input.pick(r.sources.len()) {
                    let (s, ref src) = r.sources[i];
                    let b = input.byte();
                    let d = match b {
                        0 => 0,
                        255 => u64::MAX,
                        b => u64::from(b % 16) * STEP + op_no,
                    };
                    let dur = if d == u64::MAX {
                        Duration::MAX
                    } else {
                        Duration::from_nanos(d)
                    };
                    r.clock.cancel_after(src, dur);
                    m.cancel_after(s, d);
                }
            }
            16 => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    if let (Some(s), ref t) = r.tokens[i] {
                        m.states[s].refs += 1;
                        r.futs.push(Fut {
                            state: s,
                            fut: Box::pin(t.clone().cancelled_owned()),
                            wakes: Arc::new(CountWaker::default()),
                            attached: false,
                        });
                    }
                }
            }
            17 => {
                if let Some(i) = input.pick(r.futs.len()) {
                    let f = &mut r.futs[i];
                    let waker = Waker::from(f.wakes.clone());
                    let ready = f
                        .fut
                        .as_mut()
                        .poll(&mut Context::from_waker(&waker))
                        .is_ready();
                    let cancelled = m.states[f.state].reason.is_some();
                    assert_eq!(ready, cancelled, "future readiness");
                    if !ready && m.can_be_cancelled(f.state) {
                        f.attached = true;
                    }
                }
            }
            18 => {
                if let Some(i) = input.pick(r.futs.len()) {
                    let f = r.futs.swap_remove(i);
                    let s = f.state;
                    drop(f);
                    m.release(s);
                }
            }
            // Observe a token.
            _ => {
                if let Some(i) = input.pick(r.tokens.len()) {
                    let (s, ref t) = r.tokens[i];
                    let (cancelled, reason, can, deadline) = match s {
                        Some(s) => (
                            m.states[s].reason.is_some(),
                            m.states[s].reason.clone(),
                            m.can_be_cancelled(s),
                            m.has_deadline(s),
                        ),
                        None => (false, None, false, false),
                    };
                    assert_eq!(t.is_cancelled(), cancelled, "is_cancelled");
                    assert_eq!(t.check().is_err(), cancelled, "check");
                    assert_eq!(reason_of(t), reason, "reason");
                    assert_eq!(t.can_be_cancelled(), can, "can_be_cancelled");
                    assert_eq!(t.deadline().is_some(), deadline, "deadline");
                    assert_eq!(t.wait_timeout(Duration::ZERO), cancelled, "wait_timeout(0)");
                }
            }
        }
        // After every operation: which callbacks ran, in what order.
        let got = std::mem::take(&mut *r.log.lock().unwrap());
        let want = std::mem::take(&mut m.log);
        assert_eq!(got, want, "callbacks run by operation {op_no} (op {op})");
        // Every attached future whose source is cancelled was woken once.
        for f in &r.futs {
            let want = usize::from(f.attached && m.states[f.state].reason.is_some());
            assert_eq!(f.wakes.0.load(SeqCst), want, "wake-ups of a future");
        }
        let armed = m
            .states
            .iter()
            .filter(|s| s.alive && s.deadline.is_some())
            .count();
        assert_eq!(r.clock.armed(), armed, "armed timeouts");
    }
    // Tear down in a scrambled order; the model must end with nothing alive.
    let mut turn = 0u8;
    while !r.futs.is_empty() || !r.regs.is_empty() || r.tokens.len() > 1 || !r.sources.is_empty() {
        turn = turn.wrapping_add(1);
        match input.byte().wrapping_add(turn) % 4 {
            0 if !r.futs.is_empty() => {
                let f = r.futs.pop().unwrap();
                m.release(f.state);
            }
            1 if !r.regs.is_empty() => {
                let (id, reg) = r.regs.pop().unwrap();
                drop(reg);
                m.unregister(id);
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
            _ => {}
        }
        assert_eq!(
            r.clock.armed(),
            m.states
                .iter()
                .filter(|s| s.alive && s.deadline.is_some())
                .count()
        );
    }
    assert!(r.log.lock().unwrap().is_empty(), "teardown ran no callback");
    assert!(
        m.states.iter().all(|s| !s.alive),
        "the model freed everything"
    );
    assert_eq!(r.clock.armed(), 0);
}
