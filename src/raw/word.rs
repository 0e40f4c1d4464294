//! The state word: one `AtomicUsize` per source holding the cancelled flag,
//! the list's bit lock, the reason's kind and the count of cancellers.
//!
//! ```text
//!  bit 0      CANCELLED   set once (with the reason kind), never cleared
//!  bit 1      LOCKED      the bit lock (bitlock.rs) guarding the source's list
//!  bit 2      HAS_LINKS   the state is a linked child (constant after creation)
//!  bits 3-4   REASON      kind of the reason, written with CANCELLED
//!  bits 5-6   ORIGIN      where the cancellation came from (this source's
//!                         cancel, its timer, a parent), written with CANCELLED
//!  bits 7..   SOURCES     cancellers: live `CancellationSource` handles, plus
//!                         one per armed timer (kinds/timer.rs)
//! ```
//!
//! This module knows nothing of lists or nodes: it offers loads, the
//! canceller count, and the lock "unless cancelled". The reason kind's
//! encoding lives here and nowhere else.

#[cfg(test)]
use super::bitlock::LOCKED;
use super::bitlock::{self, Locked};
use crate::sync::{AtomicUsize, Ordering};

pub(crate) const CANCELLED: usize = 1 << 0;
pub(crate) const HAS_LINKS: usize = 1 << 2;
const REASON_SHIFT: u32 = 3;
const REASON_MASK: usize = 0b11 << REASON_SHIFT;
const ORIGIN_SHIFT: u32 = 5;
const ORIGIN_MASK: usize = 0b11 << ORIGIN_SHIFT;
const SOURCE_SHIFT: u32 = 7;
pub(crate) const SOURCE_ONE: usize = 1 << SOURCE_SHIFT;

/// A reason's kind, as the REASON bits hold it (the custom cause itself is
/// kept beside the word, see `state.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReasonKind {
    Requested = 1,
    TimedOut = 2,
    Custom = 3,
}

impl ReasonKind {
    #[inline]
    const fn bits(self) -> usize {
        (self as usize) << REASON_SHIFT
    }

    /// The kind in a word with CANCELLED set.
    #[inline]
    pub(crate) fn of(w: usize) -> ReasonKind {
        match (w & REASON_MASK) >> REASON_SHIFT {
            2 => ReasonKind::TimedOut,
            3 => ReasonKind::Custom,
            _ => ReasonKind::Requested,
        }
    }
}

/// Where a cancellation came from, as the ORIGIN bits hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A `cancel*` call on this source.
    Cancel = 0,
    /// This source's own timeout expired (its timer fired, or it was
    /// armed with a deadline already reached).
    Timer = 1,
    /// A parent's cancellation, through a link.
    Parent = 2,
}

impl Origin {
    #[inline]
    const fn bits(self) -> usize {
        (self as usize) << ORIGIN_SHIFT
    }

    /// The origin in a word with CANCELLED set.
    #[inline]
    pub(crate) fn of(w: usize) -> Origin {
        match (w & ORIGIN_MASK) >> ORIGIN_SHIFT {
            1 => Origin::Timer,
            2 => Origin::Parent,
            _ => Origin::Cancel,
        }
    }
}

/// Whether anything counted in the word can still cancel: CANCELLED is set,
/// or a canceller (source handle or armed timer) is alive.
#[inline]
pub(crate) fn has_canceller(w: usize) -> bool {
    w & CANCELLED != 0 || w >> SOURCE_SHIFT != 0
}

#[derive(Debug)]
pub(crate) struct Word(AtomicUsize);

/// Proof that a word's bit lock is held; unlocks on drop.
pub(crate) type WordGuard<'a> = Locked<'a>;

impl Word {
    #[cfg(not(loom))]
    pub(crate) const fn new(bits: usize) -> Self {
        Self(AtomicUsize::new(bits))
    }

    #[cfg(loom)]
    pub(crate) fn new(bits: usize) -> Self {
        Self(AtomicUsize::new(bits))
    }

    /// The poll: one load. `Acquire` pairs with the `Release` that set
    /// CANCELLED, so whatever the canceller wrote before is visible.
    #[inline(always)]
    pub(crate) fn load(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    /// Adds a canceller. Like every change to the word, it waits while the
    /// lock is held: that lets the holder unlock with a plain store. The
    /// caller already holds one (or is creating the first), so the count
    /// cannot be seen passing through zero: `Relaxed`.
    #[cfg(feature = "alloc")]
    pub(crate) fn add_source(&self) {
        let old = self.update(|w| w + SOURCE_ONE, Ordering::Relaxed);
        if old >> SOURCE_SHIFT >= (usize::MAX >> SOURCE_SHIFT) - 1 {
            crate::sync::abort();
        }
    }

    /// Removes a canceller. `Release`: conservative (the count only feeds
    /// `can_be_cancelled`, a snapshot).
    #[cfg(feature = "alloc")]
    pub(crate) fn remove_source(&self) {
        self.update(|w| w - SOURCE_ONE, Ordering::Release);
    }

    #[cfg(feature = "alloc")]
    fn update(&self, f: impl Fn(usize) -> usize, order: Ordering) -> usize {
        match bitlock::cas_unlocked(&self.0, |_| false, f, order) {
            Ok(old) => old,
            Err(_) => unreachable!("an update that never gives up"),
        }
    }

    /// Takes the bit lock unconditionally.
    #[inline]
    pub(crate) fn lock(&self) -> WordGuard<'_> {
        match bitlock::lock_if(&self.0, |_| false, |w| w, Ordering::Acquire) {
            Ok(guard) => guard,
            Err(_) => unreachable!("a lock that never gives up"),
        }
    }

    /// Takes the bit lock unless the word is cancelled (then returns it,
    /// read with `Acquire`, so the reason is visible): the lock of every
    /// attach, so that a cancelled list accepts no new node.
    #[inline]
    pub(crate) fn lock_unless_cancelled(&self) -> Result<WordGuard<'_>, usize> {
        bitlock::lock_if(&self.0, |w| w & CANCELLED != 0, |w| w, Ordering::Acquire)
    }

    /// Takes the bit lock and sets CANCELLED with the reason's kind and the
    /// origin in one CAS, unless the word is already cancelled (then
    /// returns it). `AcqRel`: Acquire takes the lock; Release publishes
    /// everything the caller wrote before `cancel()` to whoever sees
    /// CANCELLED with Acquire.
    #[inline]
    pub(crate) fn lock_and_cancel(
        &self,
        kind: ReasonKind,
        origin: Origin,
    ) -> Result<WordGuard<'_>, usize> {
        bitlock::lock_if(
            &self.0,
            |w| w & CANCELLED != 0,
            |w| w | CANCELLED | kind.bits() | origin.bits(),
            Ordering::AcqRel,
        )
    }
}

/// Sets CANCELLED, the reason's kind and the origin in a word whose lock
/// `guard` holds (for a custom cause, written under the lock first).
/// `Release`, see [`Locked::set_bits`].
#[inline]
#[cfg(feature = "alloc")]
pub(crate) fn set_cancelled(guard: &WordGuard<'_>, kind: ReasonKind, origin: Origin) {
    guard.set_bits(CANCELLED | kind.bits() | origin.bits());
}

/// Whether a word says LOCKED.
#[cfg(test)]
fn is_locked(w: usize) -> bool {
    w & LOCKED != 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reason_kinds_round_trip_through_the_word() {
        for kind in [
            ReasonKind::Requested,
            ReasonKind::TimedOut,
            ReasonKind::Custom,
        ] {
            for origin in [Origin::Cancel, Origin::Timer, Origin::Parent] {
                let word = Word::new(SOURCE_ONE);
                let guard = word.lock_and_cancel(kind, origin).unwrap();
                drop(guard);
                let w = word.load();
                assert_eq!((ReasonKind::of(w), Origin::of(w)), (kind, origin));
            }
            let word = Word::new(SOURCE_ONE);
            let guard = word.lock_and_cancel(kind, Origin::Cancel).unwrap();
            drop(guard);
            let w = word.load();
            assert!(w & CANCELLED != 0 && !is_locked(w));
            assert_eq!(ReasonKind::of(w), kind);
            assert_eq!(w >> SOURCE_SHIFT, 1, "the count is untouched");
            assert_eq!(
                word.lock_and_cancel(ReasonKind::TimedOut, Origin::Timer)
                    .unwrap_err(),
                w
            );
            assert_eq!(word.lock_unless_cancelled().unwrap_err(), w);
        }
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn set_cancelled_under_a_plain_lock() {
        let word = Word::new(HAS_LINKS);
        let guard = word.lock_unless_cancelled().unwrap();
        set_cancelled(&guard, ReasonKind::Custom, Origin::Parent);
        assert!(is_locked(word.load()), "still locked until the guard drops");
        drop(guard);
        let w = word.load();
        assert_eq!(
            w,
            HAS_LINKS | CANCELLED | ReasonKind::Custom.bits() | Origin::Parent.bits()
        );
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn cancellers_are_counted() {
        let word = Word::new(SOURCE_ONE);
        assert!(has_canceller(word.load()));
        word.add_source();
        word.remove_source();
        word.remove_source();
        assert!(!has_canceller(word.load()), "no canceller, not cancelled");
        drop(
            word.lock_and_cancel(ReasonKind::Requested, Origin::Cancel)
                .unwrap(),
        );
        assert!(has_canceller(word.load()), "a cancelled word answers yes");
    }
}
