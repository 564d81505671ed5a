#!/usr/bin/env bash
# Builds the three-node firmware and runs it on a Cortex-M4 (mps2-an386) under QEMU. The firmware
# exits through semihosting: 0 once the nodes agree, 1 on failure; a run over 120 s is killed.
# Exits 77 when no QEMU can be had here. Runs from any directory; honours CARGO_TARGET_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
# The firmware is a workspace of its own: its output is in firmware/target unless CARGO_TARGET_DIR
# (made absolute, as cargo reads it from where it runs) says elsewhere.
target="$(realpath -m "${CARGO_TARGET_DIR:-$here/firmware/target}")"
export CARGO_TARGET_DIR="$target"
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
source "$here/scripts/qemu.sh"
find_qemu "$repo" || { echo "SKIPPED qemu test: cannot get a qemu-system-arm with mps2-an386"; exit 77; }
(cd "$here/firmware" && cargo build --release --bin cluster)
fw="$target/thumbv7em-none-eabihf/release/cluster"
echo "running $fw on $("$QEMU" --version | head -1)"
timeout 120 "$QEMU" -cpu cortex-m4 -machine mps2-an386 -nographic -monitor none \
  -semihosting-config enable=on,target=native -kernel "$fw"
