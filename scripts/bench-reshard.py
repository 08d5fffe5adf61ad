#!/usr/bin/env python3
"""Resharding with stock `redis-cli --cluster reshard`: two ferrokey nodes against two
redis-server nodes, in one run, on loopback.

For each kind: node A serves every slot and holds 2*KEYS keys (16-byte values);
B serves none. `redis-cli --cluster reshard` moves 8192 slots (about KEYS keys) from A to B,
timed. Meanwhile a client reads a key in a slot that stays on A, at a fixed rate, one request at
a time: its p99 during the move is compared with its p99 on the same node just before.

The servers run pinned to cpu 0 (ferrokey with one executor), redis-cli and the reader on cpu 1.

Usage: scripts/bench-reshard.py [--keys KEYS] [--rate PER_SECOND] [--pipeline N]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import Conn, free_port, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FERROKEY = os.path.join(ROOT, "target", "release", "ferrokey-server")
# A key whose slot (16050) stays on A: reshard takes the lowest slots first.
STAY = "{here}k"


def start(kind, work):
    port, bus = free_port(), free_port()
    d = tempfile.mkdtemp(dir=work)
    common = ["--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no",
              "--cluster-enabled", "yes", "--cluster-port", str(bus), "--cluster-node-timeout", "15000",
              "--enable-debug-command", "yes"]
    if kind == "redis":
        cmd = ["taskset", "-c", "0", "redis-server"] + common + ["--loglevel", "warning"]
    else:
        cmd = ["taskset", "-c", "0", FERROKEY] + common + ["--threads", "1", "--server-cpus", "0", "--tls-port", "0",
                                     "--loglevel", "warning"]
    log = open(os.path.join(d, "log"), "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log)
    if proc.poll() is None:
        time.sleep(0.2)
    if proc.poll() is not None:
        sys.exit("%s exited: %s" % (kind, open(os.path.join(d, "log")).read()[-2000:]))
    wait_port(port, proc)
    return proc, port, bus


def load(port, n):
    """SETs key:0 .. key:n-1 to 16-byte values, through redis-cli --pipe."""
    def requests():
        for start in range(0, n, 10000):
            yield b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\nkey:%d\r\n$16\r\n%016d\r\n" % (len(b"key:%d" % i), i, i)
                           for i in range(start, min(n, start + 10000)))
    pipe = subprocess.Popen(["redis-cli", "-p", str(port), "--pipe"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    for chunk in requests():
        pipe.stdin.write(chunk)
    pipe.stdin.close()
    if pipe.wait() != 0:
        sys.exit("loading keys failed")


def wait(test, what, limit=120):
    deadline = time.time() + limit
    while time.time() < deadline:
        if test():
            return
        time.sleep(0.05)
    sys.exit("never: " + what)


def reader(port, rate, stop, out):
    """GETs of STAY at `rate` per second until `stop` is set; latencies in µs into `out`."""
    with Conn(port) as c:
        period = 1.0 / rate
        due = time.perf_counter()
        while not stop.is_set():
            t = time.perf_counter()
            c.cmd("GET", STAY)
            out.append((time.perf_counter() - t) * 1e6)
            due += period
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)


def p99(samples):
    s = sorted(samples)
    return s[int(len(s) * 0.99)] if s else 0.0


def run(kind, args, work):
    (pa, a, _), (pb, b, bus_b) = start(kind, work), start(kind, work)
    try:
        ca, cb = Conn(a), Conn(b)
        ca.cmd("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        ca.cmd("CLUSTER", "MEET", "127.0.0.1", str(b), str(bus_b))
        wait(lambda: "cluster_state:ok" in cb.cmd("CLUSTER", "INFO") and "cluster_state:ok" in ca.cmd("CLUSTER", "INFO")
             and cb.cmd("CLUSTER", "NODES").count(" connected") == 2, "the two nodes ok")
        load(a, 2 * args.keys)
        ca.cmd("SET", STAY, "v")
        ida, idb = ca.cmd("CLUSTER", "MYID"), cb.cmd("CLUSTER", "MYID")
        # The reader's p99 on the idle node, then during the move.
        before, during = [], []
        stop = threading.Event()
        t = threading.Thread(target=reader, args=(a, args.rate, stop, before))
        t.start()
        time.sleep(args.baseline)
        stop.set()
        t.join()
        stop = threading.Event()
        t = threading.Thread(target=reader, args=(a, args.rate, stop, during))
        t.start()
        start_t = time.perf_counter()
        out = subprocess.run(
            ["timeout", "1800", "taskset", "-c", "1", "redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % a,
             "--cluster-from", ida, "--cluster-to", idb, "--cluster-slots", "8192", "--cluster-yes",
             "--cluster-pipeline", str(args.pipeline)],
            capture_output=True, text=True)
        took = time.perf_counter() - start_t
        stop.set()
        t.join()
        if out.returncode != 0 or "[ERR]" in out.stdout:
            sys.exit("%s reshard failed:\n%s%s" % (kind, out.stdout[-3000:], out.stderr[-3000:]))
        moved = int(cb.cmd("DBSIZE"))
        left = int(ca.cmd("DBSIZE"))
        if moved + left != 2 * args.keys + 1:
            sys.exit("%s: %d + %d keys after the move" % (kind, moved, left))
        return took, moved, p99(before), p99(during), len(during)
    finally:
        for p in (pa, pb):
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000, help="keys moved (A holds twice as many)")
    ap.add_argument("--rate", type=float, default=1000, help="reader requests per second")
    ap.add_argument("--baseline", type=float, default=10, help="seconds of the reader before the move")
    ap.add_argument("--pipeline", type=int, default=10, help="redis-cli --cluster-pipeline")
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--bins"], cwd=ROOT, check=True, capture_output=True)
    os.sched_setaffinity(0, {1})
    work = tempfile.mkdtemp()
    try:
        rows = {kind: run(kind, args, work) for kind in ("redis", "ferrokey")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("redis-cli --cluster reshard of 8192 slots (--cluster-pipeline %d), %d keys moved of %d;" %
          (args.pipeline, rows["ferrokey"][1], 2 * args.keys))
    print("a reader on the source at %d GET/s, one at a time, p99 before and during:" % args.rate)
    print("| nodes | reshard s | keys moved | reader p99 before µs | reader p99 during µs | during/before | reads |")
    print("|---|---|---|---|---|---|---|")
    for kind, (took, moved, b, d, n) in rows.items():
        print("| %s | %.1f | %d | %.0f | %.0f | %.2f | %d |" % (kind, took, moved, b, d, d / b if b else 0, n))
    print("ferrokey/redis reshard time: %.2f" % (rows["ferrokey"][0] / rows["redis"][0]))


if __name__ == "__main__":
    main()
