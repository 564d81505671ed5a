#!/usr/bin/env bash
# Three `tidings agent` processes on three hosts: network namespaces joined by veth pairs to a bridge.
# Checks, with real sockets and real processes: join and replication; a SIGKILLed agent is declared
# dead, and restarted from its data directory it is back with its data and a higher generation; a
# cut link (`ip link set ... down`) partitions an agent away, and once restored all views converge.
# Then three fresh agents with --encrypt, captured on the bridge with tcpdump: a written key and value
# never appear in the capture, where the signed agents' capture shows them.
#
# Needs root and `ip netns`. Exits 0 on success, 1 on failure, 77 when namespaces are unavailable.
# Runs from any directory; honours CARGO_TARGET_DIR.
set -euo pipefail
target="${CARGO_TARGET_DIR:+$(realpath -m "$CARGO_TARGET_DIR")}"
cd "$(dirname "$0")/../.."
target="${target:-$PWD/target}"
export CARGO_TARGET_DIR="$target"

if ! command -v ip >/dev/null; then echo "SKIPPED netns test: the ip command is missing"; exit 77; fi
probe="tdprobe$$"
if ! ip netns add "$probe" 2>/dev/null; then
  echo "SKIPPED netns test: cannot create network namespaces here (needs root and CAP_SYS_ADMIN)"; exit 77
fi
ip netns del "$probe"

cargo build --release -q -p tidings-tokio
T="$target/release/tidings"
W=$(mktemp -d)
P=td$$
BR="${P}br"
declare -A PID

cleanup() {
  for k in "${!PID[@]}"; do kill -9 "${PID[$k]}" 2>/dev/null || true; done
  for n in 1 2 3 br; do ip netns del "$P$n" 2>/dev/null || true; done
  rm -rf "$W"
}
trap cleanup EXIT

# Every agent authenticates its datagrams under one key, as a real deployment should.
"$T" keygen > "$W/keys" && chmod 600 "$W/keys"

ip netns add "$BR"
ip -n "$BR" link add br0 type bridge
ip -n "$BR" link set br0 up
for n in 1 2 3; do
  ip netns add "$P$n"
  ip link add "v$P$n" type veth peer name "b$P$n"
  ip link set "v$P$n" netns "$P$n"
  ip link set "b$P$n" netns "$BR"
  ip -n "$P$n" link set "v$P$n" name eth0
  ip -n "$P$n" addr add "10.77.0.$n/24" dev eth0
  ip -n "$P$n" link set eth0 up
  ip -n "$P$n" link set lo up
  ip -n "$BR" link set "b$P$n" master br0
  ip -n "$BR" link set "b$P$n" up
done

start() { # node [flags...]
  local n=$1 seed=(); shift
  [ "$n" != 1 ] && seed=(--seed 10.77.0.1:7946)
  ip netns exec "$P$n" "$T" agent --node-id "$n" --bind "10.77.0.$n:7946" --http 127.0.0.1:8000 \
    --data-dir "$W/n$n" --key-file "$W/keys" "${seed[@]}" "$@" 2>>"$W/agent$n.log" &
  PID[$n]=$!
}

# HTTP over bash's /dev/tcp inside a namespace: no curl needed.
api() { # node method path [body]
  ip netns exec "$P$1" bash -c '
    exec 3<>/dev/tcp/127.0.0.1/8000 || exit 1
    printf "%s %s HTTP/1.0\r\nContent-Length: %s\r\n\r\n%s" "$1" "$2" "${#3}" "$3" >&3
    sed "1,/^\r$/d" <&3' _ "$2" "$3" "${4:-}" 2>/dev/null || true
}

status_of() { # observer node -> status of node $2 as seen by $1
  api "$1" GET /v1/members | grep -oE "\"id\":$2,[^}]*" | grep -oE '"status":"[a-z]+"' | cut -d'"' -f4
}
generation_of() { api "$1" GET /v1/members | grep -oE "\"id\":$2,[^}]*" | grep -oE '"generation":[0-9]+' | cut -d: -f2; }

wait_until() { # what limit-seconds command...
  local what=$1 limit=$2 t0=$SECONDS; shift 2
  until "$@"; do
    if (( SECONDS - t0 > limit )); then echo "FAILED: $what not within ${limit} s"; tail -n 20 "$W"/agent*.log; exit 1; fi
    sleep 0.2
  done
  echo "ok: $what ($(( SECONDS - t0 )) s)"
}

all_see() { # status node...: every listed observer sees every node 1..3 with $1, except as overridden
  local want=$1; shift
  for o in "$@"; do for n in 1 2 3; do [ "$(status_of "$o" "$n")" = "$want" ] || return 1; done; done
}

# Captures every UDP datagram crossing the bridge while a command runs; prints SKIPPED without tcpdump.
capture_start() { # file
  command -v tcpdump >/dev/null || return 1
  ip netns exec "$BR" tcpdump -i any -U -w "$1" udp port 7946 2>>"$W/tcpdump.log" &
  PID[cap]=$!
  sleep 1
}
capture_stop() { sleep 1; kill -INT "${PID[cap]}" 2>/dev/null || true; wait "${PID[cap]}" 2>/dev/null || true; unset 'PID[cap]'; }
shows() { grep -a -c "$2" "$1" || true; } # file needle -> matching lines (0 if none)
SECRET_KEY=capture-key-7f3a SECRET_VALUE=capture-value-c0ffee
captured=0

for n in 1 2 3; do start "$n"; done
wait_until "three agents agree, all alive" 20 all_see alive 1 2 3

capture_start "$W/signed.pcap" && captured=1
api 1 PUT /v1/kv/color blue >/dev/null
api 1 PUT "/v1/kv/$SECRET_KEY" "$SECRET_VALUE" >/dev/null
replicated() { for n in 2 3; do api "$n" GET /v1/kv/color | grep -q '"value":"blue"' || return 1; api "$n" GET "/v1/kv/$SECRET_KEY" | grep -q "$SECRET_VALUE" || return 1; done; }
wait_until "a PUT on node 1 readable on nodes 2 and 3" 5 replicated
if [ "$captured" = 1 ]; then
  capture_stop
  [ "$(shows "$W/signed.pcap" "$SECRET_VALUE")" -gt 0 ] || { echo "FAILED: the signed capture does not show the value: the capture sees nothing"; exit 1; }
  echo "ok: signed, not encrypted: the capture shows the written value"
fi
api 3 PUT /v1/kv/owned-by-3 mine >/dev/null

kill -9 "${PID[3]}"; unset 'PID[3]'
dead3() { [ "$(status_of 1 3)" = dead ] && [ "$(status_of 2 3)" = dead ]; }
wait_until "SIGKILLed node 3 held dead by nodes 1 and 2" 40 dead3

start 3
back3() { [ "$(status_of 1 3)" = alive ] && [ "$(generation_of 1 3)" = 1 ] && api 3 GET /v1/kv/owned-by-3 | grep -q mine; }
wait_until "node 3 back in generation 1 with its own write" 20 back3

ip -n "$BR" link set "b${P}2" down
cut2() { [ "$(status_of 1 2)" = dead ] && [ "$(status_of 2 1)" = dead ]; }
wait_until "with its link down, node 2 and the others hold each other dead" 60 cut2
api 1 PUT /v1/kv/during partition >/dev/null
ip -n "$BR" link set "b${P}2" up
healed() { all_see alive 1 2 3 && api 2 GET /v1/kv/during | grep -q partition; }
wait_until "link restored: every view has all three alive and node 2 has the write made meanwhile" 40 healed

kill -TERM "${PID[2]}"; wait "${PID[2]}"; code=$?; unset 'PID[2]'
[ "$code" = 0 ] || { echo "FAILED: SIGTERM exit code $code"; exit 1; }
left2() { [ "$(status_of 1 2)" = left ] && [ "$(status_of 3 2)" = left ]; }
wait_until "SIGTERM: node 2 left gracefully (exit 0) and is reported left" 10 left2

# Encrypted: three fresh agents with --encrypt, the same keys; nothing readable crosses the bridge.
for k in "${!PID[@]}"; do kill -9 "${PID[$k]}" 2>/dev/null || true; done
PID=()
rm -rf "$W"/n1 "$W"/n2 "$W"/n3
if [ "$captured" = 1 ]; then capture_start "$W/encrypted.pcap"; fi
for n in 1 2 3; do start "$n" --encrypt; done
wait_until "three encrypting agents agree, all alive" 20 all_see alive 1 2 3
api 1 PUT "/v1/kv/$SECRET_KEY" "$SECRET_VALUE" >/dev/null
secret() { for n in 2 3; do api "$n" GET "/v1/kv/$SECRET_KEY" | grep -q "$SECRET_VALUE" || return 1; done; }
wait_until "encrypted: a PUT on node 1 readable on nodes 2 and 3" 10 secret
if [ "$captured" = 1 ]; then
  capture_stop
  size=$(stat -c %s "$W/encrypted.pcap")
  [ "$size" -gt 10000 ] || { echo "FAILED: the encrypted capture holds only $size bytes"; exit 1; }
  for needle in "$SECRET_KEY" "$SECRET_VALUE"; do
    [ "$(shows "$W/encrypted.pcap" "$needle")" = 0 ] || { echo "FAILED: $needle in plain text in the encrypted capture"; exit 1; }
  done
  echo "ok: encrypted: $size bytes captured, no written key or value in plain text"
else
  echo "SKIPPED the capture of encrypted traffic: tcpdump is missing (the agents still ran encrypted)"
fi
echo "netns test passed"
