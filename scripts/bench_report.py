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
  benches/evidence.md                       optional hand-written evidence for
                                            missed issue-14 targets, pasted
                                            under the targets (checked in)

The "Issue 15: embedding" section compares cancel-core's in-place source
with its heap source (the rows `cancel-core-inplace`), the generic rows
`generic_check` / `generic_guarded` (a function over `T: Token` for
NeverToken against the same body with no token), and the size of
`InplaceSource` (memory.json).

benches/ is the workspace member cancel-core-benches; its results are under
the workspace's target/ (the root's), and benches/instruction_history.tsv and
benches/evidence.md are read from the source tree.

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
# cancel-core's in-place source and token (issue 15): a column of its own,
# never counted as a peer.
INPLACE = "cancel-core-inplace"
TOKIO = "tokio-util"
CT = "cancellation-token"
STOP = "stop-token"
TRIG = "triggered"
ASD = "async-shutdown"
ABORT = "futures-abort"
SC = "stream-cancel"
ABOOL = "arc-atomic-bool"
FLAG = "atomic-bool+event-listener"
ARC = "arc-clone-drop"
# Column order of the tables (the bench names of benches/ops.rs and of
# benches/instructions.rs), and how the report names them.
IMPLS = [OURS, INPLACE, TOKIO, CT, STOP, TRIG, ASD, ABORT, SC, ABOOL, FLAG]
IMPL_NAMES = {
    OURS: "cancel-core",
    INPLACE: "cancel-core (in place)",
    TOKIO: "tokio-util",
    CT: "cancellation-token",
    STOP: "stop-token",
    TRIG: "triggered",
    ASD: "async-shutdown",
    ABORT: "futures `Abortable`",
    SC: "stream-cancel",
    ABOOL: "`Arc<AtomicBool>`",
    FLAG: "`AtomicBool` + event-listener",
}
# The chart's marker colours.
IMPL_COLORS = {
    OURS: "#000000",
    INPLACE: "#393b79",
    TOKIO: "#1f77b4",
    CT: "#ff7f0e",
    STOP: "#2ca02c",
    TRIG: "#9467bd",
    ASD: "#8c564b",
    ABORT: "#e377c2",
    SC: "#17becf",
    ABOOL: "#bcbd22",
    FLAG: "#7f7f7f",
}

# What each peer lacks (why a cell is "—"), printed under the tables.
LEFT_OUT = [
    (INPLACE, "cancel-core's own `InplaceSource` (on the stack) and its borrowed "
              "`InplaceToken`, in the rows of what it shares with the heap token; no "
              "children of its own (an in-place child is `InplaceChild`, not benchmarked here), no boxed callbacks, no "
              "owned (`'static`) futures, so no fan-out, children or chain rows beyond one "
              "pending future; see \"Issue 15: embedding\"."),
    (TOKIO, "no callbacks (register rows)."),
    (CT, "cancels children by recursion, one native frame per level: a 100,000-deep "
         "chain overflows the main thread's 8 MiB stack, so it is left out of the chain row."),
    (STOP, "no synchronous check (the `StopToken` is only a future), no children, no "
           "callbacks; the cancel is the `StopSource`'s drop (its sender closes the channel)."),
    (TRIG, "no children, no callbacks; the `Listener` is both the token and the future "
           "(a clone is one more waiter; its clone and drop take the mutex: the drop removes "
           "its entry from the `HashMap`)."),
    (ASD, "no children, no callbacks; the token is the `ShutdownManager` itself (an `Arc` "
          "clone), the future `wait_shutdown_triggered()`; `is_shutdown_triggered()` takes "
          "the mutex."),
    (ABORT, "one waiter per `AbortHandle`/`AbortRegistration` pair, so it is left out of "
            "the fan-out rows; its `cancelled()` row makes a pair per future (the shared "
            "state's allocation included); no children, no callbacks."),
    (SC, "no synchronous check (the `Tripwire` exposes none), no children, no callbacks; "
         "the `Tripwire` is the future (a clone; its first poll boxes a watch-changed "
         "future); the cancel is the `Trigger`'s drop."),
    (ABOOL, "polling only: `is_cancelled`, clone, create."),
    (FLAG, "no children, no callbacks."),
]

# (criterion group, label, per-element count N (times shown per element) or
#  None)
OPS = [
    ("is_cancelled_1t", "`is_cancelled`, 1 thread", None),
    ("is_cancelled_2t", "`is_cancelled`, 2 threads on one token", None),
    ("token_clone_drop", "token clone + drop", None),
    ("source_new_drop", "source create + drop", None),
    ("child_new_drop", "child create + drop (live parent)", None),
    ("register_unregister", "callback register + unregister (8-byte capture)", None),
    ("pinned_register_unregister",
     "pinned callback register + unregister (8-byte capture, no allocation)", None),
    ("cancelled_future_poll_drop", "`cancelled()` create + first poll + drop", None),
    ("cancel_pending_1", "cancel, 1 pending future", 1),
    ("cancel_pending_1000", "cancel, 1,000 pending futures (per waiter)", 1000),
    ("cancel_pending_100000", "cancel, 100,000 pending futures (per waiter)", 100000),
    ("cancel_pending_tasks_1000",
     "cancel, 1,000 pending futures, a real waker per task (per waiter)", 1000),
    ("cancel_pending_tasks_100000",
     "cancel, 100,000 pending futures, a real waker per task (per waiter)", 100000),
    ("cancel_children_10000", "cancel a parent of 10,000 children (per child)", 10000),
    ("cancel_chain_100000", "cancel a chain 100,000 deep (per level)", 100000),
    ("child_new_drop_2t", "child create + drop, 2 threads, one parent", None),
    ("child_new_drop_8t", "child create + drop, 8 threads, one parent (2 cores)", None),
]
OP_LABELS = {g: label for g, label, _ in OPS}

# Issue 14, wall clock: (criterion group, baseline impl, target ratio
# cancel-core / baseline, both in the same criterion run).
WALL_TARGETS = [
    ("child_new_drop", TOKIO, 0.40),
    ("cancelled_future_poll_drop", TOKIO, 0.40),
    ("cancel_pending_1000", TOKIO, 0.75),
    ("cancel_children_10000", TOKIO, 0.35),
    ("cancel_chain_100000", TOKIO, 0.25),
    ("is_cancelled_2t", ABOOL, 1.25),
]

# callgrind rows (benches/instructions.rs ops), in table order, with labels.
INSTR_OPS = [
    ("is_cancelled", "`is_cancelled`"),
    ("token_clone_drop", "token clone + drop"),
    ("child_new_drop", "child create + drop (live parent)"),
    ("register_unregister", "callback register + unregister (closure capturing nothing)"),
    ("register_unregister_capture8", "callback register + unregister (8-byte capture)"),
    ("pinned_register_unregister",
     "pinned callback register + unregister (closure capturing nothing, no allocation)"),
    ("cancelled_future_poll_drop", "`cancelled()` create + first poll + drop"),
    ("cancel_pending_1", "cancel, 1 pending future"),
    ("cancel_pending_1000", "cancel, 1,000 pending futures (per waiter)"),
    ("cancel_pending_tasks_1000", "cancel, 1,000 pending futures, a real waker per task (per waiter)"),
    ("cancel_children_10000", "cancel a parent of 10,000 children (per child)"),
    ("cancel_chain_100000", "cancel a chain 100,000 deep (per level)"),
]

# Issue 14, instructions per operation for cancel-core (callgrind op, target).
INSTR_TARGETS = [
    ("is_cancelled", 8),
    ("token_clone_drop", 16),
    ("child_new_drop", 352),
    ("register_unregister", 310),
    ("cancelled_future_poll_drop", 170),
    ("cancel_pending_1", 123),
    ("cancel_pending_1000", 18),
    ("cancel_children_10000", 83),
]

# Issue 14, bytes (memory.json item, label, measure, target): "total" is
# inline + heap, "heap" the heap bytes alone.
MEM_TARGETS = [
    ("pending future", "pending `cancelled()` future (inline + heap)", "total", 56),
    ("callback registration", "boxed callback, 8-byte capture (heap)", "heap", 48),
    ("child", "child of a live parent (heap)", "heap", 64),
]

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
    return "%.3g" % r if r < 0.995 else "%.2f" % r


def margin(ratio, target, noisy=True):
    """How far a ratio (or a count) is from its target, in words; `noisy`:
    a timed ratio, for which a margin under 10 % is called noise."""
    f = ratio / target
    if f == 1:
        return "exactly at the target"
    if f <= 0.5:
        text = "%.1f× below the target" % (1 / f)
    elif f < 1:
        text = "%.2g %% below the target" % (100 * (1 - f))
    elif f < 2:
        text = "%.2g %% over the target" % (100 * (f - 1))
    else:
        text = "%.1f× the target" % f
    if noisy and abs(f - 1) < 0.10:
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
    for group, _label, _per in OPS:
        ours, tokio = medians.get((group, OURS)), medians.get((group, TOKIO))
        if ours and tokio:
            ratios[group] = ours / tokio
    # Targets against another baseline than tokio-util: "group@baseline".
    for group, base, _target in WALL_TARGETS:
        ours, b = medians.get((group, OURS)), medians.get((group, base))
        if base != TOKIO and ours and b:
            ratios["%s@%s" % (group, base)] = ours / b
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


def write_svg(path, panels):
    """panels: [(title, rows)], rows: [(label, {impl: ratio}, target, met)]
    -> a dot plot: one row per operation, one marker per implementation at
    its ratio to tokio-util (log scale); cancel-core's marker is a larger
    diamond, green if its target is met, red if missed, black without one;
    a black tick marks the target."""
    lo, hi = 0.001, 100.0
    left, right, row_h = 390, 30, 22
    width = 1000
    plot_w = width - left - right
    legend_h = 20 * ((len(IMPLS) + 4) // 5)
    top = 50 + legend_h
    n_rows = sum(len(rows) + 2 for _title, rows in panels)
    height = top + row_h * n_rows + 40

    def x(v):
        v = min(max(v, lo), hi)
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = []
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">' %
               (width, height, width, height))
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append('<text x="10" y="20" font-size="15" font-weight="bold">'
               'Each implementation / tokio-util, same run (log scale, lower is better)</text>')
    out.append('<text x="10" y="38" fill="#555">cancel-core: large diamond (green: issue-14 '
               'target met, red: missed, black: no target); black tick: the target; '
               'capped at %g..%g</text>' % (lo, hi))
    for i, imp in enumerate(IMPLS):
        lx = 10 + (i % 5) * 195
        ly = 50 + (i // 5) * 20
        out.append('<circle cx="%d" cy="%d" r="5" fill="%s"/>' % (lx + 5, ly + 6, IMPL_COLORS[imp]))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 14, ly + 10, html.escape(imp)))
    y = top
    for title, rows in panels:
        out.append('<text x="10" y="%d" font-weight="bold">%s</text>' %
                   (y + row_h - 6, html.escape(title)))
        y += row_h
        y0 = y
        for tick in (0.001, 0.01, 0.1, 1, 10, 100):
            tx = x(tick)
            out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>' %
                       (tx, y0, tx, y0 + row_h * len(rows), "#333" if tick == 1 else "#ddd",
                        "1.5" if tick == 1 else "1"))
            out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%g</text>' %
                       (tx, y0 + row_h * len(rows) + 14, tick))
        for label, ratios, target, met in rows:
            cy = y + row_h / 2
            out.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>' %
                       (left - 8, cy + 4, html.escape(label)))
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#f0f0f0"/>' %
                       (left, cy, width - right, cy))
            if target is not None:
                tx = x(target)
                out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black" '
                           'stroke-width="3"/>' % (tx, y + 2, tx, y + row_h - 2))
            for imp in IMPLS:
                r = ratios.get(imp)
                if r is None or imp == OURS:
                    continue
                out.append('<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" fill-opacity="0.85">'
                           '<title>%s: %s</title></circle>' %
                           (x(r), cy, IMPL_COLORS[imp], html.escape(imp), fmt_ratio(r)))
            r = ratios.get(OURS)
            if r is not None:
                color = "#000000" if met is None else ("#2e7d32" if met else "#c62828")
                cx = x(r)
                out.append('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s">'
                           '<title>cancel-core: %s</title></polygon>' %
                           (cx, cy - 8, cx + 8, cy, cx, cy + 8, cx - 8, cy, color, fmt_ratio(r)))
            y += row_h
        y += row_h
    out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">ratio to tokio-util'
               '</text>' % (left + plot_w / 2, height - 10))
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


def fmt_ir(v):
    if v is None:
        return "—"
    return "{:,.1f}".format(v) if v < 100 else "{:,.0f}".format(v)


def cell(value, tokio, fmt):
    """`value (ratio to tokio-util)`, or — without a value."""
    if value is None:
        return "—"
    if tokio:
        return "%s (%s)" % (fmt(value), fmt_ratio(value / tokio))
    return fmt(value)


def evidence_notes():
    """benches/evidence.md without its heading lines, or None if it has no
    notes yet."""
    path = os.path.join(ROOT, "benches", "evidence.md")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    body = [ln for ln in text.splitlines()
            if not ln.startswith("#") and not ln.startswith("<!--") and ln.strip()]
    if not body:
        return None
    # The page gives the section its own heading: drop the file's title.
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("### Evidence"):
        lines = lines[1:]
    return "\n".join(lines).strip()


# Issue 15, the generic rows: (callgrind op, the function, what it does).
GENERIC_OPS = [
    ("generic_check", "`generic_sum_checked`",
     "a sum of 64 `u64`s with `token.check()?` per element"),
    ("generic_guarded", "`generic_sum_guarded`",
     "the same, inside a pinned `CallbackToken::callback` (registered, dropped) and "
     "one poll of `cancelled()` with the no-op waker"),
]
GENERIC_IMPLS = [("baseline", "no token (baseline)"), ("never-token", "`NeverToken`"),
                 (INPLACE, "`InplaceToken`"), (OURS, "`CancellationToken`")]
# Issue 15, the in-place rows beside the heap ones: (callgrind op, label).
INPLACE_INSTR_OPS = [
    ("is_cancelled", "`is_cancelled`"),
    ("token_clone_drop", "token clone + drop (the in-place token is `Copy`)"),
    ("pinned_register_unregister",
     "pinned callback register + unregister (on a heap token it owns a clone)"),
    ("cancelled_future_poll_drop", "`cancelled()` create + first poll + drop"),
    ("cancel_pending_1", "cancel, 1 pending future (the cancel alone)"),
    ("cancel_pending_1/round",
     "a round: source, 1 future polled, cancel, drop (heap: 3 allocations; in place: none)"),
]
INPLACE_WALL_GROUPS = ["is_cancelled_1t", "is_cancelled_2t", "pinned_register_unregister",
                       "cancelled_future_poll_drop"]
# Issue 15: `InplaceSource` on a 64-bit target, at most this many bytes.
INPLACE_SOURCE_MAX = 32


def issue15(w, irs, memory, medians):
    """The "Issue 15: embedding" section; returns (targets met, targets)."""
    verdicts = []
    w("## Issue 15: embedding (in-place source, generic code)")
    w("")
    w("The claims of issue 15 that benchmarks settle, each computed by "
      "`scripts/bench_report.py` from this run: polling an `InplaceToken` costs what "
      "polling a heap `CancellationToken` costs; generic code over `T: Token` "
      "instantiated for `NeverToken` runs exactly the instructions of the same body "
      "written without a token; an `InplaceSource` fits in %d bytes on 64-bit targets."
      % INPLACE_SOURCE_MAX)
    w("")
    w("| claim | measured | verdict |")
    w("|---|---|---|")

    def equal(a, b):
        return round(a, 1) == round(b, 1)

    heap, inplace = irs.get(("is_cancelled", OURS)), irs.get(("is_cancelled", INPLACE))
    if heap is None or inplace is None:
        w("| `InplaceToken::is_cancelled` = `CancellationToken::is_cancelled` (instructions) "
          "| not measured | — |")
    else:
        met = equal(heap, inplace)
        verdicts.append(met)
        w("| `InplaceToken::is_cancelled` = `CancellationToken::is_cancelled` (instructions "
          "per loop iteration) | in place %s, heap %s (difference %+.1f) | **%s** |" % (
              fmt_ir(inplace), fmt_ir(heap), inplace - heap, "MET" if met else "MISSED"))
    for op, fn, _what in GENERIC_OPS:
        base, never = irs.get((op, "baseline")), irs.get((op, "never-token"))
        claim = "%s over `NeverToken` = the body without a token (instructions per call)" % fn
        if base is None or never is None:
            w("| %s | not measured | — |" % claim)
            continue
        met = equal(base, never)
        verdicts.append(met)
        w("| %s | `NeverToken` %s, baseline %s (difference %+.1f) | **%s** |" % (
            claim, fmt_ir(never), fmt_ir(base), never - base, "MET" if met else "MISSED"))
    mrows = {(r["item"], r["implementation"]): r for r in memory["rows"]} if memory else {}
    src = mrows.get(("source", INPLACE))
    ptr = mrows.get(("token", OURS))  # a heap token is one pointer
    claim = "`size_of::<InplaceSource>()` ≤ %d B on 64-bit" % INPLACE_SOURCE_MAX
    if src is None:
        w("| %s | not measured | — |" % claim)
    elif ptr is not None and ptr["inline_bytes"] != 8:
        w("| %s | %d B on a %d-bit target | — (not a 64-bit target) |" % (
            claim, src["inline_bytes"], 8 * ptr["inline_bytes"]))
    else:
        v = src["inline_bytes"]
        met = v <= INPLACE_SOURCE_MAX
        verdicts.append(met)
        w("| %s | %d B | **%s** (%s) |" % (
            claim, v, "MET" if met else "MISSED",
            "exactly at the target" if v == INPLACE_SOURCE_MAX else
            ("%d B under" % (INPLACE_SOURCE_MAX - v) if met
             else "%d B over" % (v - INPLACE_SOURCE_MAX))))
    w("")
    w("**%d of %d issue-15 targets met in this run.**" % (sum(verdicts), len(verdicts)))
    w("")

    w("### Generic code over each token (callgrind)")
    w("")
    w("`benches/instructions.rs`: one `#[inline(never)]` generic function per row, "
      "instantiated for each token, and `generic_sum_baseline`, the same body with no "
      "token and the same result type. Only the instructions run inside the "
      "`generic_*` functions are counted (`--toggle-collect='instructions::generic_*'`, "
      "callees included; two call counts, the difference divided by the difference), so "
      "the caller's loop, its `black_box` and the passing of the token are not. Where "
      "LLVM finds the `NeverToken` instantiation identical to the baseline it may fold "
      "the two into one symbol: the equality then is of the same machine code.")
    w("")
    w("| function | " + " | ".join(name for _i, name in GENERIC_IMPLS) + " |")
    w("|---|" + "---:|" * len(GENERIC_IMPLS))
    for op, fn, what in GENERIC_OPS:
        w("| %s: %s | %s |" % (fn, what, " | ".join(
            fmt_ir(irs.get((op, imp))) for imp, _n in GENERIC_IMPLS)))
    w("")
    w("Instructions per call. A real token's `check()` is one `Acquire` load and a "
      "branch per element, which also keeps the loop from being vectorized; "
      "`NeverToken`'s is a constant `Ok(())`.")
    w("")

    w("### In place beside the heap")
    w("")
    w("The same operations on an `InplaceSource` on the stack (`cancel-core-inplace` in "
      "the drivers) and on a heap `CancellationSource`, instructions (callgrind), and, "
      "where `benches/ops.rs` has the group, criterion medians from the same run.")
    w("")
    w("| operation | heap | in place | difference |")
    w("|---|---:|---:|---:|")
    for op, label in INPLACE_INSTR_OPS:
        a, b = irs.get((op, OURS)), irs.get((op, INPLACE))
        if a is None and b is None:
            continue
        w("| %s | %s | %s | %s |" % (label, fmt_ir(a), fmt_ir(b),
                                     "—" if a is None or b is None else "%+.1f" % (b - a)))
    w("")
    wall = [(g, medians.get((g, OURS)), medians.get((g, INPLACE)))
            for g in INPLACE_WALL_GROUPS]
    wall = [row for row in wall if row[1] is not None or row[2] is not None]
    if wall:
        w("| criterion group | heap | in place | in place / heap |")
        w("|---|---:|---:|---:|")
        for g, a, b in wall:
            w("| %s | %s | %s | %s |" % (
                OP_LABELS.get(g, g), fmt_time(a), fmt_time(b),
                fmt_ratio(b / a) if a and b is not None else "—"))
        w("")

    w("### Sizes")
    w("")
    size_rows = [("source", "source"), ("token", "token"), ("pending future", "pending future"),
                 ("pinned callback registration",
                  "pinned callback registration, registered (8-byte capture)")]
    impls = [(OURS, "heap"), (INPLACE, "in place"), ("never-token", "`NeverToken`")]
    if mrows:
        w("From `benches/memory.rs`: inline bytes (`size_of`) + heap bytes per object.")
        w("")
        w("| object | " + " | ".join(n for _i, n in impls) + " |")
        w("|---|" + "---:|" * len(impls))
        for item, label in size_rows:
            cells = []
            for imp, _n in impls:
                r = mrows.get((item, imp))
                cells.append("—" if r is None else "%d + %.0f B" % (
                    r["inline_bytes"], r["heap_bytes"]))
            if any(c != "—" for c in cells):
                w("| %s | %s |" % (label, " | ".join(cells)))
        w("")
    else:
        w("(no memory.json: run `cargo bench -p cancel-core-benches --bench memory`)")
        w("")
    return sum(verdicts), len(verdicts)


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
    irs = {(op, imp): ir for op, imp, ir in callgrind}

    def per_elem(group, imp):
        v = medians.get((group, imp))
        per = next((p for g, _l, p in OPS if g == group), None)
        return None if v is None else v / (per or 1)

    lines = []
    w = lines.append
    w("# Benchmarks")
    w("")
    w("Generated by `scripts/bench_report.py` from the run below; do not edit by hand "
      "(re-run `scripts/bench.sh`). Source: `benches/` (issues #6 and #14).")
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
    w("| commit | %s%s, %s (src/ tree %s) |" % (
        m["commit"], " + uncommitted src/ changes" if m["dirty"] else "", m["date"],
        m["src_tree"]))
    if args.load:
        w("| load average (1, 5, 15 min) | %s |" % args.load)
    w("")
    w("The machine is shared and noisy (2 cores): medians are shown, and differences "
      "under ~20 % between two runs are within the noise. The instruction counts "
      "further down are the noise-free second opinion.")
    w("")
    w("Peers, each in every row where it has the operation (its nearest equivalent; "
      "\"—\" where it has none, see below the tables): tokio-util 0.7 "
      "`CancellationToken`; `cancellation-token` 0.1 (frozenlib); `stop-token` 0.7; "
      "`triggered` 0.1; `async-shutdown` 0.2 (`ShutdownManager`); futures-util's "
      "`AbortHandle` / `AbortRegistration` / `Abortable` (\"futures-abort\"); "
      "`stream-cancel` 0.8 (`Trigger` / `Tripwire`); and the hand-written minimums, "
      "an `Arc<AtomicBool>` (polling, clone) and an `AtomicBool` beside an "
      "event-listener `Event` (`benches/common/mod.rs`). Every implementation runs "
      "through its public API, in the same loop shape, with the same `black_box` use "
      "and the same set-up left out of the timing.")
    w("")

    # ---------------------------------------------------------------- targets
    summary = []  # (kind, label, measured text, target text, met)
    t = []
    t.append("## Targets of issue 14")
    t.append("")
    t.append("![every implementation / tokio-util](benchmarks.svg)")
    t.append("")
    t.append("Measured on this run's core (src/ tree %s%s); MET / MISSED is computed by "
             "`scripts/bench_report.py` from the data below." % (
                 m["src_tree"], ", modified" if m["dirty"] else ""))
    t.append("")
    t.append("### Instructions per operation (callgrind), cancel-core")
    t.append("")
    if callgrind:
        t.append("| operation | target | cancel-core | tokio-util | best peer | verdict |")
        t.append("|---|---:|---:|---:|---|---|")
        for op, target in INSTR_TARGETS:
            v = irs.get((op, OURS))
            peers = [(irs[(op, imp)], imp) for imp in IMPLS
                     if (op, imp) in irs and imp not in (OURS, INPLACE, ABOOL, FLAG)]
            best = min(peers) if peers else None
            label = dict(INSTR_OPS).get(op, op)
            if v is None:
                met, text = None, "not measured"
            else:
                met = v <= target
                text = "**%s** (%s)" % ("MET" if met else "MISSED", margin(v, target, noisy=False))
                summary.append(met)
            t.append("| %s | ≤ %s | %s | %s | %s | %s |" % (
                label, target, fmt_ir(v), fmt_ir(irs.get((op, TOKIO))),
                "%s %s" % (IMPL_NAMES[best[1]], fmt_ir(best[0])) if best else "—", text))
        t.append("")
        t.append("\"Best peer\": the fewest instructions among the peer libraries "
                 "(the hand-written minimums left out).")
    else:
        t.append("(no callgrind.tsv: `scripts/bench.sh` counts instructions when valgrind "
                 "is installed)")
    t.append("")
    t.append("### Memory, cancel-core")
    t.append("")
    if memory:
        mrows = {(r["item"], r["implementation"]): r for r in memory["rows"]}
        t.append("| object | target | cancel-core | verdict |")
        t.append("|---|---:|---:|---|")
        for item, label, measure, target in MEM_TARGETS:
            r = mrows.get((item, OURS))
            if r is None:
                t.append("| %s | ≤ %d B | — | not measured |" % (label, target))
                continue
            v = r["heap_bytes"] + (r["inline_bytes"] if measure == "total" else 0)
            met = v <= target
            summary.append(met)
            detail = (" (%d inline + %.0f heap)" % (r["inline_bytes"], r["heap_bytes"])
                      if measure == "total" else "")
            t.append("| %s | ≤ %d B | %.0f B%s | **%s** (%s) |" % (
                label, target, v, detail, "MET" if met else "MISSED",
                "exactly at the target" if v == target else
                ("%.0f B under" % (target - v) if met else "%.0f B over" % (v - target))))
    else:
        t.append("(no memory.json: run `cargo bench -p cancel-core-benches --bench memory`)")
    t.append("")
    t.append("### Wall clock, ratio in the same criterion run")
    t.append("")
    missed = set()
    if medians:
        t.append("| operation | target | cancel-core | baseline | ratio | verdict | "
                 "recorded runs (same src/) |")
        t.append("|---|---:|---:|---:|---:|---|---|")
        for group, base, target in WALL_TARGETS:
            ours, b = per_elem(group, OURS), per_elem(group, base)
            ratio = ours / b if ours is not None and b else None
            hist = history.get(group if base == TOKIO else "%s@%s" % (group, base), [])
            runs = "—"
            if len(hist) >= 2:
                runs = "met in %d of %d, ratios %s–%s" % (
                    sum(1 for r in hist if r <= target), len(hist),
                    fmt_ratio(min(hist)), fmt_ratio(max(hist)))
            if ratio is None:
                text = "not measured"
            else:
                met = ratio <= target
                summary.append(met)
                text = "**%s** (%s)" % ("MET" if met else "MISSED", margin(ratio, target))
                if not met or ratio / target >= 0.9:
                    missed.add(group)
            t.append("| %s | ≤ %s × %s | %s | %s | %s | %s | %s |" % (
                OP_LABELS[group], fmt_target(target), IMPL_NAMES[base], fmt_time(ours),
                fmt_time(b), fmt_ratio(ratio), text, runs))
    else:
        t.append("(no criterion results)")
    t.append("")
    met_n = sum(1 for s in summary if s)
    t.append("**%d of %d issue-14 targets met in this run** (instructions, bytes and "
             "wall-clock ratios above)." % (met_n, len(summary)))
    t.append("")
    t.append("### Evidence for missed targets")
    t.append("")
    notes = evidence_notes()
    if notes:
        t.append(notes)
    else:
        t.append("(none yet: hand-written notes go in `benches/evidence.md`, which is "
                 "pasted here)")
    t.append("")
    lines.extend(t)
    met15, targets15 = issue15(w, irs, memory, medians)

    # ---------------------------------------------------------- wall clock
    w("## Operations: median time, ratio to tokio-util")
    w("")
    w("Each row is one criterion group in which the implementations ran side by side "
      "(`benches/ops.rs`). Time per operation; for the cancel rows, per waiter / child / "
      "level (the whole cancel divided by N). In parentheses: the ratio to tokio-util in "
      "the same group, lower is better. Multi-threaded rows: wall time of all threads "
      "divided by the calls each thread made. The fan-out rows with \"a real waker per "
      "task\" poll each future with a `Waker` of its own, from an `Arc` of a 128-byte-aligned "
      "task whose `wake` increments a counter in that task's allocation, as a runtime's "
      "wake touches its task; the other fan-out rows use the no-op waker. For peers "
      "that cancel by a drop (stop-token, stream-cancel), the drop is the timed cancel.")
    w("")
    cols = [imp for imp in IMPLS if any((g, imp) in medians for g, _l, _p in OPS)]
    w("| operation | " + " | ".join(IMPL_NAMES[i] for i in cols) + " |")
    w("|---|" + "---:|" * len(cols))
    bars = []
    for group, label, per in OPS:
        vals = {imp: per_elem(group, imp) for imp in cols}
        if all(v is None for v in vals.values()):
            continue
        tok = vals.get(TOKIO)
        w("| %s | %s |" % (label, " | ".join(cell(vals[i], tok, fmt_time) for i in cols)))
        if tok:
            ratios = {i: v / tok for i, v in vals.items() if v is not None}
            tgt = next(((b, x) for g, b, x in WALL_TARGETS if g == group), None)
            target, met = None, None
            if tgt and OURS in ratios:
                base, x = tgt
                if base == TOKIO:
                    target = x
                elif base in ratios:
                    target = x * ratios[base]  # 1.25 × the baseline, in tokio-util units
                if target is not None:
                    met = ratios[OURS] <= target
            bars.append((label.replace("`", ""), ratios, target, met))
    w("")
    ours_reg, ct_reg = per_elem("register_unregister", OURS), per_elem("register_unregister", CT)
    if ours_reg and ct_reg:
        w("Register + unregister has no tokio-util counterpart; cancel-core / "
          "cancellation-token: %s." % fmt_ratio(ours_reg / ct_reg))
        w("")
    a2, b2 = per_elem("is_cancelled_2t", OURS), per_elem("is_cancelled_2t", ABOOL)
    if a2 and b2:
        w("`is_cancelled` from 2 threads, cancel-core / `Arc<AtomicBool>` polled the same "
          "way: %s (target ≤ 1.25)." % fmt_ratio(a2 / b2))
        w("")
    w("Left out (\"—\"), per peer:")
    w("")
    for imp, why in LEFT_OUT:
        w("- %s: %s" % (IMPL_NAMES[imp], why))
    w("")

    # ---------------------------------------------------------- instructions
    w("## Instruction counts (callgrind), every implementation")
    w("")
    if callgrind:
        w("`valgrind --tool=callgrind` on `benches/instructions.rs`. Per-operation rows: run "
          "twice with different operation counts; the difference in instructions divided by "
          "the difference in counts is the cost of one operation (start-up and set-up cancel "
          "out; the loop and its `black_box` add a few instructions to every row). Cancel "
          "rows: each implementation's cancel call sits in an `#[inline(never)] fn "
          "cancel_<impl>` of the driver, and callgrind collects only inside those "
          "(`--toggle-collect='instructions::cancel_*'`, callees included), divided by the "
          "waiters, children or levels cancelled. In parentheses: the ratio to tokio-util. "
          "Deterministic, unlike the times above, but blind to cache misses, atomic latency "
          "and contention: a locked read-modify-write counts as one instruction and costs "
          "~20 cycles.")
        w("")
        icols = [imp for imp in IMPLS if any((op, imp) in irs for op, _l in INSTR_OPS)]
        w("| operation | " + " | ".join(IMPL_NAMES[i] for i in icols) + " |")
        w("|---|" + "---:|" * len(icols))
        ibars = []
        for op, label in INSTR_OPS:
            vals = {imp: irs.get((op, imp)) for imp in icols}
            if all(v is None for v in vals.values()):
                continue
            tok = vals.get(TOKIO)
            w("| %s | %s |" % (label, " | ".join(cell(vals[i], tok, fmt_ir) for i in icols)))
            if tok:
                tgt = dict(INSTR_TARGETS).get(op)
                ours = vals.get(OURS)
                ibars.append((label.replace("`", ""),
                              {i: v / tok for i, v in vals.items() if v is not None},
                              None if tgt is None else tgt / tok,
                              None if tgt is None or ours is None else ours <= tgt))
        w("")
        w("The same peers are left out where they lack the operation (see above); "
          "futures-abort serves one waiter per handle pair, so it has only the 1-waiter "
          "cancel row, and its `cancelled()` row includes making the pair. The register "
          "rows: the closure capturing nothing is the issue's loop (`token.register(|| {})`) (cancellation-token's `Box` of a zero-sized "
          "closure does not allocate); the 8-byte capture is the criterion row's closure.")
        w("")
    else:
        ibars = []
        w("(not run: scripts/bench.sh runs it when valgrind is installed)")
        w("")

    # ---- shutdown scopes (issue 17): enter + leave against TaskTracker and Arc
    w("## Shutdown scopes: a unit of work entering and leaving")
    w("")
    w("`Shutdown::enter()` + dropping the `WorkGuard`, against tokio-util's "
      "`TaskTracker::token()` + drop (which also clones and drops the tracker's `Arc`: "
      "four locked read-modify-writes against our two), async-shutdown's "
      "`delay_shutdown_token()` + drop (a mutex lock each way, plus an `Arc` clone and "
      "drop) and an `Arc<u64>` clone + drop (two, and the floor the issue sets in "
      "instructions). Criterion group `work_enter_leave`; callgrind op `work_enter_leave`.")
    w("")
    ours_t = medians.get(("work_enter_leave", OURS))
    tok_t = medians.get(("work_enter_leave", TOKIO))
    asd_t = medians.get(("work_enter_leave", ASD))
    arc_t = medians.get(("work_enter_leave", ARC))
    ours_i = irs.get(("work_enter_leave", OURS))
    tok_i = irs.get(("work_enter_leave", TOKIO))
    asd_i = irs.get(("work_enter_leave", ASD))
    arc_i = irs.get(("work_enter_leave", ARC))
    w("| measure | cancel-core | tokio-util `TaskTracker` | async-shutdown delay token | "
      "`Arc` clone + drop | ours / tokio-util | ours / `Arc` |")
    w("|---|---:|---:|---:|---:|---:|---:|")

    def r(a, b):
        return fmt_ratio(a / b) if a is not None and b else "—"
    w("| median time | %s | %s | %s | %s | %s | %s |" % (
        fmt_time(ours_t), fmt_time(tok_t), fmt_time(asd_t), fmt_time(arc_t),
        r(ours_t, tok_t), r(ours_t, arc_t)))
    w("| instructions / op | %s | %s | %s | %s | %s | %s |" % tuple(
        ["%.1f" % v if v is not None else "—" for v in (ours_i, tok_i, asd_i, arc_i)]
        + [r(ours_i, tok_i), r(ours_i, arc_i)]))
    w("")
    if ours_t is not None and tok_t:
        _met, text = verdict(ours_t / tok_t, 0.70)
        w("- Issue 17's target ≤ 0.70 of `TaskTracker::token()` + drop (time): %s." % text)
    if ours_i is not None and arc_i:
        _met, text = verdict(ours_i / arc_i, 1.50)
        w("- Issue 17's target ≤ 1.50 × an `Arc` clone + drop (instructions): %s." % text)
    w("")

    # ---------------------------------------------------------- memory
    w("## Memory")
    w("")
    if memory:
        rows = memory["rows"]
        w("Heap bytes requested per object (`Layout::size`, without malloc's own "
          "overhead), with %d objects alive at once, so growth shared with a parent "
          "(tokio-util's children `Vec`, cancellation-token's slab, async-shutdown's waker "
          "`Vec`, triggered's `HashMap`) is included, amortized; plus the inline size of the "
          "handle or future; \"total\" is the two added. \"One\" is the heap growth for a "
          "single object made alone (a first child includes the parent's first `Vec` or "
          "slab allocation). A pending future is created and polled once with the no-op "
          "waker; its heap bytes are what that allocates beyond the future itself. "
          "Written by `benches/memory.rs`."
          % memory.get("objects_per_measurement", 0))
        w("")
        w("| object | implementation | heap bytes / object | allocations / object | "
          "inline bytes | total | one alone | what |")
        w("|---|---|---:|---:|---:|---:|---:|---|")
        for row in rows:
            w("| %s | %s | %.1f | %.2f | %d | %.0f | %s | %s |" % (
                row["item"], row["implementation"], row["heap_bytes"], row["allocations"],
                row["inline_bytes"], row["heap_bytes"] + row["inline_bytes"],
                "—" if row["single_heap_bytes"] is None else row["single_heap_bytes"],
                row["note"]))
        w("")
        w("No rows for what a peer lacks: children (only cancel-core, tokio-util and "
          "cancellation-token have them) and callbacks (only cancel-core and "
          "cancellation-token).")
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
        for row in timer["runs"]:
            gap = row.get("max_gap_us")
            w("| %s | %d | %d / %d | %s | %s | %s | %s | %s | %.1f ms%s | %s |" % (
                "{:,}".format(row["n"]), row["rounds"], row["fired"], row["armed"],
                fmt_time(row["min_us"] * 1e3), fmt_time(row["median_us"] * 1e3),
                fmt_time(row["p99_us"] * 1e3), fmt_time(row["max_us"] * 1e3),
                fmt_time(row["mean_us"] * 1e3), row["arm_ms"],
                " (overlapped the first deadlines)" if row.get("arming_overlapped_firing") else "",
                "—" if not gap or row["n"] == 1 else fmt_time(gap * 1e3)))
        w("")
        big = [row for row in timer["runs"] if row["n"] > 1 and row.get("max_gap_us")]
        if big:
            row = big[-1]
            if row["max_us"] < 1000:
                tail = ("the whole distribution stays under 1 ms, with no sign of the queue "
                        "falling behind its deadlines.")
            elif row["max_gap_us"] >= 0.5 * row["max_us"]:
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
                  "{:,}".format(row["n"]), fmt_time(row["max_gap_us"] * 1e3),
                  fmt_time(row["max_us"] * 1e3), tail))
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
        for row in wake["runs"]:
            w("| %s | %d | %s | %s | %s | %s |" % (
                row["waiter"], row["rounds"], fmt_time(row["min_us"] * 1e3),
                fmt_time(row["median_us"] * 1e3), fmt_time(row["p99_us"] * 1e3),
                fmt_time(row["max_us"] * 1e3)))
        w("")
    else:
        w("(no wake_latency.json: run `cargo bench -p cancel-core-benches --bench wake_latency`)")
        w("")

    # ---- history of cancel-core's instruction counts
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

        def this_run(op):
            # "cancel_pending_1 / round" is written "cancel_pending_1/round" in
            # callgrind.tsv (scripts/bench.sh, the same two-count measurement).
            v = irs.get((op.replace(" / round", "/round"), OURS))
            return None if v is None else "%.1f" % v
        now = [this_run(r[0]) for r in body]
        with_run = any(v is not None for v in now)
        w("## Across core changes")
        w("")
        w(" ".join(notes) + " From `benches/instruction_history.tsv`%s; the last column "
          "compares the last two columns." % (
              ", with this run's counts (src/ tree %s) as the last column" % m["src_tree"]
              if with_run else ""))
        w("")
        head = header + (["this run (%s)" % m["src_tree"]] if with_run else [])
        w("| " + " | ".join(head) + " | change |")
        w("|---|" + "---:|" * (len(head) - 1) + "---:|")
        for row, v in zip(body, now):
            cells = row + ([v or "—"] if with_run else [])
            try:
                before, after = float(cells[-2]), float(cells[-1])
                change = "%+.1f %%" % ((after / before - 1) * 100)
            except ValueError:
                change = "—"
            w("| " + " | ".join(cells) + " | %s |" % change)
        w("")

    # Every profile note is printed: the narrow margins of one run are the
    # comfortable ones of another, and the notes say why a ratio is what it
    # is. Rows this run misses or meets by less than 10 % come first.
    notes = sorted(FINDINGS, key=lambda f: not missed.intersection(f[0]))
    if notes:
        w("## Where the time goes (profile notes of an earlier core)")
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
    w("This page came from `%s`. The commands:" % args.command)
    w("")
    w("```sh")
    w("scripts/bench.sh --quick   # whole suite in a few minutes, after the build")
    w("scripts/bench.sh           # longer criterion runs")
    w("scripts/bench.sh --no-callgrind   # without the instruction counts")
    w("cargo bench -p cancel-core-benches --bench ops -- child_new_drop   # one criterion group")
    w("cargo bench -p cancel-core-benches --bench memory --bench timer_accuracy")
    w("python3 scripts/bench_report.py --mode full   # rewrite this page from target/")
    w("# one instruction row by hand (bench.sh runs each twice, with the counts it lists):")
    w("bin=$(cargo bench -p cancel-core-benches --bench instructions --no-run "
      "--message-format=json | jq -r 'select(.executable != null) | .executable')")
    w("valgrind --tool=callgrind --callgrind-out-file=/dev/null \"$bin\" child_new_drop "
      "cancel-core 100000")
    w("valgrind --tool=callgrind --callgrind-out-file=/dev/null "
      "--toggle-collect='instructions::cancel_*' \"$bin\" cancel_pending_1000 cancel-core 20")
    w("valgrind --tool=callgrind --callgrind-out-file=/dev/null "
      "--toggle-collect='instructions::generic_*' \"$bin\" generic_check never-token 10000")
    w("```")
    w("")

    os.makedirs(DOCS, exist_ok=True)
    with open(os.path.join(DOCS, "benchmarks.md"), "w") as f:
        f.write("\n".join(lines))
    panels = [("Wall clock (criterion medians)", bars)]
    if ibars:
        panels.append(("Instructions (callgrind)", ibars))
    write_svg(os.path.join(DOCS, "benchmarks.svg"), panels)
    print("bench_report: wrote docs/benchmarks.md and docs/benchmarks.svg "
          "(%d of %d issue-14 targets met; %d of %d issue-15)" % (
              met_n, len(summary), met15, targets15))


if __name__ == "__main__":
    main()
