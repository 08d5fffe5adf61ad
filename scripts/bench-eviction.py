#!/usr/bin/env python3
"""maxmemory as a cache, ferrokey against Debian's redis-server, in one run (issue 19).

Hit ratio: each server runs with the same maxmemory and policy (allkeys-lru, then allkeys-lfu)
under ferrokey-benchmark's SET:GET 1:10 mix over TLS, keys drawn Gaussian (--key-pattern G) from
a keyspace whose data is about five times maxmemory. A warm-up run fills the cache; the hit
ratio is keyspace_hits / (hits + misses) over the measured run that follows (INFO deltas).

SET throughput while evicting: SETs of random keys over TLS (P=16, 50 clients) into a server
whose maxmemory holds a fifth of them, against the same load on the same server without a
limit; each server's ratio, in the same round.

Rounds interleave the servers. Every load is bounded by its request count.

Usage: scripts/bench-eviction.py [--rounds R] [--requests N] [--keys K] [--size BYTES]
       [--maxmemory BYTES]
"""

import argparse
import csv
import io
import os
import subprocess
import sys
import tempfile

from benchlib import Conn, free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FK = os.path.join(ROOT, "target/release/ferrokey-server")
BENCH = os.path.join(ROOT, "target/release/ferrokey-benchmark")


def info(port, field):
    with Conn(port) as c:
        value = c.info(field, "everything")
    if value == "":
        sys.exit("no %s in INFO" % field)
    return int(value)


class Env:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="bench-evict-")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run(["bash", os.path.join(ROOT, "scripts/gen-test-certs.sh"), self.certs],
                       check=True, stdout=subprocess.DEVNULL)

    def cert(self, name):
        return os.path.join(self.certs, name)

    def start(self, kind, extra):
        port, tls_port = free_port(), free_port()
        d = tempfile.mkdtemp(dir=self.work)
        args = ["--port", str(port), "--tls-port", str(tls_port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", d, "--tls-cert-file", self.cert("server.crt"),
                "--tls-key-file", self.cert("server.key"), "--tls-ca-cert-file", self.cert("ca.crt"),
                "--tls-auth-clients", "no"] + list(extra)
        exe = ["redis-server"] if kind == "redis" else [FK]
        p = subprocess.Popen(exe + args, stdout=open(os.path.join(d, "log"), "w"), stderr=subprocess.STDOUT)
        wait_port(port, p, "(%s, log in %s)" % (kind, d))
        return p, port, tls_port

    def bench(self, tls_port, args):
        """ferrokey-benchmark over TLS; requests per second of its one test."""
        out = subprocess.run([BENCH, "-p", str(tls_port), "--tls", "--cacert", self.cert("ca.crt"),
                              "--sni", "localhost", "--threads", "1", "--csv"] + args,
                             check=True, capture_output=True, text=True).stdout
        rows = list(csv.DictReader(io.StringIO(out)))
        return float(rows[-1]["rps"])


def stop(p):
    p.terminate()
    p.wait(30)


def hit_ratio(env, kind, policy, a):
    p, port, tls_port = env.start(kind, ["--maxmemory", str(a.maxmemory), "--maxmemory-policy", policy])
    mix = ["--ratio", "1:10", "--key-pattern", "G", "-r", str(a.keys), "-d", str(a.size), "-c", "50", "-P", "16"]
    env.bench(tls_port, mix + ["-n", str(a.requests)])
    h0, m0 = info(port, "keyspace_hits"), info(port, "keyspace_misses")
    env.bench(tls_port, mix + ["-n", str(a.requests)])
    h1, m1 = info(port, "keyspace_hits"), info(port, "keyspace_misses")
    used, evicted = info(port, "used_memory"), info(port, "evicted_keys")
    stop(p)
    hits, misses = h1 - h0, m1 - m0
    return hits / max(1, hits + misses), used, evicted


def set_throughput(env, kind, limit, a):
    extra = ["--maxmemory", str(limit), "--maxmemory-policy", "allkeys-lru"] if limit else []
    p, port, tls_port = env.start(kind, extra)
    load = ["-t", "set", "-r", str(a.keys), "-d", str(a.size), "-c", "50", "-P", "16", "-n"]
    # Fill first: the measured run then evicts all along (or, without a limit, overwrites).
    env.bench(tls_port, load + [str(a.keys * 2)])
    rps = env.bench(tls_port, load + [str(a.requests)])
    evicted = info(port, "evicted_keys")
    stop(p)
    return rps, evicted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=300_000)
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--maxmemory", type=int, default=32 << 20)
    a = ap.parse_args()
    env = Env()
    print("keys %d x %d B, maxmemory %d MB, %d requests per run" % (a.keys, a.size, a.maxmemory >> 20, a.requests))
    for r in range(a.rounds):
        for policy in ("allkeys-lru", "allkeys-lfu"):
            got = {kind: hit_ratio(env, kind, policy, a) for kind in ("redis", "ferrokey")}
            print("round %d %s: hit ratio redis %.4f ferrokey %.4f (ferrokey/redis %.3f); used MB %d/%d, "
                  "evicted %d/%d" % (r, policy, got["redis"][0], got["ferrokey"][0],
                                     got["ferrokey"][0] / max(got["redis"][0], 1e-9),
                                     got["redis"][1] >> 20, got["ferrokey"][1] >> 20,
                                     got["redis"][2], got["ferrokey"][2]), flush=True)
        for kind in ("redis", "ferrokey"):
            free, _ = set_throughput(env, kind, 0, a)
            bounded, evicted = set_throughput(env, kind, a.maxmemory, a)
            print("round %d %s: SET/s no limit %.0f, evicting %.0f (%d evicted): %.3f" %
                  (r, kind, free, bounded, evicted, bounded / free), flush=True)


if __name__ == "__main__":
    main()
