#!/usr/bin/env bash
# A fixed-rate SET load's latency with no save running, beside N busy-looping processes: the
# floor a save's CPU use imposes on a small machine (BENCHMARKS.md, "p99 during a save").
#   scripts/bench-neighbour.sh SERVER BUSY [RATE] [SECONDS]
#   SERVER: redis | ferrokey1 | ferrokey2 (ferrokey with --threads 1 or 2); CLIENTS=10 by default.
# Prints the load's CSV line: test, ops/s, avg, min, p50, p95, p99, max (ms).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVER=$1; BUSY=$2; RATE=${3:-20000}; SECS=${4:-6}; CLIENTS=${CLIENTS:-10}
cargo build --release --bin ferrokey-server --bin ferrokey-benchmark >/dev/null 2>&1
work=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
case $SERVER in
  redis) redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" --logfile "$work/log" & ;;
  ferrokey1|ferrokey2) target/release/ferrokey-server --port "$port" --bind 127.0.0.1 --threads "${SERVER#ferrokey}" \
    --save "" --dir "$work" >"$work/log" 2>&1 & ;;
  *) echo "SERVER is redis, ferrokey1 or ferrokey2" >&2; exit 2 ;;
esac
pids+=($!)
for _ in $(seq 1 3000); do redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break; sleep 0.01; done
for _ in $(seq 1 "$BUSY"); do timeout $((SECS + 2)) sh -c 'while :; do :; done' & pids+=($!); done
target/release/ferrokey-benchmark -p "$port" -c "$CLIENTS" -t set -r 100000 -d 1000 --rate $((RATE / CLIENTS)) \
  --test-time "$SECS" -n $((RATE * (SECS + 5))) --csv 2>/dev/null | sed -n 2p
