#!/usr/bin/env python3
"""Writes docs/benchmarks.md and docs/benchmarks.svg from a benchmark run.

Reads (python3 standard library only):
  target/criterion/**/new/estimates.json   criterion medians (benches/ops.rs)
  target/cancel-core-bench/memory.json      benches/memory.rs
  target/cancel-core-bench/timer_accuracy.json  benches/timer_accuracy.rs
                                            ("runs": the default timer thread;
                                            "clocks": every clock's runs)
  target/cancel-core-bench/callgrind.tsv    instruction counts (scripts/bench.sh)
  target/cancel-core-bench/analysis.md      optional hand-written findings,
                                            pasted into the report if present

benches/ is the workspace member cancel-core-benches; its results are under
the workspace's target/ (the root's), and benches/instruction_history.tsv is
read from the source tree.

Usage: scripts/bench_report.py [--command CMD] [--mode quick|full]
(`$CARGO_TARGET_DIR` is honoured, a relative one from the workspace root.)
"""

import argparse
import datetime
import html
import json
import math
import os
import platform
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
if not os.path.isabs(TARGET):
    TARGET = os.path.join(ROOT, TARGET)
CRITERION = os.path.join(TARGET, "criterion")
OUT = os.path.join(TARGET, "cancel-core-bench")
DOCS = os.path.join(ROOT, "docs")

OURS = "cancel-core"
TOKIO = "tokio-util"
FLAG = "atomic-bool+event-listener"
CT = "cancellation-token"
ARC = "arc-clone-drop"
IMPLS = [OURS, TOKIO, FLAG, CT]

# (criterion group, label, per-element count N (times shown per element) or
#  None, target ratio ours/tokio-util or None)
OPS = [
    ("is_cancelled_1t", "`is_cancelled`, 1 thread", None, 0.15),
    ("is_cancelled_2t", "`is_cancelled`, 2 threads on one token", None, 0.02),
    ("token_clone_drop", "token clone + drop", None, None),
    ("source_new_drop", "source create + drop", None, None),
    ("child_new_drop", "child create + drop (live parent)", None, 0.50),
    ("register_unregister", "callback register + unregister (drop)", None, None),
    ("cancelled_future_poll_drop", "`cancelled()` create + first poll + drop", None, 0.50),
    ("cancel_pending_1", "cancel, 1 pending future (per waiter)", 1, 1.00),
    ("cancel_pending_1000", "cancel, 1,000 pending futures (per waiter)", 1000, 1.00),
    ("cancel_pending_100000", "cancel, 100,000 pending futures (per waiter)", 100000, 1.00),
    ("cancel_children_10000", "cancel a parent of 10,000 children (per child)", 10000, 0.50),
    ("cancel_chain_100000", "cancel a chain 100,000 deep (per level)", 100000, 1.00),
    ("child_new_drop_2t", "child create + drop, 2 threads, one parent", None, None),
    ("child_new_drop_8t", "child create + drop, 8 threads, one parent (2 cores)", None, None),
]

BYTES_PER_CHILD_TARGET = 64

# Profiles of the narrowest targets on the core of commit df3c176 (src tree
# below). Printed only for targets that the current run misses or meets by
# less than 10 %; re-profile after changing the core (commands below).
FINDINGS_SRC_TREES = {"038b2f4", "17ea648", "c7f0f00"}  # `git rev-parse --short HEAD:src` (then: a doc comment; the review fixes, same hot loop)
FINDINGS_HEADER = """\
Profiled on the final core with `perf record -e cpu-clock -F 20000` (the VM
has no hardware counters) and `perf annotate` on the drivers in
`benches/instructions.rs` (e.g. `instructions cancel_pending_1000
cancel-core 5000`), and with callgrind. History, for the record: the first
version of the core missed four targets (cancel with N pending futures at
~3.9, 10,000 children at 1.4) because it issued locked read-modify-write
operations per node (each `lock cmpxchg` costs ~20 cycles here and drains
the store buffer; callgrind counts it as one instruction). They went, in
order: one-CAS claim with the lock kept into the drain, no RMW per waiter
(2aceaac); unlock by a plain store (ae2261c); leaf children claimed under
the parent's lock with no reference (17d303a); a run of waiters cut off the
list in one step with a `MaybeUninit` wake batch (409be11); a dying child's
own list retired without its lock once it has left its parents' lists
(409be11)."""

FINDINGS = [
    (["is_cancelled_2t"], """\
**`is_cancelled` with 2 threads.** Not a core problem: cancel-core is one
`Acquire` load (8 instructions per loop iteration under callgrind, against 7
for a bare `AtomicBool`: one more dependent load, token → state → word), and
with two threads it stays within 1–2.7× of the bare `AtomicBool`. The ratio
is set by how contended tokio-util's mutex gets, i.e. by how often the two
threads really run at the same time on this shared 2-core VM. Re-run on an
idle machine before drawing conclusions."""),
    (["child_new_drop"], """\
**child create + drop.** Six locked RMWs per child lifetime: the parent's
`refs` increment for the link and the parent's lock CAS to push it (create);
the child's source count CAS, its `refs` decrement, the parent's lock CAS to
unlink, the parent's `refs` decrement (drop). A seventh, the dying child's
own lock around retiring its list, went in 409be11 (ratio ~0.47 → ~0.41):
once the child has taken each parent's lock nothing can reach it. callgrind:
~425 instructions against tokio-util's 709 (0.60). What is left is the parent
reference of the link (two RMWs on a shared counter, also what the 2- and
8-thread rows pay for) and the two counts of the child (source handles in
the word, references in `refs`)."""),
    (["cancelled_future_poll_drop"], """\
**`cancelled()` create + first poll + drop.** Four locked instructions: the
bit-lock CAS in `attach_waiter` (first poll) and in `detach_waiter` (drop);
the unlocks are plain stores. tokio-util also takes its mutex twice (poll,
drop); cancel-core wins on everything else (callgrind: 190 against 358
instructions)."""),
    (["cancel_pending_1", "cancel_pending_1000", "cancel_pending_100000"], """\
**cancel with N pending futures, per waiter.** No locked RMW and no unlink
per waiter: under one lock hold the drain walks the run of waiters at the
front (up to 32), reads `next`, moves the waker into a `MaybeUninit` batch
on its stack and stores DONE, then cuts the run off with one write to the
head. callgrind: ~32 instructions per waiter in `cancel` against
tokio-util's 39.5 (~0.81; it was 48.7 before 409be11). The wall-time ratio
sits higher and moves more (0.85–0.99 across the runs of the final core)
because the loop is bound by memory and calls, not instructions: perf annotate of `state::drain` puts ~31 % of its samples on
the return from each `Waker::wake` (an indirect call, which tokio-util makes
too) and ~26 % on the two dependent loads of the pointer chase (the node's
`next`, then the next node's kind: the first touch of a cold node, each
future being its own allocation). Walking order does not explain the gap:
polling the futures in reverse so that the list runs in ascending address
order changed the time per waiter by ≤ 5 % (2.64–2.70 against 2.73–2.88 ns).
The two faster peers avoid the chase rather than shorten it:
cancellation-token keeps its waker slots in a slab (contiguous), and the
event-listener idiom's listener nodes are separate 56-byte allocations
walked in allocation order."""),
    (["cancel_children_10000"], """\
**cancel of a parent with 10,000 children.** A leaf child (nothing listed,
no other parent, the common case) is claimed while the parent's lock is
still held and finished on the spot: one CAS on the child's word, no
reference and no parent relock (17d303a), against ~5 locked RMWs per child
for tokio-util. callgrind: ~86–95 instructions per child against 164."""),
]


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def load_criterion():
    """{(group, function): median ns per iteration}"""
    medians = {}
    if not os.path.isdir(CRITERION):
        return medians
    for dirpath, _dirs, files in os.walk(CRITERION):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        est = read_json(os.path.join(dirpath, "estimates.json"))
        meta = read_json(os.path.join(dirpath, "benchmark.json"))
        if not est or not meta:
            continue
        key = (meta.get("group_id"), meta.get("function_id"))
        medians[key] = est["median"]["point_estimate"]
    return medians


def fmt_time(ns):
    if ns is None:
        return "—"
    if ns < 1:
        return "%.3g ps" % (ns * 1000) if ns * 1000 < 100 else "%.0f ps" % (ns * 1000)
    for unit, scale in (("ns", 1.0), ("µs", 1e3), ("ms", 1e6), ("s", 1e9)):
        v = ns / scale
        if v < 1000 or unit == "s":
            return ("%.3g %s" % (v, unit)) if v < 100 else ("%.0f %s" % (v, unit))
    return "%g ns" % ns


def fmt_ratio(r):
    if r is None:
        return "—"
    if r < 0.1:
        return "%.3f" % r
    return "%.3g" % r if r < 1 else "%.2f" % r


def margin(ratio, target):
    """How far a ratio is from its target, in words."""
    f = ratio / target
    if f <= 0.5:
        text = "%.1f× below the target" % (1 / f)
    elif f < 1:
        text = "%.0f %% below the target" % (100 * (1 - f))
    elif f < 2:
        text = "%.0f %% over the target" % (100 * (f - 1))
    else:
        text = "%.1f× the target" % f
    if abs(f - 1) < 0.10:
        text += "; within run-to-run noise, see the instruction counts"
    return text


def fmt_target(t):
    return "%.2f" % t


def verdict(ratio, target):
    """(met?, text)"""
    if ratio is None or target is None:
        return None, "—"
    if ratio <= target:
        return True, "**met** (%s)" % margin(ratio, target)
    return False, "**missed** (%s)" % margin(ratio, target)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                              cwd=ROOT).stdout.strip()
    except OSError:
        return ""


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": sh("nproc") or str(os.cpu_count()),
        "cpu": cpu or platform.processor() or "unknown",
        "rustc": sh("rustc -V"),
        "kernel": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": sh("git rev-parse --short HEAD"),
        "dirty": bool(sh("git status --porcelain -- src")),
        "src_tree": sh("git rev-parse --short HEAD:src"),
    }


def load_callgrind():
    """[(op, impl, instructions per op)] from callgrind.tsv, whose lines are
    either `op impl n1 ir1 n2 ir2` (two runs with different counts) or
    `op impl ir_per_op` (inclusive cost of the cancel function per element)."""
    rows = []
    path = os.path.join(OUT, "callgrind.tsv")
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if not parts or parts[0].startswith("#"):
                    continue
                if len(parts) == 3:  # op impl instructions-per-op
                    rows.append((parts[0], parts[1], float(parts[2])))
                    continue
                if len(parts) != 6:
                    continue
                op, imp, n1, ir1, n2, ir2 = parts
                n1, ir1, n2, ir2 = int(n1), int(ir1), int(n2), int(ir2)
                if n2 != n1:
                    rows.append((op, imp, (ir2 - ir1) / (n2 - n1)))
    except OSError:
        pass
    return rows


def record_history(m, mode, medians):
    """Appends this run's ratios to history.jsonl (once per distinct set of
    results) and returns {group: [ratios]} over the recorded runs made on the
    same, unmodified src/ tree."""
    ratios = {}
    for group, _label, _per, _target in OPS:
        ours, tokio = medians.get((group, OURS)), medians.get((group, TOKIO))
        if ours and tokio:
            ratios[group] = ours / tokio
    path = os.path.join(OUT, "history.jsonl")
    entries = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    key = m["src_tree"] + ("+dirty" if m["dirty"] else "")
    entry = {"date": m["date"], "mode": mode, "src": key, "ratios": ratios}
    if ratios and not any(e.get("ratios") == ratios for e in entries):
        entries.append(entry)
        os.makedirs(OUT, exist_ok=True)
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")
    runs = {}
    if m["dirty"]:
        for group, r in ratios.items():
            runs[group] = [r]
        return runs
    for e in entries:
        if e.get("src") != key:
            continue
        for group, r in e.get("ratios", {}).items():
            runs.setdefault(group, []).append(r)
    return runs


def write_svg(path, bars):
    """bars: [(label, ratio, target, met)] -> horizontal log-scale bar chart."""
    lo, hi = 0.01, 10.0
    left, right, top, row_h = 330, 40, 58, 26
    width = 900
    plot_w = width - left - right
    height = top + row_h * len(bars) + 50

    def x(v):
        v = min(max(v, lo), hi)
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = []
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' %
               (width, height, width, height))
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append('<text x="%d" y="20" font-size="15" font-weight="bold">'
               'cancel-core / tokio-util median time (log scale, lower is better)</text>' % 10)
    out.append('<text x="%d" y="38" fill="#555">bar: ratio; black tick: target; '
               'green: target met, red: missed, grey: no target; capped at %g..%g</text>'
               % (10, lo, hi))
    for tick in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10):
        tx = x(tick)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>' %
                   (tx, top - 6, tx, top + row_h * len(bars), "#333" if tick == 1 else "#ddd",
                    "1.5" if tick == 1 else "1"))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g</text>' %
                   (tx, top + row_h * len(bars) + 16, tick))
    out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">ratio cancel-core / '
               'tokio-util</text>' % (left + plot_w / 2, top + row_h * len(bars) + 34))
    for i, (label, ratio, target, met) in enumerate(bars):
        y = top + i * row_h
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' %
                   (left - 8, y + row_h / 2 + 4, html.escape(label)))
        if ratio is None:
            continue
        color = "#9e9e9e" if met is None else ("#2e7d32" if met else "#c62828")
        x0 = x(lo)
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>' %
                   (x0, y + 4, max(x(ratio) - x0, 1), row_h - 8, color))
        out.append('<text x="%.1f" y="%d" fill="#000">%s%s</text>' %
                   (x(ratio) + 4, y + row_h / 2 + 4, fmt_ratio(ratio),
                    "" if lo <= ratio <= hi else " (capped)"))
        if target is not None:
            tx = x(target)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" '
                       'stroke-width="3"/>' % (tx, y + 1, tx, y + row_h - 1))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


# The clocks of timer_accuracy.json's "clocks" (their "clock" ids), as
# named in the report; an unknown id is shown with the JSON's own label.
TIMER_CLOCKS = {
    "system": "default timer thread (`CancellationSource::with_timeout`)",
    "tokio": "tokio's timer (`Timer::tokio(&handle).with_timeout`)",
    "tokio-sleep": "reference: `tokio::time::sleep_until`, a task per timeout",
    "embassy": "embassy-time (std driver, host): `time::embassy::timer()`",
}


def write_timer_clocks(w, timer):
    """The "Timer accuracy per clock" table, from timer_accuracy.json's
    "clocks" (absent from files written before the other clocks: then
    nothing is written)."""
    clocks = timer.get("clocks")
    if not clocks:
        return
    w("### Timer accuracy per clock")
    w("")
    w("The measurement above (same N, leads, spread and rounds; lateness after the "
      "deadline of a callback registered on the source, recording `Instant::now()`) on "
      "each clock, in one run: the default timer thread first, before the tokio runtime "
      "exists. tokio's "
      "timer: `Timer::tokio` on a multi-thread runtime (`enable_time`, not paused), one "
      "driver task firing the timeouts, the callbacks running on a runtime worker. The "
      "reference row is no cancel-core timer: one task per timeout awaiting "
      "`tokio::time::sleep_until(deadline)`, then recording the time; tokio's timer wheel "
      "counts in whole milliseconds, which sets the floor of both tokio rows. N = 1 is "
      "repeated (%s rounds)." % ", ".join(sorted({
          str(r["rounds"]) for c in clocks for r in c.get("runs", []) if r["n"] == 1})))
    w("")
    if any(c.get("clock") == "embassy" for c in clocks):
        w("The embassy-time row is the crate's embassy clock on the host, after the tokio "
          "runtime is gone: embassy-time's `std` driver (1 µs ticks, an alarm thread of its "
          "own sleeping in `Condvar::wait_timeout` until the earliest `embassy_time::Timer` "
          "due), and the timer's `Driver::run` polled by `futures::executor::block_on` on a "
          "thread of its own, where the callbacks run: two thread wake-ups per firing (the "
          "alarm thread's, then the driver's). It shows the cost of the clock's driver task "
          "on a real-time embassy driver, not the latency on a microcontroller, whose driver "
          "is an interrupt of a hardware timer.")
        w("")
    w("| clock | N | median lateness | p99 lateness |")
    w("|---|---:|---:|---:|")
    for c in clocks:
        name = TIMER_CLOCKS.get(c.get("clock"), c.get("label") or c.get("clock") or "?")
        for r in c.get("runs", []):
            fired = ""
            if r.get("fired") != r.get("armed"):
                fired = " (%s of %s fired)" % (r.get("fired"), r.get("armed"))
            w("| %s | %s%s | %s | %s |" % (
                name, "{:,}".format(r["n"]), fired,
                fmt_time(r["median_us"] * 1e3), fmt_time(r["p99_us"] * 1e3)))
    w("")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--command", default="scripts/bench.sh")
    ap.add_argument("--mode", default=None, choices=["quick", "full"])
    ap.add_argument("--duration", default=None, help="wall time of the run")
    ap.add_argument("--load", default=None, help="load average around the run")
    args = ap.parse_args()
    mode = args.mode or ("quick" if os.environ.get("CANCEL_CORE_BENCH_QUICK") else "full")

    medians = load_criterion()
    m = machine()
    history = record_history(m, mode, medians)
    if not medians:
        print("bench_report: no criterion results under %s" % CRITERION, file=sys.stderr)
    memory = read_json(os.path.join(OUT, "memory.json"))
    timer = read_json(os.path.join(OUT, "timer_accuracy.json"))
    wake = read_json(os.path.join(OUT, "wake_latency.json"))
    callgrind = load_callgrind()

    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench_report.py` from the run below; do not edit by hand "
      "(re-run `scripts/bench.sh`). Source: `benches/` (issue #6).")
    w("")
    w("## Run")
    w("")
    w("| | |")
    w("|---|---|")
    w("| command | `%s` (%s mode%s) |" % (args.command, mode,
                                         ", %s" % args.duration if args.duration else ""))
    w("| machine | %s cores, %s |" % (m["nproc"], m["cpu"]))
    w("| rustc | `%s` |" % m["rustc"])
    w("| os | %s |" % m["kernel"])
    w("| commit | %s%s, %s |" % (m["commit"], " + uncommitted src/ changes" if m["dirty"] else "",
                                 m["date"]))
    if args.load:
        w("| load average (1, 5, 15 min) | %s |" % args.load)
    w("")
    w("The machine is shared and noisy (2 cores): medians are shown, and differences "
      "under ~20 % between two runs are within the noise. The instruction counts "
      "further down are the noise-free second opinion.")
    w("")

    targets_at = len(lines)

    # ---- operations
    w("## Operations: median time, ratio to tokio-util, targets")
    w("")
    w("Each row is one criterion group in which the implementations ran side by side. "
      "Time per operation; for the cancel rows, per waiter / child / level (the whole "
      "cancel divided by N). Ratio = cancel-core / tokio-util, lower is better. "
      "Multi-threaded rows: wall time of all threads divided by the calls each thread made. "
      "\"Runs\": the range of the ratio over every run recorded on this machine with the same "
      "src/ tree (`target/cancel-core-bench/history.jsonl`, quick and full runs alike), "
      "and their number.")
    w("")
    w("| operation | cancel-core | tokio-util | AtomicBool + event-listener | "
      "cancellation-token | ratio | runs | target | verdict |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    bars = []
    summary = []
    missed = set()
    for group, label, per, target in OPS:
        vals = {}
        for imp in IMPLS:
            v = medians.get((group, imp))
            vals[imp] = None if v is None else v / (per or 1)
        ratio = None
        if vals[OURS] is not None and vals[TOKIO] is not None:
            ratio = vals[OURS] / vals[TOKIO]
        met, text = verdict(ratio, target)
        hist = history.get(group, [])
        if target is not None and len(hist) >= 2:
            k = sum(1 for r in hist if r <= target)
            text += "; met in %d of %d recorded runs, median ratio %s" % (
                k, len(hist), fmt_ratio(sorted(hist)[len(hist) // 2]))
        spread = "—"
        if len(hist) > 1:
            spread = "%s–%s (%d)" % (fmt_ratio(min(hist)), fmt_ratio(max(hist)), len(hist))
        elif hist:
            spread = "(1)"
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt_time(vals[OURS]), fmt_time(vals[TOKIO]), fmt_time(vals[FLAG]),
            fmt_time(vals[CT]), fmt_ratio(ratio), spread,
            "≤ %s" % fmt_target(target) if target is not None else "—", text))
        short = label.replace("`", "")
        if ratio is not None:
            bars.append((short, ratio, target, met))
        elif group == "register_unregister" and vals[OURS] and vals[CT]:
            summary.append("register + unregister has no tokio-util counterpart (tokio-util "
                           "has no callbacks); against cancellation-token the ratio is %s."
                           % fmt_ratio(vals[OURS] / vals[CT]))
        if target is not None and ratio is not None:
            summary.append((label, ratio, target, met, hist))
            if not met or ratio / target >= 0.9:
                missed.add(group)  # missed, or met by less than 10 %
    w("")
    w("— : the implementation has no such operation (tokio-util and the AtomicBool idiom "
      "have no callbacks; the idiom has no children), or it cannot run it: "
      "cancellation-token cancels children by recursion, one native frame per level, "
      "so a 100,000-deep chain overflows the main thread's 8 MiB stack.")
    w("")
    for s in summary:
        if isinstance(s, str):
            w("- " + s)
    w("")

    # ---- memory
    # ---- shutdown scopes (issue 17): enter + leave against TaskTracker and Arc
    w("## Shutdown scopes: a unit of work entering and leaving")
    w("")
    w("`Shutdown::enter()` + dropping the `WorkGuard`, against tokio-util's "
      "`TaskTracker::token()` + drop (which also clones and drops the tracker's `Arc`: "
      "four locked read-modify-writes against our two) and an `Arc<u64>` clone + drop "
      "(two, and the floor the issue sets in instructions). Criterion group "
      "`work_enter_leave`; the instruction counts are the callgrind rows below.")
    w("")
    ours_t = medians.get(("work_enter_leave", OURS))
    tok_t = medians.get(("work_enter_leave", TOKIO))
    arc_t = medians.get(("work_enter_leave", ARC))
    irs = {(op, imp): ir for op, imp, ir in callgrind}
    ours_i = irs.get(("work_enter_leave", OURS))
    tok_i = irs.get(("work_enter_leave", TOKIO))
    arc_i = irs.get(("work_enter_leave", ARC))
    w("| measure | cancel-core | tokio-util `TaskTracker` | `Arc` clone + drop | ours / tokio-util | ours / `Arc` |")
    w("|---|---:|---:|---:|---:|---:|")
    def r(a, b):
        return fmt_ratio(a / b) if a is not None and b else "—"
    w("| median time | %s | %s | %s | %s | %s |" % (
        fmt_time(ours_t), fmt_time(tok_t), fmt_time(arc_t), r(ours_t, tok_t), r(ours_t, arc_t)))
    w("| instructions / op | %s | %s | %s | %s | %s |" % tuple(
        ["%.1f" % v if v is not None else "—" for v in (ours_i, tok_i, arc_i)]
        + [r(ours_i, tok_i), r(ours_i, arc_i)]))
    w("")
    if ours_t is not None and tok_t:
        met, text = verdict(ours_t / tok_t, 0.70)
        w("- Target ≤ 0.70 of `TaskTracker::token()` + drop (time): %s." % text)
    if ours_i is not None and arc_i:
        met, text = verdict(ours_i / arc_i, 1.50)
        w("- Target ≤ 1.50 × an `Arc` clone + drop (instructions): %s." % text)
        if not met:
            w("  Why, from the disassembly of the loop: the `Arc` pair is four instructions "
              "of work (`lock inc`, overflow branch, `lock dec`, zero branch). Ours is two "
              "locked RMWs too, plus what refusing work after shutdown costs: the enter is a "
              "load + `lock cmpxchg` + retry branch (a refused enter must not touch the count; "
              "see design.md, \"Shutdown scopes\"), a SHUTDOWN test, an overflow test, the "
              "`Result`'s null test, and the last-guard test (one compare). The closest "
              "alternative, a `fetch_add` enter that gives a refused unit back, would save "
              "two to four instructions (an estimate from the disassembly; not built: it "
              "needs a second bit to keep the completion exactly-once, since a give-back can "
              "reach zero after the scope completed); TaskTracker's token is never refused, "
              "which is why it has no such test. In time, both pairs are two locked RMWs: "
              "0.70 of TaskTracker is below the `Arc` floor on this machine.")
    w("")

    w("## Memory")
    w("")
    if memory:
        rows = memory["rows"]
        w("Heap bytes requested per object (`Layout::size`, without malloc's own "
          "overhead), with %d objects alive at once, so growth shared with a parent "
          "(tokio-util's children `Vec`, cancellation-token's slab) is included, amortized; "
          "plus the inline size of the handle or future. \"One\" is the heap growth for a "
          "single object made alone (a first child includes the parent's first `Vec` or "
          "slab allocation). Written by `benches/memory.rs`."
          % memory.get("objects_per_measurement", 0))
        w("")
        w("| object | implementation | heap bytes / object | allocations / object | "
          "inline bytes | one alone | what |")
        w("|---|---|---:|---:|---:|---:|---|")
        for r in rows:
            w("| %s | %s | %.1f | %.2f | %d | %s | %s |" % (
                r["item"], r["implementation"], r["heap_bytes"], r["allocations"],
                r["inline_bytes"],
                "—" if r["single_heap_bytes"] is None else r["single_heap_bytes"],
                r["note"]))
        w("")
        ours_child = [r for r in rows if r["item"] == "child" and r["implementation"] == OURS]
        tokio_child = [r for r in rows if r["item"] == "child" and r["implementation"] == TOKIO]
        if ours_child:
            b = ours_child[0]["heap_bytes"]
            tb = tokio_child[0]["heap_bytes"] if tokio_child else None
            ok = b <= BYTES_PER_CHILD_TARGET
            w("Target bytes per child ≤ %d (tokio-util 112): cancel-core %.0f bytes → %s%s." % (
                BYTES_PER_CHILD_TARGET, b,
                "**met** (%s)" % ("exactly at the target" if b == BYTES_PER_CHILD_TARGET
                                  else "%.0f bytes under" % (BYTES_PER_CHILD_TARGET - b))
                if ok else "**missed** by %.0f bytes" % (b - BYTES_PER_CHILD_TARGET),
                "; tokio-util measured %.1f here (its 112-byte node plus its slot in the "
                "parent's children `Vec`)" % tb if tb is not None else ""))
            summary.append(("bytes per child", b, BYTES_PER_CHILD_TARGET, ok, []))
            w("")
    else:
        w("(no memory.json: run `cargo bench -p cancel-core-benches --bench memory`)")
        w("")

    # ---- timer accuracy
    w("## Timer accuracy (default timer thread)")
    w("")
    if timer:
        w("How late each timeout's cancellation callback (registered on the source, "
          "recording `Instant::now()`) ran after its deadline, for N timeouts armed at once "
          "with `CancellationSource::with_timeout` on the default timer thread, deadlines "
          "spread evenly over %d ms after a lead (%d ms; 500 ms for 100,000 so that arming "
          "is over before the first deadline). N = 1 is repeated, one timeout at a time "
          "(5–6 ms timeouts). The deadline is `Instant::now()` taken just before "
          "`with_timeout` plus the timeout, so lateness is never underestimated. "
          "\"Longest pause\" is the longest time between two consecutive firings "
          "(the natural spacing is 200 µs at N = 1,000 and 2 µs at N = 100,000). "
          "Written by `benches/timer_accuracy.rs`." % (timer["spread_ms"], timer["lead_ms"]))
        w("")
        w("| N | rounds | fired | min | median | p99 | max | mean | time to arm all | "
          "longest pause |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in timer["runs"]:
            gap = r.get("max_gap_us")
            w("| %s | %d | %d / %d | %s | %s | %s | %s | %s | %.1f ms%s | %s |" % (
                "{:,}".format(r["n"]), r["rounds"], r["fired"], r["armed"],
                fmt_time(r["min_us"] * 1e3), fmt_time(r["median_us"] * 1e3),
                fmt_time(r["p99_us"] * 1e3), fmt_time(r["max_us"] * 1e3),
                fmt_time(r["mean_us"] * 1e3), r["arm_ms"],
                " (overlapped the first deadlines)" if r.get("arming_overlapped_firing") else "",
                "—" if not gap or r["n"] == 1 else fmt_time(gap * 1e3)))
        w("")
        big = [r for r in timer["runs"] if r["n"] > 1 and r.get("max_gap_us")]
        if big:
            r = big[-1]
            if r["max_us"] < 1000:
                tail = ("the whole distribution stays under 1 ms, with no sign of the queue "
                        "falling behind its deadlines.")
            elif r["max_gap_us"] >= 0.5 * r["max_us"]:
                tail = ("the tail is the timer thread not running for that long (most likely "
                        "preempted: other jobs share the 2 cores; in earlier runs here such "
                        "pauses reached 3–6 ms), not the queue falling behind — lateness "
                        "drops back to the floor right after such a pause.")
            else:
                tail = "the tail is not one pause but the queue falling behind its deadlines."
            w("Reading it: the floor (min/median, tens of µs) is the wake-up latency of the "
              "timer thread's `park_timeout` (a futex timeout: kernel timer slack, 50 µs by "
              "default, plus the VM's scheduling). At N = %s the longest pause between two "
              "firings was %s against a maximum lateness of %s: %s Run with "
              "`CANCEL_CORE_BENCH_TIMER_RAW=1` for the per-timeout data." % (
                  "{:,}".format(r["n"]), fmt_time(r["max_gap_us"] * 1e3),
                  fmt_time(r["max_us"] * 1e3), tail))
            w("")
        write_timer_clocks(w, timer)
    else:
        w("(no timer_accuracy.json: run `cargo bench -p cancel-core-benches --bench timer_accuracy`)")
        w("")

    # ---- wake latency
    w("## Blocking and async waits: how promptly they return")
    w("")
    if wake:
        w("Time from `cancel()` on one thread to the return of a waiter parked on another "
          "(a thread in `token.wait()`, or `futures::executor::block_on(token.cancelled())`), "
          "i.e. the unpark plus the scheduling of the woken thread. The shutdown rows: from "
          "the last `WorkGuard`'s drop (after `shutdown()`) to the return of `scope.wait()` or "
          "of `block_on(scope.finished())`, beside tokio-util's `block_on(tracker.wait())` "
          "woken by its last token's drop (after `close()`). "
          "Written by `benches/wake_latency.rs`.")
        w("")
        w("| waiter | rounds | min | median | p99 | max |")
        w("|---|---:|---:|---:|---:|---:|")
        for r in wake["runs"]:
            w("| %s | %d | %s | %s | %s | %s |" % (
                r["waiter"], r["rounds"], fmt_time(r["min_us"] * 1e3), fmt_time(r["median_us"] * 1e3),
                fmt_time(r["p99_us"] * 1e3), fmt_time(r["max_us"] * 1e3)))
        w("")
    else:
        w("(no wake_latency.json: run `cargo bench -p cancel-core-benches --bench wake_latency`)")
        w("")

    # ---- callgrind
    w("## Instruction counts (callgrind)")
    w("")
    if callgrind:
        w("`valgrind --tool=callgrind` on `benches/instructions.rs`, run twice per row with "
          "different operation counts; the difference in instructions divided by the "
          "difference in counts is the cost of one operation (start-up and set-up cancel "
          "out; the loop and its `black_box` add ~6 instructions to every row). For the "
          "`cancel_*` rows: the inclusive instructions of the `cancel` call divided by the "
          "waiters or children it cancelled. Deterministic, unlike the "
          "times above, but blind to cache misses, atomic latency and contention: a locked "
          "read-modify-write counts as one instruction and costs ~20 cycles.")
        w("")
        w("| operation | implementation | instructions / op | ratio to tokio-util |")
        w("|---|---|---:|---:|")
        by = {(op, imp): ir for op, imp, ir in callgrind}
        for op, imp, ir in callgrind:
            t = by.get((op, TOKIO))
            w("| %s | %s | %.1f | %s |" % (op, imp, ir,
                                            fmt_ratio(ir / t) if t else "—"))
        w("")
    else:
        w("(not run: scripts/bench.sh runs it when valgrind is installed)")
        w("")
    history_tsv = os.path.join(ROOT, "benches", "instruction_history.tsv")
    if os.path.exists(history_tsv):
        notes, rows = [], []
        with open(history_tsv) as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("#"):
                    notes.append(line.lstrip("# "))
                elif line:
                    rows.append(line.split("\t"))
        header, body = rows[0], rows[1:]
        w("### Across core changes")
        w("")
        w(" ".join(notes) + " From `benches/instruction_history.tsv`; the last column "
          "compares the last two trees.")
        w("")
        w("| " + " | ".join(header) + " | change |")
        w("|---|" + "---:|" * (len(header) - 1) + "---:|")
        for r in body:
            before, after = float(r[-2]), float(r[-1])
            w("| " + " | ".join(r) + " | %+.1f %% |" % ((after / before - 1) * 100))
        w("")

    # ---- targets summary, placed right after the run description
    t = []
    t.append("## Targets")
    t.append("")
    t.append("![ratios cancel-core / tokio-util](benchmarks.svg)")
    t.append("")
    met_n = sum(1 for s in summary if not isinstance(s, str) and s[3])
    total = sum(1 for s in summary if not isinstance(s, str))
    t.append("%d of %d targets met in this run (ratio = cancel-core / tokio-util median "
             "time, lower is better; details in the sections below)." % (met_n, total))
    t.append("")
    for s in summary:
        if isinstance(s, str):
            continue
        label, ratio, target, met, runs = s
        if label == "bytes per child":
            t.append("- bytes per child: %.0f vs ≤ %d (tokio-util 112) → %s" % (
                ratio, target, ("met, exactly at the target" if ratio == target else "met")
                if met else "**missed** by %.0f bytes" % (ratio - target)))
            continue
        t.append("- %s: %s vs ≤ %s → %s, %s%s" % (
            label, fmt_ratio(ratio), fmt_target(target), "met" if met else "**missed**",
            margin(ratio, target),
            "" if len(runs) < 2 else " (met in %d of %d recorded runs, ratios %s–%s)" % (
                sum(1 for r in runs if r <= target), len(runs), fmt_ratio(min(runs)),
                fmt_ratio(max(runs)))))
    t.append("")
    lines[targets_at:targets_at] = t

    # Every profile note is printed: the narrow margins of one run are the
    # comfortable ones of another, and the notes say why a ratio is what it
    # is. Rows this run misses or meets by less than 10 % come first.
    notes = sorted(FINDINGS, key=lambda f: not missed.intersection(f[0]))
    if notes:
        w("## Where the time goes")
        w("")
        w(FINDINGS_HEADER)
        w("")
        if m["src_tree"] not in FINDINGS_SRC_TREES or m["dirty"]:
            w("*This run's src/ (tree %s%s) is not the profiled core: re-profile before "
              "acting on these notes.*" % (m["src_tree"], ", modified" if m["dirty"] else ""))
            w("")
        for _g, text in notes:
            w(text.strip())
            w("")

    analysis = os.path.join(OUT, "analysis.md")
    if os.path.exists(analysis):
        with open(analysis) as f:
            w(f.read().rstrip())
            w("")

    w("## Reproduce")
    w("")
    w("```sh")
    w("scripts/bench.sh --quick   # whole suite: ~1 minute on 2 cores, after the build")
    w("scripts/bench.sh           # longer criterion runs: ~5 minutes")
    w("cargo bench -p cancel-core-benches --bench ops -- child_new_drop   # one criterion group")
    w("cargo bench -p cancel-core-benches --bench memory --bench timer_accuracy")
    w("python3 scripts/bench_report.py --mode full   # rewrite this page from target/")
    w("```")
    w("")

    os.makedirs(DOCS, exist_ok=True)
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write("\n".join(lines))
    write_svg(os.path.join(DOCS, "benchmarks.svg"), bars)
    print("bench_report: wrote docs/benchmarks.md and docs/benchmarks.svg (%d of %d targets met)"
          % (met_n, total))


if __name__ == "__main__":
    main()
