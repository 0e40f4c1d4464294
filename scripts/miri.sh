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

echo "== miri (stacked borrows)"
MIRIFLAGS="$base" cargo +nightly miri test --tests "$@"
echo "== miri (tree borrows)"
MIRIFLAGS="$base -Zmiri-tree-borrows" cargo +nightly miri test --tests "$@"
echo "miri: no undefined behaviour found"
