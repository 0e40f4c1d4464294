//! embassy-time as a clock (feature `embassy-time`, `no_std`): timeouts on
//! the program's own time driver, fired by one task the program spawns.
//! The program provides what embassy-time always needs: a time driver
//! (its HAL's), and a timer queue (embassy-executor's integrated one, or
//! embassy-time's `generic-queue-*` feature). With embassy-executor (not a
//! dependency here, so this is not compiled):
//!
//! ```text
//! #[embassy_executor::task]
//! async fn timeouts(driver: cancel_core::time::embassy::Driver) {
//!     driver.run().await
//! }
//!
//! let (timer, driver) = cancel_core::time::embassy::timer();
//! spawner.spawn(timeouts(driver)).unwrap();
//! let request = timer.with_timeout(core::time::Duration::from_millis(500));
//! ```

use alloc::sync::{Arc, Weak};
use core::time::Duration;

use super::Timer;
use super::drive::{AsyncClock, Signal, drive};
use crate::raw::Timeline;

/// A timer on embassy-time's clock (`embassy_time::Instant`, time since
/// boot), and the [`Driver`] that fires its timeouts once spawned as a
/// task. Make one per program and share the timer (clones are cheap).
///
/// ```
/// use core::time::Duration;
/// # embassy_time::MockDriver::get().reset();
/// let (timer, driver) = cancel_core::time::embassy::timer();
/// let source = timer.with_timeout(Duration::from_millis(500));
/// # let mut pool = futures::executor::LocalPool::new();
/// # use futures::task::LocalSpawnExt;
/// # pool.spawner().spawn_local(driver.run()).unwrap();
/// # pool.run_until_stalled();
/// # embassy_time::MockDriver::get().advance(embassy_time::Duration::from_millis(500));
/// # pool.run_until_stalled();
/// assert!(source.reason().unwrap().is_timed_out());
/// ```
pub fn timer() -> (Timer, Driver) {
    let signal = Arc::new(Signal::default());
    let timer = Timer::new(AsyncClock {
        now: || Duration::from_nanos(ticks_to_nanos(embassy_time::Instant::now().as_ticks())),
        signal: signal.clone(),
    });
    let driver = Driver {
        timeline: Arc::downgrade(timer.timeline()),
        signal,
    };
    (timer, driver)
}

/// The task that fires an embassy [`timer`]'s timeouts: spawn
/// [`run`](Self::run) once. It ends when every handle of its timer and
/// every source armed on it are gone; dropped before that, it stops the
/// timer (see [the module docs](crate::time)).
pub struct Driver {
    timeline: Weak<Timeline>,
    signal: Arc<Signal>,
}

impl Driver {
    /// Fires the timer's timeouts as they come due, sleeping on
    /// `embassy_time::Timer::at` in between.
    pub async fn run(self) {
        drive(self.timeline, self.signal, |at: Duration| {
            embassy_time::Timer::at(embassy_time::Instant::from_ticks(nanos_to_ticks(at)))
        })
        .await
    }
}

/// Nanoseconds at the start of tick `ticks` (rounded down: the time has
/// reached at least this).
fn ticks_to_nanos(ticks: u64) -> u64 {
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(embassy_time::TICK_HZ);
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

/// The first tick at or after `at` (rounded up: a deadline between two
/// ticks is reached at the later one; rounding down woke the driver before
/// its deadline, to sleep "until" a moment already reached, and spin:
/// seventh review). So `ticks_to_nanos(nanos_to_ticks(at)) >= at`.
fn nanos_to_ticks(at: Duration) -> u64 {
    let ticks = at
        .as_nanos()
        .saturating_mul(u128::from(embassy_time::TICK_HZ))
        .div_ceil(1_000_000_000);
    u64::try_from(ticks).unwrap_or(u64::MAX)
}

impl core::fmt::Debug for Driver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Driver").finish_non_exhaustive()
    }
}
