"""TLS defaults as a third-party scanner sees them: `sslscan` against a msgsock TLS server finds
no CBC suite and no protocol below TLS 1.2, only AEAD suites with forward secrecy; `openssl
s_client` is refused a CBC suite and served an AES-GCM one; --tls-ciphers re-enables a suite,
--tls-ciphersuites restricts TLS 1.3, and a list OpenSSL refuses is a usage error at startup.
The test certificates are ECDSA (P-256), so the TLS 1.2 suites tried are ECDHE-ECDSA ones."""
import os
import shutil
import signal
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET

from mstest import MsTestCase, Server, run, s_client_echo

HERE = os.path.dirname(os.path.abspath(__file__))
MKCERTS = os.path.join(HERE, "..", "tls", "mkcerts.sh")
CERTS = None
HAVE_SSLSCAN = shutil.which("sslscan") is not None

CBC = "ECDHE-ECDSA-AES128-SHA"
GCM = "ECDHE-ECDSA-AES128-GCM-SHA256"


def setUpModule():
    global CERTS
    if shutil.which("openssl") is None:
        raise unittest.SkipTest("no openssl command")
    CERTS = tempfile.mkdtemp(prefix="msgsock-tlsscan-")
    subprocess.run(["sh", MKCERTS, CERTS], check=True, timeout=120)


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def tls_args():
    return ["--tls-cert", os.path.join(CERTS, "server.pem"),
            "--tls-key", os.path.join(CERTS, "server.key")]


def s_client(port, *extra, timeout=20):
    """openssl s_client verifying against the test CA; (exit status, output)."""
    return s_client_echo(port, "-CAfile", os.path.join(CERTS, "ca.pem"), "-verify_return_error",
                         *extra, send=b"scan-ping\n", timeout=timeout)


def negotiated(out):
    """The 'Ciphersuite: NAME' line of s_client -brief, or None."""
    for line in out.splitlines():
        if line.startswith("Ciphersuite:"):
            return line.split(":", 1)[1].strip()
    return None


def is_aead(name):
    return any(k in name for k in ("GCM", "CHACHA20-POLY1305", "CHACHA20_POLY1305", "CCM"))


class ScanCase(MsTestCase):
    def serve(self, *extra):
        srv = Server("echo-server", *tls_args(), *extra, "127.0.0.1", "0")
        self.addCleanup(srv.kill)
        return srv, srv.host_port()[1]

    def assertStops(self, srv):
        self.assertEqual(srv.stop(signal.SIGTERM), 0, srv.stderr_text())

    def assertServed(self, port, *extra, cipher=None):
        rc, out = s_client(port, *extra)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.count("scan-ping"), 1, f"no echo: {out}")
        if cipher:
            self.assertEqual(negotiated(out), cipher, out)

    def assertRefused(self, port, *extra):
        rc, out = s_client(port, *extra)
        self.assertNotEqual(rc, 0, out)
        self.assertIsNone(negotiated(out), out)


@unittest.skipUnless(HAVE_SSLSCAN, "no sslscan command (Debian package sslscan)")
class Sslscan(ScanCase):
    def test_default_offers_aead_with_forward_secrecy_only(self):
        srv, port = self.serve()
        p = subprocess.run(["sslscan", "--no-colour", "--xml=-", f"127.0.0.1:{port}"],
                           capture_output=True, timeout=180)
        self.assertEqual(p.returncode, 0, p.stderr)
        root = ET.fromstring(p.stdout)
        test = root.find("ssltest")
        self.assertIsNotNone(test, p.stdout)
        protos = {(e.get("type"), e.get("version")): e.get("enabled")
                  for e in test.findall("protocol")}
        self.assertEqual(protos, {("ssl", "2"): "0", ("ssl", "3"): "0", ("tls", "1.0"): "0",
                                  ("tls", "1.1"): "0", ("tls", "1.2"): "1", ("tls", "1.3"): "1"})
        self.assertEqual(test.find("renegotiation").get("supported"), "0")
        ciphers = [(e.get("sslversion"), e.get("cipher")) for e in test.findall("cipher")]
        tls12 = [name for ver, name in ciphers if ver == "TLSv1.2"]
        self.assertTrue(tls12, f"no TLS 1.2 suite offered: {ciphers}")
        self.assertIn(GCM, tls12)
        for ver, name in ciphers:
            self.assertIn(ver, ("TLSv1.2", "TLSv1.3"), name)
            self.assertTrue(is_aead(name), f"non-AEAD (CBC) suite offered: {ver} {name}")
            if ver == "TLSv1.2":
                self.assertTrue(name.startswith("ECDHE-"), f"no forward secrecy: {name}")
        # The scan's hundreds of refused handshakes ended only themselves.
        self.assertServed(port, "-tls1_2", "-cipher", GCM, cipher=GCM)
        self.assertStops(srv)


class SClient(ScanCase):
    def test_cbc_refused_gcm_accepted(self):
        srv, port = self.serve()
        self.assertRefused(port, "-tls1_2", "-cipher", CBC)
        self.assertRefused(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384")
        self.assertServed(port, "-tls1_2", "-cipher", GCM, cipher=GCM)
        self.assertServed(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305",
                          cipher="ECDHE-ECDSA-CHACHA20-POLY1305")
        self.assertServed(port, cipher="TLS_AES_256_GCM_SHA384")
        self.assertStops(srv)
        self.assertIn("no shared cipher", srv.stderr_text())

    def test_no_tls12_session_ticket(self):
        # testssl found TLS 1.2 session tickets (resumption) although the
        # library promises none (TLS 1.3 ones were already off), as does
        # Mozilla's profile.
        srv, port = self.serve()
        p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_2",
                            "-CAfile", os.path.join(CERTS, "ca.pem")],
                           input=b"", capture_output=True, timeout=30)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, out + p.stderr.decode())
        self.assertIn("Verify return code: 0 (ok)", out)
        self.assertIn(f"Cipher    : {GCM}", out)
        self.assertNotIn("TLS session ticket", out)
        self.assertStops(srv)

    def test_tls_ciphers_reenables_a_cbc_suite(self):
        srv, port = self.serve("--tls-ciphers", f"{GCM}:{CBC}")
        self.assertServed(port, "-tls1_2", "-cipher", CBC, cipher=CBC)
        self.assertServed(port, "-tls1_2", "-cipher", GCM, cipher=GCM)
        self.assertRefused(port, "-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305")
        self.assertStops(srv)

    def test_tls_ciphersuites_restricts_tls13(self):
        srv, port = self.serve("--tls-ciphersuites", "TLS_AES_256_GCM_SHA384")
        self.assertRefused(port, "-tls1_3", "-ciphersuites", "TLS_AES_128_GCM_SHA256")
        self.assertServed(port, "-tls1_3", "-ciphersuites", "TLS_AES_256_GCM_SHA384",
                          cipher="TLS_AES_256_GCM_SHA384")
        # TLS 1.2 keeps its own (default) list.
        self.assertServed(port, "-tls1_2", "-cipher", GCM, cipher=GCM)
        self.assertStops(srv)

    def test_empty_ciphersuites_turns_tls13_off(self):
        srv, port = self.serve("--tls-ciphersuites", "")
        self.assertRefused(port, "-tls1_3")
        self.assertServed(port, cipher=GCM)
        self.assertStops(srv)

    def test_client_default_refuses_a_cbc_only_server(self):
        # msgsock's client side has the same defaults: against a server that
        # offers only a CBC suite, the handshake fails unless --tls-ciphers
        # allows it. The server here is msgsock itself, told to offer CBC only.
        srv, port = self.serve("--tls-ciphers", CBC, "--tls-ciphersuites", "")
        ca = ["--tls-ca", os.path.join(CERTS, "ca.pem")]
        p = run("echo-client", *ca, "127.0.0.1", port, "hi", timeout=30)
        self.assertExit(p, 1)
        self.assertIn(b"TLS handshake", p.stderr)
        p = run("echo-client", *ca, "--tls-ciphers", CBC, "127.0.0.1", port, "hi", timeout=30)
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"Received b'hi'\n")
        self.assertStops(srv)


class BadLists(MsTestCase):
    def check(self, args, option, words):
        p = run(*args, timeout=30)
        self.assertExit(p, 2)
        self.assertEqual(p.stdout, b"", "must not start listening")
        lines = p.stderr.decode().splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(option, lines[0])
        self.assertIn(words, lines[0])

    def test_servers(self):
        for cmd in ("echo-server", "multiconn-server", "app-server"):
            with self.subTest(cmd=cmd):
                self.check([cmd, *tls_args(), "--tls-ciphers", "NO-SUCH-CIPHER", "127.0.0.1", "0"],
                           "--tls-ciphers 'NO-SUCH-CIPHER'", "no cipher match")
        self.check(["echo-server", *tls_args(), "--tls-ciphersuites", "TLS_NOPE", "127.0.0.1", "0"],
                   "--tls-ciphersuites 'TLS_NOPE'", "no cipher match")
        # One good name does not hide a typo in the next.
        self.check(["echo-server", *tls_args(), "--tls-ciphersuites",
                    "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA265", "127.0.0.1", "0"],
                   "--tls-ciphersuites", "no TLS 1.3 suite called 'TLS_AES_128_GCM_SHA265'")
        # A TLS 1.3 name in the TLS 1.2 list matches nothing there.
        self.check(["echo-server", *tls_args(), "--tls-ciphers", "TLS_AES_256_GCM_SHA384",
                    "127.0.0.1", "0"], "--tls-ciphers", "no cipher match")

    def test_clients(self):
        for args in (["echo-client", "--tls-ciphers", "NOPE", "127.0.0.1", "1"],
                     ["multiconn-client", "--tls-ciphers", "NOPE", "127.0.0.1", "1", "1"],
                     ["app-client", "--tls-ciphers", "NOPE", "127.0.0.1", "1", "search", "x"],
                     ["bench", "--tls-ciphers", "NOPE", "-d", "0.1", "127.0.0.1", "1"]):
            with self.subTest(cmd=args[0]):
                self.check(args, "--tls-ciphers 'NOPE'", "no cipher match")
        self.check(["echo-client", "--tls-ciphersuites", "NOPE", "127.0.0.1", "1"],
                   "--tls-ciphersuites 'NOPE'", "no cipher match")


if __name__ == "__main__":
    unittest.main()
