#!/usr/bin/env bash
# Runs the unit and integration tests under Miri, with Stacked Borrows (the
# default) and again with Tree Borrows; then the tests that race threads
# against each other again over many scheduler seeds (-Zmiri-many-seeds),
# under both models, so that Miri explores many interleavings and
# weak-memory outcomes of each race rather than one. Large counts are scaled
# down under cfg(miri) inside the tests, never skipped. Installs what it
# needs.
#
#   scripts/miri.sh            # everything (SEEDS=16 seeds per racing test)
#   SEEDS=64 scripts/miri.sh   # more seeds
#   scripts/miri.sh seeds      # only the many-seeds phase
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
seeds="${SEEDS:-16}"
phase="${1:-all}"

# Targets that start the process-wide default timer thread, which by design
# outlives the tests: Miri reports a thread still running at exit as an
# error unless leaks are ignored, so they run apart, with
# -Zmiri-ignore-leaks (which lets that thread run on). Every other target
# keeps Miri's leak checker.
timer_targets=(timer timer_lifetime timer_thread shutdown_timer)
is_timer_target() {
    local t
    for t in "${timer_targets[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

targets=(--lib)
timed=()
for t in tests/*.rs; do
    name="$(basename "$t" .rs)"
    [ "$name" = loom ] && continue
    # A runtime's clocks (features `tokio`, `embassy-time`; not under Miri:
    # their manual-clock twins in tests/time.rs are).
    case "$name" in tokio_clock | embassy_clock) continue ;; esac
    if is_timer_target "$name"; then
        timed+=(--test "$name")
    else
        targets+=(--test "$name")
    fi
done

# The tests that race threads, by target: each runs once per seed.
racing=(
    "core:callbacks_run_once_lifo cancel_is_idempotent drop_waits_for_a_callback unregister_never_waits writes_before_cancel"
    "links:concurrent_parent_cancel registering_on_a_sourceless_child reason_is_visible_whenever a_token_keeps_its_links"
    "pinned:concurrent_unregister_vs_cancel drop_waits_for_the_callback register_after_an_unregister"
    "inplace:another_thread_cancels_a_blocked_waiter_and_a_future a_registration_dropped_while_its_callback_runs_waits_for_it"
    "futures:blocking_wait_returns owned_adapters works_on_futures_executor_across_threads"
    "stress:random_register_unregister"
    "timer_lifetime:concurrent_advances"
    "alloc_budget:children_churned_from_two_threads"
    "scoped:the_scope_end_waits"
    "shutdown:no_lost_shutdown_under_churn unregister_async_completes finishes_when_shut_down dropped_at_once the_parents_shutdown_racing"
)

for model in "stacked borrows:" "tree borrows:-Zmiri-tree-borrows"; do
    label="${model%%:*}"
    flags="${model#*:}"
    if [ "$phase" = all ]; then
        echo "== miri ($label)"
        MIRIFLAGS="$base $flags" cargo +nightly miri test "${targets[@]}"
        echo "== miri ($label): ${timed[*]}, with -Zmiri-ignore-leaks for the timer thread"
        MIRIFLAGS="$base $flags -Zmiri-ignore-leaks" cargo +nightly miri test "${timed[@]}"
    fi
    for entry in "${racing[@]}"; do
        target="${entry%%:*}"
        read -r -a filters <<<"${entry#*:}"
        extra=""
        is_timer_target "$target" && extra="-Zmiri-ignore-leaks"
        echo "== miri ($label): $target, racing tests over seeds 0..$seeds"
        MIRIFLAGS="$base $flags $extra -Zmiri-many-seeds=0..$seeds" \
            cargo +nightly miri test --test "$target" -- "${filters[@]}"
    done
    # Without std a registration's drop cannot wait for a callback running
    # elsewhere: the races that matter there, in that build (its own target
    # directory, so the two feature sets do not rebuild each other).
    echo "== miri ($label): shutdown_no_std without std, over seeds 0..$seeds"
    MIRIFLAGS="$base $flags -Zmiri-many-seeds=0..$seeds" CARGO_TARGET_DIR="$CARGO_TARGET_DIR-no-std" \
        cargo +nightly miri test --no-default-features --features alloc --test shutdown_no_std
    # No allocator at all (a pinned registration's drop spins for a callback
    # running elsewhere), and with critical-section (every lock hold a
    # critical section; portable-atomic's atomics): the no-alloc tests over
    # seeds, in builds of their own.
    echo "== miri ($label): no_alloc without alloc, and with critical-section, over seeds 0..$seeds"
    MIRIFLAGS="$base $flags -Zmiri-many-seeds=0..$seeds" CARGO_TARGET_DIR="$CARGO_TARGET_DIR-no-alloc" \
        cargo +nightly miri test --no-default-features --test no_alloc
    MIRIFLAGS="$base $flags -Zmiri-many-seeds=0..$seeds" CARGO_TARGET_DIR="$CARGO_TARGET_DIR-cs" \
        cargo +nightly miri test --features critical-section --test no_alloc --test inplace
done
echo "miri: no undefined behaviour found"
