//! cancel-core's in-place cancellation on a Cortex-M3, with no allocator.
//!
//! The SysTick interrupt cancels a `static` `InplaceSource` on its
//! `CANCEL_AT_TICK`th tick. The one task, run by the small executor below,
//! has registered a pinned callback on the source's token and awaits
//! `token.cancelled()`; the callback runs inside the SysTick handler, the
//! handler's wake sets a flag, and the executor, asleep in `wfi`, polls the
//! task again. The task then checks what happened and exits QEMU with
//! success or failure (semihosting).
//!
//! Nothing here allocates: there is no `#[global_allocator]`, so a path that
//! needed one would not link.

#![no_std]
#![no_main]

use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use cancel_core::{InplaceSource, PinnedRegistration};
use cortex_m::peripheral::scb::{Exception, VectActive};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
// Prints the panic message over semihosting and exits with failure.
use panic_semihosting as _;

/// The source the interrupt handler cancels: in place, built at compile time.
static SHUTDOWN: InplaceSource = InplaceSource::new();

/// SysTick's period, in core clock cycles (24 bits at most).
const SYSTICK_RELOAD: u32 = 100_000;
/// The tick on which the handler cancels `SHUTDOWN`.
const CANCEL_AT_TICK: u32 = 3;
/// The tick on which the handler gives up (exits with failure) if the task
/// never finished: a lost wake-up ends the run instead of hanging QEMU.
const GIVE_UP_AT_TICK: u32 = 50;

// What happened, recorded where it happened (in the handler or the callback)
// for the task to check.
static TICKS: AtomicU32 = AtomicU32::new(0);
static CANCELLED_AT_TICK: AtomicU32 = AtomicU32::new(0);
static CANCEL_RETURNED_TRUE: AtomicBool = AtomicBool::new(false);
static CALLBACK_RAN: AtomicBool = AtomicBool::new(false);
static CALLBACK_IN_SYSTICK: AtomicBool = AtomicBool::new(false);
static CALLBACK_AT_TICK: AtomicU32 = AtomicU32::new(0);
static LATE_CALLBACK_RAN: AtomicBool = AtomicBool::new(false);

// ---------------------------------------------------------------------------
// The executor: one task, one flag.

/// Set by the waker (from any context, interrupt handlers included); cleared
/// by the executor before each poll.
static WOKEN: AtomicBool = AtomicBool::new(false);
/// How many times the executor polled the task, and slept.
static POLLS: AtomicU32 = AtomicU32::new(0);
static SLEEPS: AtomicU32 = AtomicU32::new(0);

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

fn clone(_: *const ()) -> RawWaker {
    RawWaker::new(core::ptr::null(), &VTABLE)
}

fn wake(_: *const ()) {
    // A single store: safe to do from an interrupt handler.
    WOKEN.store(true, Ordering::Release);
}

fn drop_waker(_: *const ()) {}

/// Runs `future` to completion, sleeping in `wfi` whenever it is pending and
/// nothing has woken it.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    // SAFETY: the vtable's functions ignore the data pointer and touch only
    // the `WOKEN` atomic, so every contract of `RawWaker` holds.
    let waker = unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) };
    let mut cx = Context::from_waker(&waker);
    WOKEN.store(true, Ordering::Relaxed); // the first poll
    loop {
        if WOKEN.swap(false, Ordering::Acquire) {
            POLLS.fetch_add(1, Ordering::Relaxed);
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            // A wake during that poll has set WOKEN again: poll once more.
            continue;
        }
        // Check and sleep with interrupts masked, so that a wake-up landing
        // between the check and `wfi` is not lost: a pending interrupt still
        // ends `wfi` while PRIMASK masks it, and its handler runs as soon as
        // the critical section ends.
        cortex_m::interrupt::free(|_| {
            if !WOKEN.load(Ordering::Acquire) {
                SLEEPS.fetch_add(1, Ordering::Relaxed);
                cortex_m::asm::wfi();
            }
        });
    }
}

// ---------------------------------------------------------------------------
// The interrupt side.

#[exception]
fn SysTick() {
    let tick = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    if tick == CANCEL_AT_TICK {
        // Runs the pending callback here, in the handler, then wakes the
        // task's waker (which only sets WOKEN).
        let first = SHUTDOWN.cancel();
        CANCEL_RETURNED_TRUE.store(first, Ordering::Relaxed);
        CANCELLED_AT_TICK.store(tick, Ordering::Release);
        hprintln!("SysTick {}: SHUTDOWN.cancel() -> {}", tick, first);
    } else {
        hprintln!("SysTick {}", tick);
    }
    if tick >= GIVE_UP_AT_TICK {
        hprintln!(
            "FAIL: {} ticks and the task has not finished; giving up",
            tick
        );
        debug::exit(EXIT_FAILURE);
    }
}

/// Whether the code calling this runs in the SysTick handler.
fn in_systick() -> bool {
    SCB::vect_active() == VectActive::Exception(Exception::SysTick)
}

// ---------------------------------------------------------------------------
// The task.

async fn task() -> bool {
    let token = SHUTDOWN.token();

    // A callback kept in place on this stack frame: no allocation. It runs in
    // the canceller's context, the SysTick handler.
    let mut registration = pin!(PinnedRegistration::new(token, || {
        CALLBACK_IN_SYSTICK.store(in_systick(), Ordering::Relaxed);
        CALLBACK_AT_TICK.store(TICKS.load(Ordering::Relaxed), Ordering::Relaxed);
        CALLBACK_RAN.store(true, Ordering::Release);
        hprintln!("callback ran");
    }));
    let pending = registration.as_mut().register();
    let cancelled_before = token.is_cancelled();
    hprintln!(
        "task: callback registered (pending: {}); cancelled: {}; awaiting token.cancelled()",
        pending,
        cancelled_before
    );

    let mut syst = start_systick();
    token.cancelled().await;
    // Stop the ticks: the output ends with the task's report, not with
    // more ticks interleaved between its lines.
    syst.disable_interrupt();
    syst.disable_counter();

    let cancelled_at = CANCELLED_AT_TICK.load(Ordering::Acquire);
    let callback_ran = CALLBACK_RAN.load(Ordering::Acquire);
    let reason = token.check();
    match &reason {
        Err(cancelled) => hprintln!(
            "task: cancelled after {} ticks; callback ran: {}; reason: {}",
            cancelled_at,
            callback_ran,
            cancelled
        ),
        Ok(()) => hprintln!(
            "task: woken after {} ticks, but check() is Ok",
            TICKS.load(Ordering::Relaxed)
        ),
    }

    // A registration made after the cancellation runs at once, here.
    let mut late = pin!(PinnedRegistration::new(token, || {
        LATE_CALLBACK_RAN.store(true, Ordering::Release);
    }));
    let late_pending = late.as_mut().register();
    let late_ran = LATE_CALLBACK_RAN.load(Ordering::Acquire);
    let second_cancel = SHUTDOWN.cancel();
    hprintln!(
        "task: late registration pending: {}, ran at once: {}; second cancel() -> {}",
        late_pending,
        late_ran,
        second_cancel
    );

    let polls = POLLS.load(Ordering::Relaxed);
    let sleeps = SLEEPS.load(Ordering::Relaxed);
    hprintln!("executor: {} polls, {} sleeps in wfi", polls, sleeps);

    let cancel_returned_true = CANCEL_RETURNED_TRUE.load(Ordering::Relaxed);
    let callback_in_systick = CALLBACK_IN_SYSTICK.load(Ordering::Relaxed);
    let callback_at = CALLBACK_AT_TICK.load(Ordering::Relaxed);
    let checks = [
        ("register() said pending", pending),
        ("not cancelled before the first tick", !cancelled_before),
        (
            "cancelled on tick CANCEL_AT_TICK",
            cancelled_at == CANCEL_AT_TICK,
        ),
        ("the handler's cancel() returned true", cancel_returned_true),
        ("the callback ran", callback_ran),
        (
            "the callback ran in the SysTick handler",
            callback_in_systick,
        ),
        (
            "the callback ran on that tick",
            callback_at == CANCEL_AT_TICK,
        ),
        (
            "is_cancelled() and check() agree",
            token.is_cancelled() && reason.is_err(),
        ),
        (
            "a late registration runs at once",
            !late_pending && late_ran,
        ),
        ("a second cancel() returns false", !second_cancel),
        // One poll before the cancellation, one after the wake: the ticks
        // before it did not make the executor poll.
        ("polled exactly twice", polls == 2),
        (
            "slept in wfi until the cancelling tick",
            sleeps >= CANCEL_AT_TICK,
        ),
    ];
    let mut ok = true;
    for (what, holds) in checks {
        if !holds {
            hprintln!("FAIL: {}", what);
            ok = false;
        }
    }
    ok
}

/// Starts SysTick: an interrupt every `SYSTICK_RELOAD` core cycles.
fn start_systick() -> SYST {
    // `take` hands out the core peripherals once; this is the only call.
    let mut syst = cortex_m::Peripherals::take().unwrap().SYST;
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(SYSTICK_RELOAD - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
    syst
}

#[entry]
fn main() -> ! {
    hprintln!("firmware: cancel-core InplaceSource on a Cortex-M3, no allocator");
    if block_on(task()) {
        hprintln!("firmware: all checks passed");
        debug::exit(EXIT_SUCCESS);
    } else {
        hprintln!("firmware: checks FAILED");
        debug::exit(EXIT_FAILURE);
    }
    // Not reached under QEMU; on a board without a debugger attached,
    // semihosting calls do not return (see docs/embedded.md).
    loop {
        cortex_m::asm::wfi();
    }
}
