//! What the public types call: the operations on a counted state reference,
//! each a thin door into the protocol that implements it (`kinds/`,
//! `cancel.rs`). No protocol logic lives here.

#[cfg(feature = "alloc")]
use alloc::sync::Arc;

#[cfg(feature = "alloc")]
use super::cancel;
#[cfg(feature = "alloc")]
use super::kinds::boxed::{self, RawRegistration};
use super::kinds::link;
#[cfg(feature = "alloc")]
use super::kinds::timer::{self, NEVER, Ticks, Timeline};
use super::lifetime::StateRef;
#[cfg(feature = "alloc")]
use super::reason::CustomCause;
use super::reason::Reason;
use super::word::Origin;

impl StateRef {
    /// A new source's state: one reference, one source handle.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_source() -> Self {
        // SAFETY: a new state's one reference.
        unsafe { StateRef::from_raw(link::alloc_plain()) }
    }

    /// A new source's state, cancelled from birth with `reason`.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_cancelled(reason: &Reason, origin: Origin) -> Self {
        let this = Self::new_source();
        // A new state has no observer: nothing to drain.
        let claimed = this.get().claim(reason, origin);
        debug_assert!(claimed.is_some());
        drop(claimed);
        this
    }

    /// A new child linked to each of `parents` (none of them `none()`, no
    /// duplicates): one allocation holding the state and one link per parent.
    /// If a parent is already cancelled the child is born cancelled with that
    /// parent's reason and linked to nothing.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_linked(parents: &[&StateRef]) -> Self {
        for parent in parents {
            if let Some(reason) = parent.get().reason() {
                return Self::new_cancelled(&reason, Origin::Parent);
            }
        }
        if parents.is_empty() {
            return Self::new_source();
        }
        debug_assert!(parents.iter().all(|p| !p.is_none()));
        // SAFETY: the caller holds a reference to each parent.
        let this = unsafe { StateRef::from_raw(link::alloc(parents.iter().map(|p| p.ptr()))) };
        // SAFETY: just made, and held.
        if let Some(reason) = unsafe { link::attach_all(this.ptr()) } {
            // A parent was cancelled while linking: so is the child, unless
            // another parent's canceller got there first.
            cancel::cancel(&this, reason, Origin::Parent);
        }
        this
    }

    /// [`new_linked`](Self::new_linked) for one parent (`token.child()`),
    /// without the loops.
    #[cfg(feature = "alloc")]
    pub(crate) fn new_child(parent: &StateRef) -> Self {
        debug_assert!(!parent.is_none());
        if parent.is_cancelled() {
            return Self::new_linked(&[parent]);
        }
        // SAFETY: the caller holds a reference to the parent.
        let this = unsafe { StateRef::from_raw(link::alloc_one(parent.ptr())) };
        // SAFETY: just made, and held.
        if let Some(reason) = unsafe { link::attach_one(this.ptr()) } {
            // As in `new_linked`.
            cancel::cancel(&this, reason, Origin::Parent);
        }
        this
    }

    /// The poll: one Acquire load.
    #[inline(always)]
    pub(crate) fn is_cancelled(&self) -> bool {
        self.get().is_cancelled()
    }

    pub(crate) fn reason(&self) -> Option<Reason> {
        self.get().reason()
    }

    /// Whether anything can still cancel this state; see
    /// `link::can_be_cancelled`.
    pub(crate) fn can_be_cancelled(&self) -> bool {
        // SAFETY: we hold a reference.
        unsafe { link::can_be_cancelled(self.ptr()) }
    }

    #[cfg(feature = "alloc")]
    pub(crate) fn add_source(&self) {
        self.get().word.add_source();
    }

    /// A source handle's drop. When its reference is the state's last, the
    /// word's count of sources is left as it is: nobody is left to read it
    /// (only holders of a reference ask `can_be_cancelled`; a canceller or
    /// clock that takes a reference meanwhile with `try_acquire` never
    /// reads it), and the state dies with the handle. That saves the CAS
    /// loop of a child's or a request's source, usually dropped last.
    /// `Relaxed`: a stale count above one only costs the CAS; the count
    /// cannot rise from one except through `try_acquire`, as said.
    #[inline]
    #[cfg(feature = "alloc")]
    pub(crate) fn remove_source(&self) {
        if self.get().refs().load(crate::sync::Ordering::Relaxed) == 1 {
            return;
        }
        self.get().word.remove_source();
    }

    /// Cancels with `reason` (a `cancel*` call); see `cancel::cancel`.
    #[cfg(feature = "alloc")]
    pub(crate) fn cancel(&self, reason: Reason) -> bool {
        cancel::cancel(self, reason, Origin::Cancel)
    }

    /// Where the cancellation came from, if cancelled.
    pub(crate) fn origin(&self) -> Option<Origin> {
        self.get().origin()
    }

    /// Cancels with `reason`, returning every panic of the drain in order
    /// instead of resuming the first.
    #[cfg(feature = "std")]
    pub(crate) fn cancel_catching(
        &self,
        reason: Reason,
    ) -> (bool, alloc::vec::Vec<crate::unwind::Payload>) {
        cancel::cancel_catching(self, reason)
    }

    /// Registers `f`; see `CancellationToken::register`.
    #[cfg(feature = "alloc")]
    pub(crate) fn register<F: FnOnce() + Send + 'static>(&self, f: F) -> RawRegistration {
        boxed::register(self, f)
    }

    /// Blocks until cancelled or `deadline`; see `kinds/thread.rs`.
    #[cfg(feature = "std")]
    pub(crate) fn wait(&self, deadline: Option<std::time::Instant>) -> bool {
        super::kinds::thread::wait(self, deadline)
    }

    /// Arms this source to be cancelled at `deadline` on `timeline`, with
    /// `cause` as the reason (`TimedOut` if none), replacing any earlier
    /// arming: the last call wins. A deadline that has passed cancels at
    /// once; `NEVER` only disarms. The caller holds a source handle.
    #[cfg(feature = "alloc")]
    pub(crate) fn arm_timeout(
        &self,
        timeline: &Arc<Timeline>,
        deadline: Ticks,
        cause: Option<Arc<CustomCause>>,
    ) {
        if self.is_none() {
            return;
        }
        let expire = |cause| self.expire(cause);
        if deadline == NEVER {
            self.disarm_timeout();
            return;
        }
        if deadline <= timeline.now() {
            expire(cause);
            return;
        }
        // SAFETY: we hold a reference and the caller a source handle.
        if let Some(node) = unsafe { timer::timer_on(self.ptr(), timeline) } {
            let keep = cause.clone();
            let (armed, taken) = timeline.arm(self.get(), &node, deadline, cause);
            if !armed {
                // Reached since the check above (a concurrent advance).
                expire(keep);
            }
            // Last: an old cause's `Drop` may panic.
            drop(taken);
        }
    }

    /// Cancels as an expired timeout: with `cause` (`TimedOut` if none),
    /// origin `Timer`.
    #[cfg(feature = "alloc")]
    pub(crate) fn expire(&self, cause: Option<Arc<CustomCause>>) -> bool {
        let reason = cause.map_or(Reason::TimedOut, Reason::Custom);
        cancel::cancel(self, reason, Origin::Timer)
    }

    /// Disarms this source's timer, if it is armed; returns whether it was.
    /// The caller holds a source handle.
    #[cfg(feature = "alloc")]
    pub(crate) fn disarm_timeout(&self) -> bool {
        !self.is_none() && timer::disarm_source(self.get())
    }

    /// The time line this source's timer is on, if it has one.
    #[cfg(feature = "std")]
    pub(crate) fn timeline(&self) -> Option<Arc<Timeline>> {
        if self.is_none() {
            return None;
        }
        timer::timer(self.get()).map(|node| node.timeline().clone())
    }

    /// This state's armed deadline and its time line, if armed.
    #[cfg(feature = "alloc")]
    pub(crate) fn armed_deadline(&self) -> Option<(Ticks, Arc<Timeline>)> {
        if self.is_none() {
            return None;
        }
        let node = timer::timer(self.get())?;
        let timeline = node.timeline().clone();
        timeline.deadline_of(&node).map(|ticks| (ticks, timeline))
    }

    /// Calls `f` with a reference to each state this one was linked to
    /// (whether or not the link is still in the parent's list).
    #[cfg(feature = "alloc")]
    pub(crate) fn for_each_parent(&self, mut f: impl FnMut(StateRef)) {
        // SAFETY: we hold a reference; a link holds a reference to its
        // parent, so taking one more is sound.
        unsafe {
            link::for_each_parent(self.ptr(), |parent| {
                parent.as_ref().acquire();
                f(StateRef::from_raw(parent));
            });
        }
    }
}
