//! The loop of an async clock's driver task (tokio's, embassy's): fire what
//! is due, sleep until the next deadline or until an earlier one is armed,
//! repeat. One task per timer, whatever the number of timeouts.
//!
//! The task holds the timer weakly: once every `Timer` handle and every
//! armed source is gone, the clock is dropped, which wakes the task, and it
//! ends. If the task is dropped first (its runtime shut down), it stops the
//! timer: see the module docs of `time` for what its sources then do.

use alloc::sync::{Arc, Weak};
use core::future::{Future, poll_fn};
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;
use core::time::Duration;

use atomic_waker::AtomicWaker;

use super::{Clock, Timer};
use crate::raw::{self, Timeline};

/// "An earlier deadline was armed, or the timer is gone": set, then the
/// driver's waker woken.
#[derive(Default)]
pub(crate) struct Signal {
    waker: AtomicWaker,
    woken: AtomicBool,
}

impl Signal {
    fn wake(&self) {
        // Release/Acquire with the driver's swap: it sees the flag set by
        // the time it looks after being woken (the queue itself is read
        // under its lock).
        self.woken.store(true, Ordering::Release);
        self.waker.wake();
    }
}

/// A clock read by `now`, whose `wake_at` signals the driver task.
pub(crate) struct AsyncClock<N> {
    pub(crate) now: N,
    pub(crate) signal: Arc<Signal>,
}

impl<N: Fn() -> Duration + Send + Sync + 'static> Clock for AsyncClock<N> {
    fn now(&self) -> Duration {
        (self.now)()
    }

    fn wake_at(&self, _: Duration) {
        self.signal.wake();
    }
}

impl<N> Drop for AsyncClock<N> {
    /// The timer is gone: the driver wakes and ends.
    fn drop(&mut self) {
        self.signal.wake();
    }
}

/// Stops the timer if the driver task is dropped before its timer is gone.
struct StopOnDrop(Weak<Timeline>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(timeline) = self.0.upgrade() {
            Timer::from_timeline(timeline).stop();
        }
    }
}

/// The driver task's body. `sleep_until(at)` is the runtime's sleep until
/// `at` on the clock's scale. The stop guard is made here, outside the
/// `async` body, so that a task dropped before its first poll (a runtime
/// shut down at once) stops the timer too.
pub(crate) fn drive<S, F>(
    timer: Weak<Timeline>,
    signal: Arc<Signal>,
    sleep_until: S,
) -> impl Future<Output = ()>
where
    S: FnMut(Duration) -> F,
    F: Future<Output = ()>,
{
    let stop = StopOnDrop(timer.clone());
    run(timer, signal, sleep_until, stop)
}

async fn run<S, F>(timer: Weak<Timeline>, signal: Arc<Signal>, mut sleep_until: S, stop: StopOnDrop)
where
    S: FnMut(Duration) -> F,
    F: Future<Output = ()>,
{
    let _stop = stop;
    // The deadline the last sleep was for, if it ended by itself.
    let mut slept_until = None;
    loop {
        let next = {
            let Some(timeline) = timer.upgrade() else {
                return;
            };
            // A panicking callback was reported by the panic hook; like the
            // default timer thread, the driver goes on.
            #[cfg(feature = "std")]
            let next = raw::fire_due(&timeline, timeline.now(), &mut crate::unwind::drop_payload);
            #[cfg(not(feature = "std"))]
            let next = raw::fire_due(&timeline, timeline.now(), &mut |never| match never {});
            next
        };
        // A sleep that ended before its deadline (a clock coarser than the
        // runtime's sleep, or one rounding differently) would end at once
        // again: yield to the executor once before the next, so that the
        // driver never spins without letting other tasks run.
        if next.is_some() && next == slept_until {
            let mut yielded = false;
            poll_fn(|cx| {
                if yielded {
                    return Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
        }
        let mut sleep = pin!(next.map(|at| sleep_until(Duration::from_nanos(at))));
        slept_until = poll_fn(|cx| {
            signal.waker.register(cx.waker());
            if signal.woken.swap(false, Ordering::AcqRel) {
                return Poll::Ready(None);
            }
            match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(next),
                _ => Poll::Pending,
            }
        })
        .await;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::task::{Context, Waker};

    /// A clock that never moves: every deadline stays in the future.
    struct Frozen;

    impl Clock for Frozen {
        fn now(&self) -> Duration {
            Duration::ZERO
        }
        fn wake_at(&self, _: Duration) {}
    }

    /// A sleep that ends before its deadline (a clock coarser than the
    /// runtime's sleep, or rounding the other way) must not make the
    /// driver spin inside one poll: it yields to the executor once between
    /// two such sleeps. Without that yield, this poll never returns (the
    /// sleep counter's assertion fails instead of hanging).
    #[test]
    fn a_sleep_that_ends_early_makes_the_driver_yield_not_spin() {
        let timer = Timer::new(Frozen);
        let _armed = timer.with_timeout(Duration::from_secs(1));
        let signal = Arc::new(Signal::default());
        let mut sleeps = 0;
        let driver = drive(Arc::downgrade(timer.timeline()), signal, |_| {
            sleeps += 1;
            assert!(sleeps <= 8, "the driver spins on a sleep that ends early");
            core::future::ready(())
        });
        let mut driver = alloc::boxed::Box::pin(driver);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(driver.as_mut().poll(&mut cx).is_pending(), "it yielded");
        assert!(driver.as_mut().poll(&mut cx).is_pending(), "and again");
        drop(driver);
        assert!(timer.is_stopped(), "a driver dropped stops its timer");
    }
}
