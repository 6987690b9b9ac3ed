"""Black-box tests of the concurrency models (--model event|thread|fork|iterative)
of echo-server, multiconn-server and app-server, with the guide's Python
clients: right answers in every model, malformed input closing only its own
connection, the fork model leaving no zombies, the thread model serving 200
clients at once, the iterative model serving one client after another."""
import json
import os
import resource
import signal
import socket
import struct
import time
import unittest

import mstest
import pyapp
import test_app
import test_multiconn
from mstest import MsTestCase, Server, recv_exact, wait_for

MODELS = ("event", "thread", "fork", "iterative")


def children(pid):
    """{child pid: state letter} of pid, from /proc."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(name)] = fields[0]
    return out


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def echo_once(srv, data):
    with srv.connect() as s:
        s.sendall(data)
        return recv_exact(s, len(data))


def assert_closed(test, sock, timeout=5):
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        test.fail("server kept the connection open")
    test.assertEqual(data, b"", "server answered malformed input")


class EchoModelsTest(MsTestCase):
    def test_guide_client_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model), Server("echo-server", "--model", model, "127.0.0.1", "0") as srv:
                for i in range(5):
                    msg = f"Hello, world {i} from {model}".encode()
                    self.assertEqual(echo_once(srv, msg), msg)
                big = os.urandom(1 << 20)
                with srv.connect(timeout=30) as s:
                    s.sendall(big)
                    s.shutdown(socket.SHUT_WR)
                    self.assertEqual(recv_exact(s, len(big)), big)
                    self.assertEqual(s.recv(1), b"")
                self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_unix_socket_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                path = mstest.fresh_unix_path()
                with Server("echo-server", "--model", model, "--listen", "unix:" + path) as srv:
                    self.assertEqual(echo_once(srv, b"over unix"), b"over unix")
                    self.assertEqual(srv.stop(), 0)
                self.assertFalse(os.path.exists(path), "socket path left behind")

    def test_stop_with_a_client_connected_exits_0_and_closes_it(self):
        for model in MODELS:
            with self.subTest(model=model), Server("echo-server", "--model", model, "127.0.0.1", "0") as srv:
                s = srv.connect()
                s.sendall(b"x")
                self.assertEqual(recv_exact(s, 1), b"x")
                t0 = time.monotonic()
                self.assertEqual(srv.stop(signal.SIGTERM), 0)
                self.assertLess(time.monotonic() - t0, 8)
                s.settimeout(5)
                try:
                    self.assertEqual(s.recv(10), b"")
                except ConnectionResetError:
                    pass
                s.close()

    def test_bad_model_is_a_usage_error(self):
        p = mstest.run("echo-server", "--model", "coroutine")
        self.assertExit(p, 2)
        self.assertIn(b"coroutine", p.stderr)


class MulticonnModelsTest(MsTestCase):
    def test_guide_multiconn_client_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model), Server("multiconn-server", "--model", model,
                                                   "--listen", "127.0.0.1:0") as srv:
                expected, results = test_multiconn.py_multiconn_client(srv.family, srv.sockaddr, 20)
                self.assertEqual(results, expected)
                self.assertEqual(srv.stop(), 0)

    def test_malformed_frame_closes_only_that_connection(self):
        for model in MODELS:
            with self.subTest(model=model), Server("multiconn-server", "--model", model, "--framing",
                                                   "len32", "--max-msg", "100",
                                                   "--listen", "127.0.0.1:0") as srv:
                good = None
                if model != "iterative":  # iterative serves one at a time
                    good = srv.connect()
                    good.sendall(struct.pack(">I", 3) + b"abc")
                    self.assertEqual(recv_exact(good, 7), struct.pack(">I", 3) + b"abc")
                with srv.connect() as bad:
                    bad.sendall(struct.pack(">I", 1 << 30))
                    assert_closed(self, bad)
                    port = bad.getsockname()[1]
                if good:
                    good.sendall(struct.pack(">I", 2) + b"ok")
                    self.assertEqual(recv_exact(good, 6), struct.pack(">I", 2) + b"ok")
                    good.close()
                with srv.connect() as nxt:
                    nxt.sendall(struct.pack(">I", 4) + b"next")
                    self.assertEqual(recv_exact(nxt, 8), struct.pack(">I", 4) + b"next")
                self.assertEqual(srv.stop(), 0)
                lines = [ln for ln in srv.stderr_text().splitlines() if f":{port}:" in ln]
                self.assertEqual(len(lines), 1, srv.stderr_text())
                self.assertIn("larger than the configured limit", lines[0])


class ForkModelTest(MsTestCase):
    def test_no_zombies_after_many_short_connections_and_after_stop(self):
        with Server("echo-server", "--model", "fork", "127.0.0.1", "0") as srv:
            seen = set()
            for i in range(60):
                msg = b"short %d" % i
                self.assertEqual(echo_once(srv, msg), msg)
                seen.update(children(srv.pid))
            # Each child is reaped as it exits: none lingers as a zombie.
            wait_for(lambda: not children(srv.pid), 3, "every child reaped")
            # Children at once, then gone with the clients.
            socks = [srv.connect() for _ in range(10)]
            for s in socks:
                s.sendall(b"p")
                self.assertEqual(recv_exact(s, 1), b"p")
            kids = children(srv.pid)
            self.assertEqual(len(kids), 10, kids)
            self.assertNotIn("Z", kids.values())
            seen.update(kids)
            for s in socks[:5]:
                s.close()
            wait_for(lambda: len(children(srv.pid)) == 5, 3, "5 children left after 5 clients closed")
            self.assertNotIn("Z", children(srv.pid).values())
            self.assertEqual(srv.stop(), 0)
            for s in socks[5:]:
                s.close()
        self.assertEqual([p for p in seen if cmdline(p).startswith(mstest.BIN.encode())], [],
                         "children outlived the server")

    def test_children_count_against_max_conns(self):
        with Server("echo-server", "--model", "fork", "--max-conns", "3", "127.0.0.1", "0") as srv:
            socks = [srv.connect() for _ in range(3)]
            for s in socks:
                s.sendall(b"a")
                self.assertEqual(recv_exact(s, 1), b"a")
            with srv.connect() as extra:
                assert_closed(self, extra)
            socks.pop().close()
            wait_for(lambda: len(children(srv.pid)) == 2, 3, "2 children left after one client closed")
            self.assertEqual(echo_once(srv, b"room again"), b"room again")
            for s in socks:
                s.close()
            self.assertEqual(srv.stop(), 0)
            self.assertIn("connection limit 3 reached", srv.stderr_text())


def sockets(pid):
    """How many sockets pid holds."""
    n = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
        except FileNotFoundError:
            pass
    return n


def echo_or_reset(srv, data):
    try:
        return echo_once(srv, data)
    except ConnectionError:
        return None


def lowest_free_fd(pid):
    used = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
    return next(i for i in range(len(used) + 1) if i not in used)


class AcceptPolicyTest(MsTestCase):
    def test_out_of_descriptors_closes_at_once_in_every_model(self):
        """With no descriptor left, every model spends its reserve descriptor
        to close a pending connection at once (one accept policy for all);
        the thread and fork models used to rest the listener and leave the
        client waiting. With descriptors back, they serve again."""
        for model in MODELS:
            with self.subTest(model=model), \
                    Server("echo-server", "--model", model, "127.0.0.1", "0") as srv:
                listeners = sockets(srv.pid)
                self.assertEqual(echo_once(srv, b"warm"), b"warm")
                wait_for(lambda: not children(srv.pid) and sockets(srv.pid) == listeners, 5,
                         "the warm-up connection to end")
                old = resource.prlimit(srv.pid, resource.RLIMIT_NOFILE)
                # Every descriptor the server may open now is at or above
                # the limit: accept fails with EMFILE.
                resource.prlimit(srv.pid, resource.RLIMIT_NOFILE,
                                 (lowest_free_fd(srv.pid), old[1]))
                try:
                    s = srv.connect()
                except ConnectionResetError:
                    pass  # closed with a reset before connect() returned
                else:
                    with s:
                        assert_closed(self, s)
                resource.prlimit(srv.pid, resource.RLIMIT_NOFILE, old)
                # A connect made while the server still empties its queue
                # with the reserve is closed too: try until one is served.
                wait_for(lambda: echo_or_reset(srv, b"again") == b"again", 5,
                         "a connection served with descriptors back")
                self.assertEqual(srv.stop(), 0)
                self.assertIn("connection(s) closed at once", srv.stderr_text())


class ThreadModelTest(MsTestCase):
    def test_200_concurrent_clients(self):
        test_multiconn.raise_nofile(1000)
        with Server("echo-server", "--model", "thread", "127.0.0.1", "0") as srv:
            socks = [srv.connect(timeout=30) for _ in range(200)]
            for i, s in enumerate(socks):
                s.sendall(b"client %03d" % i)
            for i, s in enumerate(socks):
                self.assertEqual(recv_exact(s, 10), b"client %03d" % i)
            # all 200 are open at once, each with its own thread
            self.assertGreaterEqual(threads_of(srv.pid), 200)
            for i, s in enumerate(socks):
                s.sendall(b"again %03d" % i)
                self.assertEqual(recv_exact(s, 9), b"again %03d" % i)
                s.close()
            wait_for(lambda: threads_of(srv.pid) < 10, 5, "the connection threads to end")
            self.assertEqual(srv.stop(), 0)


class IterativeModelTest(MsTestCase):
    def test_serves_clients_one_after_another(self):
        with Server("echo-server", "--model", "iterative", "127.0.0.1", "0") as srv:
            a = srv.connect()
            a.sendall(b"first")
            self.assertEqual(recv_exact(a, 5), b"first")
            b = srv.connect()  # queued in the backlog
            b.sendall(b"second")
            b.settimeout(0.5)
            with self.assertRaises(socket.timeout):
                b.recv(6)  # not served while the first client is
            a.close()
            b.settimeout(10)
            self.assertEqual(recv_exact(b, 6), b"second")
            b.close()
            self.assertEqual(srv.stop(), 0)


class ThreadAppServerTest(test_app.AppServerTest):
    MODEL = "thread"


class ForkAppServerTest(test_app.AppServerTest):
    MODEL = "fork"


class ThreadAppServerMalformedTest(test_app.AppServerMalformedTest):
    MODEL = "thread"


class ForkAppServerMalformedTest(test_app.AppServerMalformedTest):
    MODEL = "fork"


class AppModelsGuideClientTest(MsTestCase):
    """The guide's app-client against app-server in each model, with an
    unknown key, an invalid action and a binary request in between."""

    def test_every_model(self):
        cases = [
            ("search", "morpheus", {"result": test_app.RABBIT}),
            ("search", "ring", {"result": test_app.RING}),
            ("search", test_app.DOG, {"result": test_app.BALL}),
            ("search", "neo", {"result": "No match for 'neo'."}),
            ("foo", "bar", b"First 10 bytes of request: foobar"),
        ]
        for model in MODELS:
            with self.subTest(model=model), Server("app-server", "--model", model, "127.0.0.1", "0") as srv:
                host, port = srv.host_port()
                for action, value, want in cases:
                    self.assertEqual(pyapp.run_client(host, port, action, value)[1], want)
                body = pyapp.json_bytes({"action": "find", "value": "x"})
                with srv.connect() as s:
                    s.sendall(test_app.raw_message(test_app.hdr(length=len(body)), body))
                    self.assertEqual(json.loads(test_app.read_message(s)[2]),
                                     {"result": "Error: invalid action 'find'."})
                self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
