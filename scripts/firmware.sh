#!/usr/bin/env bash
# Builds the firmware in firmware/ (cancel-core's in-place source cancelled
# from an interrupt handler, on a Cortex-M3, with no allocator) and runs it
# in QEMU's lm3s6965evb machine. Run it from the repository root:
#
#   scripts/firmware.sh
#
# Installs what is missing first: the thumbv7m-none-eabi target (rustup) and
# QEMU (Debian's qemu-system-arm, with sudo when not root). Safe to run again.
#
# Passes (exit 0) when QEMU exits with status 0, which the firmware asks
# for through semihosting only when all its checks hold, and the output has
# every expected line. Otherwise it prints the output and says what failed
# (exit 1). QEMU is stopped after 60 s: the firmware gives up by itself
# after 50 SysTick ticks, so a hang means the emulator never ran it.
set -euo pipefail

if [[ ! -f firmware/Cargo.toml || ! -f scripts/firmware.sh ]]; then
    echo "firmware.sh: run from the repository root (scripts/firmware.sh)" >&2
    exit 2
fi

target=thumbv7m-none-eabi
step() { printf '=== %s\n' "$*"; }
fail() {
    echo "firmware.sh: FAIL: $*" >&2
    exit 1
}

step "toolchain: $target"
if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi

step "QEMU: qemu-system-arm"
if ! command -v qemu-system-arm >/dev/null; then
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            fail "qemu-system-arm is not installed, and installing it needs root (apt-get install qemu-system-arm)"
        fi
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends qemu-system-arm >/dev/null
fi
qemu-system-arm --version | head -n 1

# cargo reads firmware/.cargo/config.toml (target, linker script, QEMU
# runner) only when it runs inside firmware/.
cd firmware

step "build (release)"
cargo build --release 2>&1

step "run in QEMU (timeout 60 s)"
output_file=$(mktemp)
trap 'rm -f "$output_file"' EXIT
status=0
# `cargo run` boots the image with the runner of .cargo/config.toml.
# stdin from /dev/null: QEMU's -nographic console must not wait on a tty.
timeout 60 cargo run --release </dev/null >"$output_file" 2>&1 || status=$?
cat "$output_file"
echo

if [[ $status -eq 124 ]]; then
    fail "QEMU did not exit within 60 s"
elif [[ $status -ne 0 ]]; then
    fail "QEMU exited with status $status (the firmware reported a failure, or did not run)"
fi

# Whole lines (grep -x), as basic regular expressions: `.*` ends the two
# lines whose tail may vary (the reason's text, the number of sleeps).
expected=(
    'firmware: cancel-core InplaceSource on a Cortex-M3, no allocator'
    'task: callback registered (pending: true); cancelled: false; awaiting token.cancelled()'
    'callback ran'
    'SysTick 3: SHUTDOWN.cancel() -> true'
    'task: cancelled after 3 ticks; callback ran: true; reason: operation cancelled.*'
    'task: late registration pending: false, ran at once: true; second cancel() -> false'
    'executor: 2 polls, .*'
    'firmware: all checks passed'
)
missing=0
for line in "${expected[@]}"; do
    if ! grep -qx -- "$line" "$output_file"; then
        echo "firmware.sh: missing from the output: $line" >&2
        missing=1
    fi
done
if [[ $missing -ne 0 ]]; then
    fail "QEMU exited 0 but the output lacks the lines above"
fi

echo "firmware.sh: PASS (QEMU exited 0; all ${#expected[@]} expected lines present)"
