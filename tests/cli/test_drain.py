"""Drain on SIGTERM: no new connections, what the kernel queued on a listener
the server alone holds is served, requests under way are answered, idle
connections get a FIN, and the server exits 0 once every connection is done
or at --drain-timeout. On a listener it shares (--listen fd:N) it only stops
accepting: a second server on the same descriptor restarts with no request
lost. Waits poll for a state with a deadline; none sleeps for one."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import pyapp
import test_activation
from mstest import MsTestCase, Server, run, unread_bytes, wait_for
from test_app import read_message

MODELS = ("event", "thread", "fork", "iterative")
REQ = pyapp.make_request("search", "morpheus")
RABBIT = "Follow the white rabbit. \U0001f430"


def result_of(sock):
    """The answer read off sock: its result text."""
    msg = read_message(sock)
    if msg is None:
        raise AssertionError("connection ended without an answer")
    return pyapp.json.loads(msg[2].decode())["result"]


def ask(addr, family=socket.AF_INET, timeout=10):
    """One request on a connection of its own, as the guide's client does."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        s.sendall(REQ)
        return result_of(s)


def refused(addr):
    """1 once connects to addr are refused (the drain shut the listener; a
    connect caught half way by the shutdown is reset instead)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.connect(addr)
        except (ConnectionRefusedError, ConnectionResetError):
            return 1
    return 0


def assert_fin(test, sock, timeout=5):
    """The peer ends the stream with a FIN (recv gives b''), not a reset."""
    sock.settimeout(timeout)
    try:
        test.assertEqual(sock.recv(1), b"")
    except ConnectionResetError:
        test.fail("the server reset an idle connection instead of closing it")


def half_sent(srv):
    """A connection holding half a request the server has read."""
    s = srv.connect()
    s.sendall(REQ[:len(REQ) // 2])
    wait_for(lambda: unread_bytes(s) == 0, 10, "the server to read the half request")
    return s


def exited(srv, timeout):
    """Waits for srv to exit; returns (status, seconds waited)."""
    t0 = time.monotonic()
    rc = srv.proc.wait(timeout)
    return rc, time.monotonic() - t0


class DrainTest(MsTestCase):
    def test_half_request_answered_after_sigterm(self):
        for model in MODELS:
            with self.subTest(model=model), \
                    Server("app-server", "--model", model, "127.0.0.1", "0") as srv:
                c = half_sent(srv)
                srv.proc.send_signal(signal.SIGTERM)
                # The drain has begun once the listener refuses connects.
                # Iterative shuts it only when this connection is done, and
                # closes a client silent for 1 s: no waiting there.
                if model != "iterative":
                    wait_for(lambda: refused(srv.sockaddr), 10, "connects to be refused")
                    self.assertIsNone(srv.proc.poll(), "exited with a request half received")
                c.sendall(REQ[len(REQ) // 2:])
                self.assertEqual(result_of(c), RABBIT)
                assert_fin(self, c)
                c.close()
                self.assertEqual(exited(srv, 10)[0], 0)

    def test_idle_connections_closed_with_fin_and_prompt_exit(self):
        for model in MODELS:
            with self.subTest(model=model), \
                    Server("app-server", "--model", model, "127.0.0.1", "0") as srv:
                # Iterative serves one connection at a time.
                socks = [srv.connect() for _ in range(1 if model == "iterative" else 5)]
                for s in socks:
                    s.sendall(REQ)
                    self.assertEqual(result_of(s), RABBIT)
                t0 = time.monotonic()
                srv.proc.send_signal(signal.SIGTERM)
                for s in socks:
                    assert_fin(self, s)
                    s.close()
                rc, _ = exited(srv, 10)
                took = time.monotonic() - t0
                self.assertEqual(rc, 0)
                # Far under the 10 s drain timeout: nothing waited for it.
                self.assertLess(took, 3, f"{model}: exit took {took:.2f}s")

    def test_backlog_queued_before_sigterm_is_served(self):
        for model in ("event", "thread", "fork", "iterative"):
            with self.subTest(model=model), \
                    Server("app-server", "--model", model, "127.0.0.1", "0") as srv:
                # Stopped, the server accepts nothing: the connects wait in
                # its listen queue, each with its whole request sent.
                os.kill(srv.pid, signal.SIGSTOP)
                try:
                    queued = []
                    for _ in range(20):
                        s = srv.connect()
                        s.sendall(REQ)
                        queued.append(s)
                    os.kill(srv.pid, signal.SIGTERM)
                finally:
                    os.kill(srv.pid, signal.SIGCONT)
                for s in queued:
                    try:
                        self.assertEqual(result_of(s), RABBIT)
                    except ConnectionResetError:
                        self.fail(f"{model}: a queued connection was reset")
                    s.close()
                self.assertEqual(exited(srv, 15)[0], 0)

    def test_drain_timeout_closes_and_logs(self):
        for model in MODELS:
            with self.subTest(model=model), \
                    Server("app-server", "--model", model, "--drain-timeout", "500",
                           "127.0.0.1", "0") as srv:
                c = half_sent(srv)
                t0 = time.monotonic()
                srv.proc.send_signal(signal.SIGTERM)
                rc = srv.proc.wait(10)
                took = time.monotonic() - t0
                self.assertEqual(rc, 0)
                self.assertGreaterEqual(took, 0.45)
                self.assertLess(took, 4, f"{model}: exit took {took:.2f}s")
                wait_for(lambda: "drain timeout" in srv.stderr_text(), 5, "the drain timeout line")
                c.close()

    def test_drain_timeout_usage(self):
        for bad in ("x", "-1", "86400001"):
            p = run("app-server", "--drain-timeout", bad, "127.0.0.1", "0")
            self.assertEqual(p.returncode, 2)
            self.assertIn(b"--drain-timeout wants milliseconds", p.stderr)

    def test_second_sigterm_stops_at_once(self):
        with Server("app-server", "127.0.0.1", "0") as srv:
            c = half_sent(srv)
            srv.proc.send_signal(signal.SIGTERM)
            wait_for(lambda: refused(srv.sockaddr), 10, "connects to be refused")
            t0 = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            rc = srv.proc.wait(10)
            self.assertEqual(rc, 0)
            self.assertLess(time.monotonic() - t0, 3)
            wait_for(lambda: "drain timeout" in srv.stderr_text(), 5, "the drain timeout line")
            c.close()


class Client(threading.Thread):
    """Connect-per-request clients sending continuously until stopped."""

    def __init__(self, addr):
        super().__init__(daemon=True)
        self.addr = addr
        self.ok = 0
        self.failed = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                if ask(self.addr) == RABBIT:
                    self.ok += 1
                else:
                    self.failed.append("wrong answer")
            except (OSError, AssertionError) as e:
                self.failed.append(repr(e))

    def wait_ok(self, n, what):
        start = self.ok
        wait_for(lambda: self.ok >= start + n, 20, what)


class RestartTest(MsTestCase):
    def test_restart_on_shared_listener_loses_nothing(self):
        for model in MODELS:
            with self.subTest(model=model):
                self.restart(model)

    def restart(self, model):
        ls = test_activation.listener()
        ls.listen(128)
        addr = ls.getsockname()
        args = ("app-server", "--model", model, "--listen", "fd:3")
        with test_activation.Inherited(ls, *args, activate=False) as a:
            # Before B exists, so A holds both: one connection answered and
            # now idle (it sees the drain begin), one holding half a request.
            idle = None if model == "iterative" else a.connect()
            if idle:
                idle.sendall(REQ)
                self.assertEqual(result_of(idle), RABBIT)
            half = half_sent(a)
            cl = Client(addr)
            cl.start()
            try:
                if model != "iterative":
                    cl.wait_ok(20, "requests answered by A")
                with test_activation.Inherited(ls, *args, activate=False) as b:
                    a.proc.send_signal(signal.SIGTERM)
                    if idle:
                        assert_fin(self, idle)
                        idle.close()
                    half.sendall(REQ[len(REQ) // 2:])
                    self.assertEqual(result_of(half), RABBIT)
                    half.close()
                    self.assertEqual(exited(a, 15)[0], 0)
                    cl.wait_ok(30, "requests answered by B alone")
                    cl.halt.set()
                    cl.join(20)
                    self.assertEqual(cl.failed, [])
                    self.assertIsNone(b.proc.poll())
            finally:
                cl.halt.set()
                cl.join(20)
                ls.close()


HAPROXY = shutil.which("haproxy") or (os.path.exists("/usr/sbin/haproxy") and "/usr/sbin/haproxy")


@unittest.skipUnless(HAPROXY, "needs haproxy (apt-get install haproxy)")
class HaproxyTest(MsTestCase):
    """The issue's setup: two backends behind HAProxy (retries 3, option
    redispatch, health checks every 200 ms); one backend gets SIGTERM after
    the 50th of 200 sequential requests; none may fail."""

    def test_sigterm_one_backend_zero_failed(self):
        with Server("app-server", "127.0.0.1", "0") as b1, \
                Server("app-server", "127.0.0.1", "0") as b2:
            with socket.socket() as p:
                p.bind(("127.0.0.1", 0))
                port = p.getsockname()[1]
            tmp = tempfile.mkdtemp(prefix="msgsock-drain-haproxy-")
            conf = os.path.join(tmp, "haproxy.cfg")
            with open(conf, "w") as f:
                f.write("\n".join([
                    "global", "  maxconn 100",
                    "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 10s",
                    "  timeout server 10s", "  retries 3", "  option redispatch",
                    "frontend fe", f"  bind 127.0.0.1:{port}", "  default_backend be",
                    "backend be", "  balance roundrobin",
                    f"  server s1 {b1.addr_text} check inter 200ms",
                    f"  server s2 {b2.addr_text} check inter 200ms", ""]))
            hp = subprocess.Popen([HAPROXY, "-db", "-f", conf], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
            try:
                wait_for(lambda: hp.poll() is not None or not refused(("127.0.0.1", port)), 10,
                         "haproxy to listen")
                self.assertIsNone(hp.poll(), "haproxy exited")
                failed = []
                for i in range(200):
                    if i == 50:
                        b1.proc.send_signal(signal.SIGTERM)
                    try:
                        self.assertEqual(ask(("127.0.0.1", port)), RABBIT)
                    except (OSError, AssertionError) as e:
                        failed.append((i, repr(e)))
                self.assertEqual(failed, [])
                self.assertEqual(exited(b1, 15)[0], 0)
            finally:
                hp.send_signal(signal.SIGTERM)
                hp.wait(10)
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
