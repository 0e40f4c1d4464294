#!/usr/bin/env bash
# Runs the benchmark suite, the package cancel-core-benches in benches/
# (benches/ops.rs, memory.rs, timer_accuracy.rs, wake_latency.rs and, when
# valgrind is installed, callgrind instruction counts through
# benches/instructions.rs), then writes docs/benchmarks.md and
# docs/benchmarks.svg with scripts/bench_report.py.
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
            sed -n '2,11p' "$0"
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
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "instructions":
        print(m["executable"])
')
    tsv="$out/callgrind.tsv"
    echo "# op impl n1 instructions1 n2 instructions2" >"$tsv"
    ir() { # op impl count -> total instructions
        valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" "$3" 2>&1 |
            sed -n 's/.*Collected : *\([0-9]*\).*/\1/p'
    }
    while read -r op n1 n2 impls; do
        for impl in $impls; do
            a=$(ir "$op" "$impl" "$n1")
            b=$(ir "$op" "$impl" "$n2")
            echo "$op $impl $n1 $a $n2 $b" | tee -a "$tsv"
        done
    done <<'EOF'
is_cancelled 1000000 2000000 cancel-core tokio-util atomic-bool+event-listener cancellation-token
child_new_drop 100000 200000 cancel-core tokio-util cancellation-token
cancelled_future_poll_drop 100000 200000 cancel-core tokio-util cancellation-token
work_enter_leave 1000000 2000000 cancel-core tokio-util arc-clone-drop
EOF
    # The cancel itself, out of set-up + cancel: inclusive instructions of
    # the cancel function, divided by the waiters / children cancelled.
    cancel_ir() { # op impl rounds symbol elements
        local file="$out/callgrind.$1.$2.out"
        valgrind --tool=callgrind --callgrind-out-file="$file" "$bin" "$1" "$2" "$3" >/dev/null 2>&1
        callgrind_annotate --inclusive=yes "$file" 2>/dev/null |
            grep -F "$4 [" | head -1 | tr -d ',' |
            awk -v n="$(($3 * $5))" -v op="$1" -v imp="$2" '{ printf "%s %s %.1f\n", op, imp, $1 / n }'
        rm -f "$file"
    }
    {
        cancel_ir cancel_pending_1 cancel-core 20000 "source::CancellationSource::cancel" 1
        cancel_ir cancel_pending_1 tokio-util 20000 "CancellationToken::cancel" 1
        cancel_ir cancel_pending_1000 cancel-core 20 "source::CancellationSource::cancel" 1000
        cancel_ir cancel_pending_1000 tokio-util 20 "CancellationToken::cancel" 1000
        cancel_ir cancel_children_10000 cancel-core 5 "source::CancellationSource::cancel" 10000
        cancel_ir cancel_children_10000 tokio-util 5 "CancellationToken::cancel" 10000
    } | tee -a "$tsv"
else
    rm -f "$out/callgrind.tsv"
fi

duration="$(($(date +%s) - start)) s"
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
echo "bench.sh: suite ran in $duration (load average before: $load_before, after: $load_after)"
python3 scripts/bench_report.py --command "$command" --mode "$mode" --duration "$duration" \
    --load "before: $load_before; after: $load_after"
