#!/usr/bin/env bash
# Runs the concurrent tests under AddressSanitizer and ThreadSanitizer
# (nightly, std rebuilt with the sanitizer so that its atomics and
# allocations are instrumented too). Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup +nightly component add rust-src >/dev/null
target="$(rustc -vV | sed -n 's/^host: //p')"
tests=(--test stress --test core --test links --test futures --test timer --test timer_lifetime --test timer_thread --test model_replay --test pinned --test panics --test wakers --test scoped --test api --test shutdown --test shutdown_timer --test shutdown_no_std --test time --test tokio_clock --test embassy_clock --test inplace --test no_alloc)

echo "== AddressSanitizer (+ LeakSanitizer)"
RUSTFLAGS="-Zsanitizer=address" RUSTDOCFLAGS="-Zsanitizer=address" \
ASAN_OPTIONS="detect_leaks=1" CARGO_TARGET_DIR=target/asan \
    cargo +nightly test -Zbuild-std --target "$target" --all-features "${tests[@]}"

echo "== ThreadSanitizer"
RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" \
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" CARGO_TARGET_DIR=target/tsan \
    cargo +nightly test -Zbuild-std --target "$target" --all-features "${tests[@]}"

echo "sanitizers: clean"
