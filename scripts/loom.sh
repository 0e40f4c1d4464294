#!/usr/bin/env bash
# Runs the loom models in tests/loom.rs, each in its own process.
#
#   scripts/loom.sh                          # every model, default bound (3)
#   LOOM_MAX_PREEMPTIONS=2 scripts/loom.sh   # a quicker, shallower search
#   scripts/loom.sh wait register            # only models whose name contains
#                                            # one of these words
#
# Prints one line per model (result and time), then a summary line:
# "loom: PASS ..." and exit 0, or "loom: FAIL ..." with each failure's panic
# message and exit 1. Full logs are kept in target/loom/logs/<model>.log.
#
# How it builds: `--cfg loom` is given only to this crate, to loom and to the
# test, not through RUSTFLAGS, because several dev-dependencies (tokio,
# smol's concurrent-queue) have `cfg(loom)` code of their own that does not
# build outside their own loom setups. For that this script doubles as the
# RUSTC_WRAPPER of its own cargo run (an existing RUSTC_WRAPPER is chained).
# It builds in its own target directory (target/loom) so the loom build does
# not invalidate the normal one.
#
# Why one process per model: a model that fails while a thread is blocked
# inside the crate can panic again during unwinding, which aborts the whole
# test binary; separate processes keep one failure from hiding the others.
set -euo pipefail

if [[ -n "${CANCEL_CORE_LOOM_WRAPPER:-}" ]]; then
    # Wrapper mode: "$1" is rustc, the rest its arguments.
    rustc="$1"
    shift
    add=()
    prev=""
    for arg in "$@"; do
        if [[ "$prev" == "--crate-name" ]]; then
            case "$arg" in
                cancel_core | loom) add=(--cfg loom) ;;
            esac
        fi
        # Cargo's query of the target's cfg values: report cfg(loom) so that
        # `[target.'cfg(loom)'.dependencies]` is resolved.
        if [[ "$arg" == "--print=cfg" || ("$prev" == "--print" && "$arg" == "cfg") ]]; then
            add=(--cfg loom)
        fi
        prev="$arg"
    done
    if [[ -n "${CANCEL_CORE_LOOM_INNER_WRAPPER:-}" ]]; then
        exec "$CANCEL_CORE_LOOM_INNER_WRAPPER" "$rustc" "$@" ${add[@]+"${add[@]}"}
    fi
    exec "$rustc" "$@" ${add[@]+"${add[@]}"}
fi

cd "$(dirname "$0")/.."

export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}"
export CARGO_TARGET_DIR="${LOOM_TARGET_DIR:-target/loom}"
export CANCEL_CORE_LOOM_INNER_WRAPPER="${RUSTC_WRAPPER:-}"
export CANCEL_CORE_LOOM_WRAPPER=1
export RUSTC_WRAPPER="$PWD/scripts/loom.sh"
export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"

start=$(date +%s)
# A profile of its own: optimised like `release` for this crate and for
# loom's runtime (where the time goes), unoptimised for the dev-dependencies
# the loom test does not use (tokio, smol: they are built only because
# `cargo test` builds every dev-dependency), and with this crate's
# debug assertions on, so the models also check its internal invariants.
cargo_args=(
    test --test loom --profile loom
    --config 'profile.loom.inherits="release"'
    --config 'profile.loom.package."*".opt-level=0'
    --config 'profile.loom.package.cancel-core.debug-assertions=true'
)
for pkg in loom generator scoped-tls tracing tracing-core; do
    cargo_args+=(--config "profile.loom.package.$pkg.opt-level=3")
done

echo "loom: building (target dir $CARGO_TARGET_DIR)"
cargo "${cargo_args[@]}" --no-run
bin=$(cargo "${cargo_args[@]}" --no-run --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
if [[ -z "$bin" || ! -x "$bin" ]]; then
    echo "loom: FAIL: could not build the loom test binary" >&2
    exit 1
fi

mapfile -t all < <("$bin" --list 2>/dev/null | sed -n 's/: test$//p')
models=()
for name in "${all[@]}"; do
    if [[ $# -eq 0 ]]; then
        models+=("$name")
        continue
    fi
    for word in "$@"; do
        if [[ "$name" == *"$word"* ]]; then
            models+=("$name")
            break
        fi
    done
done
if [[ ${#models[@]} -eq 0 ]]; then
    echo "loom: FAIL: no model matches: $*" >&2
    exit 1
fi

logs="$CARGO_TARGET_DIR/logs"
mkdir -p "$logs"
echo "loom: ${#models[@]} models, LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS"
failed=()
for name in "${models[@]}"; do
    t0=$(date +%s.%N)
    if "$bin" --exact "$name" --test-threads=1 >"$logs/$name.log" 2>&1; then
        result=ok
    else
        result=FAILED
        failed+=("$name")
    fi
    t1=$(date +%s.%N)
    printf '  %-55s %-6s %6.1fs\n' "$name" "$result" "$(awk "BEGIN { print $t1 - $t0 }")"
done
total=$(($(date +%s) - start))

if [[ ${#failed[@]} -gt 0 ]]; then
    for name in "${failed[@]}"; do
        echo
        echo "---- $name ($logs/$name.log)"
        grep -A4 -m2 'panicked at' "$logs/$name.log" | grep -v '^stack backtrace:' || tail -n 20 "$logs/$name.log"
    done
    echo
    echo "loom: FAIL: ${#failed[@]} of ${#models[@]} models failed: ${failed[*]} (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${total}s)"
    exit 1
fi
echo "loom: PASS: all ${#models[@]} models passed (LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, ${total}s)"
