"""Black-box tests of seeing a server's sockets: --stats ADDR on every server,
`msgsock stats` (table and --json) and the SIGUSR1 table on stderr, in every
concurrency model."""
import json
import signal
import socket
import struct
import unittest

import mstest
from mstest import MsTestCase, Server, fresh_unix_path, recv_exact, run, wait_for

MODELS = ("event", "thread", "fork", "iterative")


def stats(addr, *args):
    p = run("stats", *args, addr, timeout=20)
    if p.returncode != 0:
        raise AssertionError(f"msgsock stats exited {p.returncode}: {p.stderr!r}")
    return p.stdout.decode()


def stats_json(addr):
    return json.loads(stats(addr, "--json"))


def wait_json(addr, cond, what, timeout=10):
    """Polls the stats until cond(doc) holds and returns that document;
    fails with what and the last document otherwise."""
    last = []

    def check():
        last[:] = [stats_json(addr)]
        return cond(last[0])
    try:
        wait_for(check, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last stats: {last and last[0]}") from None
    return last[0]


def totals_are(**want):
    """A wait_json condition: these totals have exactly these values."""
    return lambda d: all(d["totals"][k] == v for k, v in want.items())


def stats_server(cmd, model, *args):
    path = fresh_unix_path("stats")
    srv = Server(cmd, "--model", model, "--stats", "unix:" + path, *args, "127.0.0.1", "0")
    return srv, "unix:" + path


class StatsTest(MsTestCase):
    def test_open_connection_peer_and_bytes_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = stats_server("echo-server", model)
                with srv:
                    s = srv.connect()
                    s.sendall(b"hello stats")
                    self.assertEqual(recv_exact(s, 11), b"hello stats")
                    peer = "127.0.0.1:%d" % s.getsockname()[1]
                    doc = wait_json(addr, lambda d: d["connections"]
                                    and d["connections"][0]["bytes_out"] == 11
                                    and totals_are(open=1, accepted=1)(d),
                                    "the echo counted: 11 bytes out, 1 open")
                    self.assertEqual(doc["model"], model)
                    self.assertEqual(doc["listen"], srv.addr_text)
                    self.assertEqual(len(doc["connections"]), 1, doc)
                    c = doc["connections"][0]
                    self.assertEqual(c["peer"], peer)
                    self.assertEqual(c["state"], "open")
                    self.assertEqual((c["bytes_in"], c["bytes_out"]), (11, 11))
                    self.assertEqual((c["msgs_in"], c["msgs_out"]), (1, 1))
                    self.assertEqual(c["out_queued"], 0)
                    self.assertGreaterEqual(c["age_ms"], 0)
                    if model == "fork":
                        self.assertGreater(c["pid"], 0)
                    self.assertEqual(doc["totals"]["open"], 1)
                    self.assertEqual(doc["totals"]["accepted"], 1)
                    # The table names the same peer and counts.
                    table = stats(addr)
                    row = [ln for ln in table.splitlines() if ln.startswith(peer)]
                    self.assertEqual(len(row), 1, table)
                    self.assertEqual(row[0].split()[1], "open")
                    self.assertIn(f"{model} model", table.splitlines()[0])
                    self.assertIn("accepted 1, refused 0", table)
                    s.close()
                    # closed: gone from the table, open back to 0
                    doc = wait_json(addr, lambda d: d["totals"]["open"] == 0 and not d["connections"],
                                    "the closed connection gone")
                    self.assertEqual(doc["connections"], [])
                    self.assertEqual(srv.stop(), 0)

    def test_refused_after_max_conns(self):
        for model in ("event", "thread", "fork"):
            with self.subTest(model=model):
                srv, addr = stats_server("echo-server", model, "--max-conns", "2")
                with srv:
                    socks = [srv.connect() for _ in range(2)]
                    for s in socks:
                        s.sendall(b"k")
                        self.assertEqual(recv_exact(s, 1), b"k")
                    for _ in range(3):
                        with srv.connect() as extra:
                            extra.settimeout(5)
                            try:
                                self.assertEqual(extra.recv(1), b"")
                            except ConnectionResetError:
                                pass
                    doc = wait_json(addr, lambda d: totals_are(refused=3, accepted=2, open=2)(d)
                                    and len(d["connections"]) == 2,
                                    "3 refused, 2 accepted and open")
                    self.assertEqual(doc["totals"]["refused"], 3)
                    self.assertEqual(doc["totals"]["accepted"], 2)
                    self.assertEqual(doc["totals"]["open"], 2)
                    self.assertEqual(len(doc["connections"]), 2)
                    for s in socks:
                        s.close()
                    self.assertEqual(srv.stop(), 0)

    def test_bad_input_and_timeouts_are_counted(self):
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = stats_server("multiconn-server", model, "--framing", "len32",
                                         "--max-msg", "64", "--idle-timeout", "300")
                with srv:
                    with srv.connect() as bad:
                        bad.sendall(struct.pack(">I", 1000))
                        bad.settimeout(5)
                        try:
                            bad.recv(1)
                        except ConnectionResetError:
                            pass
                    doc = wait_json(addr, totals_are(dropped_bad_input=1, open=0),
                                    "the bad connection counted and closed")
                    self.assertEqual(doc["totals"]["dropped_bad_input"], 1, doc)
                    with srv.connect() as idle:
                        idle.settimeout(5)
                        try:
                            self.assertEqual(idle.recv(1), b"")
                        except ConnectionResetError:
                            pass
                    doc = wait_json(addr, totals_are(timed_out=1, open=0),
                                    "the idle connection counted and closed")
                    self.assertEqual(doc["totals"]["timed_out"], 1, doc)
                    self.assertEqual(doc["totals"]["open"], 0)
                    self.assertEqual(srv.stop(), 0)

    def test_every_loop_is_seen(self):
        srv, addr = stats_server("multiconn-server", "event", "--threads", "4")
        with srv:
            socks = [srv.connect() for _ in range(40)]
            for s in socks:
                s.sendall(b"z")
                self.assertEqual(recv_exact(s, 1), b"z")
            doc = stats_json(addr)
            self.assertEqual(doc["threads"], 4)
            self.assertEqual(len(doc["connections"]), 40)
            self.assertEqual({c["peer"] for c in doc["connections"]},
                             {"127.0.0.1:%d" % s.getsockname()[1] for s in socks})
            self.assertTrue(all(0 <= c["loop"] < 4 for c in doc["connections"]))
            for s in socks:
                s.close()
            self.assertEqual(srv.stop(), 0)

    def test_app_server_stats_and_tcp_address(self):
        with Server("app-server", "--stats", "127.0.0.1:0", "127.0.0.1", "0") as srv:
            srv.stop()
            self.assertRegex(srv.stderr_text(), r"stats on 127\.0\.0\.1:\d+")

    def test_sigusr1_prints_the_table(self):
        for model in ("event", "fork"):
            with self.subTest(model=model):
                srv, addr = stats_server("echo-server", model)
                with srv, srv.connect() as s:
                    s.sendall(b"1234")
                    self.assertEqual(recv_exact(s, 4), b"1234")
                    peer = "127.0.0.1:%d" % s.getsockname()[1]
                    # the fork model's counters reach the parent after the echo
                    wait_json(addr, lambda d: [c for c in d["connections"]
                                               if c["peer"] == peer and c["msgs_in"] == 1],
                              f"{peer}'s message counted")
                    srv.proc.send_signal(signal.SIGUSR1)
                    wait_for(lambda: "totals: " in srv.stderr_text(), 10,
                             "the SIGUSR1 table on stderr")
                    self.assertIsNone(srv.proc.poll(), "SIGUSR1 killed the server")
                self.assertEqual(srv.stop(), 0)
                err = srv.stderr_text()
                self.assertIn(f"msgsock echo-server: {model} model", err)
                row = [ln for ln in err.splitlines() if ln.startswith(peer)]
                self.assertEqual(len(row), 1, err)
                self.assertEqual(row[0].split()[4:6], ["4", "1"])  # bytes_in, msgs_in
                self.assertIn("totals: accepted 1", err)

    def test_plain_connection_without_request_gets_the_table(self):
        srv, addr = stats_server("echo-server", "event")
        with srv:
            fam, sa = mstest.parse_addr(addr)
            with socket.socket(fam, socket.SOCK_STREAM) as s:
                s.settimeout(10)
                s.connect(sa)
                s.shutdown(socket.SHUT_WR)
                data = recv_exact(s, 1 << 16)
            self.assertIn(b"totals: accepted 0", data)

    def test_public_stats_address_needs_consent(self):
        p = run("echo-server", "--stats", "0.0.0.0:0", "127.0.0.1", "0", timeout=10)
        self.assertExit(p, 2)
        self.assertIn(b"--stats-public", p.stderr)

    def test_stats_usage_and_failures(self):
        self.assertExit(run("stats", "--help"), 0)
        self.assertExit(run("stats"), 2)
        self.assertExit(run("stats", "nonsense"), 2)
        self.assertExit(run("stats", "--bogus", "127.0.0.1:1"), 2)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        p = run("stats", f"127.0.0.1:{port}", timeout=10)
        self.assertExit(p, 1)
        self.assertIn(b"refused", p.stderr.lower())

    def test_help_names_models_and_stats(self):
        for cmd in ("echo-server", "multiconn-server", "app-server"):
            with self.subTest(cmd=cmd):
                p = run(cmd, "--help")
                self.assertExit(p, 0)
                for word in (b"--model", b"thread", b"fork", b"iterative", b"--stats",
                             b"(event;", b"SIGUSR1"):
                    self.assertIn(word, p.stdout)


if __name__ == "__main__":
    unittest.main()
