"""What the benchmark scripts share: free loopback ports, a minimal RESP client, and waiting for a
server to answer. Imported by scripts/bench-replication.py and scripts/bench-eviction.py."""

import socket
import sys
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Conn:
    """A minimal plain RESP client (also a context manager that closes it)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.sock.close()

    def cmd(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode(errors="replace")
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise RuntimeError("unexpected reply %r" % line)

    def info(self, field, section="replication"):
        for l in self.cmd("INFO", section).splitlines():
            if l.startswith(field + ":"):
                return l.split(":", 1)[1]
        return ""


def wait_port(port, proc, log=""):
    """Until the server on `port` answers PING; exits the script if `proc` ends first."""
    for _ in range(3000):
        if proc.poll() is not None:
            sys.exit("server on %d exited %s" % (port, log))
        try:
            c = Conn(port)
            if c.cmd("PING") == "PONG":
                return
        except (OSError, RuntimeError):
            pass
        time.sleep(0.01)
    sys.exit("server on %d did not start" % port)
