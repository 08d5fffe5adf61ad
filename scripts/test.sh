#!/usr/bin/env bash
# Runs every test: unit tests, the integration suites (real server binary over plain TCP and TLS,
# redis-cli, redis-benchmark and a reference redis-server), and builds the benchmarks.
# Installs redis-tools, redis-server, redis-sentinel, python3-redis (redis-py, for the clients'
# own scripts), Node with npm (for BullMQ, pinned in tests/clients/bullmq) and Prometheus (which
# scrapes the metrics endpoint in tests/metrics.rs) with apt-get when
# they are missing and we are root, and BullMQ from npm when it is not installed yet.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v openssl >/dev/null || need+=(openssl)
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (apt-get install ${need[*]})" >&2
    exit 1
  fi
fi
if [ ! -d tests/clients/bullmq/node_modules/bullmq ]; then
  npm ci --prefix tests/clients/bullmq --no-audit --no-fund --loglevel error >/dev/null
fi
cargo test --all-targets "$@"
