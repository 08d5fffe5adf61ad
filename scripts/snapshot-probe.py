#!/usr/bin/env python3
"""Latency probe for a background save: 4 connections each send a small SET every millisecond
to a server on 127.0.0.1:PORT while it runs BGSAVE, and every reply slower than 20 ms is printed
with its time relative to the BGSAVE. Bounded: stops 0.3 s after the save ends, or after 120 s.
Usage: scripts/snapshot-probe.py PORT"""
import socket, subprocess, sys, threading, time

port = int(sys.argv[1])
slow = []


def probe(idx, stop):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not stop[0]:
        t = time.time()
        s.sendall(b"SET probe%d x\r\n" % idx)
        s.recv(100)
        if time.time() - t > 0.02:
            slow.append((idx, t, time.time() - t))
        time.sleep(0.001)


def in_progress():
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "persistence"], capture_output=True).stdout
    return b"rdb_bgsave_in_progress:1" in out


stop = [False]
threads = [threading.Thread(target=probe, args=(i, stop)) for i in range(4)]
for t in threads:
    t.start()
time.sleep(0.5)
t0 = time.time()
subprocess.run(["redis-cli", "-p", str(port), "bgsave"], capture_output=True)
while in_progress() and time.time() - t0 < 120:
    time.sleep(0.02)
done = time.time() - t0
time.sleep(0.3)
stop[0] = True
for t in threads:
    t.join()
print("save took %.3f s; replies slower than 20 ms: %d" % (done, len(slow)))
for idx, t, d in slow:
    print("conn %d at %+.3f s waited %.3f s" % (idx, t - t0, d))
