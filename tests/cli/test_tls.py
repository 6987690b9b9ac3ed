"""Black-box tests of TLS in the msgsock commands: msgsock clients and servers with each other,
with `openssl s_client` / `openssl s_server`, and with Python's ssl module; every certificate
failure gives its clear error and the server keeps serving; stalled handshakes and malformed
input over TLS end only their own connection. Certificates are made at test time."""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from mstest import BIN, MsTestCase, Server, run, s_client_echo, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
MKCERTS = os.path.join(HERE, "..", "tls", "mkcerts.sh")
CERTS = None
HAVE_OPENSSL = shutil.which("openssl") is not None


def setUpModule():
    global CERTS
    if not HAVE_OPENSSL:
        raise unittest.SkipTest("the openssl command is not installed (not on PATH)")
    CERTS = tempfile.mkdtemp(prefix="msgsock-tls-")
    subprocess.run(["sh", MKCERTS, CERTS], check=True, timeout=120)


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def c(name, ext="pem"):
    return os.path.join(CERTS, f"{name}.{ext}")


def server_tls(name="server", ca=None):
    args = ["--tls-cert", c(name), "--tls-key", c(name, "key")]
    if ca:
        args += ["--tls-ca", c(ca)]
    return args


def app_request(action, value):
    content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode()
    hdr = json.dumps({"byteorder": "little", "content-type": "text/json",
                      "content-encoding": "utf-8", "content-length": len(content)}).encode()
    return struct.pack(">H", len(hdr)) + hdr + content


def app_read_response(sock):
    buf = b""
    while True:
        if len(buf) >= 2:
            hl = struct.unpack(">H", buf[:2])[0]
            if len(buf) >= 2 + hl:
                h = json.loads(buf[2:2 + hl])
                end = 2 + hl + h["content-length"]
                if len(buf) >= end:
                    return h, buf[2 + hl:end]
        d = sock.recv(65536)
        if not d:
            raise AssertionError(f"closed after {len(buf)} bytes")
        buf += d


def py_tls_client(srv, cafile=None, certfile=None, keyfile=None, hostname="localhost"):
    ctx = ssl.create_default_context(cafile=cafile or c("ca"))
    if certfile:
        ctx.load_cert_chain(certfile, keyfile)
    raw = srv.connect()
    return ctx.wrap_socket(raw, server_hostname=hostname)


class FreePort:
    """A loopback port nobody listens on right now (for openssl s_server)."""

    def __enter__(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        return self.port

    def __exit__(self, *exc):
        pass


def wait_listening(port, proc):
    def listening():
        if proc.poll() is not None:
            raise AssertionError(f"openssl s_server exited {proc.returncode} early")
        # A probing connect would be taken as the one client; ask the kernel.
        out = subprocess.run(["ss", "-ltn", f"sport = :{port}"], capture_output=True, text=True)
        return f":{port}" in out.stdout
    wait_for(listening, 10, f"openssl s_server to listen on port {port}")


def s_server(port, *extra):
    p = subprocess.Popen(["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
                          "-quiet"] + list(extra), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port, p)
    return p


class AppServerTls(MsTestCase):
    def test_python_ssl_search_morpheus(self):
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            with py_tls_client(srv) as s:
                self.assertEqual(s.version(), "TLSv1.3")
                s.sendall(app_request("search", "morpheus"))
                h, body = app_read_response(s)
                self.assertEqual(h["content-type"], "text/json")
                self.assertEqual(json.loads(body), {"result": "Follow the white rabbit. \U0001f430"})
                # The connection stays open for more, as without TLS.
                s.sendall(app_request("search", "ring"))
                _, body = app_read_response(s)
                self.assertIn("Misty Mountains", json.loads(body)["result"])

    def test_app_client_and_server(self):
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            for name in ("127.0.0.1", "localhost"):
                p = run("app-client", "--tls", "--tls-ca", c("ca"), name, port, "search", "morpheus")
                self.assertExit(p, 0)
                self.assertEqual(p.stdout.decode(), "Follow the white rabbit. \U0001f430\n")
            p = run("app-client", "--tls-ca", c("ca"), "--count", "20", "--clients", "3",
                    host, port, "foo", "bar")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode().splitlines(),
                             ["b'First 10 bytes of request: foobar'"] * 60)

    def test_plain_client_to_tls_server_is_refused_clearly(self):
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            p = run("app-client", "--timeout", "3000", host, port, "search", "x")
            self.assertExit(p, 1)
            p = run("app-client", "--tls", "--tls-ca", c("ca"), host, port, "search", "morpheus")
            self.assertExit(p, 0)
            srv.stop()
            self.assertIn("TLS handshake failed", srv.stderr_text())

    def check_refused(self, srv_cert, client_args, want_client, want_server=None, host="127.0.0.1"):
        with Server("app-server", *server_tls(srv_cert[0], srv_cert[1]), "127.0.0.1", "0") as srv:
            _, port = srv.host_port()
            p = run("app-client", "--timeout", "5000", *client_args, host, port, "search", "morpheus")
            self.assertExit(p, 1)
            err = p.stderr.decode()
            self.assertIn(want_client, err)
            self.assertEqual(p.stdout, b"")
            # The server goes on: a good client right after.
            good = ["--tls-ca", c("ca")]
            if srv_cert[1]:
                good += ["--tls-cert", c("client"), "--tls-key", c("client", "key")]
            if srv_cert[0] == "server":
                p = run("app-client", *good, "127.0.0.1", port, "search", "morpheus")
                self.assertExit(p, 0)
            srv.stop()
            if want_server:
                self.assertIn(want_server, srv.stderr_text())
            return err

    def test_expired_server_certificate(self):
        err = self.check_refused(("expired", None), ["--tls", "--tls-ca", c("ca")],
                                 "TLS handshake with 127.0.0.1:")
        self.assertIn(": certificate has expired", err)

    def test_wrong_name(self):
        err = self.check_refused(("wrongname", None), ["--tls", "--tls-ca", c("ca")],
                                 "TLS handshake with 127.0.0.1:")
        self.assertIn("IP address mismatch", err)
        err = self.check_refused(("wrongname", None), ["--tls", "--tls-ca", c("ca")],
                                 "hostname mismatch", host="localhost")
        self.assertIn("'localhost'", err)

    def test_unknown_ca(self):
        self.check_refused(("untrusted", None), ["--tls", "--tls-ca", c("ca")],
                           "unable to get local issuer certificate")
        # Without --tls-ca the system store is used, which does not know the test CA.
        self.check_refused(("server", None), ["--tls"], "unable to get local issuer certificate")

    def test_insecure_skips_verification_with_a_warning(self):
        with Server("app-server", *server_tls("expired"), "127.0.0.1", "0") as srv:
            _, port = srv.host_port()
            p = run("app-client", "--tls-insecure", "127.0.0.1", port, "search", "morpheus")
            self.assertExit(p, 0)
            self.assertIn("warning: --tls-insecure", p.stderr.decode())

    def test_client_certificate_required(self):
        self.check_refused(("server", "ca"), ["--tls", "--tls-ca", c("ca")],
                           "certificate required", "TLS peer sent no certificate")
        self.check_refused(("server", "ca"), ["--tls-ca", c("ca"), "--tls-cert", c("expired"),
                                              "--tls-key", c("expired", "key")],
                           "certificate expired", "TLS certificate has expired")
        self.check_refused(("server", "ca"), ["--tls-ca", c("ca"), "--tls-cert", c("untrusted"),
                                              "--tls-key", c("untrusted", "key")],
                           "unknown ca", "unknown CA")

    def test_files_that_do_not_load(self):
        p = run("app-server", "--tls-cert", "/nonexistent.pem", "127.0.0.1", "0")
        self.assertExit(p, 1)
        self.assertIn("certificate file '/nonexistent.pem': No such file or directory",
                      p.stderr.decode())
        p = run("app-server", "--tls-cert", c("server"), "--tls-key", c("client", "key"),
                "127.0.0.1", "0")
        self.assertExit(p, 1)
        self.assertIn("does not match", p.stderr.decode())
        p = run("app-client", "--tls-ca", c("server", "key"), "127.0.0.1", "1", "search", "x")
        self.assertExit(p, 1)
        self.assertIn(c("server", "key"), p.stderr.decode())
        p = run("app-server", "--tls-key", c("server", "key"), "127.0.0.1", "0")
        self.assertExit(p, 2)

    def test_stalled_handshakes_do_not_block_others(self):
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            silent = srv.connect()
            half = srv.connect()
            half.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]))
            _, port = srv.host_port()
            t0 = time.monotonic()
            p = run("app-client", "--tls-ca", c("ca"), "127.0.0.1", port, "search", "morpheus")
            self.assertExit(p, 0)
            self.assertLess(time.monotonic() - t0, 3)
            silent.close()
            half.close()

    def test_malformed_input_closes_only_that_connection(self):
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            good = py_tls_client(srv)
            bad = py_tls_client(srv)
            bad.sendall(b"\x00\x05notjs")
            bad.settimeout(5)
            try:
                self.assertEqual(bad.recv(100), b"")
            except (ssl.SSLError, ConnectionResetError):
                pass
            bad.close()
            good.sendall(app_request("search", "morpheus"))
            _, body = app_read_response(good)
            self.assertIn("white rabbit", json.loads(body)["result"])
            good.close()
            srv.stop()
            self.assertIn("closing:", srv.stderr_text())


class OpensslInterop(MsTestCase):
    def test_s_client_against_msgsock_servers(self):
        for cmd in ("echo-server", "multiconn-server"):
            with Server(cmd, *server_tls(), "127.0.0.1", "0") as srv:
                _, port = srv.host_port()
                rc, out = s_client_echo(port, "-CAfile", c("ca"), "-verify_return_error",
                                        "-verify_ip", "127.0.0.1")
                self.assertEqual(rc, 0, out)
                self.assertIn("Verification: OK", out)
                self.assertIn("ping", out)
        with Server("app-server", *server_tls(), "127.0.0.1", "0") as srv:
            _, port = srv.host_port()
            p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                                "-CAfile", c("ca"), "-verify_return_error", "-brief",
                                "-verify_hostname", "localhost"],
                               input=b"", capture_output=True, timeout=20)
            out = (p.stdout + p.stderr).decode("utf-8", "replace")
            self.assertEqual(p.returncode, 0, out)
            self.assertIn("Verification: OK", out)

    def test_s_client_with_client_certificate(self):
        with Server("echo-server", *server_tls("server", "ca"), "127.0.0.1", "0") as srv:
            _, port = srv.host_port()
            rc, out = s_client_echo(port, "-CAfile", c("ca"), "-cert", c("client"),
                                    "-key", c("client", "key"), send=b"hello\n")
            self.assertEqual(rc, 0, out)
            self.assertIn("hello", out)

    def test_msgsock_clients_against_s_server(self):
        with FreePort() as port:
            p = s_server(port, "-cert", c("server"), "-key", c("server", "key"), "-rev")
            r = run("echo-client", "--tls", "--tls-ca", c("ca"), "--timeout", "5000",
                    "127.0.0.1", str(port), "abba\n")
            p.wait(10)
            self.assertExit(r, 0)
            self.assertEqual(r.stdout, b"Received b'abba\\n'\n")

    def test_s_server_with_old_protocol(self):
        with FreePort() as port:
            p = s_server(port, "-cert", c("server"), "-key", c("server", "key"), "-tls1_1",
                         "-cipher", "ALL:@SECLEVEL=0")
            r = run("echo-client", "--tls", "--tls-ca", c("ca"), "--timeout", "5000",
                    "127.0.0.1", str(port))
            p.kill()
            p.wait(10)
            self.assertExit(r, 1)
            self.assertIn("TLS handshake with 127.0.0.1:", r.stderr.decode())
            self.assertIn("protocol version", r.stderr.decode())

    def test_s_server_expired_certificate(self):
        with FreePort() as port:
            p = s_server(port, "-cert", c("expired"), "-key", c("expired", "key"))
            r = run("multiconn-client", "--tls", "--tls-ca", c("ca"), "--timeout", "5000",
                    "127.0.0.1", str(port), "1")
            p.kill()
            p.wait(10)
            self.assertExit(r, 1)
            self.assertIn("TLS certificate has expired: certificate has expired", r.stderr.decode())


class EchoAndMulticonnTls(MsTestCase):
    def test_echo(self):
        with Server("echo-server", *server_tls(), "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            r = run("echo-client", "--tls", "--tls-ca", c("ca"), host, port, "Hello, TLS")
            self.assertExit(r, 0)
            self.assertEqual(r.stdout, b"Received b'Hello, TLS'\n")

    def test_multiconn(self):
        with Server("multiconn-server", *server_tls(), "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            r = run("multiconn-client", "-q", "--tls", "--tls-ca", c("ca"), host, port, "200")
            self.assertExit(r, 0)
            self.assertIn(b"200 ok, 0 failed", r.stdout)


if __name__ == "__main__":
    unittest.main()
