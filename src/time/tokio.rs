//! tokio's timer as a clock (feature `tokio`): `Timer::tokio(&handle)`.
//! Time is the runtime's (`tokio::time::Instant`), so a paused test clock
//! (`start_paused`, `tokio::time::advance`) drives these timeouts too; one
//! driver task on the runtime fires them.

use alloc::sync::Arc;
use core::time::Duration;

use super::Timer;
use super::drive::{AsyncClock, Signal, drive};

/// tokio sleeps up to about 30 years; a later deadline is slept towards in
/// steps of this, counted from now (the driver wakes, finds nothing due,
/// sleeps again).
const LONGEST_SLEEP: Duration = Duration::from_secs(86_400 * 365 * 30);

impl Timer {
    /// A timer on tokio's clock: its time is the runtime's
    /// (`tokio::time::Instant`), and one task spawned on `handle` fires its
    /// timeouts. Under a paused clock (`#[tokio::test(start_paused = true)]`,
    /// `tokio::time::pause`) its timeouts fire when the runtime's time
    /// reaches them, as tokio's own sleeps do; the default timer thread
    /// knows nothing of a paused clock.
    ///
    /// Make one per runtime and share it (clones are cheap); its task ends
    /// once every handle and every source armed on it is gone. When the
    /// runtime shuts down the timer stops (see [the module docs](crate::time)).
    ///
    /// # Panics
    /// If the runtime was built without its time driver (`enable_time`),
    /// as tokio's own `sleep` does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cancel_core::time::Timer;
    ///
    /// let runtime = tokio::runtime::Builder::new_current_thread()
    ///     .enable_time()
    ///     .start_paused(true)
    ///     .build()
    ///     .unwrap();
    /// runtime.block_on(async {
    ///     let timer = Timer::tokio(&tokio::runtime::Handle::current());
    ///     let request = timer.with_timeout(Duration::from_secs(3600));
    ///     // Paused: an hour passes at once, as soon as every task is idle.
    ///     request.cancelled().await;
    ///     assert!(request.reason().unwrap().is_timed_out());
    /// });
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
    pub fn tokio(handle: &tokio::runtime::Handle) -> Timer {
        let epoch = {
            let _context = handle.enter();
            // Fails here, clearly, if the runtime has no timer.
            drop(tokio::time::sleep(Duration::ZERO));
            tokio::time::Instant::now()
        };
        let signal = Arc::new(Signal::default());
        let runtime = handle.clone();
        let timer = Timer::new(AsyncClock {
            now: move || {
                // The runtime's clock, also from threads outside it.
                let _context = runtime.enter();
                tokio::time::Instant::now().saturating_duration_since(epoch)
            },
            signal: signal.clone(),
        });
        handle.spawn(drive(
            Arc::downgrade(timer.timeline()),
            signal,
            move |at: Duration| {
                // From now, not from the epoch: a clock 30 years past its
                // epoch would otherwise sleep until a moment already gone,
                // and spin (seventh review).
                let cap = tokio::time::Instant::now() + LONGEST_SLEEP;
                let until = epoch.checked_add(at).map_or(cap, |at| at.min(cap));
                tokio::time::sleep_until(until)
            },
        ));
        timer
    }
}
