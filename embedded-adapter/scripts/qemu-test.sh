#!/usr/bin/env bash
# Builds the three-node firmware and runs it on a Cortex-M4 (mps2-an386) under QEMU. The firmware
# exits through semihosting: 0 once the nodes agree, 1 on failure; a run over 120 s is killed.
# Exits 77 when no QEMU can be had here.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/.." && pwd)"
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
source "$here/scripts/qemu.sh"
find_qemu "$repo" || { echo "SKIPPED qemu test: cannot get a qemu-system-arm with mps2-an386"; exit 77; }
(cd "$here/firmware" && cargo build --release --bin cluster)
fw="$here/firmware/target/thumbv7em-none-eabihf/release/cluster"
echo "running $fw on $("$QEMU" --version | head -1)"
timeout 120 "$QEMU" -cpu cortex-m4 -machine mps2-an386 -nographic -monitor none \
  -semihosting-config enable=on,target=native -kernel "$fw"
