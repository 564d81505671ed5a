#!/usr/bin/env bash
# The chaos check: `tidings agent` processes under SIGKILLs, restarts and (where network namespaces
# can be made, as root) partitions, with clients writing to all of them; then every acknowledged
# write must be on every agent or superseded by a later one, no deleted key may come back, no
# refused write may have taken effect, and all agents must hold the same data.
# Arguments go to the checker (std-adapter/examples/chaos): --secs, --agents, --seed, --json, ...
# Exits 0 when nothing was lost, 1 otherwise. Runs from any directory; honours CARGO_TARGET_DIR.
set -euo pipefail
[ -n "${CARGO_TARGET_DIR:-}" ] && export CARGO_TARGET_DIR="$(realpath -m "$CARGO_TARGET_DIR")"
cd "$(dirname "$0")/../.."
cargo build --release -q -p tidings-tokio --bin tidings --example chaos
target="${CARGO_TARGET_DIR:-$PWD/target}"
exec "$target/release/examples/chaos" --bin "$target/release/tidings" "$@"
