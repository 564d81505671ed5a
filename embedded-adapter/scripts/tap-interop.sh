#!/usr/bin/env bash
# An embassy-net node on a TAP device and a tokio `tidings agent`, in a network namespace of their
# own, talking over real Linux UDP: they must agree on membership and exchange a key each way, on
# the agent's lan settings and again with both on the mcu preset (the board's Config::mcu).
# Exits 0 on success, 1 on failure, 77 when TAP devices or namespaces are unavailable. Runs from any
# directory; honours CARGO_TARGET_DIR.
set -euo pipefail
target="${CARGO_TARGET_DIR:+$(realpath -m "$CARGO_TARGET_DIR")}"
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
target="${target:-$repo/target}"
export CARGO_TARGET_DIR="$target"
command -v ip >/dev/null || { echo "SKIPPED tap interop: the ip command is missing"; exit 77; }
[ -e /dev/net/tun ] || { echo "SKIPPED tap interop: /dev/net/tun is missing"; exit 77; }
NS="tdtap$$"
ip netns add "$NS" 2>/dev/null || { echo "SKIPPED tap interop: cannot create network namespaces (needs root)"; exit 77; }
AGENT=""
cleanup() { [ -n "$AGENT" ] && kill -9 "$AGENT" 2>/dev/null; ip netns del "$NS" 2>/dev/null || true; }
trap cleanup EXIT
if ! ip -n "$NS" tuntap add name tap0 mode tap 2>/dev/null; then
  echo "SKIPPED tap interop: cannot create a TAP device"; exit 77
fi
ip -n "$NS" addr add 10.88.0.1/24 dev tap0
ip -n "$NS" link set tap0 up
ip -n "$NS" link set lo up

cargo build -q --release -p tidings-tokio
cargo build -q --release -p tidings-embassy --example tap_node
api() { # method path [body]
  ip netns exec "$NS" bash -c '
    exec 3<>/dev/tcp/127.0.0.1/8000 || exit 1
    printf "%s %s HTTP/1.0\r\nContent-Length: %s\r\n\r\n%s" "$1" "$2" "${#3}" "$3" >&3
    sed "1,/^\r$/d" <&3' _ "$1" "$2" "${3:-}" 2>/dev/null || true
}
interop() { # preset [agent flags...]: an agent with those flags and an embassy node on the preset
  local preset=$1; shift
  ip netns exec "$NS" "$target/release/tidings" agent --node-id 1 --bind 10.88.0.1:7946 \
    --http 127.0.0.1:8000 "$@" 2>/tmp/tap-agent-$$.log &
  AGENT=$!
  for _ in $(seq 50); do api GET /v1/health | grep -q ok && break; sleep 0.1; done
  api PUT /v1/kv/from-agent "hello from tokio" >/dev/null
  # The TAP device's link is up only while a process holds it: the embassy node does.
  ip netns exec "$NS" "$target/release/examples/tap_node" tap0 10.88.0.2 10.88.0.1:7946 2 "$preset" &
  local node=$! ok=0 node_rc=0
  for _ in $(seq 300); do
    if api GET /v1/members | grep -q '"id":2,[^}]*"status":"alive"' \
       && api GET /v1/kv/from-embassy | grep -q "hello from embassy"; then ok=1; break; fi
    sleep 0.1
  done
  wait "$node" || node_rc=$?
  kill -9 "$AGENT" 2>/dev/null || true; wait "$AGENT" 2>/dev/null || true; AGENT=""
  if [ "$ok" = 1 ] && [ "$node_rc" = 0 ]; then
    echo "ok: $preset: the agent sees the embassy node alive and holds its key"
  else
    echo "FAILED: $preset: agent saw the embassy node: $ok, embassy node exit: $node_rc"
    tail -n 20 /tmp/tap-agent-$$.log
    exit 1
  fi
}
# The agent's lan limits at the pace of local(); then a board's settings, Config::mcu, beside
# `tidings agent --preset mcu` (a short name: mcu metadata holds 32 bytes).
interop lan --preset local
interop mcu --preset mcu --name tap-agent
echo "tap interop passed"
