#!/usr/bin/env bash
# Snapshots, ferrokey (2 shards, no fork) against Debian's redis-server (fork), one after the
# other on the same machine and CPUs, with the same data:
#   - BGSAVE of KEYS keys of SIZE bytes: save time idle and under a fixed-rate SET load over the
#     same keys, peak memory during the save against the steady memory (the server's RSS plus
#     its children's private pages: a fork counts only what copy-on-write duplicated), and
#     the load's p99 with and without a save running;
#   - load time at startup of the same file (redis-server's dump) into each.
# Usage: [CLIENTS=10] scripts/bench-snapshot.sh [KEYS] [SIZE] [RATE]   (defaults 2000000 1000 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-2000000}; SIZE=${2:-1000}; RATE=${3:-20000}
CLIENTS=${CLIENTS:-10}
cargo build --release --bin ferrokey-server --bin ferrokey-benchmark >/dev/null 2>&1
FK=target/release/ferrokey-server; FKB=target/release/ferrokey-benchmark
work=$(mktemp -d)
cleanup() { for p in $(cat "$work/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # port log
  for _ in $(seq 1 30000); do
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.01
  done; echo "server on $1 did not start: $(tail -5 "$2")" >&2; return 1
}
# Memory (KiB) of a server and its children: the server's RSS (from /proc/PID/status, which
# does not walk its page tables: reading smaps of a 2 GB process every 20 ms stalls its
# allocations on the mmap lock) plus each child's private pages (what a fork's copy-on-write
# duplicated; the pages it shares with the server are counted once).
mem() {
  local total p
  total=$(awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0)
  for p in $(pgrep -P "$1" || true); do
    total=$((total + $(awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s + 0}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
field() { redis-cli -p "$1" info persistence | tr -d '\r' | awk -F: -v f="$2" '$1 == f {print $2}'; }
now() { date +%s.%N; }
start() { # name dir -> "pid port"
  local port; port=$(free_port)
  if [ "$1" = redis ]; then
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$2" \
      --logfile "$2/log" >/dev/null 2>&1 &
  else
    "$FK" --port "$port" --bind 127.0.0.1 --threads 2 --save "" --dir "$2" >"$2/log" 2>&1 &
  fi
  local pid=$!; echo "$pid" >> "$work/pids"; wait_ready "$port" "$2/log"; echo "$pid $port"
}
# Runs BGSAVE and waits for its end, sampling PSS every 20 ms; prints "seconds peak_kib".
bgsave() { # pid port
  local peak=0 t0 m
  t0=$(now)
  redis-cli -p "$2" bgsave >/dev/null
  while :; do
    m=$(mem "$1"); [ "$m" -gt "$peak" ] && peak=$m
    [ "$(field "$2" rdb_bgsave_in_progress)" = 0 ] && break
    sleep 0.02
  done
  echo "$(echo "$(now) - $t0" | bc) $peak"
}
p99() { awk -F, 'NR == 2 {gsub(/"/, "", $7); print $7}' "$1"; }
load() { # port seconds csv
  "$FKB" -p "$1" -c "$CLIENTS" -t set -r "$KEYS" -d "$SIZE" --rate $((RATE / CLIENTS)) \
    --test-time "$2" -n $((RATE * ($2 + 5))) --csv >"$3" 2>/dev/null
}

echo "ferrokey $(git rev-parse --short HEAD) vs $(redis-server --version | cut -d' ' -f3); $KEYS keys of $SIZE bytes; load $RATE SET/s"
printf '%-9s %9s %9s %9s %9s %10s %9s %9s %9s\n' server steady_MB save_s peak_MB "load_s" "peak_MB" p99_base p99_save cow_MB
declare -A result
for name in redis ferrokey; do
  dir="$work/$name"; mkdir -p "$dir"
  read -r pid port < <(start "$name" "$dir")
  "$FKB" -p "$port" -c 1 -P 256 -t set -n "$KEYS" -r "$KEYS" --key-pattern S -d "$SIZE" -q >/dev/null
  [ "$(redis-cli -p "$port" dbsize)" = "$KEYS" ] || { echo "$name: fill incomplete" >&2; exit 1; }
  sleep 2 # let the allocator settle before the steady figure
  steady=$(mem "$pid")
  read -r idle_s idle_peak < <(bgsave "$pid" "$port")
  window=$(python3 -c "import math; print(max(3, math.ceil($idle_s * 1.5) + 1))")
  load "$port" "$window" "$work/$name-base.csv"
  load "$port" "$window" "$work/$name-save.csv" &
  lpid=$!
  sleep 0.3
  read -r load_s load_peak < <(bgsave "$pid" "$port")
  wait "$lpid"
  cow=$(field "$port" rdb_last_cow_size)
  printf '%-9s %9d %9.2f %9d %9.2f %10d %9s %9s %9d\n' "$name" $((steady / 1024)) "$idle_s" $((idle_peak / 1024)) \
    "$load_s" $((load_peak / 1024)) "$(p99 "$work/$name-base.csv")" "$(p99 "$work/$name-save.csv")" $((cow / 1048576))
  result[$name-steady]=$steady; result[$name-peak]=$load_peak; result[$name-save]=$load_s
  redis-cli -p "$port" save >/dev/null
  kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
done
echo "peak/steady during the save under load: redis $(echo "scale=2; ${result[redis-peak]} / ${result[redis-steady]}" | bc), ferrokey $(echo "scale=2; ${result[ferrokey-peak]} / ${result[ferrokey-steady]}" | bc)"
echo "save time under load, ferrokey/redis: $(echo "scale=2; ${result[ferrokey-save]} / ${result[redis-save]}" | bc)"

# Load time of redis-server's dump at startup, in each: from the start of the process until it
# answers PING (not LOADING), which counts every core's share (ferrokey's loader logs its line
# when it has sent everything, before the cores have put it all in).
for name in redis ferrokey; do
  dir="$work/load-$name"; mkdir -p "$dir"; cp "$work/redis/dump.rdb" "$dir/dump.rdb"
  t0=$(now)
  read -r pid port < <(start "$name" "$dir")
  secs=$(echo "$(now) - $t0" | bc)
  result[$name-load]=$secs
  echo "load of redis-server's dump into $name: $secs s ($(redis-cli -p "$port" dbsize) keys)"
  kill -9 "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
done
echo "load time, ferrokey/redis: $(echo "scale=2; ${result[ferrokey-load]} / ${result[redis-load]}" | bc)"
