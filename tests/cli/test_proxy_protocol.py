"""Black-box tests of --proxy-protocol: every server model and loop backend
takes a PROXY v1 or v2 header before the first message and names the client
in it as the peer (stats, -v lines); a missing, malformed, oversized, cut
short or late header closes that connection unanswered with a logged reason
while the others go on; and two app-servers behind a real HAProxy (one
send-proxy-v2, one send-proxy, health checks on) answer every request and
show the clients' real addresses. With TLS the header comes raw before the
ClientHello (HAProxy passing TLS through in mode tcp): it is taken off the
socket without a byte of the handshake, in every model."""
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

import mstest
from mstest import MsTestCase, Server, fresh_unix_path, run, wait_for
from test_server_edges import Lines, py_addr, read_app_response, search, stats_json
from test_uring import URING_REFUSED

MODELS = ("event", "thread", "fork", "iterative")
ANSWER = {"result": "Follow the white rabbit. \U0001f430"}
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport, dst="192.0.2.1", dport=65432):
    fam = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2(src, sport, dst=None, dport=65432, tlv=b""):
    if ":" in src:
        dst = dst or "2001:db8::1"
        fam, addrs = 0x21, (ipaddress.IPv6Address(src).packed
                            + ipaddress.IPv6Address(dst).packed)
    else:
        dst = dst or "192.0.2.1"
        fam, addrs = 0x11, ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
    body = addrs + struct.pack(">HH", sport, dport) + tlv
    return V2_SIG + bytes([0x21, fam]) + struct.pack(">H", len(body)) + body


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + struct.pack(">H", 0)


def fmt(host, port):
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def server(model, *args, env=None):
    path = fresh_unix_path("stats")
    srv = Server("app-server", "--proxy-protocol", "-v", "--model", model,
                 "--stats", "unix:" + path, *args, "127.0.0.1", "0", env=env)
    return srv, "unix:" + path


def peers(addr):
    return [c["peer"] for c in stats_json(addr)["connections"]]


def wait_stats(addr, cond, what, timeout=10):
    last = []

    def check():
        last[:] = [stats_json(addr)]
        return cond(last[0])
    try:
        wait_for(check, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last stats: {last and last[0]}") from None
    return last[0]


def gone(addr):
    return wait_stats(addr, lambda d: not d["connections"], "every connection gone")


def expect_closed_unanswered(test, s, timeout=10):
    """s sees its end (EOF or reset) with no byte of an answer."""
    s.settimeout(timeout)
    try:
        test.assertEqual(s.recv(4096), b"", "the server answered a connection it must drop")
    except ConnectionResetError:
        pass


def check_cut_short(test, srv, addr):
    """srv (--msg-timeout 400) closes a header cut short at its deadline when
    the client goes silent, at once when it closes, logging each."""
    with srv:
        with srv.connect() as s:
            me = "127.0.0.1:%d" % s.getsockname()[1]
            start = time.monotonic()
            s.sendall(v2("192.0.2.3", 33)[:20])
            expect_closed_unanswered(test, s)
            test.assertGreaterEqual(time.monotonic() - start, 0.3)
        wait_for(lambda: any(me in ln and "not complete within its deadline" in ln
                             for ln in srv.stderr_text().splitlines()),
                 10, "the late header logged")
        with srv.connect() as s:
            me = "127.0.0.1:%d" % s.getsockname()[1]
            s.sendall(b"PROXY TCP4 1.2")
            s.shutdown(socket.SHUT_WR)
            expect_closed_unanswered(test, s)
        wait_for(lambda: any(me in ln and "end of stream inside the proxy header"
                             in ln.lower() for ln in srv.stderr_text().splitlines()),
                 10, "the header cut short logged")
        d = gone(addr)
        test.assertEqual(d["totals"]["timed_out"], 1)
        test.assertEqual(d["totals"]["dropped_bad_input"], 1)
        test.assertEqual(srv.stop(), 0)


class PeerFromHeaderTest(MsTestCase):
    def check_peers(self, model, backend=None):
        args = ("--backend", backend) if backend else ()
        srv, addr = server(model, *args)
        with srv:
            out = Lines(srv)
            cases = [(v1("203.0.113.7", 4242), "203.0.113.7", 4242),
                     (v2("2001:db8::7", 5353), "2001:db8::7", 5353),
                     (v2("198.51.100.9", 61000, dst="198.51.100.1",
                         tlv=b"\x04\x00\x02zz"), "198.51.100.9", 61000),
                     (v2_local(), None, None)]
            for hdr, host, port in cases:
                with srv.connect() as s:
                    s.sendall(hdr + search("morpheus"))
                    self.assertEqual(read_app_response(s), ANSWER)
                    own = s.getsockname()
                    want = fmt(host, port) if host else fmt(own[0], own[1])
                    # The connection stays open while its peer is read.
                    self.assertEqual(peers(addr), [want])
                    me = (py_addr(s) if not host else f"('{host}', {port}, 0, 0)" if ":" in host
                          else f"('{host}', {port})")
                    out.wait_for([f"Accepted connection from {me}",
                                  f"Received request {{'action': 'search', 'value': 'morpheus'}}"
                                  f" from {me}"])
                out.wait_for([f"Closing connection to {me}"])
                gone(addr)
            # The table names the same client.
            with srv.connect() as s:
                s.sendall(v1("203.0.113.8", 1234) + search("morpheus"))
                self.assertEqual(read_app_response(s), ANSWER)
                p = run("stats", addr, timeout=20)
                rows = [ln for ln in p.stdout.decode().splitlines()
                        if ln.startswith("203.0.113.8:1234 ")]
                self.assertEqual(len(rows), 1, p.stdout)
            d = gone(addr)
            self.assertEqual(d["totals"]["accepted"], 5)
            self.assertEqual(d["totals"]["dropped_bad_input"], 0)
            self.assertEqual(srv.stop(), 0)

    def test_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                self.check_peers(model)

    def test_every_backend(self):
        for backend in ("epoll", "poll", "io_uring"):
            if backend == "io_uring" and URING_REFUSED:
                continue
            with self.subTest(backend=backend):
                self.check_peers("event", backend)

    def test_header_split_byte_by_byte(self):
        """Each byte its own segment (Nagle off, paced): the header and the
        request after it are put together across reads."""
        for model, backend in (("event", "epoll"), ("event", "io_uring"), ("thread", None),
                               ("fork", None)):
            if backend == "io_uring" and URING_REFUSED:
                continue
            for hdr, want in ((v1("203.0.113.7", 4242), "203.0.113.7:4242"),
                              (v2("2001:db8::7", 5353), "[2001:db8::7]:5353")):
                with self.subTest(model=model, backend=backend, version=hdr[:1]):
                    args = ("--backend", backend) if backend else ()
                    srv, addr = server(model, *args)
                    with srv:
                        with srv.connect() as s:
                            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                            req = search("morpheus")
                            for b in hdr + req[:3]:
                                s.send(bytes([b]))
                                time.sleep(0.001)  # pacing, so that reads see bytes apart
                            s.sendall(req[3:])
                            self.assertEqual(read_app_response(s), ANSWER)
                            self.assertEqual(peers(addr), [want])
                        self.assertEqual(srv.stop(), 0)

    def test_header_and_messages_in_one_segment(self):
        """The header, two requests and a third cut in half in one send."""
        for backend in ("epoll", "io_uring"):
            if backend == "io_uring" and URING_REFUSED:
                continue
            with self.subTest(backend=backend):
                srv, addr = server("event", "--backend", backend)
                with srv:
                    with srv.connect() as s:
                        req = search("morpheus")
                        s.sendall(v2("192.0.2.55", 7) + req + req + req[:10])
                        self.assertEqual(read_app_response(s), ANSWER)
                        self.assertEqual(read_app_response(s), ANSWER)
                        s.sendall(req[10:])
                        self.assertEqual(read_app_response(s), ANSWER)
                        self.assertEqual(peers(addr), ["192.0.2.55:7"])
                    self.assertEqual(srv.stop(), 0)


class BadHeaderTest(MsTestCase):
    def test_bad_headers_closed_unanswered_others_go_on(self):
        bad = [
            ("no header", search("morpheus"), "not a proxy protocol header"),
            ("v1 without CRLF", b"PROXY UNKNOWN " + b"x" * 100, "no crlf within 107 bytes"),
            ("v1 malformed", b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "malformed proxy v1 line"),
            ("v2 over its bound", V2_SIG + b"\x21\x11" + struct.pack(">H", 600) + b"\0" * 600,
             "proxy v2 header longer than the configured limit"),
            ("v2 bad version", V2_SIG + b"\x31\x11" + struct.pack(">H", 12) + b"\0" * 12,
             "unsupported proxy v2 version"),
        ]
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = server(model)
                with srv:
                    # In the iterative model one connection is served at a
                    # time: the good one waits its turn there.
                    keep = None if model == "iterative" else srv.connect()
                    if keep:
                        keep.sendall(v1("203.0.113.1", 1111))
                    for what, data, reason in bad:
                        with srv.connect() as s:
                            me = "127.0.0.1:%d" % s.getsockname()[1]
                            s.sendall(data)
                            expect_closed_unanswered(self, s)
                            wait_for(lambda: any(me in ln and reason in ln.lower()
                                                 for ln in srv.stderr_text().splitlines()),
                                     10, f"{what}: '{reason}' logged with the proxy's address")
                    if keep:
                        keep.sendall(search("morpheus"))
                        self.assertEqual(read_app_response(keep), ANSWER)
                        self.assertEqual(peers(addr), ["203.0.113.1:1111"])
                        keep.close()
                    d = gone(addr)
                    self.assertEqual(d["totals"]["dropped_bad_input"], len(bad))
                    self.assertEqual(srv.stop(), 0)

    def test_cut_short_then_silent_or_gone(self):
        """A header cut short: closed at the header deadline (--msg-timeout
        shortens it) if the client goes silent, at once if it closes."""
        for model in MODELS:
            with self.subTest(model=model):
                check_cut_short(self, *server(model, "--msg-timeout", "400"))

    def test_closed_before_any_byte_is_a_clean_end(self):
        srv, addr = server("event")
        with srv:
            for _ in range(3):
                srv.connect().close()
            d = wait_stats(addr, lambda d: d["totals"]["accepted"] == 3 and not d["connections"],
                           "three connections come and gone")
            self.assertEqual(d["totals"]["dropped_bad_input"], 0)
            self.assertEqual(srv.stop(), 0)
            self.assertNotIn("closing", srv.stderr_text())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_stat(sock_path):
    """HAProxy's 'show stat' over its stats socket: {(proxy, server): status}."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock_path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    lines = data.decode().splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    head = lines[0][2:].split(",")
    rows = [dict(zip(head, ln.split(","))) for ln in lines[1:] if ln]
    return {(r["pxname"], r["svname"]): r["status"] for r in rows}


MKCERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "mkcerts.sh")


class BioTLS:
    """A TLS client over a socket driven through memory BIOs, so the test
    decides which bytes go out in which send (a header and the ClientHello
    in one segment). recv and sendall as on a socket."""

    def __init__(self, sock, ctx):
        self.s, self.inc, self.out = sock, ssl.MemoryBIO(), ssl.MemoryBIO()
        self.o = ctx.wrap_bio(self.inc, self.out, server_hostname="localhost")

    def client_hello(self):
        try:
            self.o.do_handshake()
        except ssl.SSLWantReadError:
            return self.out.read()
        raise AssertionError("a handshake done with no server")

    def pump(self, fn):
        while True:
            try:
                r = fn()
                self.flush()
                return r
            except ssl.SSLWantReadError:
                self.flush()
                d = self.s.recv(65536)
                if not d:
                    self.inc.write_eof()
                else:
                    self.inc.write(d)

    def flush(self):
        d = self.out.read()
        if d:
            self.s.sendall(d)

    def handshake(self):
        self.pump(self.o.do_handshake)

    def recv(self, n):
        return self.pump(lambda: self.o.read(n))

    def sendall(self, b):
        self.pump(lambda: self.o.write(b))


@unittest.skipUnless(shutil.which("openssl"), "the openssl command is not installed")
class TLSTest(MsTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="msgsock-pp-tls-")
        subprocess.run(["sh", MKCERTS, cls.certs], check=True, timeout=120,
                       stdout=subprocess.DEVNULL)
        cls.ctx = ssl.create_default_context(cafile=os.path.join(cls.certs, "ca.pem"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    @classmethod
    def tls_server(cls, model, *args):
        return server(model, "--tls-cert", os.path.join(cls.certs, "server.pem"),
                      "--tls-key", os.path.join(cls.certs, "server.key"), *args)

    def ask(self, s, addr, want):
        s.sendall(search("morpheus"))
        self.assertEqual(read_app_response(s), ANSWER)
        self.assertEqual(peers(addr), [want])

    def test_every_model(self):
        """A v1 and a v2 header on the raw socket, then TLS over it."""
        runs = [(m, None) for m in MODELS] + [("event", "poll")]
        if not URING_REFUSED:
            runs.append(("event", "io_uring"))
        for model, backend in runs:
            with self.subTest(model=model, backend=backend):
                srv, addr = self.tls_server(model, *(("--backend", backend) if backend else ()))
                with srv:
                    for hdr, want in ((v1("203.0.113.7", 4242), "203.0.113.7:4242"),
                                      (v2("2001:db8::7", 5353), "[2001:db8::7]:5353")):
                        raw = srv.connect()
                        raw.sendall(hdr)
                        with self.ctx.wrap_socket(raw, server_hostname="localhost") as s:
                            self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
                            self.ask(s, addr, want)
                        gone(addr)
                    d = stats_json(addr)
                    self.assertEqual(d["totals"]["accepted"], 2)
                    self.assertEqual(d["totals"]["dropped_bad_input"], 0)
                    self.assertEqual(srv.stop(), 0)

    def test_header_split_and_header_with_client_hello(self):
        """The header a byte per segment before the ClientHello; and the
        header and the ClientHello in one segment (no byte of it lost)."""
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = self.tls_server(model)
                with srv:
                    with srv.connect() as raw:
                        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        for b in v2("192.0.2.9", 99):
                            raw.send(bytes([b]))
                            time.sleep(0.001)  # pacing, so that reads see bytes apart
                        t = BioTLS(raw, self.ctx)
                        raw.sendall(t.client_hello())
                        t.handshake()
                        self.ask(t, addr, "192.0.2.9:99")
                    gone(addr)
                    for hdr, want in ((v1("203.0.113.8", 8), "203.0.113.8:8"),
                                      (v2("198.51.100.3", 3), "198.51.100.3:3")):
                        with srv.connect() as raw:
                            t = BioTLS(raw, self.ctx)
                            raw.sendall(hdr + t.client_hello())
                            t.handshake()
                            self.ask(t, addr, want)
                        gone(addr)
                    self.assertEqual(srv.stop(), 0)

    def test_no_header_closed_unanswered(self):
        """A ClientHello straight away is no PROXY header: closed with no
        byte sent, the reason logged; the server goes on."""
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = self.tls_server(model)
                with srv:
                    with srv.connect() as raw:
                        me = "127.0.0.1:%d" % raw.getsockname()[1]
                        raw.sendall(BioTLS(raw, self.ctx).client_hello())
                        expect_closed_unanswered(self, raw)
                    wait_for(lambda: any(me in ln and "not a proxy protocol header" in ln.lower()
                                         for ln in srv.stderr_text().splitlines()),
                             10, "the missing header logged with the proxy's address")
                    raw = srv.connect()
                    raw.sendall(v1("203.0.113.9", 9))
                    with self.ctx.wrap_socket(raw, server_hostname="localhost") as s:
                        self.ask(s, addr, "203.0.113.9:9")
                    d = gone(addr)
                    self.assertEqual(d["totals"]["dropped_bad_input"], 1)
                    self.assertEqual(srv.stop(), 0)

    def test_cut_short_then_silent_or_gone(self):
        """Before a TLS handshake too, the header's deadline (--msg-timeout
        shortens it) closes a header cut short, and an end inside it is
        logged as such."""
        for model in MODELS:
            with self.subTest(model=model):
                check_cut_short(self, *self.tls_server(model, "--msg-timeout", "400"))


class HAProxy:
    """haproxy -db in mode tcp, its frontend on a free loopback port and the
    given backend server lines; its stats socket at self.admin. Stopped with
    SIGTERM on exit, which it must obey within 10 s."""

    def __init__(self, servers):
        self.servers = servers

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="msgsock-haproxy-")
        self.port = free_port()
        self.admin = os.path.join(self.tmp, "admin.sock")
        cfg = "\n".join([
            "global", "  nbthread 1", f"  stats socket {self.admin} level admin",
            "defaults", "  mode tcp", "  timeout connect 2s", "  timeout client 20s",
            "  timeout server 20s", "  timeout check 2s",
            "frontend fe", f"  bind 127.0.0.1:{self.port}", "  default_backend be",
            "backend be", "  balance roundrobin",
        ] + [f"  server {ln}" for ln in self.servers]) + "\n"
        conf = os.path.join(self.tmp, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(cfg)
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        return self

    def wait_up(self, want):
        """Until want(stats) holds for its 'show stat' {(proxy, server): status}."""
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited {self.proc.returncode}: "
                                     f"{self.proc.stderr.read().decode()}")
            try:
                return want(haproxy_stat(self.admin))
            except OSError:
                return False
        wait_for(up, 20, "haproxy up")

    def __exit__(self, *exc):
        hap = self.proc
        try:
            if hap.poll() is None:
                hap.send_signal(signal.SIGTERM)
            try:
                hap.wait(10)
            except subprocess.TimeoutExpired:
                hap.kill()
                hap.wait()
                raise AssertionError("haproxy did not exit within 10 s of SIGTERM")
        finally:
            hap.stderr.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


@unittest.skipUnless(shutil.which("haproxy"), "no haproxy command (Debian package haproxy)")
class HAProxyTest(MsTestCase):
    def test_two_app_servers_behind_haproxy(self):
        srv_a, stats_a = server("event")
        srv_b, stats_b = server("thread")
        with srv_a, srv_b:
            with HAProxy([f"a 127.0.0.1:{srv_a.sockaddr[1]} send-proxy-v2 check inter 200ms",
                          f"b 127.0.0.1:{srv_b.sockaddr[1]} send-proxy check inter 200ms"]) as hp:
                # Up means its health checks, each with its PROXY header
                # (a v2 LOCAL for a, a v1 line for b), were accepted.
                hp.wait_up(lambda st: st.get(("be", "a")) == "UP" and st.get(("be", "b")) == "UP")
                n = 20
                for i in range(n):
                    with socket.create_connection(("127.0.0.1", hp.port), timeout=10) as c:
                        c.sendall(search("morpheus"))
                        self.assertEqual(read_app_response(c), ANSWER, f"request {i}")
                # Clients kept open while each server's stats are read.
                clients = []
                for _ in range(4):
                    c = socket.create_connection(("127.0.0.1", hp.port), timeout=10)
                    c.sendall(search("morpheus"))
                    self.assertEqual(read_app_response(c), ANSWER)
                    clients.append(c)
                want = {"127.0.0.1:%d" % c.getsockname()[1] for c in clients}
                pa, pb = set(peers(stats_a)), set(peers(stats_b))
                self.assertEqual(want - (pa | pb), set(),
                                 f"clients {want}, server a's peers {pa}, b's {pb}")
                self.assertTrue(want & pa and want & pb, f"round robin: a {pa}, b {pb}")
                for c in clients:
                    c.close()
                accepted = 0
                for addr in (stats_a, stats_b):
                    d = stats_json(addr)
                    # Every check's header (v2 LOCAL, v1 line) was taken too.
                    self.assertEqual(d["totals"]["dropped_bad_input"], 0, d)
                    self.assertEqual(d["totals"]["timed_out"], 0, d)
                    accepted += d["totals"]["accepted"]
                self.assertGreater(accepted, n + len(clients), "no health check came")
            # Resets are logged with -v (HAProxy ends its checks so); nothing else.
            for ln in (srv_a.stderr_text() + srv_b.stderr_text()).splitlines():
                if "closing" in ln:
                    self.assertIn("connection reset by peer", ln)
            self.assertEqual(srv_a.stop(), 0)
            self.assertEqual(srv_b.stop(), 0)

    @unittest.skipUnless(shutil.which("openssl"), "the openssl command is not installed")
    def test_tls_passed_through(self):
        """HAProxy in mode tcp passes TLS through to a TLS app-server with
        send-proxy-v2: the header before the ClientHello, the client's own
        handshake after it; the server names the client."""
        TLSTest.setUpClass()
        self.addCleanup(TLSTest.tearDownClass)
        for model in ("event", "thread"):
            with self.subTest(model=model):
                srv, addr = TLSTest.tls_server(model)
                with srv:
                    with HAProxy([f"a 127.0.0.1:{srv.sockaddr[1]} send-proxy-v2"]) as hp:
                        hp.wait_up(lambda st: ("be", "a") in st)
                        raw = socket.create_connection(("127.0.0.1", hp.port), timeout=10)
                        with TLSTest.ctx.wrap_socket(raw, server_hostname="localhost") as c:
                            c.sendall(search("morpheus"))
                            self.assertEqual(read_app_response(c), ANSWER)
                            me = "127.0.0.1:%d" % c.getsockname()[1]
                            self.assertEqual(peers(addr), [me])
                    d = gone(addr)
                    self.assertEqual(d["totals"]["accepted"], 1)
                    self.assertEqual(d["totals"]["dropped_bad_input"], 0)
                    self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
