#!/usr/bin/env python3
"""Opens N idle connections (plain or TLS, handshake completed and one PING answered) to a server,
reports the server's RSS growth per connection, then closes them. Loopback only; bounded in count
and time.

    idle-conns.py --port P --pid PID --count N [--tls --cacert ca.crt]
"""
import argparse, socket, ssl, sys, time

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise SystemExit("no VmRSS")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--tls", action="store_true")
    ap.add_argument("--cacert")
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()
    ctx = None
    if a.tls:
        ctx = ssl.create_default_context(cafile=a.cacert)
        ctx.check_hostname = False
    deadline = time.monotonic() + a.timeout
    before = rss_kib(a.pid)
    conns = []
    for i in range(a.count):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {i} connections")
        s = socket.create_connection(("127.0.0.1", a.port))
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="localhost")
        s.sendall(b"PING\r\n")
        if s.recv(16) != b"+PONG\r\n":
            raise SystemExit("bad reply")
        conns.append(s)
    time.sleep(1.0)  # let the server settle (this is a measurement, not a synchronisation)
    after = rss_kib(a.pid)
    per = (after - before) * 1024 / a.count
    print(f"{per:.0f}")
    for s in conns:
        s.close()

if __name__ == "__main__":
    main()
