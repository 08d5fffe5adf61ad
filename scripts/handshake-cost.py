#!/usr/bin/env python3
"""Server CPU per TLS handshake: COUNT connections (handshake, PING, close) from --parallel
processes, each connecting one at a time, while reading the server's CPU time from
/proc/PID/stat. With --resume every connection after a process's first resumes the previous
session. Parallel clients keep the server busy, so the figure is the steady-state cost rather
than the cost of waking an idle server per connection. Loopback only; bounded by --count and
--seconds.

Prints: "<server ms per handshake> <handshakes per second> <resumed share>"
"""
import argparse
import multiprocessing
import os
import socket
import ssl
import time


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(a, count):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.cacert)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    session, resumed, done, start = None, 0, 0, time.monotonic()
    gap = a.parallel / a.rate if a.rate > 0 else 0
    while done < count and time.monotonic() - start < a.seconds:
        if gap:
            time.sleep(max(0.0, start + done * gap - time.monotonic()))
        raw = socket.create_connection(("127.0.0.1", a.port), timeout=10)
        s = ctx.wrap_socket(raw, server_hostname="localhost", session=session if a.resume else None)
        s.sendall(b"PING\r\n")
        if not s.recv(64).startswith(b"+PONG"):
            raise SystemExit("unexpected reply")
        resumed += 1 if s.session_reused else 0
        if a.resume:
            session = s.session
        s.close()
        done += 1
    return done, resumed


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--count", type=int, default=500)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--cacert", required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--rate", type=float, default=0, help="connections per second in all (0: as fast as possible)")
    a = p.parse_args()
    before, start = cpu_seconds(a.pid), time.monotonic()
    with multiprocessing.Pool(a.parallel) as pool:
        results = pool.starmap(worker, [(a, a.count // a.parallel)] * a.parallel)
    done, resumed = sum(r[0] for r in results), sum(r[1] for r in results)
    elapsed, cpu = time.monotonic() - start, cpu_seconds(a.pid) - before
    print(f"{cpu * 1000 / done:.3f} {done / elapsed:.0f} {resumed / done:.2f}")


if __name__ == "__main__":
    main()
