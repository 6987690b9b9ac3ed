"""Black-box tests of `msgsock echo-server` and `msgsock echo-client`."""
import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
import unittest

from mstest import (BIN, MsTestCase, PyEchoServer, Server, fresh_unix_path, have_ipv6,
                    recv_exact, run, wait_for)


def guide_client(srv, message=b"Hello, world"):
    """The guide's echo client, reading until the whole echo is back."""
    with srv.connect() as s:
        s.sendall(message)
        return recv_exact(s, len(message))


class EchoServerTest(MsTestCase):
    def test_ipv4_port0_prints_real_address(self):
        with Server("echo-server", "127.0.0.1", "0") as srv:
            self.assertRegex(srv.addr_text, r"^127\.0\.0\.1:\d+$")
            self.assertNotEqual(srv.sockaddr[1], 0)
            self.assertEqual(guide_client(srv), b"Hello, world")
            self.assertEqual(srv.stop(), 0)

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback: binding [::1]:0 fails")
    def test_ipv6(self):
        with Server("echo-server", "::1", "0") as srv:
            self.assertRegex(srv.addr_text, r"^\[::1\]:\d+$")
            self.assertEqual(guide_client(srv), b"Hello, world")

    def test_unix_path(self):
        path = fresh_unix_path()
        with Server("echo-server", "--listen", "unix:" + path) as srv:
            self.assertEqual(srv.addr_text, "unix:" + path)
            self.assertEqual(guide_client(srv, b"over a unix socket"), b"over a unix socket")

    def test_unix_abstract(self):
        name = f"msgsock-test-{os.getpid()}-{time.monotonic_ns()}"
        with Server("echo-server", "--listen", "unix:@" + name) as srv:
            self.assertEqual(guide_client(srv, b"abstract"), b"abstract")

    def test_serves_clients_one_after_another(self):
        with Server("echo-server", "127.0.0.1", "0") as srv:
            for i in range(5):
                msg = f"client {i}".encode()
                self.assertEqual(guide_client(srv, msg), msg)

    def test_64_mib_verified_byte_for_byte(self):
        size = 64 << 20
        block = hashlib.sha256(b"msgsock").digest() * 2048  # 64 KiB, not periodic per byte
        with Server("echo-server", "127.0.0.1", "0") as srv, srv.connect(timeout=60) as s:
            sent_hash = hashlib.sha256()
            err = []

            def sender():
                try:
                    for i in range(size // len(block)):
                        chunk = bytes([i & 0xFF]) + block[1:]
                        sent_hash.update(chunk)
                        s.sendall(chunk)
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    err.append(e)

            t = threading.Thread(target=sender)
            t.start()
            got_hash = hashlib.sha256()
            total = 0
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got_hash.update(chunk)
                total += len(chunk)
            t.join()
            self.assertEqual(err, [])
            self.assertEqual(total, size)
            self.assertEqual(got_hash.hexdigest(), sent_hash.hexdigest())

    def test_sigint_with_client_connected_exits_0(self):
        with Server("echo-server", "127.0.0.1", "0") as srv:
            s = srv.connect()
            s.sendall(b"x")
            self.assertEqual(recv_exact(s, 1), b"x")
            self.assertEqual(srv.stop(signal.SIGINT), 0)
            self.assertEqual(s.recv(10), b"")  # closed, not left hanging
            s.close()

    def test_address_in_use_fails_with_clear_error(self):
        with Server("echo-server", "127.0.0.1", "0") as srv:
            p = run("echo-server", "127.0.0.1", str(srv.sockaddr[1]), timeout=10)
            self.assertExit(p, 1)
            self.assertIn(b"Address already in use", p.stderr)
            self.assertIn(f"127.0.0.1:{srv.sockaddr[1]}".encode(), p.stderr)


class EchoClientTest(MsTestCase):
    def test_against_python_server_ipv4(self):
        with PyEchoServer() as py:
            p = run("echo-client", "127.0.0.1", str(py.addr[1]))
            self.assertExit(p, 0)
            self.assertEqual(p.stdout, b"Received b'Hello, world'\n")
            # the server thread records the stream once it sees the client's close
            wait_for(lambda: py.received, 10, "the Python server to see the connection close")
            self.assertEqual(py.received, [b"Hello, world"])

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback: binding [::1]:0 fails")
    def test_against_python_server_ipv6(self):
        with PyEchoServer(socket.AF_INET6, ("::1", 0)) as py:
            p = run("echo-client", "::1", str(py.addr[1]), "hello six")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout, b"Received b'hello six'\n")

    def test_against_python_server_unix(self):
        path = fresh_unix_path()
        with PyEchoServer(socket.AF_UNIX, path):
            p = run("echo-client", "--connect", "unix:" + path, "it's \"quoted\"\t")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout, b"Received b'it\\'s \"quoted\"\\t'\n")

    def test_python_repr_of_bytes(self):
        with PyEchoServer() as py:
            msg = "caf\u00e9 it's"
            p = run("echo-client", "127.0.0.1", str(py.addr[1]), msg)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), f"Received {msg.encode()!r}\n")

    def test_reads_whole_reply_sent_in_pieces(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()

        def trickle():
            conn, _ = lsock.accept()
            with conn:
                data = recv_exact(conn, 12)
                for b in data:
                    conn.sendall(bytes([b]))
                    time.sleep(0.02)  # pacing so the reply arrives in pieces, not a wait for state

        t = threading.Thread(target=trickle)
        t.start()
        p = run("echo-client", "127.0.0.1", str(lsock.getsockname()[1]))
        t.join()
        lsock.close()
        self.assertExit(p, 0)
        self.assertEqual(p.stdout, b"Received b'Hello, world'\n")

    def test_server_closing_early_is_an_error(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()

        def half():
            conn, _ = lsock.accept()
            with conn:
                recv_exact(conn, 12)
                conn.sendall(b"Hello")

        t = threading.Thread(target=half)
        t.start()
        p = run("echo-client", "127.0.0.1", str(lsock.getsockname()[1]))
        t.join()
        lsock.close()
        self.assertExit(p, 1)
        self.assertIn(b"5 of 12", p.stderr)

    def test_connection_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = run("echo-client", "127.0.0.1", str(port))
        self.assertExit(p, 1)
        self.assertIn(f"connect 127.0.0.1:{port}: Connection refused".encode(), p.stderr)

    def test_silent_server_times_out(self):
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen()
        t0 = time.monotonic()
        p = run("echo-client", "--timeout", "300", "127.0.0.1", str(lsock.getsockname()[1]))
        elapsed = time.monotonic() - t0
        lsock.close()
        self.assertExit(p, 1)
        self.assertIn(b"timed out", p.stderr)
        self.assertLess(elapsed, 5)

    def test_msgsock_client_against_msgsock_server(self):
        with Server("echo-server", "127.0.0.1", "0") as srv:
            p = run("echo-client", "--connect", srv.addr_text, "round trip")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout, b"Received b'round trip'\n")


class UsageTest(MsTestCase):
    def test_help_and_version(self):
        for args in (["--help"], ["echo-server", "--help"], ["echo-client", "--help"]):
            p = run(*args)
            self.assertExit(p, 0)
            self.assertIn(b"Usage:", p.stdout)
        p = run("--version")
        self.assertExit(p, 0)
        self.assertRegex(p.stdout, rb"^msgsock \d+\.\d+\.\d+\n$")

    def test_usage_errors_exit_2(self):
        for args in (["no-such-command"], ["echo-server", "--bogus"], ["echo-client", "--timeout", "abc"],
                     ["echo-server", "a", "b", "c"], []):
            p = run(*args)
            self.assertExit(p, 2)
            self.assertTrue(p.stderr)

    def test_bad_address(self):
        p = run("echo-server", "--listen", "127.0.0.1")
        self.assertExit(p, 2)
        self.assertIn(b"127.0.0.1", p.stderr)


if __name__ == "__main__":
    unittest.main()
