"""Black-box tests of TLS in the blocking server models (thread, fork, iterative): the guide's
app protocol over Python's ssl and app-client, echo over TLS, close_notify both ways, refused
client certificates logged with OpenSSL's words while the next good client is served, and
malformed input over TLS ending only its own connection. Certificates are made at test time."""
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from mstest import MsTestCase, Server, run
from test_tls import app_read_response, app_request

HERE = os.path.dirname(os.path.abspath(__file__))
MKCERTS = os.path.join(HERE, "..", "tls", "mkcerts.sh")
CERTS = None
MODELS = ("thread", "fork", "iterative")
RABBIT = "Follow the white rabbit. \U0001f430"


def setUpModule():
    global CERTS
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("the openssl command is not installed (not on PATH)")
    CERTS = tempfile.mkdtemp(prefix="msgsock-tls-models-")
    subprocess.run(["sh", MKCERTS, CERTS], check=True, timeout=120)


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def c(name, ext="pem"):
    return os.path.join(CERTS, f"{name}.{ext}")


def tls_server(cmd, model, *extra):
    return Server(cmd, "--model", model, "--tls-cert", c("server"), "--tls-key",
                  c("server", "key"), *extra, "127.0.0.1", "0")


def py_client(srv, cert=None):
    ctx = ssl.create_default_context(cafile=c("ca"))
    if cert:
        ctx.load_cert_chain(c(cert), c(cert, "key"))
    return ctx.wrap_socket(srv.connect(), server_hostname="localhost")


class BlockingModelsTls(MsTestCase):
    def test_python_ssl_search_morpheus(self):
        for model in MODELS:
            with self.subTest(model=model), tls_server("app-server", model) as srv:
                s = py_client(srv)
                self.assertEqual(s.version(), "TLSv1.3")
                s.sendall(app_request("search", "morpheus"))
                h, body = app_read_response(s)
                self.assertEqual(h["content-type"], "text/json")
                self.assertEqual(json.loads(body), {"result": RABBIT})
                s.sendall(app_request("search", "ring"))
                _, body = app_read_response(s)
                self.assertIn("Misty Mountains", json.loads(body)["result"])
                # Our close_notify is answered with the server's: unwrap
                # returns the plain socket only once it has come.
                raw = s.unwrap()
                raw.settimeout(5)
                self.assertEqual(raw.recv(10), b"")
                raw.close()
                srv.stop()
                self.assertNotIn("closing:", srv.stderr_text())

    def test_app_client_and_echo_client(self):
        for model in MODELS:
            with self.subTest(model=model):
                with tls_server("app-server", model) as srv:
                    host, port = srv.host_port()
                    for name in ("127.0.0.1", "localhost"):
                        p = run("app-client", "--tls", "--tls-ca", c("ca"), name, port,
                                "search", "morpheus")
                        self.assertExit(p, 0)
                        self.assertEqual(p.stdout.decode(), RABBIT + "\n")
                    p = run("app-client", "--tls-ca", c("ca"), "--count", "20", host, port,
                            "foo", "bar")
                    self.assertExit(p, 0)
                    self.assertEqual(p.stdout.decode().splitlines(),
                                     ["b'First 10 bytes of request: foobar'"] * 20)
                with tls_server("echo-server", model) as srv:
                    host, port = srv.host_port()
                    p = run("echo-client", "--tls", "--tls-ca", c("ca"), host, port, "Hello, TLS")
                    self.assertExit(p, 0)
                    self.assertEqual(p.stdout, b"Received b'Hello, TLS'\n")
                    # The server ends a session cleanly after the client's
                    # close_notify: no error logged for it.
                    srv.stop()
                    self.assertEqual(srv.stderr_text().strip(), "")

    def test_untrusted_client_certificate_refused_then_next_served(self):
        for model in MODELS:
            with self.subTest(model=model), \
                    tls_server("app-server", model, "--tls-ca", c("ca")) as srv:
                _, port = srv.host_port()
                p = run("app-client", "--timeout", "5000", "--tls-ca", c("ca"), "--tls-cert",
                        c("untrusted"), "--tls-key", c("untrusted", "key"), "127.0.0.1", port,
                        "search", "morpheus")
                self.assertExit(p, 1)
                self.assertIn("unknown ca", p.stderr.decode())
                self.assertEqual(p.stdout, b"")
                p = run("app-client", "--tls", "--tls-ca", c("ca"), "127.0.0.1", port,
                        "search", "morpheus")
                self.assertExit(p, 1)
                self.assertIn("certificate required", p.stderr.decode())
                p = run("app-client", "--tls-ca", c("ca"), "--tls-cert", c("client"),
                        "--tls-key", c("client", "key"), "127.0.0.1", port, "search", "morpheus")
                self.assertExit(p, 0)
                self.assertEqual(p.stdout.decode(), RABBIT + "\n")
                s = py_client(srv, cert="client")
                s.sendall(app_request("search", "morpheus"))
                _, body = app_read_response(s)
                self.assertEqual(json.loads(body)["result"], RABBIT)
                s.close()
                srv.stop()
                err = srv.stderr_text()
                # The library's words and OpenSSL's, with the peer, as in the
                # event model.
                self.assertRegex(err, r"127\.0\.0\.1:\d+: closing: .*unknown CA.*: ")
                self.assertIn("TLS peer sent no certificate", err)

    def test_plain_client_and_malformed_input(self):
        for model in MODELS:
            with self.subTest(model=model), tls_server("app-server", model) as srv:
                host, port = srv.host_port()
                p = run("app-client", "--timeout", "3000", host, port, "search", "x")
                self.assertExit(p, 1)
                bad = py_client(srv)
                bad.sendall(b"\x00\x05notjs")
                bad.settimeout(5)
                try:
                    self.assertEqual(bad.recv(100), b"")
                except (ssl.SSLError, ConnectionResetError):
                    pass
                bad.close()
                p = run("app-client", "--tls-ca", c("ca"), host, port, "search", "morpheus")
                self.assertExit(p, 0)
                srv.stop()
                err = srv.stderr_text()
                self.assertIn("TLS handshake failed", err)
                self.assertIn("closing:", err)

    def test_stalled_handshake_does_not_block_other_threads(self):
        for model in ("thread", "fork"):
            with self.subTest(model=model), tls_server("app-server", model) as srv:
                silent = srv.connect()
                _, port = srv.host_port()
                t0 = time.monotonic()
                p = run("app-client", "--tls-ca", c("ca"), "127.0.0.1", port, "search",
                        "morpheus")
                self.assertExit(p, 0)
                self.assertLess(time.monotonic() - t0, 3)
                silent.close()

    def test_iterative_serves_the_next_client_after_a_refused_handshake(self):
        with tls_server("echo-server", "iterative") as srv:
            host, port = srv.host_port()
            garbage = srv.connect()
            garbage.sendall(b"GET / HTTP/1.0\r\n\r\n")
            garbage.settimeout(5)
            try:
                garbage.recv(100)
            except (socket.timeout, ConnectionResetError):
                pass
            garbage.close()
            p = run("echo-client", "--tls-ca", c("ca"), "--timeout", "5000", host, port, "next")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout, b"Received b'next'\n")


if __name__ == "__main__":
    unittest.main()
