#!/usr/bin/env python3
"""Replication over TLS, ferrokey against Debian's redis-server as primaries, in one run.

For each primary (redis-server, then ferrokey; ROUNDS times, interleaved):
  - SET throughput over TLS, P=16, 50 clients (redis-benchmark), without replicas and then with
    two replicas attached over TLS (Debian's redis-server as the replicas of both primaries);
  - during the second run: replica lag, as the primary's offset minus each replica's
    (sampled every 20 ms), and the time from a write on the primary to its visibility on a
    replica (a probe SET, then GETs on the replica until it shows);
  - a full sync of KEYS keys over TLS: from REPLICAOF to the replica's link up with every key.
Both run with repl-diskless-sync-delay 0 (the default 5 s would only add waiting); diskless syncs
(both defaults) unless FERROKEY_ARGS says otherwise for ferrokey.

With --sinks, the two replicas are sinks instead of redis-servers: processes that sync over TLS
as a replica does, then read and discard the stream, acknowledging its offset every second.
They apply nothing, so the ratio shows what feeding two replicas costs the primary itself,
without two more servers applying every write on the same cores.

Usage: scripts/bench-replication.py [--rounds R] [--requests N] [--keys K (0: no full sync)] [--sinks]
"""

import argparse
import os
import ssl
import socket
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import Conn, free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FK = os.path.join(ROOT, "target/release/ferrokey-server")
# FERROKEY_ARGS: more arguments for ferrokey (`--repl-diskless-sync no` for disk-backed syncs).
FK_EXTRA = os.environ.get("FERROKEY_ARGS", "").split()


class Env:
    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="bench-repl-")
        self.certs = os.path.join(self.work, "certs")
        subprocess.run(["bash", os.path.join(ROOT, "scripts/gen-test-certs.sh"), self.certs],
                       check=True, stdout=subprocess.DEVNULL)
        self.procs = []

    def cert(self, name):
        return os.path.join(self.certs, name)

    def tls_args(self):
        return ["--tls-cert-file", self.cert("server.crt"), "--tls-key-file", self.cert("server.key"),
                "--tls-ca-cert-file", self.cert("ca.crt"), "--tls-auth-clients", "optional"]

    def start(self, kind, extra=()):
        port, tls_port = free_port(), free_port()
        d = tempfile.mkdtemp(dir=self.work)
        common = ["--port", str(port), "--tls-port", str(tls_port), "--bind", "127.0.0.1", "--save", "",
                  "--dir", d] + self.tls_args() + list(extra)
        if kind == "redis":
            cmd = ["redis-server"] + common + ["--appendonly", "no", "--repl-diskless-sync-delay", "0",
                                               "--logfile", os.path.join(d, "log")]
            out = subprocess.DEVNULL
        else:
            cmd = [FK] + common + ["--threads", "2", "--repl-diskless-sync-delay", "0"] + FK_EXTRA
            out = open(os.path.join(d, "log"), "w")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(p)
        wait_port(port, p)
        return p, port, tls_port

    def replica_of(self, tls_port):
        extra = ["--tls-replication", "yes", "--tls-cert-file", self.cert("client.crt"),
                 "--tls-key-file", self.cert("client.key"), "--replicaof", "127.0.0.1", str(tls_port)]
        return self.start("redis", extra)

    def stop(self, p):
        p.kill()
        p.wait()

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", self.work])


def sink(tls_port, certs):
    """A replica that applies nothing: syncs over TLS, discards the stream, acknowledges it."""
    ctx = ssl.create_default_context(cafile=os.path.join(certs, "ca.crt"))
    ctx.load_cert_chain(os.path.join(certs, "client.crt"), os.path.join(certs, "client.key"))
    ctx.check_hostname = False
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_port)))
    buf = b""

    def line():
        nonlocal buf
        while b"\r\n" not in buf:
            buf += sock.recv(1 << 16)
        first, buf = buf.split(b"\r\n", 1)
        return first

    for req in (b"*1\r\n$4\r\nPING\r\n",
                b"*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$1\r\n1\r\n",
                b"*5\r\n$8\r\nREPLCONF\r\n$4\r\ncapa\r\n$3\r\neof\r\n$4\r\ncapa\r\n$6\r\npsync2\r\n"):
        sock.sendall(req)
        line()
    sock.sendall(b"*3\r\n$5\r\nPSYNC\r\n$1\r\n?\r\n$2\r\n-1\r\n")
    offset = int(line().split()[2])
    header = line()
    while not header.startswith(b"$"):
        header = line()
    if header.startswith(b"$EOF:"):
        mark = header[5:]
        while mark not in buf:
            keep = buf[-40:]
            buf = keep + sock.recv(1 << 20)
        buf = buf.split(mark, 1)[1]
    else:
        left = int(header[1:])
        while len(buf) < left:
            buf += sock.recv(1 << 20)
        buf = buf[left:]
    offset += len(buf)
    acked = time.time()
    while True:
        n = len(sock.recv(1 << 20))
        if n == 0:
            return
        offset += n
        if time.time() - acked >= 1:
            acked = time.time()
            o = str(offset).encode()
            sock.sendall(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$%d\r\n%s\r\n" % (len(o), o))


def cpu_secs(pid):
    """User and system CPU of a process, every thread, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_set(env, tls_port, n, pid):
    """SET throughput, and the primary's CPU per SET in µs."""
    before = cpu_secs(pid)
    cmd = ["redis-benchmark", "--tls", "--cacert", env.cert("ca.crt"), "--cert", env.cert("client.crt"),
           "--key", env.cert("client.key"), "-p", str(tls_port), "-c", "50", "-P", "16", "-t", "set",
           "-n", str(n), "-r", "100000", "-q", "--csv"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    used = cpu_secs(pid) - before
    for line in out.splitlines():
        if line.startswith('"SET"'):
            return float(line.split(",")[1].strip('"')), used * 1e6 / n
    sys.exit("redis-benchmark: " + out)


def synced(primary, replicas):
    off = primary.info("master_repl_offset")
    return all(r.info("master_link_status") == "up" and r.info("slave_repl_offset") == off for r in replicas)


def wait_until(what, cond, limit=120):
    end = time.time() + limit
    while not cond():
        if time.time() > end:
            sys.exit("timed out: " + what)
        time.sleep(0.02)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def sampler(port, replica_ports, stop, lags, visible):
    """Offsets every 20 ms; a probe write's visibility on the first replica every 50 ms."""
    p, rs = Conn(port), [Conn(r) for r in replica_ports]
    probe, i, last_probe = Conn(port), 0, 0.0
    watch = Conn(replica_ports[0])
    while not stop.is_set():
        off = int(p.info("master_repl_offset"))
        for r in rs:
            lags.append(max(0, off - int(r.info("slave_repl_offset") or 0)))
        if time.time() - last_probe > 0.05:
            last_probe, i = time.time(), i + 1
            t0 = time.perf_counter()
            probe.cmd("SET", "probe", i)
            deadline = t0 + 5
            while watch.cmd("GET", "probe") != str(i) and time.perf_counter() < deadline:
                pass
            visible.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)


def full_sync(env, kind, keys):
    p, port, tls_port = env.start(kind)
    subprocess.run(["redis-benchmark", "-p", str(port), "-c", "4", "-P", "64", "-t", "set", "-n", str(keys),
                    "-r", str(keys), "-d", "100", "-q"], check=True, stdout=subprocess.DEVNULL)
    # -r draws keys at random: count what is there.
    total = int(Conn(port).cmd("DBSIZE"))
    t0 = time.time()
    r, rport, _ = env.replica_of(tls_port)
    rc = Conn(rport)
    wait_until("full sync", lambda: rc.info("master_link_status") == "up" and int(rc.cmd("DBSIZE")) == total)
    secs = time.time() - t0
    env.stop(r)
    env.stop(p)
    return secs, total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--sinks", action="store_true", help="replicas that apply nothing (see above)")
    ap.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--certs", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.sink:
        return sink(a.sink, a.certs)
    subprocess.run(["cargo", "build", "--release", "--bin", "ferrokey-server"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = Env()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print("ferrokey %s vs %s; SET TLS P=16 -c 50 -n %d; full sync of %d keys over TLS"
          % (rev.strip(), subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
             .stdout.split()[2], a.requests, a.keys))
    print("| primary | ops/s alone | ops/s with 2 replicas | ratio | primary µs/op alone, with | CPU ratio | lag p99 bytes | visible p50/p99 ms | full sync s |")
    print("|---|---|---|---|---|---|---|---|---|")
    try:
        for _ in range(a.rounds):
            for kind in ("redis", "ferrokey"):
                p, port, tls_port = env.start(kind)
                alone, cpu_alone = bench_set(env, tls_port, a.requests, p.pid)
                pc = Conn(port)
                if a.sinks:
                    reps = [(subprocess.Popen([sys.executable, __file__, "--sink", str(tls_port), "--certs",
                                               env.certs]),) for _ in range(2)]
                    wait_until("sinks attached", lambda: pc.info("connected_slaves") == "2"
                               and "state=online" in pc.info("slave1"))
                    lags, visible = [], []
                else:
                    reps = [env.replica_of(tls_port) for _ in range(2)]
                    rcs = [Conn(r[1]) for r in reps]
                    wait_until("replicas in sync", lambda: synced(pc, rcs))
                    stop, lags, visible = threading.Event(), [], []
                    t = threading.Thread(target=sampler, args=(port, [r[1] for r in reps], stop, lags, visible))
                    t.start()
                with_reps, cpu_with = bench_set(env, tls_port, a.requests, p.pid)
                if not a.sinks:
                    stop.set()
                    t.join()
                for r in reps:
                    env.stop(r[0])
                env.stop(p)
                sync = "-"
                if a.keys > 0:
                    secs, total = full_sync(env, kind, a.keys)
                    sync = "%.2f (%d keys)" % (secs, total)
                lag = "- | -" if a.sinks else "%d | %.2f / %.2f" % (pct(lags, 0.99), pct(visible, 0.5), pct(visible, 0.99))
                print("| %s | %.0f | %.0f | %.2f | %.2f, %.2f | %.2f | %s | %s |"
                      % (kind, alone, with_reps, with_reps / alone, cpu_alone, cpu_with, cpu_alone / cpu_with,
                         lag, sync), flush=True)
    finally:
        env.close()


if __name__ == "__main__":
    main()
