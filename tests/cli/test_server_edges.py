"""Black-box tests of the servers' edges: -v prints the tutorial originals'
per-connection lines in every model, logging never blocks a server whose
stdout and stderr nobody reads, and the iterative model lets no idle or
rejected client hold up the ones waiting behind it."""
import fcntl
import json
import os
import selectors
import socket
import struct
import time
import unittest

import mstest
from mstest import MsTestCase, Server, fresh_unix_path, run

MODELS = ("event", "thread", "fork", "iterative")
F_SETPIPE_SZ = 1031


def app_message(content, content_type="text/json", encoding="utf-8"):
    hdr = json.dumps({"byteorder": "little", "content-type": content_type,
                      "content-encoding": encoding, "content-length": len(content)}).encode()
    return struct.pack(">H", len(hdr)) + hdr + content


def search(value):
    return app_message(json.dumps({"action": "search", "value": value}).encode())


# A JSON header without its required keys: the codec rejects it.
BAD_HEADER = struct.pack(">H", 2) + b"{}"
# A text/json request whose content is not JSON: the application rejects it.
BAD_CONTENT = app_message(b"not json")


def read_app_response(s):
    n = struct.unpack(">H", mstest.recv_exact(s, 2))[0]
    hdr = json.loads(mstest.recv_exact(s, n))
    return json.loads(mstest.recv_exact(s, hdr["content-length"]))


def py_addr(sock):
    """The peer address of sock's other end as the Python originals print it."""
    name = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"('{name[0]}', {name[1]}, 0, 0)"
    return f"('{name[0]}', {name[1]})"


class Lines:
    """A server's stdout after its 'listening on' line, read as it comes."""

    def __init__(self, srv):
        self.srv = srv
        self.buf = b""

    def wait_for(self, want, timeout=10):
        """Reads until every line of want has been printed; returns all lines."""
        deadline = time.monotonic() + timeout
        fd = self.srv.proc.stdout.fileno()
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while True:
                lines = self.buf.decode("utf-8", "replace").splitlines()
                if all(w in lines for w in want):
                    return lines
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"missing {[w for w in want if w not in lines]} "
                                         f"in {lines}")
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise AssertionError(f"stdout closed; missing lines in {lines}")
                self.buf += chunk
        finally:
            sel.close()


def wait_closed(socks, timeout):
    """Polls until every socket sees its end (EOF or reset); returns those
    still open at the deadline."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    left = set(socks)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        for key, _ in sel.select(max(0.0, deadline - time.monotonic())):
            s = key.fileobj
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                sel.unregister(s)
                left.discard(s)
    sel.close()
    return left


def stats_json(addr):
    p = run("stats", "--json", addr, timeout=20)
    if p.returncode != 0:
        raise AssertionError(f"msgsock stats exited {p.returncode}: {p.stderr!r}")
    return json.loads(p.stdout)


class VerboseTest(MsTestCase):
    def test_app_server_lines_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                with Server("app-server", "-v", "--model", model, "127.0.0.1", "0") as srv:
                    out = Lines(srv)
                    port = srv.sockaddr[1]
                    out.wait_for([f"Listening on ('127.0.0.1', {port})"])
                    with srv.connect() as s:
                        me = py_addr(s)
                        s.sendall(search("morpheus"))
                        self.assertEqual(read_app_response(s),
                                         {"result": "Follow the white rabbit. \U0001f430"})
                        s.sendall(app_message(b"hello", "binary/custom-client-binary-type",
                                              "binary"))
                    # What the original's _write prints: repr of the whole reply.
                    answer = app_message(json.dumps({"result": "Follow the white rabbit. \U0001f430"},
                                                    ensure_ascii=False).encode())
                    binary = app_message(b"First 10 bytes of request: hello",
                                         "binary/custom-server-binary-type", "binary")
                    lines = out.wait_for([
                        f"Accepted connection from {me}",
                        f"Received request {{'action': 'search', 'value': 'morpheus'}} from {me}",
                        f"Sending {answer!r} to {me}",
                        f"Received binary/custom-client-binary-type request from {me}",
                        f"Sending {binary!r} to {me}",
                        f"Closing connection to {me}",
                    ])
                    order = [l for l in lines if l.endswith(me)]
                    self.assertTrue(order[0].startswith("Accepted"), order)
                    self.assertTrue(order[-1].startswith("Closing"), order)
                    self.assertEqual(srv.stop(), 0)

    def test_multiconn_server_echoing_lines(self):
        for model in ("event", "thread"):
            with self.subTest(model=model):
                with Server("multiconn-server", "-v", "--model", model, "127.0.0.1", "0") as srv:
                    out = Lines(srv)
                    with srv.connect() as s:
                        me = py_addr(s)
                        for msg in (b"Message 1 from client.", b"Message 2 from client."):
                            s.sendall(msg)
                            self.assertEqual(mstest.recv_exact(s, len(msg)), msg)
                    out.wait_for([
                        f"Accepted connection from {me}",
                        f"Echoing b'Message 1 from client.' to {me}",
                        f"Echoing b'Message 2 from client.' to {me}",
                        f"Closing connection to {me}",
                    ])
                    self.assertEqual(srv.stop(), 0)

    def test_echo_server_connected_by_and_ipv6_tuple(self):
        hosts = ["127.0.0.1"] + (["::1"] if mstest.have_ipv6() else [])
        for host in hosts:
            with self.subTest(host=host):
                with Server("echo-server", "-v", "--model", "iterative", host, "0") as srv:
                    out = Lines(srv)
                    with srv.connect() as s:
                        me = py_addr(s)
                        s.sendall(b"Hello, world")
                        self.assertEqual(mstest.recv_exact(s, 12), b"Hello, world")
                    lines = out.wait_for([f"Connected by {me}"])
                    self.assertEqual(srv.stop(), 0)
                    # The original prints nothing else for a connection.
                    self.assertEqual([l for l in lines if me in l], [f"Connected by {me}"])

    def test_quiet_without_verbose(self):
        with Server("app-server", "127.0.0.1", "0") as srv:
            with srv.connect() as s:
                s.sendall(search("ring"))
                read_app_response(s)
            srv.proc.terminate()
            rest = srv.proc.stdout.read()
            self.assertEqual(srv.proc.wait(10), 0)
            self.assertEqual(rest, b"")


class LogNeverBlocksTest(MsTestCase):
    FLOOD = 400

    def flood_with_unread_pipes(self, model):
        rfd, wfd = os.pipe()
        # The smallest pipe there is: a few lines fill it.
        fcntl.fcntl(wfd, F_SETPIPE_SZ, 4096)
        path = fresh_unix_path("stats")
        srv = Server("app-server", "-v", "--model", model, "--stats", "unix:" + path,
                     "127.0.0.1", "0", stderr=wfd)
        os.close(wfd)
        fcntl.fcntl(srv.proc.stdout.fileno(), F_SETPIPE_SZ, 4096)
        try:
            # Each bad request is logged on stderr, and -v prints two or three
            # lines on stdout: about 100 times what either pipe holds.
            for i in range(self.FLOOD):
                with srv.connect() as s:
                    s.sendall(BAD_HEADER if i % 2 else BAD_CONTENT)
            t0 = time.monotonic()
            with srv.connect(timeout=5) as s:
                s.sendall(search("ring"))
                self.assertEqual(read_app_response(s)["result"],
                                 "In the caves beneath the Misty Mountains. \U0001f48d")
            self.assertLess(time.monotonic() - t0, 5)
            deadline = time.monotonic() + 10
            doc = stats_json("unix:" + path)
            while doc["totals"]["accepted"] < self.FLOOD + 1 and time.monotonic() < deadline:
                doc = stats_json("unix:" + path)
            self.assertEqual(doc["totals"]["accepted"], self.FLOOD + 1, doc)
            # Some 4 KiB of the 100 KiB went out; the rest was dropped.
            self.assertGreater(doc["totals"]["log_dropped"], self.FLOOD, doc)
            self.assertEqual(srv.stop(), 0)
        finally:
            srv.kill()
            os.close(rfd)

    def test_unread_stdout_and_stderr_pipes_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                self.flood_with_unread_pipes(model)

    def test_table_shows_log_dropped(self):
        path = fresh_unix_path("stats")
        with Server("echo-server", "--stats", "unix:" + path, "127.0.0.1", "0") as srv:
            p = run("stats", "unix:" + path, timeout=20)
            self.assertExit(p, 0)
            self.assertIn(b", log_dropped 0\n", p.stdout)
            self.assertEqual(srv.stop(), 0)


class IterativeTest(MsTestCase):
    def test_idle_client_does_not_hold_up_the_next(self):
        with Server("app-server", "--model", "iterative", "127.0.0.1", "0") as srv:
            a = srv.connect()
            a.sendall(search("morpheus"))
            read_app_response(a)  # A has its answer and stays idle
            b = srv.connect()
            t0 = time.monotonic()
            b.sendall(search("ring"))
            b.settimeout(5)
            read_app_response(b)
            took = time.monotonic() - t0
            self.assertLess(took, 1.5, f"B waited {took:.2f}s behind idle A")
            # A was closed for being idle.
            self.assertEqual(wait_closed([a], 1), set())
            a.close()
            b.close()
            self.assertEqual(srv.stop(), 0)

    def test_malformed_requests_at_once_are_all_closed_promptly(self):
        with Server("app-server", "--model", "iterative", "127.0.0.1", "0") as srv:
            socks = []
            for i in range(19):
                s = srv.connect()
                s.sendall(BAD_HEADER if i % 2 else BAD_CONTENT)
                socks.append(s)  # kept open: the server alone decides the end
            t0 = time.monotonic()
            left = wait_closed(socks, 4)
            self.assertEqual(len(left), 0, f"{len(left)} of 19 still open after "
                                           f"{time.monotonic() - t0:.1f}s")
            for s in socks:
                s.close()
            # And the queue moves on.
            with srv.connect() as s:
                s.sendall(search("morpheus"))
                s.settimeout(5)
                read_app_response(s)
            self.assertEqual(srv.stop(), 0)
            err = srv.stderr_text()
            self.assertEqual(err.count("closing:"), 19, err)


if __name__ == "__main__":
    unittest.main()
