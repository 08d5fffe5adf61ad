#!/usr/bin/env bash
# ferrokey vs Debian's redis-server (or --reference BINARY, any server taking redis-server's
# flags, e.g. valkey-server), in one run, on loopback.
#
# Each server runs pinned to cpu SERVER_CPU; redis-benchmark runs pinned to cpu CLIENT_CPU. For each
# of plain/TLS x P=1/P=16 x SET/GET it prints ops/s and server CPU µs per operation (utime+stime
# from /proc/PID/stat over the run), and the ratio ferrokey/redis (lower is better for µs/op).
# Then data types, sorted-set size scaling, TLS handshake cost (full RSA with client cert, ECDSA,
# resumed), a steady load's p99 beside connection churn, ferrokey threads 2 vs threads 1 (keys on
# both shards), RSS per idle plain and TLS connection, and memory per key and per small hash, set, sorted set and list.
#
#   scripts/bench-compare.sh [-n REQUESTS] [-c CLIENTS] [--idle N] [--reference BINARY] [--quick]
#                            [--only matrix,types,zset,streams,handshakes,churn,threads,affinity,rate,newuser,acl,scripts,idle,memory,client,observe,tracking,metrics,cluster]
set -euo pipefail
cd "$(dirname "$0")/.."
N=200000; C=50; IDLE=10000; SERVER_CPU=0; CLIENT_CPU=1; REF=redis-server; ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    -n) N=$2; shift 2 ;;
    -c) C=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --reference) REF=$2; shift 2 ;;
    --quick) N=50000; IDLE=2000; shift ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v "$REF" >/dev/null && command -v redis-benchmark >/dev/null || {
  echo "needs redis-server and redis-benchmark (apt-get install redis-server redis-tools)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || true
# FK=BINARY measures that build as it is (nothing is built).
[ -n "${FK:-}" ] || cargo build --release --bins >/dev/null 2>&1 || { cargo build --release --bins; exit 1; }
certs=$(mktemp -d); scripts/gen-test-certs.sh "$certs" >/dev/null
FK=${FK:-target/release/ferrokey-server}
# CPU time is read in µs (see cpu_ticks): TICK is its unit per second.
TICK=1000000
# Servers start in subshells (process substitution), so their pids are kept in a file.
pidfile="$certs/pids"
cleanup() { [ -f "$pidfile" ] && xargs -r kill 2>/dev/null < "$pidfile" || true; rm -rf "$certs"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
want() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
# The CPU time of PID's threads, µs: the scheduler's own ns counters (schedstat), where
# /proc/PID/stat counts 10 ms ticks, 2.5 % of a 0.4 s run. A thread that exited during the run
# (an io_uring worker) takes its time with it; the server's own threads live throughout.
cpu_ticks() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ ns += $1 } END { printf "%.0f\n", ns / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
wait_port() { for _ in $(seq 1 200); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

start_redis() { # -> "pid port tls_port"
  local p t; p=$(free_port); t=$(free_port)
  taskset -c "$SERVER_CPU" "$REF" --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
    --maxclients 20000 --tls-port "$t" --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
    --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no --loglevel warning >/dev/null 2>&1 &
  local pid=$!; echo "$pid" >> "$pidfile"; wait_port "$p"; wait_port "$t"; echo "$pid $p $t"
}
start_ferrokey() { # threads cpus [--directive value ...] -> "pid port tls_port"
  local p t; p=$(free_port); t=$(free_port)
  "$FK" --port "$p" --bind 127.0.0.1 --threads "$1" --server-cpus "$2" --maxclients 20000 --save "" \
    --tls-port "$t" --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
    --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no --loglevel warning "${@:3}" >/dev/null 2>&1 &
  local pid=$!; echo "$pid" >> "$pidfile"; wait_port "$p"; wait_port "$t"; echo "$pid $p $t"
}

# bench PID PORT TLS(0/1) PIPELINE TEST [COMMAND...] -> "ops_per_sec us_per_op p99_ms"
# TEST is a redis-benchmark -t name; with a COMMAND it only labels the run.
bench() {
  local pid=$1 port=$2 tls=$3 P=$4 test=$5 tlsargs=() before after out rps what
  shift 5; what=(-t "$test"); [ $# -gt 0 ] && what=("$@")
  [ "$tls" = 1 ] && tlsargs=(--tls --cacert "$certs/ca.crt")
  # Pipelined runs get 10x the requests, so that they last long enough for /proc's tick
  # granularity and the fixed cost of connecting not to dominate.
  local n=$(( P > 1 ? N * 10 : N ))
  before=$(cpu_ticks "$pid")
  out=$(taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" "${tlsargs[@]}" "${LOGIN[@]}" \
        -n "$n" -c "$C" -P "$P" -r "${RANGE:-100000}" -d 16 --csv "${what[@]}" 2>/dev/null | tail -1)
  after=$(cpu_ticks "$pid")
  rps=$(echo "$out" | cut -d, -f2 | tr -d '"')
  p99=$(echo "$out" | cut -d, -f7 | tr -d '"')
  awk -v r="$rps" -v t=$((after - before)) -v hz="$TICK" -v n="$n" -v p="${p99:-0}" \
    'BEGIN { printf "%.0f %.3f %s\n", r, t * 1e6 / hz / n, p }'
}

LOGIN=()  # redis-benchmark's --user/-a, for runs as an ACL user
read -r RPID RPORT RTLS < <(start_redis)
read -r FPID FPORT FTLS < <(start_ferrokey 1 "$SERVER_CPU")
echo "ferrokey $(git rev-parse --short HEAD 2>/dev/null || echo '?') vs $REF $("$REF" --version | cut -d' ' -f3)"
echo "(the reference is called redis below, whichever binary it is)"
echo "servers pinned to cpu $SERVER_CPU, redis-benchmark to cpu $CLIENT_CPU; -n $N -c $C -r 100000 -d 16"
echo
if want matrix; then
echo "| transport | P | test | redis ops/s | ferrokey ops/s | redis p99 ms | ferrokey p99 ms | redis µs/op | ferrokey µs/op | µs/op ratio fk/redis |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for tls in 0 1; do
  for P in 1 16; do
    for test in set get; do
      read -r r_rps r_us r_p99 < <(bench "$RPID" "$( [ $tls = 1 ] && echo "$RTLS" || echo "$RPORT")" $tls $P $test)
      read -r f_rps f_us f_p99 < <(bench "$FPID" "$( [ $tls = 1 ] && echo "$FTLS" || echo "$FPORT")" $tls $P $test)
      ratio=$(awk -v a="$f_us" -v b="$r_us" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      echo "| $( [ $tls = 1 ] && echo TLS || echo plain) | $P | ${test^^} | $r_rps | $f_rps | $r_p99 | $f_p99 | $r_us | $f_us | $ratio |"
    done
  done
done
fi

if want types; then
echo
echo "Data types, TLS, P=16 (same pinning):"
echo "| test | redis ops/s | ferrokey ops/s | redis µs/op | ferrokey µs/op | µs/op ratio fk/redis |"
echo "|---|---|---|---|---|---|"
for test in lpush lpop sadd hset zadd "zrange 0 9"; do
  cmd=(); [ "$test" = "zrange 0 9" ] && cmd=(ZRANGE myzset 0 9)
  read -r r_rps r_us _ < <(bench "$RPID" "$RTLS" 1 16 "$test" "${cmd[@]}")
  read -r f_rps f_us _ < <(bench "$FPID" "$FTLS" 1 16 "$test" "${cmd[@]}")
  ratio=$(awk -v a="$f_us" -v b="$r_us" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  echo "| ${test^^} | $r_rps | $f_rps | $r_us | $f_us | $ratio |"
done
fi

# preload PORT KEY MEMBERS: a sorted set of MEMBERS members, in 1000-member ZADDs.
preload() {
  python3 -c '
import sys
key, n = sys.argv[1].encode(), int(sys.argv[2])
out = sys.stdout.buffer
for start in range(0, n, 1000):
    args = [b"ZADD", key]
    for i in range(start, min(n, start + 1000)):
        args += [str(i).encode(), b"m:%012d" % i]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
' "$2" "$3" | redis-cli -p "$1" --pipe >/dev/null
}
if want zset; then
echo
echo "ZADD moving random members of a 1k vs a 1M-member sorted set, TLS, P=16 (per-op cost should not grow with size):"
echo "| server | 1k µs/op | 1M µs/op | ratio 1M/1k |"
echo "|---|---|---|---|"
for who in redis ferrokey; do
  if [ $who = redis ]; then pid=$RPID; port=$RPORT; tport=$RTLS; else pid=$FPID; port=$FPORT; tport=$FTLS; fi
  preload "$port" zs1k 1000; preload "$port" zs1m 1000000
  read -r _ small _ < <(RANGE=1000 bench "$pid" "$tport" 1 16 zadd ZADD zs1k __rand_int__ m:__rand_int__)
  read -r _ big _ < <(RANGE=1000000 bench "$pid" "$tport" 1 16 zadd ZADD zs1m __rand_int__ m:__rand_int__)
  echo "| $who | $small | $big | $(awk -v a="$big" -v b="$small" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
done
fi

# xpreload PORT KEY N: a stream of N entries with IDs 1-0 .. N-0 (one 16-byte field), and
# group g reading from its start; 1000 XADDs per pipe write.
xpreload() {
  python3 -c '
import sys
key, n = sys.argv[1].encode(), int(sys.argv[2])
out = sys.stdout.buffer
def cmd(*args):
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
for i in range(1, n + 1):
    cmd(b"XADD", key, b"%d-0" % i, b"field", b"value-%010d" % i)
cmd(b"XGROUP", b"CREATE", key, b"g", b"0")
' "$2" "$3" | redis-cli -p "$1" --pipe >/dev/null
}
# geopreload PORT KEY N: N points spread over Sicily (a 3° by 2° box), as GEOADDs of 100.
geopreload() {
  python3 -c '
import sys
key, n = sys.argv[1].encode(), int(sys.argv[2])
out = sys.stdout.buffer
for start in range(0, n, 100):
    args = [b"GEOADD", key]
    for i in range(start, min(n, start + 100)):
        args += [b"%.6f" % (12 + (i * 7919 % 30000) / 10000), b"%.6f" % (37 + (i * 104729 % 20000) / 10000), b"p%d" % i]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
' "$2" "$3" | redis-cli -p "$1" --pipe >/dev/null
}
used_memory() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'; }
if want streams; then
echo
echo "Streams, bitmaps, HyperLogLog and geo, TLS, P=16 (medians of 3 runs; each XREADGROUP delivers one entry"
echo "of a preloaded stream to consumer c, each XACK acknowledges a random one; SETBIT sets one bit of a 1 MB"
echo "bitmap at a fixed offset, as redis-benchmark's random integers have leading zeros SETBIT refuses;"
echo "GEOSEARCH finds the 10 nearest of 10000 points within 20 km):"
echo "| test | redis µs/op | ferrokey µs/op | µs/op ratio fk/redis |"
echo "|---|---|---|---|"
n_ops=$(( N * 30 ))  # three runs of N * 10 requests at P=16, each XREADGROUP reading one entry
for who in redis ferrokey; do
  if [ $who = redis ]; then port=$RPORT; else port=$FPORT; fi
  redis-cli -p "$port" DEL xs xb bm1m hll geo >/dev/null
  geopreload "$port" geo 10000
  before=$(used_memory "$port"); xpreload "$port" xb "$n_ops"; after=$(used_memory "$port")
  declare -g "mem_$who=$(( (after - before) / n_ops ))"
  redis-cli -p "$port" SETBIT bm1m 8388607 1 >/dev/null
done
declare -A sums
for test in "XADD xs MAXLEN ~ 100000 * field __rand_int__" "XREADGROUP GROUP g c COUNT 1 STREAMS xb >" \
            "XACK xb g __rand_int__-0" "SETBIT bm1m 4194303 1" "BITCOUNT bm1m" \
            "PFADD hll __rand_int__" "PFCOUNT hll" "GEOSEARCH geo FROMLONLAT 13.4 38.1 BYRADIUS 20 km COUNT 10 ASC"; do
  rs=(); fs=()
  read -r -a cmd <<< "$test"  # split without globbing: the `*` is XADD's
  for run in 1 2 3; do
    # Each XREADGROUP run reads on from where the last stopped: the stream holds enough.
    read -r _ r_us _ < <(RANGE=8000000 bench "$RPID" "$RTLS" 1 16 x "${cmd[@]}")
    read -r _ f_us _ < <(RANGE=8000000 bench "$FPID" "$FTLS" 1 16 x "${cmd[@]}")
    rs+=("$r_us"); fs+=("$f_us")
  done
  r=$(median "${rs[@]}"); f=$(median "${fs[@]}")
  echo "| ${test%% *} | $r | $f | $(awk -v a="$f" -v b="$r" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
  sums[${test%% *}]="$r $f"
done
read -r r1 f1 <<< "${sums[XREADGROUP]}"; read -r r2 f2 <<< "${sums[XACK]}"
echo "| XREADGROUP+XACK | $(awk -v a="$r1" -v b="$r2" 'BEGIN { printf "%.3f", a + b }') | $(awk -v a="$f1" -v b="$f2" 'BEGIN { printf "%.3f", a + b }') | $(awk -v a="$f1" -v b="$f2" -v c="$r1" -v d="$r2" 'BEGIN { printf "%.2f", (a + b) / (c + d) }') |"
echo
echo "Memory per stream entry ($n_ops entries, one 16-byte field each; used_memory before and after):"
echo "| redis bytes/entry | ferrokey bytes/entry | ratio fk/redis |"
echo "|---|---|---|"
echo "| $mem_redis | $mem_ferrokey | $(awk -v a="$mem_ferrokey" -v b="$mem_redis" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
fi

if want observe; then
echo
echo "Observability on and off, TLS, P=16 (same pinning; the same ferrokey reconfigured between runs):"
echo "| test | redis µs/op | ferrokey off µs/op | latency monitor on µs/op | + notifications on µs/op | on/off | notify/off | redis notify/off |"
echo "|---|---|---|---|---|---|---|---|"
for test in set get lpush; do
  read -r _ r_us _ < <(bench "$RPID" "$RTLS" 1 16 "$test")
  redis-cli -p "$FPORT" config set latency-monitor-threshold 0 notify-keyspace-events "" >/dev/null
  read -r _ off_us _ < <(bench "$FPID" "$FTLS" 1 16 "$test")
  redis-cli -p "$FPORT" config set latency-monitor-threshold 1 >/dev/null
  read -r _ on_us _ < <(bench "$FPID" "$FTLS" 1 16 "$test")
  # Every class on, nobody subscribed (a shard then builds nothing; Redis builds each message).
  redis-cli -p "$FPORT" config set notify-keyspace-events KEA >/dev/null
  read -r _ ks_us _ < <(bench "$FPID" "$FTLS" 1 16 "$test")
  redis-cli -p "$FPORT" config set latency-monitor-threshold 0 notify-keyspace-events "" >/dev/null
  redis-cli -p "$RPORT" config set notify-keyspace-events KEA >/dev/null
  read -r _ rks_us _ < <(bench "$RPID" "$RTLS" 1 16 "$test")
  redis-cli -p "$RPORT" config set notify-keyspace-events "" >/dev/null
  echo "| ${test^^} | $r_us | $off_us | $on_us | $ks_us | $(awk -v a="$on_us" -v b="$off_us" 'BEGIN { printf "%.2f", a / b }') | $(awk -v a="$ks_us" -v b="$off_us" 'BEGIN { printf "%.2f", a / b }') | $(awk -v a="$rks_us" -v b="$r_us" 'BEGIN { printf "%.2f", a / b }') |"
done
fi

if want tracking; then
# tracker PORT: a RESP3 client in CLIENT TRACKING BCAST mode following a prefix no benchmark key
# has, so that every write is checked against it and none is sent; it reads until killed
# (bounded by timeout).
tracker() {
  timeout 900 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*6\r\n$6\r\nCLIENT\r\n$8\r\nTRACKING\r\n$2\r\nON\r\n$5\r\nBCAST\r\n$6\r\nPREFIX\r\n$4\r\nzzz:\r\n")
while s.recv(65536):
    pass
' "$1" >/dev/null 2>&1 &
  echo $!
}
echo
echo "CLIENT TRACKING enabled: a BCAST client follows a prefix no key has, so every write is checked"
echo "against it and nothing is sent (TLS, P=16, medians of 3 runs, tracking off and on alternating):"
echo "| test | redis off µs/op | redis on µs/op | ferrokey off µs/op | ferrokey on µs/op | redis on/off | ferrokey on/off |"
echo "|---|---|---|---|---|---|---|"
for test in set get lpush; do
  ro=(); rn=(); fo=(); fn=()
  for run in 1 2 3; do
    read -r _ r _ < <(bench "$RPID" "$RTLS" 1 16 "$test"); ro+=("$r")
    read -r _ f _ < <(bench "$FPID" "$FTLS" 1 16 "$test"); fo+=("$f")
    rt=$(tracker "$RPORT"); ft=$(tracker "$FPORT")
    until [ "$(redis-cli -p "$RPORT" INFO clients | tr -d '\r' | awk -F: '$1 == "tracking_clients" { print $2 }')" = 1 ] &&
          [ "$(redis-cli -p "$FPORT" INFO clients | tr -d '\r' | awk -F: '$1 == "tracking_clients" { print $2 }')" = 1 ]; do
      sleep 0.05
    done
    read -r _ r _ < <(bench "$RPID" "$RTLS" 1 16 "$test"); rn+=("$r")
    read -r _ f _ < <(bench "$FPID" "$FTLS" 1 16 "$test"); fn+=("$f")
    kill "$rt" "$ft"; wait "$rt" "$ft" 2>/dev/null || true
    until [ "$(redis-cli -p "$FPORT" INFO clients | tr -d '\r' | awk -F: '$1 == "tracking_clients" { print $2 }')" = 0 ]; do
      sleep 0.05
    done
  done
  r0=$(median "${ro[@]}"); r1=$(median "${rn[@]}"); f0=$(median "${fo[@]}"); f1=$(median "${fn[@]}")
  echo "| ${test^^} | $r0 | $r1 | $f0 | $f1 | $(awk -v a="$r1" -v b="$r0" 'BEGIN { printf "%.2f", a / b }') | $(awk -v a="$f1" -v b="$f0" 'BEGIN { printf "%.2f", a / b }') |"
done
fi

if want metrics; then
echo
echo "Prometheus metrics: a ferrokey with metrics-port, scraped every 100 ms (15x-150x more often than"
echo "Prometheus's usual 1.5-15 s) during the runs, or not at all (TLS, P=16, medians of 3 runs"
echo "alternating); and the server CPU of one scrape of an idle server (INFO everything and the latency"
echo "histograms rendered):"
mp=$(free_port)
read -r MPID MPORT MTLS < <(start_ferrokey 1 "$SERVER_CPU" --metrics-port "$mp")
scraper() {
  taskset -c "$CLIENT_CPU" timeout 900 python3 -c '
import sys, time, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
while True:
    urllib.request.urlopen(url).read()
    time.sleep(0.1)
' "$1" >/dev/null 2>&1 &
  echo $!
}
echo "| test | unscraped µs/op | scraped µs/op | scraped/unscraped |"
echo "|---|---|---|---|"
for test in set get; do
  off=(); on=()
  for run in 1 2 3; do
    read -r _ o _ < <(bench "$MPID" "$MTLS" 1 16 "$test"); off+=("$o")
    sp=$(scraper "$mp")
    read -r _ n _ < <(bench "$MPID" "$MTLS" 1 16 "$test"); on+=("$n")
    kill "$sp"; wait "$sp" 2>/dev/null || true
  done
  o=$(median "${off[@]}"); n=$(median "${on[@]}")
  echo "| ${test^^} | $o | $n | $(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.2f", a / b }') |"
done
before=$(cpu_ticks "$MPID")
python3 -c '
import sys, urllib.request
for _ in range(50):
    urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read()
' "$mp"
after=$(cpu_ticks "$MPID")
series=$(python3 -c 'import sys, urllib.request; print(sum(1 for l in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1]).read().decode().splitlines() if not l.startswith("#")))' "$mp")
echo
echo "One scrape: $(awk -v t=$((after - before)) 'BEGIN { printf "%.2f", t / 50 / 1000 }') ms of server CPU, $series series."
kill "$MPID"; wait "$MPID" 2>/dev/null || true
fi

kill "$FPID"; wait "$FPID" 2>/dev/null || true

# TLS handshakes: server CPU per full handshake (RSA-2048 with a client certificate, ECDSA P-256
# without) and per resumed one, driven by ferrokey-benchmark --connect-rate (a handshake, a PING
# and a close per connection) fast enough to keep the server busy.
FKB=target/release/ferrokey-benchmark
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$certs/ec.key"
openssl req -new -key "$certs/ec.key" -subj /CN=localhost 2>/dev/null |
  openssl x509 -req -CA "$certs/ca.crt" -CAkey "$certs/ca.key" -CAcreateserial -days 30 -sha256 -out "$certs/ec.crt" \
    -extfile <(printf "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n") 2>/dev/null
start_tls_only() { # server cert key auth -> "pid tls_port"
  local t; t=$(free_port)
  if [ "$1" = redis ]; then
    taskset -c "$SERVER_CPU" "$REF" --port 0 --tls-port "$t" --tls-cert-file "$2" --tls-key-file "$3" \
      --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients "$4" --save "" --maxclients 20000 --loglevel warning >/dev/null 2>&1 &
  else
    "$FK" --port 0 --tls-port "$t" --threads 1 --save "" --server-cpus "$SERVER_CPU" --tls-cert-file "$2" --tls-key-file "$3" \
      --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients "$4" --maxclients 20000 --loglevel warning >/dev/null 2>&1 &
  fi
  local pid=$!; echo "$pid" >> "$pidfile"; wait_port "$t"; echo "$pid $t"
}
# connects PID PORT COUNT RATE [ARGS...] -> "server_ms_per_handshake handshakes_per_s resumed_share"
connects() {
  local pid=$1 port=$2 count=$3 rate=$4 before after json="$certs/connect.json"
  shift 4
  before=$(cpu_ticks "$pid")
  # --test-time bounds the run; the outer timeout bounds it even if something hangs.
  timeout 120 taskset -c "$CLIENT_CPU" "$FKB" -h 127.0.0.1 -p "$port" --tls --cacert "$certs/ca.crt" --sni localhost \
    --connect-rate "$rate" -n "$count" --test-time 60 -q --json "$json" "$@" >/dev/null 2>&1 || true
  after=$(cpu_ticks "$pid")
  python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tests"][0]; n=max(t["requests"],1)
print("%.3f %.0f %.2f" % (int(sys.argv[2]) * 1000 / int(sys.argv[3]) / n, t["rps"], t.get("resumed", 0) / n))' \
    "$json" $((after - before)) "$TICK"
}
if want handshakes; then
HS=$(( N / 50 ))
echo
echo "TLS handshakes ($HS per run, ferrokey-benchmark --connect-rate 3000/s, and 20000/s for \"@max\" rows,"
echo "where each server runs flat out: at 3000/s a server that finishes early pays for sleeping and"
echo "waking between handshakes): server CPU ms per handshake"
echo "| handshake | redis ms | ferrokey ms | ratio fk/redis | redis hs/s | ferrokey hs/s | resumed share redis/ferrokey |"
echo "|---|---|---|---|---|---|---|"
# Resumption is not measured flat out: an open-loop flood starts connections faster than
# tickets come back, so most of them would be full handshakes.
for row in rsa-client-cert ecdsa rsa-resumed rsa-client-cert@max ecdsa@max; do
  kind=${row%@max}; hz=3000
  [ "$row" != "$kind" ] && hz=20000
  declare -A ms rate share
  for who in redis ferrokey; do
    case $kind in
      ecdsa) read -r pid t < <(start_tls_only $who "$certs/ec.crt" "$certs/ec.key" no); extra=() ;;
      *) read -r pid t < <(start_tls_only $who "$certs/server.crt" "$certs/server.key" yes)
         extra=(--cert "$certs/client.crt" --key "$certs/client.key") ;;
    esac
    [ $kind = rsa-resumed ] && extra+=(--tls-resume)
    read -r m r sh < <(connects "$pid" "$t" "$HS" "$hz" "${extra[@]}")
    ms[$who]=$m; rate[$who]=$r; share[$who]=$sh
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
  echo "| $row | ${ms[redis]} | ${ms[ferrokey]} | $(awk -v a="${ms[ferrokey]}" -v b="${ms[redis]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') | ${rate[redis]} | ${rate[ferrokey]} | ${share[redis]}/${share[ferrokey]} |"
done
fi

# Steady load beside connection churn: redis-benchmark GET, 50 TLS clients, p99 with and
# without 200 new TLS connections per second (ferrokey-benchmark --connect-rate 200).
if want churn; then
echo
echo "Steady TLS load (50 clients, GET, P=1) beside 200 new TLS connections/s: p99 ms"
echo "| server | p99 alone | p99 with churn | ratio |"
echo "|---|---|---|---|"
for who in redis ferrokey; do
  read -r pid t < <(start_tls_only $who "$certs/server.crt" "$certs/server.key" no)
  p99() { taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$t" --tls --cacert "$certs/ca.crt" -t get \
          -n "$N" -c 50 -r 100000 --csv 2>/dev/null | tail -1 | cut -d, -f6 | tr -d '"'; }
  alone=$(p99)
  taskset -c "$CLIENT_CPU" "$FKB" -h 127.0.0.1 -p "$t" --tls --cacert "$certs/ca.crt" --sni localhost \
    --connect-rate 200 --test-time 120 -q >/dev/null 2>&1 &
  churn=$!
  sleep 1
  busy=$(p99)
  kill "$churn" 2>/dev/null; wait "$churn" 2>/dev/null || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "| $who | $alone | $busy | $(awk -v a="$busy" -v b="$alone" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
done
fi

hops_per_message() { # port -> mean hops per message between cores since the server started
  redis-cli -p "$1" info cores | tr -d '\r' | python3 -c 'import sys,re
m=h=0
for l in sys.stdin:
    f=dict(re.findall(r"(\w+)=([\d.]+)", l))
    m+=int(f.get("hop_messages",0)); h+=int(f.get("hops",0))
print("%.1f" % (h/m) if m else "-")'
}
# at_fixed_rate THREADS CPUS -> "ops_per_sec server_us_per_op hops_per_message" for TLS SET at
# 100k/s (P=16 pipelines from 50 connections at 2000 requests/s each).
at_fixed_rate() {
  local pid port tport before after
  read -r pid port tport < <(start_ferrokey "$1" "$2")
  before=$(cpu_ticks "$pid")
  timeout 120 "$FKB" -h 127.0.0.1 -p "$tport" --tls --cacert "$certs/ca.crt" --sni localhost -n $((N * 5)) \
    -c 50 -P 16 -r 100000 -d 16 -t set --rate 2000 --test-time 60 -q --json "$certs/rate.json" >/dev/null 2>&1 || true
  after=$(cpu_ticks "$pid")
  python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["tests"][0]; n=max(t["requests"],1)
print("%.0f %.2f %s" % (t["rps"], int(sys.argv[2]) * 1e6 / int(sys.argv[3]) / n, sys.argv[4]))' \
    "$certs/rate.json" $((after - before)) "$TICK" "$(hops_per_message "$port")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}
# split_fixed_rate -> "ops_per_sec server_us_per_op": the same 100k SET/s split over two
# independent threads-1 servers on cpus 0 and 1 (25 connections each): two cores parking and
# waking for their own requests, with no hop between them, the floor under threads 2's figure.
split_fixed_rate() {
  local a b pa pb ta tb ba bb
  read -r a pa ta < <(start_ferrokey 1 0)
  read -r b pb tb < <(start_ferrokey 1 1)
  ba=$(cpu_ticks "$a"); bb=$(cpu_ticks "$b")
  for t in "$ta" "$tb"; do
    timeout 120 "$FKB" -h 127.0.0.1 -p "$t" --tls --cacert "$certs/ca.crt" --sni localhost -n $((N * 5 / 2)) \
      -c 25 -P 16 -r 100000 -d 16 -t set --rate 2000 --test-time 60 -q --json "$certs/split$t.json" >/dev/null 2>&1 &
  done
  wait
  python3 -c 'import json,sys; ts=[json.load(open(f))["tests"][0] for f in sys.argv[1:3]]; n=max(sum(t["requests"] for t in ts),1)
print("%.0f %.2f" % (sum(t["rps"] for t in ts), int(sys.argv[3]) * 1e6 / int(sys.argv[4]) / n))' \
    "$certs/split$ta.json" "$certs/split$tb.json" $(( $(cpu_ticks "$a") - ba + $(cpu_ticks "$b") - bb )) "$TICK"
  kill "$a" "$b"; wait "$a" "$b" 2>/dev/null || true
}
if want threads; then
echo
echo "Cost of sharding, TLS SET, $C clients, keys on both shards: two shards on one cpu (threads 2,"
echo "cpus 1,1: no cross-core wake-up) against threads 1 on that cpu; redis-benchmark on cpu 0:"
echo "| P | threads 1 ops/s | threads 2 ops/s | threads 1 µs/op | threads 2 µs/op | ratio 2/1 |"
echo "|---|---|---|---|---|---|"
for P in 1 16; do
  row=()
  for cfg in "1 1" "2 1,1"; do
    read -r threads cpus <<< "$cfg"
    read -r PID _ TPORT < <(start_ferrokey "$threads" "$cpus")
    read -r rps us _ < <(CLIENT_CPU=0 bench "$PID" "$TPORT" 1 "$P" set)
    row+=("$rps" "$us")
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
  ratio=$(awk -v a="${row[3]}" -v b="${row[1]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  echo "| $P | ${row[0]} | ${row[2]} | ${row[1]} | ${row[3]} | $ratio |"
done
echo
echo "ferrokey threads 2 (cpus 0,1; keys on both shards) vs threads 1, TLS, P=16, load generator unpinned;"
echo "flat out (redis-benchmark) and at a fixed 100k SET/s (ferrokey-benchmark --rate 2000 -c 50):"
echo "| threads | test | ops/s | server µs/op | hops per message |"
echo "|---|---|---|---|---|"
for threads in 1 2; do
  cpus=$( [ $threads = 1 ] && echo 0 || echo 0,1 )
  for test in set get; do
    read -r PID PORT TPORT < <(start_ferrokey $threads $cpus)
    read -r rps us _ < <(CLIENT_CPU=0-1 bench "$PID" "$TPORT" 1 16 $test)
    echo "| $threads | ${test^^} | $rps | $us | $(hops_per_message "$PORT") |"
    kill "$PID"; wait "$PID" 2>/dev/null || true
  done
  read -r rps us hops < <(at_fixed_rate $threads $cpus)
  echo "| $threads | SET @100k/s | $rps | $us | $hops |"
done
fi

# One tenant: every key under one hash tag, so on one shard. Half the connections land on the
# other core (SO_REUSEPORT) and hop for every pipeline unless they move (`migrate-connections`).
if want affinity; then
echo
echo "Connection affinity: SET {tenant}:__rand_int__, every key on one shard, $C clients, threads 2;"
echo "migrate-connections no against yes (medians of 3 alternating), threads 1 beside; server µs/op:"
echo "| cpus (server; client) | transport | P | threads 1 | threads 2, no | threads 2, yes | yes/no | yes ops/s / no ops/s | moved |"
echo "|---|---|---|---|---|---|---|---|---|"
for layout in "1,1 0" "0,1 0-1"; do
  read -r cpus ccpu <<< "$layout"
  for tls in 0 1; do
    for P in 1 16; do
      one=(); no=(); yes=(); no_rps=(); yes_rps=(); moved=0
      for _ in 1 2 3; do
        for cfg in "1 ${cpus%%,*} yes" "2 $cpus no" "2 $cpus yes"; do
          read -r threads scpus migrate <<< "$cfg"
          read -r PID PORT TPORT < <(start_ferrokey "$threads" "$scpus" --migrate-connections "$migrate")
          read -r rps us _ < <(CLIENT_CPU=$ccpu bench "$PID" "$( [ $tls = 1 ] && echo "$TPORT" || echo "$PORT")" $tls $P set \
            SET "{tenant}:__rand_int__" xxxxxxxxxxxxxxxx)
          case "$threads $migrate" in
            "1 yes") one+=("$us") ;;
            "2 no") no+=("$us"); no_rps+=("$rps") ;;
            "2 yes") yes+=("$us"); yes_rps+=("$rps")
              moved=$(redis-cli -p "$PORT" INFO cores | grep -o 'moved_in=[0-9]*' | awk -F= '{ s += $2 } END { print s }') ;;
          esac
          kill "$PID"; wait "$PID" 2>/dev/null || true
        done
      done
      m1=$(median "${one[@]}"); mn=$(median "${no[@]}"); my=$(median "${yes[@]}")
      ratio=$(awk -v a="$my" -v b="$mn" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      rr=$(awk -v a="$(median "${yes_rps[@]}")" -v b="$(median "${no_rps[@]}")" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      echo "| $cpus; $ccpu | $( [ $tls = 1 ] && echo TLS || echo plain) | $P | $m1 | $mn | $my | $ratio | $rr | $moved |"
    done
  done
done
fi

# At a fixed 100k SET/s neither configuration is saturated, and an idle core must be woken for
# every cross-shard hop: the cost a lightly loaded server pays. Pairs of runs, threads 1 then
# threads 2, alternate so that the machine's drift falls on both; the median ratio is the figure.
if want rate; then
echo
echo "At a fixed 100k SET/s (ferrokey-benchmark --tls --rate 2000 -c 50 -P 16, unpinned): threads 2"
echo "(cpus 0,1, keys on both shards) against threads 1 (cpu 0), pairs of runs alternating:"
echo "The floor: the same load split over two threads-1 servers, one per cpu (no hops, each core"
echo "parking and waking for its own half)."
echo "| pair | threads 1 ops/s | threads 2 ops/s | threads 1 µs/op | threads 2 µs/op | hops per message | ratio 2/1 | split µs/op | ratio split/1 |"
echo "|---|---|---|---|---|---|---|---|---|"
ratios=(); floors=()
for pair in 1 2 3 4 5; do
  read -r rps1 one _ < <(at_fixed_rate 1 0)
  read -r rps2 two hops < <(at_fixed_rate 2 0,1)
  read -r _ split < <(split_fixed_rate)
  ratio=$(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  floor=$(awk -v a="$split" -v b="$one" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
  ratios+=("$ratio"); floors+=("$floor")
  echo "| $pair | $rps1 | $rps2 | $one | $two | $hops | $ratio | $split | $floor |"
done
echo "median ratio: $(printf '%s\n' "${ratios[@]}" | sort -n | sed -n 3p); median split/1: $(printf '%s\n' "${floors[@]}" | sort -n | sed -n 3p)"
fi

# A new user's first benchmark: each server in its default configuration (ferrokey from
# config/ferrokey.conf, as scripts/dev-server.sh runs it; redis-server with no arguments but
# its ports), unpinned, and redis-benchmark unpinned beside it, -t set,get with its default 50
# clients. FK_THREADS overrides ferrokey's `threads` (to compare choices of the default).
if want newuser; then
echo
echo "A new user's run: default configurations, nothing pinned, redis-benchmark -t set,get -c 50 -r 100000:"
echo "| transport | P | test | redis ops/s | ferrokey ops/s | redis p50 ms | ferrokey p50 ms | ops/s fk/redis |"
echo "|---|---|---|---|---|---|---|---|"
p=$(free_port); t=$(free_port)
"$REF" --port "$p" --tls-port "$t" --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" \
  --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no --dir "$certs" >/dev/null 2>&1 &
NRPID=$!; echo "$NRPID" >> "$pidfile"; wait_port "$p"; wait_port "$t"; NR=("$p" "$t")
p=$(free_port); t=$(free_port)
"$FK" config/ferrokey.conf --port "$p" --tls-port "$t" --tls-cert-file "$certs/server.crt" \
  --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.crt" --tls-auth-clients no --dir "$certs" \
  ${FK_THREADS:+--threads "$FK_THREADS"} >/dev/null 2>&1 &
NFPID=$!; echo "$NFPID" >> "$pidfile"; wait_port "$p"; wait_port "$t"; NF=("$p" "$t")
for tls in 0 1; do
  tlsargs=(); [ $tls = 1 ] && tlsargs=(--tls --cacert "$certs/ca.crt")
  for P in 1 16; do
    n=$(( P > 1 ? N * 10 : N ))
    declare -A res=()
    for who in redis ferrokey; do
      if [ $who = redis ]; then port=${NR[$tls]}; else port=${NF[$tls]}; fi
      while IFS=, read -r name rps _ _ p50 _; do
        name=$(echo "$name" | tr -d '"'); res[$who,$name]="$(echo "$rps" | tr -d '"') $(echo "$p50" | tr -d '"')"
      done < <(redis-benchmark -h 127.0.0.1 -p "$port" "${tlsargs[@]}" -n "$n" -c "$C" -P "$P" -r 100000 \
                 -t set,get --csv 2>/dev/null | tail -n +2)
    done
    for test in SET GET; do
      read -r r_rps r_p50 <<< "${res[redis,$test]}"; read -r f_rps f_p50 <<< "${res[ferrokey,$test]}"
      ratio=$(awk -v a="$f_rps" -v b="$r_rps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
      echo "| $( [ $tls = 1 ] && echo TLS || echo plain) | $P | $test | $r_rps | $f_rps | $r_p50 | $f_p50 | $ratio |"
    done
  done
done
kill "$NRPID" "$NFPID"; wait "$NRPID" "$NFPID" 2>/dev/null || true
fi

if want scripts; then
# EVALSHA of a one-key script (GET then INCR), TLS, P=16: ferrokey (threads 1) vs redis, each
# median of 3 runs. Then, on ferrokey with two shards on the server cpu, a script INCRing two
# keys on one shard vs two keys on different shards (every gate held, a hop per remote call).
slot_shard() { python3 -c '
import sys
def crc16(d):
    c = 0
    for b in d:
        c ^= b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
            c &= 0xffff
    return c
print(0 if crc16(sys.argv[1].encode()) % 16384 < 8192 else 1)' "$1"; }
key_on() { local i=0; while [ "$(slot_shard "$1$i")" != "$2" ]; do i=$((i + 1)); done; echo "$1$i"; }
evalsha_us() { # pid tls_port script keys... -> median µs/op of 3 runs
  local pid=$1 port=$2 body=$3; shift 3
  local sha; sha=$(redis-cli -p "$port" --tls --cacert "$certs/ca.crt" SCRIPT LOAD "$body")
  redis-cli -p "$port" --tls --cacert "$certs/ca.crt" EVALSHA "$sha" "$#" "$@" >/dev/null
  local runs=()
  for _ in 1 2 3; do
    read -r _ us _ < <(bench "$pid" "$port" 1 16 evalsha EVALSHA "$sha" "$#" "$@")
    runs+=("$us")
  done
  median "${runs[@]}"
}
one='local v = redis.call("GET", KEYS[1]) return redis.call("INCR", KEYS[1])'
read -r SRPID _ SRTLS < <(start_redis)
read -r SFPID _ SFTLS < <(start_ferrokey 1 "$SERVER_CPU")
r_us=$(RANGE=100000 evalsha_us "$SRPID" "$SRTLS" "$one" "key:__rand_int__")
f_us=$(RANGE=100000 evalsha_us "$SFPID" "$SFTLS" "$one" "key:__rand_int__")
kill "$SRPID" "$SFPID"; wait "$SRPID" "$SFPID" 2>/dev/null || true
echo
echo "Scripts: EVALSHA of a one-key script (GET then INCR), TLS, P=16, median of 3:"
echo "| redis µs/op | ferrokey µs/op | ratio fk/redis |"
echo "|---|---|---|"
echo "| $r_us | $f_us | $(awk -v a="$f_us" -v b="$r_us" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
two='redis.call("INCR", KEYS[1]) return redis.call("INCR", KEYS[2])'
read -r S2PID _ S2TLS < <(start_ferrokey 2 "$SERVER_CPU,$SERVER_CPU")
same_a=$(key_on "{s}x" 0); same_b="{s}y"; [ "$(slot_shard "$same_b")" = 0 ] || same_b=$(key_on "{s}y" 0)
a0=$(key_on "a" 0); b1=$(key_on "b" 1)
one_shard=$(evalsha_us "$S2PID" "$S2TLS" "$two" "$same_a" "$same_b")
two_shard=$(evalsha_us "$S2PID" "$S2TLS" "$two" "$a0" "$b1")
kill "$S2PID"; wait "$S2PID" 2>/dev/null || true
echo
echo "Scripts across shards (ferrokey, two shards on cpu $SERVER_CPU), TLS, P=16, median of 3:"
echo "| keys on one shard µs/op | keys on two shards µs/op | ratio two/one |"
echo "|---|---|---|"
echo "| $one_shard | $two_shard | $(awk -v a="$two_shard" -v b="$one_shard" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
fi

if want idle; then
echo
echo "RSS per idle connection ($IDLE connections, PING answered on each):"
read -r FPID FPORT FTLS < <(start_ferrokey 1 "$SERVER_CPU")
echo "| server | plain bytes/conn | TLS bytes/conn |"
echo "|---|---|---|"
for who in redis ferrokey; do
  if [ $who = redis ]; then pid=$RPID; port=$RPORT; tport=$RTLS; else pid=$FPID; port=$FPORT; tport=$FTLS; fi
  plain=$(python3 scripts/idle-conns.py --pid "$pid" --port "$port" --count "$IDLE")
  tls=$(python3 scripts/idle-conns.py --pid "$pid" --port "$tport" --count "$IDLE" --tls --cacert "$certs/ca.crt")
  echo "| $who | $plain | $tls |"
done
fi

# Keyspace memory: bytes per key as each server's allocator counts them (INFO used_memory) and
# as RSS grew, after SET of random keys with 16-byte values (both servers flushed first; a
# redis-server that already held data may not return RSS to the kernel, so its RSS column can
# read low).
if want memory; then
echo
echo "Memory per key (redis-benchmark SET -n $((N * 5)) -r $((N * 5)) -d 16 into an empty keyspace):"
read -r MPID MPORT _ < <(start_ferrokey 1 "$SERVER_CPU")
echo "| server | keys | used_memory bytes/key | RSS bytes/key |"
echo "|---|---|---|---|"
for who in redis ferrokey; do
  if [ $who = redis ]; then port=$RPORT; else port=$MPORT; fi
  mem() { redis-cli -p "$port" info memory | tr -d '\r' | awk -F: -v f="$1" '$1 == f { print $2 }'; }
  redis-cli -p "$port" flushall >/dev/null
  u0=$(mem used_memory); r0=$(mem used_memory_rss)
  taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -t set -n $((N * 5)) -r $((N * 5)) -d 16 -P 32 -q \
    >/dev/null 2>&1
  keys=$(redis-cli -p "$port" dbsize)
  u1=$(mem used_memory); r1=$(mem used_memory_rss)
  echo "| $who | $keys | $(( (u1 - u0) / keys )) | $(( (r1 - r0) / keys )) |"
done
# Small containers: 100k of each type, five short members apiece (Redis keeps them in listpacks).
echo
echo "Memory per small container (100k of each, 5 members of 10-13 bytes; used_memory bytes, key included):"
echo "| server | hash | set | zset | list |"
echo "|---|---|---|---|---|"
for who in redis ferrokey; do
  if [ $who = redis ]; then port=$RPORT; else port=$MPORT; fi
  row="| $who |"
  for kind in hash set zset list; do
    redis-cli -p "$port" flushall >/dev/null
    u0=$(mem used_memory)
    python3 -c '
import sys
kind, out = sys.argv[1], sys.stdout.buffer
for i in range(100000):
    if kind == "hash": args = [b"HSET", b"h:%08d" % i] + sum([[b"field%d" % j, b"value%08d" % j] for j in range(5)], [])
    elif kind == "set": args = [b"SADD", b"s:%08d" % i] + [b"member%08d" % j for j in range(5)]
    elif kind == "zset": args = [b"ZADD", b"z:%08d" % i] + sum([[b"%d" % j, b"member%08d" % j] for j in range(5)], [])
    else: args = [b"RPUSH", b"l:%08d" % i] + [b"element%08d" % j for j in range(5)]
    out.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
' "$kind" | redis-cli -p "$port" --pipe >/dev/null
    row="$row $(( ($(mem used_memory) - u0) / 100000 )) |"
  done
  echo "$row"
  redis-cli -p "$port" flushall >/dev/null
done
kill "$MPID"; wait "$MPID" 2>/dev/null || true
fi

# ACL: a user with 25 rules (11 key patterns, the one its keys match last, 2 channels, 11
# commands) against the default user (+@all ~* &*, whose check is skipped), on one ferrokey, in
# five alternating pairs; then GET p99 as that user, quiet and while ACL SETUSER changes it 100
# times a second (every session looks its user up again after each change).
if want acl; then
echo
echo "ACL check cost, ferrokey threads 1, TLS, P=16, -c $C, server µs/op: triples alternate default, app,"
echo "default and app, default, app; each compares the middle user with the mean of the two around it"
echo "(medians of 9 triples; 'outer' is the ratio between a triple's two outer runs of the same user:"
echo "the noise floor)"
read -r APID APORT ATLS < <(start_ferrokey 1 "$SERVER_CPU")
RULES=(on ">apppw" resetchannels "&chan:1" "&chan:2" "~cache:*" "~session:*" "~user:*" "~order:*" "~cart:*"
  "~tmp:*" "~q:*" "~lock:*" "~stat:*" "%R~ro:*" "~key:*" -@all +get +set +mget +del +incr +expire +ttl +ping
  +hget +hset)
redis-cli -p "$APORT" ACL SETUSER app "${RULES[@]}" >/dev/null
echo "| test | default µs/op | app µs/op (25 rules) | ratio app/default (triples) | outer/outer |"
echo "|---|---|---|---|---|"
# us_per_op_as default|app TEST: server µs per op of a P=16 TLS run as that user.
us_per_op_as() {
  local LOGIN=() us; [ "$1" = app ] && LOGIN=(--user app -a apppw)
  read -r _ us _ < <(bench "$APID" "$ATLS" 1 16 "$2"); echo "$us"
}
for test in set get; do
  ratios=(); floors=(); d_all=(); a_all=()
  for t in 1 2 3 4 5 6 7 8 9; do
    # Odd triples run default, app, default; even ones app, default, app: whatever the middle
    # run of a triple gains or loses weighs on both users alike.
    if (( t % 2 )); then outer=default; mid=app; else outer=app; mid=default; fi
    o1=$(us_per_op_as "$outer" "$test"); m=$(us_per_op_as "$mid" "$test"); o2=$(us_per_op_as "$outer" "$test")
    if [ "$mid" = app ]; then d_all+=("$o1" "$o2"); a_all+=("$m"); else d_all+=("$m"); a_all+=("$o1" "$o2"); fi
    ratios+=("$(awk -v m="$m" -v x="$o1" -v y="$o2" -v app="$mid" 'BEGIN {
      o = (x + y) / 2; printf "%.3f", (m > 0 && o > 0 ? (app == "app" ? m / o : o / m) : 0) }')")
    floors+=("$(awk -v x="$o1" -v y="$o2" 'BEGIN { printf "%.3f", (x > 0 ? y / x : 0) }')")
  done
  echo "| ${test^^} | $(median "${d_all[@]}") | $(median "${a_all[@]}") | $(median "${ratios[@]}") (${ratios[*]}) | $(median "${floors[@]}") (${floors[*]}) |"
done
echo
echo "GET p99 as app, TLS, P=1, -c $C: quiet, beside ACL SETUSER app 100/s, and beside a control client"
echo "sending ACL WHOAMI 100/s the same way (both pinned to the load generator's cpu: the control shows"
echo "what the second client costs the load generator itself); 5 triples, then the medians:"
echo "| triple | quiet ops/s | quiet p99 ms | SETUSER ops/s | SETUSER p99 ms | control ops/s | control p99 ms | SETUSERs sent |"
echo "|---|---|---|---|---|---|---|---|"
# beside MODE: a GET run as app beside a client sending MODE (setuser|control) 100 times a
# second -> "ops_per_sec p99_ms sent".
beside() {
  local stop="$certs/stop-churn" churn rps p99
  rm -f "$stop"
  taskset -c "$CLIENT_CPU" python3 - "$APORT" "$stop" "$1" > "$certs/churn-count" <<'PY' &
import os, socket, sys, time
port, stop, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
def req(*args):
    s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return s.recv(4096)
sent, start = 0, time.monotonic()
# Bounded: at most 10,000 requests and 120 s.
while not os.path.exists(stop) and sent < 10000 and time.monotonic() - start < 120:
    if mode == "setuser":
        rule = b"+hget" if sent % 2 else b"-hget"
        assert req(b"ACL", b"SETUSER", b"app", rule) == b"+OK\r\n"
    else:
        assert req(b"ACL", b"WHOAMI") == b"$7\r\ndefault\r\n"
    sent += 1
    time.sleep(max(0.0, start + sent / 100 - time.monotonic()))
print(sent)
PY
  churn=$!
  read -r rps _ p99 < <(bench "$APID" "$ATLS" 1 1 get)
  touch "$stop"; wait "$churn"
  echo "$rps $p99 $(cat "$certs/churn-count")"
}
qs=(); ss=(); cs=()
for triple in 1 2 3 4 5; do
  LOGIN=(--user app -a apppw)
  read -r q_rps _ q_p99 < <(bench "$APID" "$ATLS" 1 1 get)
  read -r s_rps s_p99 sent < <(beside setuser)
  read -r c_rps c_p99 _ < <(beside control)
  LOGIN=()
  qs+=("$q_p99"); ss+=("$s_p99"); cs+=("$c_p99")
  echo "| $triple | $q_rps | $q_p99 | $s_rps | $s_p99 | $c_rps | $c_p99 | $sent |"
done
echo "| median | | $(median "${qs[@]}") | | $(median "${ss[@]}") | | $(median "${cs[@]}") | |"
kill "$APID"; wait "$APID" 2>/dev/null || true
fi

# The load generator itself: client CPU per request of ferrokey-benchmark and redis-benchmark,
# each pinned to the client cpu, against the same reference server.
if want client; then
echo
echo "Client CPU per request, ferrokey-benchmark vs redis-benchmark (SET, -c $C, against the reference server):"
echo "| transport | P | redis-benchmark ops/s | ferrokey-benchmark ops/s | redis-benchmark µs/req | ferrokey-benchmark µs/req | ratio fkb/rb |"
echo "|---|---|---|---|---|---|---|"
for tls in 0 1; do
  for P in 1 16; do
    port=$( [ $tls = 1 ] && echo "$RTLS" || echo "$RPORT"); tlsargs=()
    [ $tls = 1 ] && tlsargs=(--tls --cacert "$certs/ca.crt")
    n=$(( P > 1 ? N * 10 : N ))
    declare -A rps us
    for tool in redis-benchmark target/release/ferrokey-benchmark; do
      out=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPU" "$tool" -h 127.0.0.1 -p "$port" "${tlsargs[@]}" \
        -t set -n "$n" -c "$C" -P "$P" -r 100000 --csv 2>/dev/null | tail -1; } 2>&1 )
      rps[$tool]=$(echo "$out" | head -1 | cut -d, -f2 | tr -d '"')
      us[$tool]=$(echo "$out" | tail -1 | awk -v n="$n" '{ printf "%.2f", ($1 + $2) * 1e6 / n }')
    done
    rb=${us[redis-benchmark]}; fb=${us[target/release/ferrokey-benchmark]}
    echo "| $( [ $tls = 1 ] && echo TLS || echo plain) | $P | ${rps[redis-benchmark]} | ${rps[target/release/ferrokey-benchmark]} | $rb | $fb | $(awk -v a="$fb" -v b="$rb" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }') |"
  done
done
fi


# Cluster mode against standalone, for each server: one node serving all 16384 slots (so every
# request is served where it lands, as single-slot traffic is), the same binary and flags
# otherwise; medians of 3 runs alternating.
if want cluster; then
cluster_dir() { local d; d=$(mktemp -d -p "$certs"); echo "$d"; }
cd_r=$(cluster_dir); cbus=$(free_port); cp=$(free_port); ct=$(free_port)
taskset -c "$SERVER_CPU" "$REF" --port "$cp" --bind 127.0.0.1 --save "" --appendonly no --dir "$cd_r" \
  --cluster-enabled yes --cluster-port "$cbus" --maxclients 20000 --tls-port "$ct" \
  --tls-cert-file "$certs/server.crt" --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.crt" \
  --tls-auth-clients no --loglevel warning >/dev/null 2>&1 &
RCPID=$!; echo "$RCPID" >> "$pidfile"; wait_port "$cp"; RCPORT=$cp; RCTLS=$ct
read -r FSPID FSPORT FSTLS < <(start_ferrokey 1 "$SERVER_CPU")
read -r FCPID FCPORT FCTLS < <(start_ferrokey 1 "$SERVER_CPU" --dir "$(cluster_dir)" --cluster-enabled yes --cluster-port "$(free_port)")
for p in "$RCPORT" "$FCPORT"; do
  redis-cli -p "$p" CLUSTER ADDSLOTSRANGE 0 16383 >/dev/null
  until redis-cli -p "$p" CLUSTER INFO | grep -q 'cluster_state:ok'; do sleep 0.05; done
done
echo
echo "Cluster mode vs standalone: one node serving every slot, the same server otherwise (medians of 3"
echo "runs alternating; keys over all slots, so the slot of each is computed and checked):"
echo "| transport | P | test | redis standalone µs/op | redis cluster µs/op | redis cluster/standalone | ferrokey standalone µs/op | ferrokey cluster µs/op | ferrokey cluster/standalone |"
echo "|---|---|---|---|---|---|---|---|---|"
for tls in 0 1; do
  for P in 1 16; do
    for test in set get; do
      rs=(); rc=(); fs=(); fc=()
      for run in 1 2 3; do
        read -r _ u _ < <(bench "$RPID" "$( [ $tls = 1 ] && echo "$RTLS" || echo "$RPORT")" $tls $P $test); rs+=("$u")
        read -r _ u _ < <(bench "$RCPID" "$( [ $tls = 1 ] && echo "$RCTLS" || echo "$RCPORT")" $tls $P $test); rc+=("$u")
        read -r _ u _ < <(bench "$FSPID" "$( [ $tls = 1 ] && echo "$FSTLS" || echo "$FSPORT")" $tls $P $test); fs+=("$u")
        read -r _ u _ < <(bench "$FCPID" "$( [ $tls = 1 ] && echo "$FCTLS" || echo "$FCPORT")" $tls $P $test); fc+=("$u")
      done
      a=$(median "${rs[@]}"); b=$(median "${rc[@]}"); c=$(median "${fs[@]}"); d=$(median "${fc[@]}")
      echo "| $( [ $tls = 1 ] && echo TLS || echo plain) | $P | ${test^^} | $a | $b | $(awk -v x="$b" -v y="$a" 'BEGIN { printf "%.3f", x / y }') | $c | $d | $(awk -v x="$d" -v y="$c" 'BEGIN { printf "%.3f", x / y }') |"
    done
  done
done
kill "$RCPID" "$FCPID" "$FSPID"; wait "$RCPID" "$FCPID" "$FSPID" 2>/dev/null || true
fi
