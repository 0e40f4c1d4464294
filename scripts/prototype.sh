#!/usr/bin/env bash
# Measures a prototype of the core beside the core itself (issue 14: a
# target that cannot be met without breaking a design invariant is shown
# with the closest alternative, built and measured). The prototype is a
# patch in benches/prototypes/, applied to a throwaway worktree of HEAD;
# both trees' benches/instructions.rs drivers are run under callgrind.
#
#   scripts/prototype.sh                     # wake_under_lock, instructions
#   scripts/prototype.sh wake_under_lock --wall   # + criterion, same groups
#
# Prints one row per operation: instructions per waiter in the cancel
# (collected inside the driver's cancel wrapper), core vs prototype; with
# --wall, criterion's median for the same groups in both trees.
set -euo pipefail
cd "$(dirname "$0")/.."

name=wake_under_lock
wall=0
for arg in "$@"; do
    case "$arg" in
        --wall) wall=1 ;;
        -h | --help)
            sed -n '2,14p' "$0"
            exit 0
            ;;
        *) name="$arg" ;;
    esac
done
patch="$PWD/benches/prototypes/$name.patch"
[ -f "$patch" ] || { echo "prototype.sh: no $patch" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "prototype.sh: needs valgrind" >&2; exit 2; }

root="$PWD"
tmp=$(mktemp -d)
proto="$tmp/proto"
git worktree add -q --detach "$proto" HEAD
cleanup() { git -C "$root" worktree remove --force "$proto" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
git -C "$proto" apply "$patch"

driver() { # tree target-dir -> path of the instructions driver
    (cd "$1" && CARGO_TARGET_DIR="$2" cargo bench -q -p cancel-core-benches --bench instructions --no-run >/dev/null 2>&1 &&
        CARGO_TARGET_DIR="$2" cargo bench -p cancel-core-benches --bench instructions --no-run --message-format=json 2>/dev/null |
        python3 "$root/scripts/instructions_driver.py")
}
core_bin=$(driver "$root" "$root/target")
proto_bin=$(driver "$proto" "$root/target/prototype-$name")

per() { # bin op rounds per-round -> instructions per element in the cancel
    local c
    c=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null --toggle-collect='instructions::cancel_*' \
        "$1" "$2" cancel-core "$3" 2>&1 | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
    awk -v c="$c" -v n="$(($3 * $4))" 'BEGIN { printf "%.1f", c / n }'
}
echo "| operation (instructions in the cancel, per waiter) | core | prototype $name |"
echo "|---|---:|---:|"
while read -r op rounds n; do
    echo "| $op | $(per "$core_bin" "$op" "$rounds" "$n") | $(per "$proto_bin" "$op" "$rounds" "$n") |"
done <<'ROWS'
cancel_pending_1 20000 1
cancel_pending_1000 20 1000
cancel_pending_tasks_1000 20 1000
ROWS

if [ "$wall" = 1 ]; then
    for tree in "$root" "$proto"; do
        tdir="$root/target"
        [ "$tree" = "$proto" ] && tdir="$root/target/prototype-$name"
        echo "criterion, $( [ "$tree" = "$proto" ] && echo "prototype $name" || echo core ):"
        (cd "$tree" && CANCEL_CORE_BENCH_QUICK=1 CARGO_TARGET_DIR="$tdir" cargo bench -q -p cancel-core-benches --bench ops -- \
            'cancel_pending_1000/|cancel_pending_tasks_1000/' 2>&1 | grep -E '^cancel_pending.*(cancel-core|tokio-util)' -A1 |
            grep -E 'time:|^cancel' | paste - - | awk '{print "  " $1, $5, $6}') || true
    done
fi
