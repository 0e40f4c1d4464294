//! Timer accuracy per clock (issue #5 item 7, issue #6): the default timer
//! thread, tokio's timer (`Timer::tokio`), tokio's own `sleep_until` as a
//! reference, and embassy-time's clock (`time::embassy::timer`) on the host.
//!
//! Arms N timeouts with `CancellationSource::with_timeout`, deadlines spread
//! evenly over `SPREAD` after a lead (`LEAD`; `LONG_LEAD` for 100,000, so that
//! arming is over before the first deadline), registers on each a callback that
//! records `Instant::now()`, and reports how late each callback ran relative
//! to its deadline: min / median / p99 / max per N.
//!
//! The deadline is taken as `Instant::now()` just before `with_timeout` plus
//! the timeout, so it is at most the duration of that call earlier than the
//! timer's own deadline: the lateness shown is never an underestimate.
//! N = 1 is repeated `SINGLE_ROUNDS` times (one timeout armed at a time) so
//! that it has a distribution too.
//!
//! The same runs (same N, leads, spread, rounds, and the same deadline and
//! callback) are then made on the other clocks, each with its own runs:
//!
//! - `tokio`: `Timer::tokio(&handle).with_timeout(timeout)` on a
//!   multi-thread tokio runtime (`enable_time`, not paused), whose one driver
//!   task cancels the sources; the callback runs on a runtime worker.
//! - `tokio-sleep` (reference, no cancel-core timer): one task per timeout,
//!   spawned on the same runtime, that awaits `tokio::time::sleep_until` of
//!   the deadline and then records `Instant::now()`. It shows what tokio's
//!   timer wheel (1 ms resolution) costs by itself.
//! - `embassy`: `cancel_core::time::embassy::timer()`'s timer, on
//!   embassy-time's `std` driver (1 µs ticks; an alarm thread of its own,
//!   sleeping in a `Condvar::wait_timeout` until the earliest
//!   `embassy_time::Timer` due, which wakes that timer's task). The
//!   cancel-core driver task (`Driver::run`) is polled by
//!   `futures::executor::block_on` on a thread of its own, and the callbacks
//!   run there. So each firing takes two thread wake-ups: the alarm thread's
//!   and then the driver thread's. Measured after the tokio runtime is gone.
//!   embassy's `Instant::now()` counts whole microseconds (rounded down), so
//!   its timer's deadline can be up to 1 µs before the one measured against.
//!
//! The default timer thread runs first, before the tokio runtime exists, so
//! its numbers stay comparable to the runs made before the other clocks.
//!
//! Prints a table per clock and writes
//! `$CARGO_TARGET_DIR/cancel-core-bench/timer_accuracy.json` (default
//! `target/`): `runs` are the default timer thread's (as before), `clocks`
//! lists every clock with its runs. `CANCEL_CORE_BENCH_QUICK=1` runs fewer
//! N = 1 rounds.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cancel_core::time::Timer;
use cancel_core::{CancellationSource, Registration};

const LEAD: Duration = Duration::from_millis(50);
const LONG_LEAD: Duration = Duration::from_millis(500);
const SPREAD: Duration = Duration::from_millis(200);

fn quick() -> bool {
    std::env::var("CANCEL_CORE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// What arms the timeouts.
enum Clock {
    /// `CancellationSource::with_timeout`: the default timer thread.
    System,
    /// `Timer::tokio(..).with_timeout`: tokio's timer, one driver task.
    Tokio(Timer),
    /// A task per timeout awaiting `tokio::time::sleep_until` (reference).
    TokioSleep(tokio::runtime::Handle),
    /// `time::embassy::timer()`'s timer: embassy-time's std driver, its
    /// `Driver::run` polled on a thread of its own (feature `embassy-row`).
    #[cfg(feature = "embassy-row")]
    Embassy(Timer),
}

impl Clock {
    /// Short name, used in the JSON and the raw file names.
    fn id(&self) -> &'static str {
        match self {
            Clock::System => "system",
            Clock::Tokio(_) => "tokio",
            Clock::TokioSleep(_) => "tokio-sleep",
            #[cfg(feature = "embassy-row")]
            Clock::Embassy(_) => "embassy",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Clock::System => "default timer thread (CancellationSource::with_timeout)",
            Clock::Tokio(_) => "tokio timer (Timer::tokio(&handle).with_timeout)",
            Clock::TokioSleep(_) => "reference: tokio::time::sleep_until, a task per timeout",
            #[cfg(feature = "embassy-row")]
            Clock::Embassy(_) => {
                "embassy-time (std driver, host): time::embassy::timer(), Driver::run in block_on"
            }
        }
    }
}

struct Run {
    /// Lateness of every timeout that fired, in nanoseconds (negative: early).
    lateness_ns: Vec<i64>,
    armed: usize,
    /// Time spent arming (with_timeout + register) all N timeouts.
    arm_time: Duration,
    /// Time from the start to the first deadline.
    lead: Duration,
    /// Whether arming was still going on when the first deadline came.
    overlapped: bool,
    /// The longest time between two consecutive firings (a pause of the
    /// timer thread, e.g. while it was not scheduled), for N > 1.
    max_gap: Duration,
}

/// Arms `n` timeouts at once on `clock` and waits for all of them.
fn run(clock: &Clock, n: usize, lead: Duration, spread: Duration) -> Run {
    let base = Instant::now();
    // Callbacks must be 'static; a leaked slice of slots is the simplest.
    let slots: &'static [AtomicU64] = Box::leak(
        (0..n)
            .map(|_| AtomicU64::new(0))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let mut sources: Vec<CancellationSource> = Vec::with_capacity(n);
    let mut registrations: Vec<Registration> = Vec::with_capacity(n);
    let mut tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut deadlines: Vec<Instant> = Vec::with_capacity(n);
    let arm_start = Instant::now();
    for (i, slot) in slots.iter().enumerate() {
        // Fixed deadlines (base + lead + i/n of the spread), however long
        // arming takes; the timeout passed is what is left of it.
        let target = base + lead + spread.mul_f64(i as f64 / n as f64);
        let before = Instant::now();
        let timeout = target.saturating_duration_since(before);
        let record = move || {
            // +1 so that 0 means "not fired".
            slot.store(base.elapsed().as_nanos() as u64 + 1, Ordering::Release);
        };
        let source = match clock {
            Clock::System => CancellationSource::with_timeout(timeout),
            Clock::Tokio(timer) => timer.with_timeout(timeout),
            #[cfg(feature = "embassy-row")]
            Clock::Embassy(timer) => timer.with_timeout(timeout),
            Clock::TokioSleep(handle) => {
                // The sleep's deadline is exactly the one measured against
                // (not `sleep(timeout)` taken when the task first runs).
                let deadline = tokio::time::Instant::from_std(before + timeout);
                tasks.push(handle.spawn(async move {
                    tokio::time::sleep_until(deadline).await;
                    record();
                }));
                deadlines.push(before + timeout);
                continue;
            }
        };
        deadlines.push(before + timeout);
        registrations.push(source.token().register(record));
        sources.push(source);
    }
    let arm_time = arm_start.elapsed();
    let overlapped = arm_start + arm_time > base + lead;
    let last = *deadlines.iter().max().unwrap();
    let now = Instant::now();
    if last > now {
        std::thread::sleep(last - now);
    }
    let give_up = Instant::now() + Duration::from_secs(5);
    while Instant::now() < give_up && slots.iter().any(|s| s.load(Ordering::Acquire) == 0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut lateness_ns = Vec::with_capacity(n);
    // `CANCEL_CORE_BENCH_TIMER_RAW=1`: also write each timeout's deadline and
    // firing time (µs since the start, in arming order) for a closer look.
    let mut raw = std::env::var_os("CANCEL_CORE_BENCH_TIMER_RAW").map(|_| String::new());
    for (slot, deadline) in slots.iter().zip(&deadlines) {
        let fired = slot.load(Ordering::Acquire);
        if let Some(raw) = raw.as_mut() {
            let at = (fired > 0).then(|| (fired - 1) as f64 / 1e3);
            raw.push_str(&format!(
                "{:.1} {}\n",
                (*deadline - base).as_secs_f64() * 1e6,
                at.map_or_else(|| "-".to_string(), |a| format!("{a:.1}"))
            ));
        }
        if fired == 0 {
            continue;
        }
        let at = base + Duration::from_nanos(fired - 1);
        let late = if at >= *deadline {
            (at - *deadline).as_nanos() as i64
        } else {
            -((*deadline - at).as_nanos() as i64)
        };
        lateness_ns.push(late);
    }
    let mut fired_at: Vec<u64> = slots
        .iter()
        .map(|s| s.load(Ordering::Acquire))
        .filter(|&t| t > 0)
        .collect();
    fired_at.sort_unstable();
    let max_gap = Duration::from_nanos(fired_at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0));
    if let Some(raw) = raw {
        let name = match clock {
            // The default timer's files keep their earlier names.
            Clock::System => format!("timer_raw_{n}.txt"),
            _ => format!("timer_raw_{}_{n}.txt", clock.id()),
        };
        common::write_result(&name, raw);
    }
    drop(registrations);
    drop(sources);
    for task in tasks {
        task.abort();
    }
    Run {
        lateness_ns,
        armed: n,
        arm_time,
        lead,
        overlapped,
        max_gap,
    }
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The runs of one clock: N = 1 (`single_rounds` rounds), 1,000 and
/// 100,000, as `(N, rounds, run)`.
fn measure(clock: &Clock, single_rounds: u64) -> Vec<(usize, u64, Run)> {
    let mut results = Vec::new();
    // N = 1: one timeout at a time, short timeouts, many rounds.
    {
        let mut all = Run {
            lateness_ns: Vec::new(),
            armed: 0,
            arm_time: Duration::ZERO,
            lead: Duration::ZERO,
            overlapped: false,
            max_gap: Duration::ZERO,
        };
        for round in 0..single_rounds {
            let r = run(
                clock,
                1,
                Duration::from_millis(5) + Duration::from_micros(137 * (round % 7)),
                Duration::ZERO,
            );
            all.lateness_ns.extend(r.lateness_ns);
            all.armed += r.armed;
            all.arm_time += r.arm_time;
            all.lead = all.lead.max(r.lead);
            all.overlapped |= r.overlapped;
        }
        results.push((1usize, single_rounds, all));
    }
    for n in [1_000usize, 100_000] {
        // Arming 100,000 takes ~0.1 s: a longer lead keeps it out of the
        // firing window, so that what is measured is the timer.
        let lead = if n > 10_000 { LONG_LEAD } else { LEAD };
        results.push((n, 1, run(clock, n, lead, SPREAD)));
    }
    results
}

/// Prints one clock's table and returns its runs as JSON objects, one per
/// line, indented by `indent`.
fn report(clock: &Clock, results: &[(usize, u64, Run)], indent: &str) -> String {
    println!("clock: {} [{}]", clock.label(), clock.id());
    println!(
        "{:>8} {:>7} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "N",
        "rounds",
        "fired",
        "min_us",
        "median_us",
        "p99_us",
        "max_us",
        "mean_us",
        "arm_ms",
        "gap_us"
    );
    let mut json = String::new();
    for (i, (n, rounds, r)) in results.iter().enumerate() {
        let mut sorted = r.lateness_ns.clone();
        sorted.sort_unstable();
        let us = |ns: i64| ns as f64 / 1_000.0;
        let (min, median, p99, max, mean) = if sorted.is_empty() {
            (0, 0, 0, 0, 0.0)
        } else {
            (
                sorted[0],
                percentile(&sorted, 50.0),
                percentile(&sorted, 99.0),
                sorted[sorted.len() - 1],
                sorted.iter().map(|&x| x as f64).sum::<f64>() / sorted.len() as f64,
            )
        };
        println!(
            "{:>8} {:>7} {:>8} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.2} {:>10.1}",
            n,
            rounds,
            sorted.len(),
            us(min),
            us(median),
            us(p99),
            us(max),
            mean / 1_000.0,
            r.arm_time.as_secs_f64() * 1e3,
            r.max_gap.as_secs_f64() * 1e6
        );
        json.push_str(&format!(
            "{indent}{{\"n\": {n}, \"rounds\": {rounds}, \"armed\": {}, \"fired\": {}, \
             \"min_us\": {:.1}, \"median_us\": {:.1}, \"p99_us\": {:.1}, \"max_us\": {:.1}, \
             \"mean_us\": {:.1}, \"arm_ms\": {:.3}, \"lead_ms\": {}, \
             \"arming_overlapped_firing\": {}, \"max_gap_us\": {:.1}}}{}\n",
            r.armed,
            sorted.len(),
            us(min),
            us(median),
            us(p99),
            us(max),
            mean / 1_000.0,
            r.arm_time.as_secs_f64() * 1e3,
            r.lead.as_millis(),
            r.overlapped,
            r.max_gap.as_secs_f64() * 1e6,
            if i + 1 == results.len() { "" } else { "," }
        ));
    }
    println!();
    json
}

fn main() {
    let single_rounds = if quick() { 20 } else { 100 };
    let mut clocks: Vec<(&'static str, &'static str, String)> = Vec::new();

    // The default timer thread first, alone: no runtime exists yet, as in
    // the runs made before the other clocks were measured.
    let system = Clock::System;
    let system_json = report(&system, &measure(&system, single_rounds), "        ");
    clocks.push((system.id(), system.label(), system_json.clone()));

    // tokio's timer, and its own sleep for reference, on one multi-thread
    // runtime (as many workers as cores) with its time driver, not paused.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_time()
        .build()
        .expect("a tokio runtime");
    for clock in [
        Clock::Tokio(Timer::tokio(runtime.handle())),
        Clock::TokioSleep(runtime.handle().clone()),
    ] {
        let runs = report(&clock, &measure(&clock, single_rounds), "        ");
        clocks.push((clock.id(), clock.label(), runs));
    }
    drop(runtime);

    // embassy-time's clock on its std driver (feature `embassy-row`). The
    // driver's epoch (and its alarm thread) start at the first
    // `embassy_time::Instant::now()`: made here, so that it is not part of
    // the first timeout's arming.
    #[cfg(feature = "embassy-row")]
    {
        let _ = embassy_time::Instant::now();
        let (timer, driver) = cancel_core::time::embassy::timer();
        let driver_thread = std::thread::Builder::new()
            .name("embassy-timeouts".into())
            .spawn(move || futures::executor::block_on(driver.run()))
            .expect("the embassy driver's thread");
        let embassy = Clock::Embassy(timer);
        let runs = report(&embassy, &measure(&embassy, single_rounds), "        ");
        clocks.push((embassy.id(), embassy.label(), runs));
        // The last handle of the timer (every source is gone): `run` ends.
        drop(embassy);
        driver_thread.join().expect("the embassy driver's thread");
    }

    let mut json = String::from("{\n  \"lead_ms\": ");
    json.push_str(&LEAD.as_millis().to_string());
    json.push_str(",\n  \"spread_ms\": ");
    json.push_str(&SPREAD.as_millis().to_string());
    // `runs`: the default timer thread's, as before the other clocks.
    json.push_str(",\n  \"runs\": [\n");
    json.push_str(&system_json.replace("        {", "    {"));
    json.push_str("  ],\n  \"clocks\": [\n");
    for (i, (id, label, runs)) in clocks.iter().enumerate() {
        json.push_str(&format!(
            "    {{\"clock\": \"{id}\", \"label\": \"{label}\", \"runs\": [\n{runs}      ]}}{}\n",
            if i + 1 == clocks.len() { "" } else { "," }
        ));
    }
    json.push_str("  ]\n}\n");
    let path = common::write_result("timer_accuracy.json", json);
    println!("wrote {}", path.display());
}
