//! [`Deadline`]: a point in time on one clock, as a value: what
//! `token.deadline()` returns, what `remaining()` hands to the next hop
//! (gRPC's `grpc-timeout`), what `cancel_at` arms. `no_std`, no allocation.

use core::fmt;
use core::time::Duration;

use super::{Timer, grpc};
use crate::raw::{StateRef, Ticks};
use crate::source::CancellationSource;
use crate::token::CancellationToken;

/// A point in time on one clock (a [`Timer`]'s): a source's armed deadline,
/// or one made with [`Timer::deadline_in`] (or, with `std`, from an
/// `Instant`).
///
/// ```
/// use std::time::Duration;
/// use cancel_core::ManualClock;
///
/// let clock = ManualClock::new();
/// let request = clock.with_timeout(Duration::from_secs(10));
/// clock.advance(Duration::from_secs(4));
/// let deadline = request.token().deadline().unwrap();
/// assert_eq!(deadline.remaining(), Duration::from_secs(6));
/// assert_eq!(deadline.to_grpc_timeout().as_str(), "6000000u");
/// ```
#[derive(Clone)]
pub struct Deadline {
    at: Ticks,
    timer: Timer,
}

impl Deadline {
    pub(crate) fn new(at: Ticks, timer: Timer) -> Self {
        Self { at, timer }
    }

    /// The deadline as time since its clock's epoch (the scale of
    /// [`Timer::now`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(clock.timer().deadline_in(Duration::from_secs(2)).since_epoch(), Duration::from_secs(3));
    /// ```
    pub fn since_epoch(&self) -> Duration {
        Duration::from_nanos(self.at)
    }

    /// The timer (clock) this deadline is on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_secs(1));
    /// assert_eq!(deadline.timer().now(), Duration::ZERO);
    /// ```
    pub fn timer(&self) -> &Timer {
        &self.timer
    }

    /// Time left until the deadline on its clock; zero once reached.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_secs(1));
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(deadline.remaining(), Duration::ZERO);
    /// ```
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.at.saturating_sub(self.timer.timeline().now()))
    }

    /// Whether the deadline is reached on its clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_secs(1));
    /// assert!(!deadline.is_expired());
    /// clock.advance(Duration::from_secs(1));
    /// assert!(deadline.is_expired());
    /// ```
    pub fn is_expired(&self) -> bool {
        self.timer.timeline().now() >= self.at
    }

    /// The earlier of two deadlines: compared exactly on one clock, by
    /// [`remaining`](Self::remaining) time across clocks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let timer = clock.timer();
    /// let soon = timer.deadline_in(Duration::from_secs(1));
    /// let late = timer.deadline_in(Duration::from_secs(9));
    /// assert_eq!(late.earliest(soon.clone()), soon);
    /// ```
    pub fn earliest(self, other: Deadline) -> Deadline {
        let other_first = if self.timer.same(&other.timer) {
            other.at < self.at
        } else {
            other.remaining() < self.remaining()
        };
        if other_first { other } else { self }
    }

    /// The time left, encoded as gRPC's `grpc-timeout` header value (see
    /// [`grpc::encode`]): what an outgoing call carries on.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_millis(250));
    /// assert_eq!(deadline.to_grpc_timeout().as_str(), "250000u");
    /// ```
    pub fn to_grpc_timeout(&self) -> grpc::GrpcTimeout {
        grpc::encode(self.remaining())
    }

    /// A new source that the deadline's timer cancels (reason `TimedOut`)
    /// when the deadline is reached; already cancelled if it is.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let deadline = clock.timer().deadline_in(Duration::from_secs(2));
    /// let source = deadline.source();
    /// clock.advance(Duration::from_secs(2));
    /// assert!(source.is_cancelled());
    /// ```
    pub fn source(&self) -> CancellationSource {
        let source = CancellationSource::new();
        source.cancel_at(self);
        source
    }
}

#[cfg(feature = "std")]
impl Deadline {
    /// A deadline at `at` on the default clock ([`Timer::system`]).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cancel_core::time::Deadline;
    /// let at = Instant::now() + Duration::from_secs(5);
    /// assert_eq!(Deadline::from_instant(at).to_instant(), at);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn from_instant(at: std::time::Instant) -> Deadline {
        Deadline::new(super::system::ticks_at(at), Timer::system())
    }

    /// The deadline `timeout` from now on the default clock.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::time::Deadline;
    /// let deadline = Deadline::after(Duration::from_secs(60));
    /// assert!(deadline.remaining() <= Duration::from_secs(60));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn after(timeout: Duration) -> Deadline {
        Timer::system().deadline_in(timeout)
    }

    /// The deadline as an `Instant`: exact on the default clock; on
    /// another clock, `Instant::now()` plus the time remaining on it. A
    /// deadline past what `Instant` can hold on this platform gives the
    /// furthest `Instant` found by halving the distance (never a panic).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cancel_core::CancellationSource;
    /// let at = Instant::now() + Duration::from_secs(30);
    /// let source = CancellationSource::with_deadline(at);
    /// assert_eq!(source.token().deadline().unwrap().to_instant(), at);
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn to_instant(&self) -> std::time::Instant {
        let (base, after) = if self.timer.is_system() {
            (super::system::epoch(), self.since_epoch())
        } else {
            (std::time::Instant::now(), self.remaining())
        };
        let mut after = after;
        loop {
            if let Some(at) = base.checked_add(after) {
                return at;
            }
            after /= 2;
        }
    }
}

#[cfg(feature = "std")]
impl From<std::time::Instant> for Deadline {
    fn from(at: std::time::Instant) -> Deadline {
        Deadline::from_instant(at)
    }
}

/// Equal when on the same clock at the same time.
impl PartialEq for Deadline {
    fn eq(&self, other: &Self) -> bool {
        self.timer.same(&other.timer) && self.at == other.at
    }
}

impl Eq for Deadline {}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("since_epoch", &self.since_epoch())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl CancellationToken {
    /// The earliest armed deadline of this token's source and of every
    /// source it is linked to, directly or through other links (Go's
    /// `Deadline`). `None` when no timer is armed anywhere up the links.
    ///
    /// Works without `std`. It is linear in the links (each state up the
    /// links is visited once per link that leads to it, shared ancestors
    /// of diamonds once). It allocates nothing up a chain of any depth, nor
    /// past a linked source with several parents while what lies above it
    /// is small (256 states); past that, a set of the states visited.
    ///
    /// Use it to hand the remaining time to something that takes a timeout
    /// of its own (a socket's read timeout, a deadline header of an RPC),
    /// or to skip work that cannot finish in time.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let parent = clock.with_timeout(Duration::from_secs(60));
    /// let child = parent.token().child();
    /// clock.cancel_after(&child, Duration::from_secs(3600));
    /// let deadline = child.token().deadline().unwrap();
    /// assert_eq!(deadline.remaining(), Duration::from_secs(60), "the parent's is earlier");
    /// ```
    pub fn deadline(&self) -> Option<Deadline> {
        deadline_walk(self.state(), &mut || {})
    }
}

impl CancellationSource {
    /// The earliest armed deadline of this source and of every source it
    /// is linked to; see [`CancellationToken::deadline`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::ManualClock;
    /// let clock = ManualClock::new();
    /// let source = clock.with_timeout(Duration::from_secs(5));
    /// assert_eq!(source.deadline().unwrap().remaining(), Duration::from_secs(5));
    /// ```
    pub fn deadline(&self) -> Option<Deadline> {
        deadline_walk(self.state(), &mut || {})
    }

    /// Arms (or re-arms) this source to be cancelled with reason
    /// `TimedOut` at `deadline`, on the deadline's own timer; the last
    /// call wins. A deadline already reached cancels now.
    ///
    /// Use it to carry a deadline received from elsewhere (a request's
    /// `grpc-timeout`, a parent operation's [`deadline`](Self::deadline))
    /// onto a new source.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::{CancellationSource, ManualClock};
    /// let clock = ManualClock::new();
    /// let server = CancellationSource::new();
    /// let request = server.child();
    /// request.cancel_at(&clock.timer().deadline_in(Duration::from_secs(1)));
    /// clock.advance(Duration::from_secs(1));
    /// assert!(request.reason().unwrap().is_timed_out());
    /// ```
    pub fn cancel_at(&self, deadline: &Deadline) {
        if self.is_cancelled() {
            return;
        }
        deadline.timer.arm_at(self, deadline.at);
    }
}

/// The set of states visited, for walks past a fan-in.
#[cfg(feature = "std")]
type Seen = std::collections::HashSet<usize>;
#[cfg(not(feature = "std"))]
type Seen = alloc::collections::BTreeSet<usize>;

/// Looks at past a fan-in before the walk gives up walking without a set
/// of the states visited (and starts over with one): enough for linked
/// sources with short ancestries, and a constant, so the walk stays linear.
const STEPS_WITHOUT_A_SET: usize = 256;

/// Parents waiting to be looked at, held inline by the walk without a set.
const INLINE_STACK: usize = 16;

/// The walk behind `deadline()`, in up to three parts, each linear:
/// - up the chain from `start` (each state one parent) it follows the one
///   parent, with no stack and no set: a chain cannot reach a state twice;
/// - at the first state with several parents (a fan-in) it walks on with
///   an inline stack and no set, for at most `STEPS_WITHOUT_A_SET` looks;
/// - past that budget (or with more parents waiting than fit inline) it
///   starts again from the fan-in with a stack and a set of the states
///   visited (allocated: the only allocation), looking at each state once
///   per link that leads to it. The states before the fan-in are its
///   descendants, so no later path leads back to them.
///
/// `step` is called once per look.
pub(crate) fn deadline_walk(start: &StateRef, step: &mut dyn FnMut()) -> Option<Deadline> {
    let mut earliest: Option<Deadline> = None;
    let mut state = start.clone();
    loop {
        step();
        look_at(&state, &mut earliest);
        let mut first = None;
        let mut several = false;
        state.for_each_parent(|parent| {
            if first.is_none() {
                first = Some(parent);
            } else {
                several = true;
            }
        });
        match first {
            None => return earliest,
            Some(parent) if !several => state = parent,
            Some(_) => break,
        }
    }
    // `state` is the first fan-in; it has been looked at.
    if let Some(found) = walk_without_a_set(&state, step) {
        return merge(earliest, found);
    }
    merge(earliest, walk_with_a_set(&state, step))
}

/// Notes `state`'s armed deadline, if any, in `earliest`.
fn look_at(state: &StateRef, earliest: &mut Option<Deadline>) {
    if let Some((at, timeline)) = state.armed_deadline() {
        let found = Deadline::new(at, Timer::from_timeline(timeline));
        *earliest = merge(earliest.take(), Some(found));
    }
}

fn merge(a: Option<Deadline>, b: Option<Deadline>) -> Option<Deadline> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.earliest(b)),
        (a, b) => a.or(b),
    }
}

/// The earliest deadline above `fan_in` (not counting its own), walked
/// with an inline stack and no set; `None` if that takes more than the
/// budget or the stack.
fn walk_without_a_set(fan_in: &StateRef, step: &mut dyn FnMut()) -> Option<Option<Deadline>> {
    let mut stack: [Option<StateRef>; INLINE_STACK] = core::array::from_fn(|_| None);
    let mut len = 0;
    let fits = core::cell::Cell::new(true);
    let push_parents =
        |state: &StateRef, stack: &mut [Option<StateRef>; INLINE_STACK], len: &mut usize| {
            state.for_each_parent(|parent| match stack.get_mut(*len) {
                Some(slot) => {
                    *slot = Some(parent);
                    *len += 1;
                }
                None => fits.set(false),
            });
        };
    push_parents(fan_in, &mut stack, &mut len);
    let mut earliest = None;
    let mut looks = 0;
    while len > 0 {
        looks += 1;
        if !fits.get() || looks > STEPS_WITHOUT_A_SET {
            return None;
        }
        len -= 1;
        let state = stack[len].take()?;
        step();
        look_at(&state, &mut earliest);
        push_parents(&state, &mut stack, &mut len);
    }
    fits.get().then_some(earliest)
}

/// The earliest deadline above `fan_in` (not counting its own), each state
/// looked at once per link that leads to it.
fn walk_with_a_set(fan_in: &StateRef, step: &mut dyn FnMut()) -> Option<Deadline> {
    let mut earliest = None;
    let mut seen = Seen::new();
    seen.insert(fan_in.addr());
    let mut todo: alloc::vec::Vec<StateRef> = alloc::vec::Vec::new();
    fan_in.for_each_parent(|parent| todo.push(parent));
    while let Some(state) = todo.pop() {
        step();
        if !seen.insert(state.addr()) {
            continue;
        }
        look_at(&state, &mut earliest);
        state.for_each_parent(|parent| todo.push(parent));
    }
    earliest
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn steps(token: &CancellationToken) -> (Option<Deadline>, usize) {
        let mut n = 0;
        let deadline = deadline_walk(token.state(), &mut || n += 1);
        (deadline, n)
    }

    /// Review finding 5: the walk deduplicated with `Vec::contains`,
    /// quadratic on a chain (4.5 s for 100,000 links). It looks at each
    /// state once per link that leads to it: linear. Counted in steps, on
    /// a chain of a million.
    #[test]
    fn the_deadline_walk_is_linear_in_the_links() {
        let n = if cfg!(miri) { 50 } else { 1_000_000 };
        let clock = ManualClock::new();
        let root = clock.with_timeout(Duration::from_secs(60));
        let mut chain = alloc::vec![root.token().child()];
        for _ in 1..n {
            let next = chain.last().unwrap().token().child();
            chain.push(next);
        }
        let (deadline, count) = steps(&chain.last().unwrap().token());
        assert_eq!(deadline.unwrap().remaining(), Duration::from_secs(60));
        assert_eq!(count, n + 1, "one step per state on a chain");
        // Dropped leaf first: each drop frees one state.
        while chain.pop().is_some() {}

        // Stacked diamonds: 2^layers paths, 4 links per layer.
        let layers = if cfg!(miri) { 4 } else { 40 };
        let mut top = root.token().child();
        let mut keep = alloc::vec::Vec::new();
        for _ in 0..layers {
            let left = top.token().child();
            let right = top.token().child();
            let bottom = CancellationSource::linked([&left.token(), &right.token()]);
            keep.push((top, left, right));
            top = bottom;
        }
        let (deadline, count) = steps(&top.token());
        assert!(deadline.is_some());
        // The walk without a set gives up after its budget; then the walk
        // with one looks at each state once per link.
        let most = STEPS_WITHOUT_A_SET + 4 * layers + 2;
        assert!(count <= most, "{count} steps for {layers} diamonds");
    }

    #[test]
    fn the_earliest_deadline_wins_across_links_and_clocks() {
        let a = ManualClock::new();
        let b = ManualClock::new();
        let left = a.with_timeout(Duration::from_secs(30));
        let right = b.with_timeout(Duration::from_secs(20));
        let both = CancellationSource::linked([&left, &right]);
        a.cancel_after(&both, Duration::from_secs(25));
        let deadline = both.token().deadline().unwrap();
        assert!(
            deadline.timer().same(&b.timer()),
            "the 20 s one, on clock b"
        );
        assert_eq!(deadline.remaining(), Duration::from_secs(20));
        b.advance(Duration::from_secs(1)); // right fires? no: 19 s left
        assert_eq!(
            both.deadline().unwrap().remaining(),
            Duration::from_secs(19)
        );
    }
}
