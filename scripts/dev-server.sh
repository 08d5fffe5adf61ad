#!/usr/bin/env bash
# Runs a development server: plain on 6379 and TLS on 6380 (config/ferrokey.conf), generating
# development certificates into dev/tls when they are missing. Extra arguments are passed on as
# directive overrides, e.g.  scripts/dev-server.sh --threads 1 --port 7000
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dev/tls/server.crt ] || scripts/gen-test-certs.sh dev/tls >/dev/null
cargo build --release --bin ferrokey-server
exec target/release/ferrokey-server config/ferrokey.conf "$@"
