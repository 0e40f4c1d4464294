#!/usr/bin/env bash
# Runs the unit and integration tests under Miri, with Stacked Borrows (the
# default) and again with Tree Borrows. Large counts are scaled down under
# cfg(miri) inside the tests, never skipped. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
rustup +nightly component add miri rust-src >/dev/null
cargo +nightly miri setup >/dev/null

# Miri's isolation blocks the wall clock; the timed waits need it.
base="-Zmiri-disable-isolation ${MIRIFLAGS:-}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/miri}"

# Every test target but `timer`. That one starts the process-wide timer
# thread, which by design outlives the tests; Miri reports a thread still
# running at exit as an error unless leaks are ignored, so it runs apart,
# with -Zmiri-ignore-leaks (which lets that thread run on), and every other
# target keeps Miri's leak checker.
targets=(--lib)
for t in tests/*.rs; do
    name="$(basename "$t" .rs)"
    [ "$name" = timer ] || [ "$name" = loom ] || targets+=(--test "$name")
done

for model in "stacked borrows:" "tree borrows:-Zmiri-tree-borrows"; do
    label="${model%%:*}"
    flags="${model#*:}"
    echo "== miri ($label)"
    MIRIFLAGS="$base $flags" cargo +nightly miri test "${targets[@]}" "$@"
    echo "== miri ($label): timer, with -Zmiri-ignore-leaks for the timer thread"
    MIRIFLAGS="$base $flags -Zmiri-ignore-leaks" cargo +nightly miri test --test timer "$@"
done
echo "miri: no undefined behaviour found"
