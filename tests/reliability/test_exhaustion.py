"""Descriptor exhaustion and slow readers: a server with 64 descriptors
flooded past them neither spins nor stops serving; 128 MiB pushed at a
client that reads nothing for seconds costs bounded memory and arrives whole."""
import hashlib
import os
import socket
import threading
import time

import rel
from rel import MsTestCase, Server, note

NOFILE = 64
FLOOD = 300
HOLD_S = 2.0
# The default --max-conns under RLIMIT_NOFILE N with one loop: N - 32 - 4
# (docs/reliability.md).
DEFAULT_MAX_CONNS = NOFILE - 32 - 4


class LimitedServer(Server):
    """A server started under `prlimit --nofile=N:N` (prlimit execs it, so
    the pid is the server's)."""

    def __init__(self, nofile, *args):
        real = rel.mstest.BIN
        rel.mstest.BIN = "prlimit"
        try:
            super().__init__(f"--nofile={nofile}:{nofile}", real, *args)
        finally:
            rel.mstest.BIN = real


class ExhaustionTest(MsTestCase):
    def setUp(self):
        if not rel.have_cmd("prlimit"):
            self.skipTest("prlimit (util-linux) is not installed")

    def flood(self, srv, check, label, at_cap):
        """at_cap(fds0): the server holds all the flood lets it hold; the
        CPU is measured only once it does, and must still be afterwards."""
        fds0 = rel.settled_fds(srv, check)
        with open(f"/proc/{srv.pid}/limits") as f:
            self.assertIn(f"Max open files            {NOFILE}", f.read())
        socks = []
        try:
            for _ in range(FLOOD):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(srv.sockaddr)
                socks.append(s)
            rel.wait_until(lambda: at_cap(fds0), 20, f"{label}: the server at its cap "
                           f"({srv.open_fds()} descriptors, {fds0} at rest)")
            t0 = srv.cpu_ticks()
            time.sleep(HOLD_S)  # the window the CPU time is measured over
            ticks = srv.cpu_ticks() - t0
            held = srv.open_fds()
            self.assertTrue(at_cap(fds0), f"{label}: the flood eased during the measurement "
                            f"({held} descriptors)")
            note(f"{label}: {FLOOD} connections held against {NOFILE} descriptors: server "
                 f"{fds0} descriptors at rest, {held} under the flood, {ticks} CPU ticks "
                 f"in {HOLD_S:.0f} s")
            # 100 ticks a second would be one core spinning; allow 10%.
            self.assertLess(ticks, HOLD_S * 100 * 0.10 + 5 * (3 if rel.sanitized() else 1))
        finally:
            for s in socks:
                rel.rst_close(s)
        self.assertTrue(rel.wait_for(lambda: srv.open_fds() == fds0, 10),
                        f"{srv.open_fds()} descriptors open, {fds0} at rest")
        self.assertTrue(rel.wait_for(lambda: self.served(srv, check), 5))
        rel.stop_clean(self, srv)

    @staticmethod
    def at_limit(srv):
        """Exactly the default --max-conns connections open, no more."""
        return lambda fds0: (srv.open_fds() == fds0 + DEFAULT_MAX_CONNS
                             and len(rel.server_sockets(srv)) == DEFAULT_MAX_CONNS)

    @staticmethod
    def at_emfile(srv):
        """Every descriptor in use: accept fails with EMFILE, the state a
        listener could spin in."""
        return lambda fds0: srv.open_fds() == NOFILE

    @staticmethod
    def served(srv, check):
        try:
            check(srv)
            return True
        except (OSError, AssertionError):
            return False

    def test_echo_default_limit_from_rlimit(self):
        with LimitedServer(NOFILE, "multiconn-server", "--listen", "127.0.0.1:0",
                           "--threads", "1") as srv:
            self.flood(srv, rel.echo_check, "echo, default --max-conns", self.at_limit(srv))
        self.assertIn("connection limit", srv.stderr_text())

    def test_echo_emfile_with_a_limit_too_high(self):
        with LimitedServer(NOFILE, "multiconn-server", "--listen", "127.0.0.1:0",
                           "--threads", "1", "--max-conns", "10000") as srv:
            self.flood(srv, rel.echo_check, "echo, --max-conns 10000 (EMFILE)",
                       self.at_emfile(srv))
        self.assertIn("Too many open files", srv.stderr_text())

    def test_app_server_emfile(self):
        with LimitedServer(NOFILE, "app-server", "--listen", "127.0.0.1:0",
                           "--max-conns", "10000") as srv:
            self.flood(srv, rel.app_search, "app-server, --max-conns 10000 (EMFILE)",
                       self.at_emfile(srv))


class SlowReaderTest(MsTestCase):
    TOTAL = 128 << 20
    STALL_S = 3.0
    BOUND_KB = (96 if rel.sanitized() else 16) * 1024

    def test_128_mib_to_a_client_that_stalls(self):
        block = os.urandom(1 << 20)
        want = hashlib.sha256()
        for i in range(self.TOTAL >> 20):
            want.update(i.to_bytes(8, "big") + block[8:])
        with rel.echo_server() as srv:
            rel.echo_check(srv)
            base = rel.rss_kb(srv)
            s = srv.connect(30)
            werr = []

            def writer():
                try:
                    for i in range(self.TOTAL >> 20):
                        s.sendall(i.to_bytes(8, "big") + block[8:])
                    s.shutdown(socket.SHUT_WR)
                except OSError as e:
                    werr.append(e)

            w = threading.Thread(target=writer)
            t_stall = time.monotonic()
            w.start()
            # Read nothing for STALL_S, and not before the server holds
            # megabytes for this peer.
            rel.wait_queued(srv)
            time.sleep(max(0.0, self.STALL_S - (time.monotonic() - t_stall)))
            stalled = srv.status()
            rel.echo_check(srv)  # others are served meanwhile
            got = hashlib.sha256()
            n = 0
            t0 = time.monotonic()
            while True:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.update(chunk)
                n += len(chunk)
            w.join(30)
            s.close()
            peak = rel.hwm_kb(srv) - base
            note(f"slow reader: stalled {self.STALL_S:.0f} s (server VmRSS +"
                 f"{stalled['VmRSS'] - base} kB meanwhile), then {n >> 20} MiB read in "
                 f"{time.monotonic() - t0:.1f} s; peak +{peak} kB")
            self.assertEqual(werr, [])
            self.assertEqual(n, self.TOTAL)
            self.assertEqual(got.hexdigest(), want.hexdigest())
            self.assertLess(peak, self.BOUND_KB)
            rel.echo_check(srv)
            rel.stop_clean(self, srv)


if __name__ == "__main__":
    import unittest
    unittest.main()
