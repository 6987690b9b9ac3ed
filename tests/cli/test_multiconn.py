"""Black-box tests of multiconn-server and multiconn-client, against the
guide's selectors-based Python client and server (written here the way the
guide writes them)."""
import os
import re
import resource
import selectors
import signal
import socket
import threading
import time
import types
import unittest

import mstest
from mstest import MsTestCase, Server, run, wait_for


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def py_multiconn_client(family, addr, num_conns, timeout=60):
    """The guide's multiconn-client, with a distinct pair of messages per
    connection so that a mixed-up reply is caught. Returns {connid: bytes}."""
    sel = selectors.DefaultSelector()
    expected = {}
    for i in range(num_conns):
        connid = i + 1
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(addr)
        messages = [f"Message 1 from client {connid}.".encode(),
                    f"Message 2 from client {connid}.".encode()]
        expected[connid] = b"".join(messages)
        data = types.SimpleNamespace(connid=connid, msg_total=sum(len(m) for m in messages),
                                     recv_total=0, messages=list(messages), outb=b"",
                                     got=b"")
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, data=data)
    results = {}
    deadline = time.monotonic() + timeout
    while len(results) < num_conns and time.monotonic() < deadline:
        for key, mask in sel.select(timeout=1):
            sock, data = key.fileobj, key.data
            if mask & selectors.EVENT_READ:
                try:
                    recv_data = sock.recv(1024)
                except ConnectionError:
                    recv_data = b""
                data.got += recv_data
                data.recv_total += len(recv_data)
                if not recv_data or data.recv_total == data.msg_total:
                    results[data.connid] = data.got
                    sel.unregister(sock)
                    sock.close()
                    continue
            if mask & selectors.EVENT_WRITE:
                if not data.outb and data.messages:
                    data.outb = data.messages.pop(0)
                if data.outb:
                    try:
                        sent = sock.send(data.outb)
                    except BlockingIOError:
                        sent = 0
                    data.outb = data.outb[sent:]
                if not data.outb and not data.messages:
                    sel.modify(sock, selectors.EVENT_READ, data=data)
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return expected, results


class PyMulticonnServer:
    """The guide's multiconn-server: a selectors echo server in a thread."""

    def __init__(self):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1024)
        self.lsock.setblocking(False)
        self.addr = self.lsock.getsockname()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, data=None)
        self.received = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            for key, mask in self.sel.select(timeout=0.2):
                if key.data is None:
                    try:
                        conn, addr = key.fileobj.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    data = types.SimpleNamespace(addr=addr, inb=b"", outb=b"")
                    self.sel.register(conn, selectors.EVENT_READ | selectors.EVENT_WRITE, data=data)
                    continue
                sock, data = key.fileobj, key.data
                if mask & selectors.EVENT_READ:
                    recv_data = sock.recv(1024)
                    if recv_data:
                        data.outb += recv_data
                        data.inb += recv_data
                    else:
                        self.received.append(data.inb)
                        self.sel.unregister(sock)
                        sock.close()
                        continue
                if mask & selectors.EVENT_WRITE and data.outb:
                    sent = sock.send(data.outb)
                    data.outb = data.outb[sent:]

    def close(self):
        self._stop = True
        self.thread.join(5)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class MulticonnServerTest(MsTestCase):
    def check_many(self, n, *args):
        raise_nofile(2 * n + 100)
        with Server("multiconn-server", "--listen", "127.0.0.1:0", *args) as srv:
            expected, results = py_multiconn_client(srv.family, srv.sockaddr, n)
            self.assertEqual(len(results), n)
            bad = [k for k in expected if results.get(k) != expected[k]]
            self.assertEqual(bad, [], f"{len(bad)} connections got wrong bytes, e.g. "
                             f"{bad[:1] and results.get(bad[0])!r}")
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_500_python_clients(self):
        self.check_many(500, "--threads", "1")

    def test_1000_python_clients_two_threads(self):
        self.check_many(1000, "--threads", "2")

    def test_1000_python_clients_poll_backend(self):
        self.check_many(1000, "--threads", "1", "--backend", "poll")

    def test_unix_socket(self):
        path = mstest.fresh_unix_path()
        with Server("multiconn-server", "--listen", "unix:" + path, "--threads", "2") as srv:
            expected, results = py_multiconn_client(socket.AF_UNIX, path, 50)
            self.assertEqual(results, expected)
            self.assertEqual(srv.stop(), 0)
        self.assertFalse(os.path.exists(path), "socket path left behind")

    def test_sigterm_with_open_connections_exits_0(self):
        with Server("multiconn-server", "127.0.0.1", "0") as srv:
            socks = [srv.connect() for _ in range(20)]
            for s in socks:
                s.sendall(b"ping")
                self.assertEqual(mstest.recv_exact(s, 4), b"ping")
            t0 = time.monotonic()
            self.assertEqual(srv.stop(signal.SIGTERM), 0)
            self.assertLess(time.monotonic() - t0, 5)
            for s in socks:
                self.assertEqual(s.recv(10), b"")  # a clean FIN, no reset
                s.close()

    def test_help_and_usage(self):
        p = run("multiconn-server", "--help")
        self.assertExit(p, 0)
        for word in (b"--max-conns", b"--idle-timeout", b"--out-max", b"--threads", b"default"):
            self.assertIn(word, p.stdout)
        self.assertExit(run("multiconn-server", "--bogus"), 2)
        self.assertExit(run("multiconn-server", "--threads", "0"), 2)
        self.assertExit(run("multiconn-server", "a", "b", "c"), 2)


class MulticonnClientTest(MsTestCase):
    def test_against_python_server(self):
        with PyMulticonnServer() as py:
            host, port = py.addr
            p = run("multiconn-client", host, str(port), "3", timeout=30)
            self.assertExit(p, 0)
            out = p.stdout.decode()
            for i in (1, 2, 3):
                self.assertIn(f"Starting connection {i} to ('{host}', {port})\n", out)
                self.assertIn(f"Sending b'Message 1 from client.' to connection {i}\n", out)
                self.assertIn(f"Sending b'Message 2 from client.' to connection {i}\n", out)
                self.assertIn(f"Closing connection {i}\n", out)
                got = b"".join(eval(m) for m in re.findall(
                    rf"^Received (b'.*') from connection {i}$", out, re.M))
                self.assertEqual(got, b"Message 1 from client.Message 2 from client.")
            wait_for(lambda: len(py.received) >= 3, 10,
                     "the Python server to see the 3 connections close")
            self.assertEqual(sorted(py.received),
                             [b"Message 1 from client.Message 2 from client."] * 3)

    def test_many_quiet(self):
        raise_nofile(3000)
        with PyMulticonnServer() as py:
            host, port = py.addr
            p = run("multiconn-client", "--quiet", "--connect", f"{host}:{port}", "300", timeout=60)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode().count("\n"), 1)
            self.assertIn("300 ok, 0 failed", p.stdout.decode())

    def test_against_msgsock_server(self):
        with Server("multiconn-server", "--listen", "127.0.0.1:0") as srv:
            p = run("multiconn-client", "-q", "--connect", srv.addr_text, "1000", timeout=60)
            self.assertExit(p, 0)
            self.assertIn("1000 ok, 0 failed", p.stdout.decode())

    def test_refused_exits_1(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = run("multiconn-client", "127.0.0.1", str(port), "2", timeout=30)
        self.assertExit(p, 1)
        self.assertIn(b"refused", p.stderr.lower())

    def test_server_that_hangs_up_exits_1(self):
        with socket.socket() as ls:
            ls.bind(("127.0.0.1", 0))
            ls.listen()
            port = ls.getsockname()[1]

            def hang_up():
                c, _ = ls.accept()
                c.recv(5)
                c.close()
            t = threading.Thread(target=hang_up, daemon=True)
            t.start()
            p = run("multiconn-client", "127.0.0.1", str(port), "1", timeout=30)
            t.join(5)
        self.assertExit(p, 1)

    def test_usage(self):
        self.assertExit(run("multiconn-client", "--help"), 0)
        self.assertExit(run("multiconn-client", "127.0.0.1", "1"), 2)
        self.assertExit(run("multiconn-client", "127.0.0.1", "1", "zero"), 2)
        self.assertExit(run("multiconn-client", "--connect", "nonsense", "1"), 2)


if __name__ == "__main__":
    unittest.main()
