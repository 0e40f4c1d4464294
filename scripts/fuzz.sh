#!/usr/bin/env bash
# Runs each cargo-fuzz target for a given time (default 60 s each):
#   scripts/fuzz.sh [seconds-per-target] [target...]
# Installs cargo-fuzz and the nightly toolchain if missing. Seeds the model
# target from tests/corpus/model; any crash is minimised and copied there so
# the stable test (tests/model_replay.rs) replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(model concurrent)

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz

mkdir -p fuzz/corpus/model
cp -n tests/corpus/model/* fuzz/corpus/model/ 2>/dev/null || true

status=0
for t in "${targets[@]}"; do
    echo "== fuzz $t for ${secs}s"
    mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
    if ! cargo +nightly fuzz run "$t" --release -- \
        -max_total_time="$secs" -max_len=4096 -timeout=20 -print_final_stats=1 \
        2>&1 | tee "target/fuzz-$t.log" | grep -E "stat::|Done|SUMMARY|ERROR|panicked" ; then
        true
    fi
    if ls "fuzz/artifacts/$t"/crash-* >/dev/null 2>&1; then
        status=1
        for crash in "fuzz/artifacts/$t"/crash-*; do
            min="${crash/crash-/minimized-}"
            cargo +nightly fuzz tmin "$t" "$crash" -- -exact_artifact_path="$min" >/dev/null 2>&1 || cp "$crash" "$min"
            [ "$t" = model ] && cp "$min" "tests/corpus/model/$(basename "$min")"
            echo "finding: $min"
        done
    fi
done
exit $status
