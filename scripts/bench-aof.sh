#!/usr/bin/env bash
# The append-only file's cost, ferrokey against Debian's redis-server in one run, same CPUs:
# SET throughput and server CPU per SET with appendonly off, appendfsync everysec and
# appendfsync always, over TLS and plain, P=16 and P=1, each server started afresh on an empty
# directory. Prints ops/s, server µs/op (utime+stime of every thread, the AOF writer's and
# Redis's bio threads included) and, per server, the ratio to its own AOF-off throughput.
#
# Each server runs pinned to cpu SERVER_CPU (ferrokey with threads 1, as redis-server has one
# main thread), redis-benchmark to cpu CLIENT_CPU; their helper threads float.
#
#   scripts/bench-aof.sh [-n REQUESTS] [-c CLIENTS] [--rounds R] [--pipelines "16 1"]
set -euo pipefail
cd "$(dirname "$0")/.."
N=2000000; C=50; ROUNDS=3; SERVER_CPU=0; CLIENT_CPU=1; PIPELINES="16 1"
while [ $# -gt 0 ]; do
  case $1 in
    -n) N=$2; shift 2 ;;
    -c) C=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --pipelines) PIPELINES=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2; exit 1; }
cargo build --release --bins >/dev/null 2>&1 || { cargo build --release --bins; exit 1; }
work=$(mktemp -d); scripts/gen-test-certs.sh "$work/certs" >/dev/null
FK=target/release/ferrokey-server
TICK=$(getconf CLK_TCK)
cleanup() { for p in $(cat "$work/pids" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 400); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }

# start WHO MODE -> "pid port tls_port"; MODE is off, everysec or always.
start() {
  local who=$1 mode=$2 p t dir aof=(--appendonly no)
  p=$(free_port); t=$(free_port); dir=$(mktemp -d -p "$work")
  [ "$mode" != off ] && aof=(--appendonly yes --appendfsync "$mode")
  local tls=(--tls-port "$t" --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key"
             --tls-ca-cert-file "$work/certs/ca.crt" --tls-auth-clients no)
  if [ "$who" = redis ]; then
    taskset -c "$SERVER_CPU" redis-server --port "$p" --bind 127.0.0.1 --save "" --dir "$dir" "${aof[@]}" \
      "${tls[@]}" --loglevel warning >/dev/null 2>&1 &
  else
    "$FK" --port "$p" --bind 127.0.0.1 --threads 1 --server-cpus "$SERVER_CPU" --save "" --dir "$dir" \
      "${aof[@]}" "${tls[@]}" --loglevel warning >/dev/null 2>&1 &
  fi
  local pid=$!; echo "$pid" >> "$work/pids"; wait_port "$p"; wait_port "$t"
  for _ in $(seq 1 400); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.05; done
  echo "$pid $p $t"
}

# bench PID PORT TLS P -> "ops_per_sec us_per_op"
bench() {
  local pid=$1 port=$2 tls=$3 P=$4 tlsargs=() n before after out
  [ "$tls" = 1 ] && tlsargs=(--tls --cacert "$work/certs/ca.crt")
  n=$(( P > 1 ? N : N / 10 ))
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" "${tlsargs[@]}" \
        -n "$n" -c "$C" -P "$P" -r 100000 -d 16 --csv -t set 2>/dev/null | tail -1)
  after=$(cpu_ticks "$pid")
  awk -v r="$(echo "$out" | cut -d, -f2 | tr -d '"')" -v t=$((after - before)) -v hz="$TICK" -v n="$n" \
    'BEGIN { printf "%.0f %.2f\n", r, t * 1e6 / hz / n }'
}

echo "ferrokey $(git rev-parse --short HEAD 2>/dev/null || echo '?') vs redis-server $(redis-server --version | cut -d' ' -f3)"
echo "SET, -n $N (P=1: N/10) -c $C -d 16 -r 100000; servers on cpu $SERVER_CPU (ferrokey threads 1), client on cpu $CLIENT_CPU;"
echo "median of $ROUNDS rounds, servers interleaved; every run starts a fresh server on an empty directory"
echo
echo "| transport | P | appendonly | redis ops/s | ferrokey ops/s | redis µs/op | ferrokey µs/op | redis vs its off | ferrokey vs its off | ferrokey/redis ops/s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for tls in 1 0; do
  for P in $PIPELINES; do
    declare -A base=()
    for mode in off everysec always; do
      r_ops=(); r_us=(); f_ops=(); f_us=()
      for _ in $(seq 1 "$ROUNDS"); do
        for who in redis ferrokey; do
          read -r pid port tport < <(start "$who" "$mode")
          read -r ops us < <(bench "$pid" "$( [ "$tls" = 1 ] && echo "$tport" || echo "$port")" "$tls" "$P")
          kill -9 "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
          if [ "$who" = redis ]; then r_ops+=("$ops"); r_us+=("$us"); else f_ops+=("$ops"); f_us+=("$us"); fi
        done
      done
      ro=$(printf '%s\n' "${r_ops[@]}" | median); ru=$(printf '%s\n' "${r_us[@]}" | median)
      fo=$(printf '%s\n' "${f_ops[@]}" | median); fu=$(printf '%s\n' "${f_us[@]}" | median)
      [ "$mode" = off ] && base[r]=$ro && base[f]=$fo
      rr=$(awk -v a="$ro" -v b="${base[r]}" 'BEGIN { printf "%.2f", a / b }')
      fr=$(awk -v a="$fo" -v b="${base[f]}" 'BEGIN { printf "%.2f", a / b }')
      x=$(awk -v a="$fo" -v b="$ro" 'BEGIN { printf "%.2f", a / b }')
      echo "| $( [ "$tls" = 1 ] && echo TLS || echo plain) | $P | $mode | $ro | $fo | $ru | $fu | $rr | $fr | $x |"
    done
  done
done
