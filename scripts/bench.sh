#!/usr/bin/env bash
# Runs the benchmark suite, the package cancel-core-benches in benches/
# (benches/ops.rs, memory.rs, timer_accuracy.rs, wake_latency.rs and, when
# valgrind is installed, callgrind instruction counts of cancel-core and its
# peers through benches/instructions.rs), then writes docs/benchmarks.md
# and docs/benchmarks.svg with scripts/bench_report.py.
#
#   scripts/bench.sh --quick          whole suite in a few minutes
#   scripts/bench.sh                  longer criterion measurements
#   scripts/bench.sh --no-callgrind   skip the instruction counts
set -euo pipefail
cd "$(dirname "$0")/.."

quick=0
callgrind=1
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --no-callgrind) callgrind=0 ;;
        -h | --help)
            sed -n '2,10p' "$0"
            exit 0
            ;;
        *)
            echo "bench.sh: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

command="scripts/bench.sh${*:+ $*}"
mode=full
if [ "$quick" = 1 ]; then
    export CANCEL_CORE_BENCH_QUICK=1
    mode=quick
fi

# The benchmarks are the workspace member benches/ (package
# cancel-core-benches); cargo runs its bench binaries in benches/, so a
# relative CARGO_TARGET_DIR is made absolute (from the workspace root, as
# scripts/bench_report.py reads it) for cargo, criterion and the binaries
# to agree on it.
if [ -n "${CARGO_TARGET_DIR:-}" ] && [ "${CARGO_TARGET_DIR#/}" = "$CARGO_TARGET_DIR" ]; then
    export CARGO_TARGET_DIR="$PWD/$CARGO_TARGET_DIR"
fi
target="${CARGO_TARGET_DIR:-target}"
out="$target/cancel-core-bench"
mkdir -p "$out"
# `embassy-row`: timer_accuracy's embassy clock (benches/Cargo.toml says
# why it is opt-in).
bench=(cargo bench -p cancel-core-benches --features embassy-row)

# Build first, so that the time printed below is the run's own.
"${bench[@]}" --bench ops --bench memory --bench timer_accuracy --bench wake_latency --bench instructions --no-run

load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
start=$(date +%s)
"${bench[@]}" --bench ops --bench memory --bench timer_accuracy --bench wake_latency

if [ "$callgrind" = 1 ] && command -v valgrind >/dev/null 2>&1; then
    bin=$("${bench[@]}" --bench instructions --no-run --message-format=json 2>/dev/null |
        python3 scripts/instructions_driver.py)
    tsv="$out/callgrind.tsv"
    echo "# op impl n1 instructions1 n2 instructions2 | op impl instructions-per-element" >"$tsv"
    ir() { # op impl count [callgrind options] -> instructions collected
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "${@:4}" "$bin" "$1" "$2" "$3" 2>&1 |
            sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
    }
    # Per operation: two runs with different counts; bench_report.py divides
    # the difference in instructions by the difference in counts.
    while read -r op n1 n2 impls; do
        for impl in $impls; do
            a=$(ir "$op" "$impl" "$n1")
            b=$(ir "$op" "$impl" "$n2")
            echo "$op $impl $n1 $a $n2 $b" | tee -a "$tsv"
        done
    done <<'ROWS'
is_cancelled 1000000 2000000 cancel-core cancel-core-inplace tokio-util cancellation-token triggered async-shutdown futures-abort arc-atomic-bool atomic-bool+event-listener
token_clone_drop 100000 200000 cancel-core cancel-core-inplace tokio-util cancellation-token stop-token triggered async-shutdown futures-abort stream-cancel arc-atomic-bool atomic-bool+event-listener
child_new_drop 100000 200000 cancel-core tokio-util cancellation-token
register_unregister 100000 200000 cancel-core cancellation-token
register_unregister_capture8 100000 200000 cancel-core cancellation-token
pinned_register_unregister 100000 200000 cancel-core cancel-core-inplace
cancelled_future_poll_drop 100000 200000 cancel-core cancel-core-inplace tokio-util cancellation-token stop-token triggered async-shutdown futures-abort stream-cancel atomic-bool+event-listener
work_enter_leave 1000000 2000000 cancel-core tokio-util async-shutdown arc-clone-drop
ROWS
    # The cancel itself, out of set-up + cancel + tear-down: only the
    # instructions run inside the driver's `#[inline(never)] fn
    # cancel_<impl>` wrappers (callees included) are collected, divided by
    # rounds x the waiters / children / levels cancelled per round. Peers
    # that cancel by a drop (stop-token, stream-cancel) have it in theirs.
    while read -r op rounds per impls; do
        for impl in $impls; do
            c=$(ir "$op" "$impl" "$rounds" --toggle-collect='instructions::cancel_*')
            awk -v c="$c" -v n="$((rounds * per))" -v op="$op" -v imp="$impl" \
                'BEGIN { printf "%s %s %.1f\n", op, imp, c / n }' | tee -a "$tsv"
        done
    done <<'ROWS'
cancel_pending_1 20000 1 cancel-core cancel-core-inplace tokio-util cancellation-token stop-token triggered async-shutdown futures-abort stream-cancel atomic-bool+event-listener
cancel_pending_1000 20 1000 cancel-core tokio-util cancellation-token stop-token triggered async-shutdown stream-cancel atomic-bool+event-listener
cancel_pending_tasks_1000 20 1000 cancel-core tokio-util cancellation-token stop-token triggered async-shutdown stream-cancel atomic-bool+event-listener
cancel_children_10000 5 10000 cancel-core tokio-util cancellation-token
cancel_chain_100000 1 100000 cancel-core tokio-util
ROWS
    # cancel-core's whole rounds (set-up + cancel + tear-down), two counts
    # each, as the "/ round" rows of benches/instruction_history.tsv are
    # measured; the report shows them beside that history (and the
    # in-place round, which allocates nothing, beside the heap one).
    while read -r op n1 n2 impls; do
        for impl in $impls; do
            a=$(ir "$op" "$impl" "$n1")
            b=$(ir "$op" "$impl" "$n2")
            echo "$op/round $impl $n1 $a $n2 $b" | tee -a "$tsv"
        done
    done <<'ROWS'
cancel_pending_1 10000 20000 cancel-core cancel-core-inplace
cancel_pending_1000 10 20 cancel-core
cancel_children_10000 2 4 cancel-core
ROWS
    # Issue 15: one generic function per row, instantiated per token, and
    # its body without a token (`baseline`). Only the instructions inside
    # the driver's `#[inline(never)] fn generic_*` are collected (callees
    # included), two counts each, so that the caller's loop and the passing
    # of the token are not counted: never-token must equal baseline.
    while read -r op n1 n2 impls; do
        for impl in $impls; do
            a=$(ir "$op" "$impl" "$n1" --toggle-collect='instructions::generic_*')
            b=$(ir "$op" "$impl" "$n2" --toggle-collect='instructions::generic_*')
            echo "$op $impl $n1 $a $n2 $b" | tee -a "$tsv"
        done
    done <<'ROWS'
generic_check 10000 20000 baseline never-token cancel-core cancel-core-inplace
generic_guarded 10000 20000 baseline never-token cancel-core cancel-core-inplace
ROWS
else
    rm -f "$out/callgrind.tsv"
fi

duration="$(($(date +%s) - start)) s"
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "bench.sh: suite ran in $duration (load average before: $load_before, after: $load_after)"
python3 scripts/bench_report.py --command "$command" --mode "$mode" --duration "$duration" \
    --load "before: $load_before; after: $load_after"
