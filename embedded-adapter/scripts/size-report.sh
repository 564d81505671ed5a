#!/usr/bin/env bash
# Flash and RAM of tidings on a Cortex-M4 (thumbv7em-none-eabihf, release, opt-level z, LTO):
#   core_*     the `footprint` firmware: one node (32 members, 64 keys), postcard and sha2, no network
#   firmware_* the `cluster` firmware run by qemu-test.sh: three nodes with embassy-net stacks
#   node_firmware_* one node as shipped: executor, time driver, embassy-net with one UDP socket,
#              McuRunner at MCU capacities under Config::mcu, keyed, logging off
#   *_encrypted the core and the one-node image again with the `encrypt` feature, encrypting
# flash = .text + .rodata + .data (+ vector table); ram = .data + .bss (static RAM; the stack is the
# rest of RAM); heap = 0, checked: the script fails if either image links an allocator.
# With --json, one JSON object on stdout; otherwise a table.
# Runs from any directory; honours CARGO_TARGET_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
target="$(realpath -m "${CARGO_TARGET_DIR:-$here/firmware/target}")"
export CARGO_TARGET_DIR="$target"
rustup target add thumbv7em-none-eabihf >/dev/null 2>&1 || true
rustup component add llvm-tools >/dev/null 2>&1 || true
bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
[ -x "$bin/llvm-size" ] || { echo "llvm-size not found (rustup component add llvm-tools)" >&2; exit 1; }
cd "$here/firmware"
out="$target/thumbv7em-none-eabihf/release"
# The encrypting builds first, measured from copies: the plain builds then take the usual paths.
cargo build -q --release --bin footprint --bin node --no-default-features --features encrypt >&2
cp "$out/footprint" "$out/footprint-encrypted"
cp "$out/node" "$out/node-encrypted"
cargo build -q --release --bin footprint --no-default-features >&2
cargo build -q --release --bin cluster >&2
cargo build -q --release --bin node --no-default-features >&2
sizes() { # file -> "flash ram"
  "$bin/llvm-size" -A "$1" | awk '
    $1 == ".vector_table" || $1 == ".text" || $1 == ".rodata" { flash += $2 }
    $1 == ".data" { flash += $2; ram += $2 }
    $1 == ".bss" || $1 == ".uninit" { ram += $2 }
    END { print flash, ram }'
}
heap() { # bytes of allocator symbols
  "$bin/llvm-nm" -S "$1" | awk '/__rust_alloc|__rg_alloc|__rust_alloc_error_handler/ { n++ } END { print n + 0 }'
}
read -r core_flash core_ram < <(sizes "$out/footprint")
read -r fw_flash fw_ram < <(sizes "$out/cluster")
read -r node_flash node_ram < <(sizes "$out/node")
read -r core_enc_flash core_enc_ram < <(sizes "$out/footprint-encrypted")
read -r node_enc_flash node_enc_ram < <(sizes "$out/node-encrypted")
allocs=$(( $(heap "$out/footprint") + $(heap "$out/cluster") + $(heap "$out/node") \
  + $(heap "$out/footprint-encrypted") + $(heap "$out/node-encrypted") ))
[ "$allocs" = 0 ] || { echo "an allocator is linked: heap is not 0" >&2; exit 1; }
if [ "${1:-}" = "--json" ]; then
  printf '{"core_flash":%d,"core_ram":%d,"firmware_flash":%d,"firmware_ram":%d,"node_firmware_flash":%d,"node_firmware_ram":%d,"core_flash_encrypted":%d,"core_ram_encrypted":%d,"node_firmware_flash_encrypted":%d,"node_firmware_ram_encrypted":%d,"heap":%d}\n' \
    "$core_flash" "$core_ram" "$fw_flash" "$fw_ram" "$node_flash" "$node_ram" \
    "$core_enc_flash" "$core_enc_ram" "$node_enc_flash" "$node_enc_ram" 0
else
  printf '%-10s %10s %10s\n' "" flash ram core "$core_flash" "$core_ram" firmware "$fw_flash" "$fw_ram" \
    "one node" "$node_flash" "$node_ram" "core enc" "$core_enc_flash" "$core_enc_ram" \
    "node enc" "$node_enc_flash" "$node_enc_ram"
  echo "heap       0 (no allocator linked)"
fi
