"""Shared helpers for the black-box tests of the msgsock command (stdlib only).

Servers are started on port 0 or a fresh Unix socket path; the test reads the
`listening on ADDR` line to learn where they are."""
import os
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("MSGSOCK_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "msgsock")


def parse_addr(text):
    """'127.0.0.1:5', '[::1]:5', 'unix:/p', 'unix:@n' -> (family, sockaddr)."""
    if text.startswith("unix:@"):
        return socket.AF_UNIX, "\0" + text[6:]
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    m = re.fullmatch(r"\[(.*)\]:(\d+)", text)
    if m:
        return socket.AF_INET6, (m.group(1), int(m.group(2)))
    host, port = text.rsplit(":", 1)
    return socket.AF_INET, (host, int(port))


def fresh_unix_path(tag="ms"):
    d = tempfile.mkdtemp(prefix="msgsock-test-")
    return os.path.join(d, tag + ".sock")


class Server:
    """A msgsock server subprocess. Use as a context manager."""

    def __init__(self, *args, ready_timeout=10, env=None, stderr=subprocess.PIPE):
        self.args = [BIN] + list(args)
        e = dict(os.environ)
        if env:
            e.update(env)
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=stderr, env=e)
        self.addr_text = self._read_listening(ready_timeout)
        self.family, self.sockaddr = parse_addr(self.addr_text)
        self._stderr = b""

    def _read_listening(self, timeout):
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.kill()
                raise AssertionError(f"{self.args}: no 'listening on' line within {timeout}s")
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                self.proc.wait()
                raise AssertionError(f"{self.args} exited {self.proc.returncode} before listening: {err}")
            line += ch
        sel.close()
        text = line.decode().strip()
        if not text.startswith("listening on "):
            self.kill()
            raise AssertionError(f"unexpected first line {text!r}")
        return text[len("listening on "):]

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, timeout=10):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sockaddr)
        return s

    def host_port(self):
        """(host, port) strings for commands that take HOST PORT."""
        if self.family == socket.AF_UNIX:
            raise ValueError("unix address has no host/port")
        return self.sockaddr[0], str(self.sockaddr[1])

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.args} did not exit within {timeout}s of signal {sig}")
        self._collect()
        return self.proc.returncode

    def _collect(self):
        if self.proc.stderr and not self.proc.stderr.closed:
            self._stderr += self.proc.stderr.read()
            self.proc.stderr.close()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def stderr_text(self):
        return self._stderr.decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._collect()

    def status(self):
        """/proc/PID/status as a dict of ints (kB) where numeric."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip().split()
                if v and v[0].isdigit():
                    out[k] = int(v[0])
        return out

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            try:
                self.stop()
            except AssertionError:
                pass
        self.kill()


def run(*args, timeout=60, input=None, env=None):
    """Runs msgsock with args; returns CompletedProcess with text output."""
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([BIN] + list(args), capture_output=True, timeout=timeout,
                          input=input, env=e)


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class PyEchoServer:
    """The guide's echo server in a thread, serving any number of
    connections one after another (sendall of every recv) until stopped."""

    def __init__(self, family=socket.AF_INET, addr=("127.0.0.1", 0)):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.received = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                got = b""
                while True:
                    try:
                        data = conn.recv(1024)
                    except OSError:
                        break
                    if not data:
                        break
                    got += data
                    conn.sendall(data)
                self.received.append(got)

    def close(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class MsTestCase(unittest.TestCase):
    maxDiff = None

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, stdout={proc.stdout!r}, stderr={proc.stderr!r}")
