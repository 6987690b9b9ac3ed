"""Black-box tests of `msgsock bench`: it finds every fault of a broken echo
server (corrupted, dropped, swallowed, repeated bytes) and reports none for a
correct one; its JSON, plot and modes work."""
import json
import math
import os
import pty
import re
import shutil
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET

import mstest

JSON_KEYS = {"target", "proto", "connections", "threads", "size", "pipeline", "rate",
             "connect_per_request", "tls", "warmup_s", "duration_s", "requests", "req_per_s",
             "mb_per_s", "latency_us", "errors", "reconnects", "fairness", "connect_error", "cpu"}
LAT_KEYS = {"min", "mean", "p50", "p90", "p99", "p99_9", "max"}
ERR_KEYS = {"total", "mismatch", "drop", "lost", "excess", "connect", "io", "protocol"}
FAIR_KEYS = {"min", "max", "jain"}
CPU_KEYS = {"client_s", "client_us_per_req", "client_busy", "generator_bound", "server_s",
            "server_us_per_req"}


class _Handler(socketserver.BaseRequestHandler):
    """Echoes, or misbehaves as the server's mode says."""

    def handle(self):
        mode = self.server.mode
        s = self.request
        with self.server.lock:
            self.server.accepted += 1
            first = self.server.accepted == 1
        if s.family != socket.AF_UNIX:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        total = 0
        while True:
            try:
                data = s.recv(65536)
            except OSError:
                return
            if not data:
                return
            total += len(data)
            if mode == "corrupt" and total > 2000:
                b = bytearray(data)
                b[len(b) // 2] ^= 0x5A  # one flipped byte, now and then
                data = bytes(b)
                total = 0
            elif mode == "drop" and total > 3000:
                s.sendall(data[: len(data) // 2])
                return  # closes with replies outstanding
            elif mode == "swallow" and total > 3000:
                continue  # keeps the connection, never answers again
            elif mode == "double":
                data = data + data
            elif mode == "starve_first" and first:
                # The first connection is served a reply per 20 ms: starved.
                threading.Event().wait(0.02)
            try:
                s.sendall(data)
            except OSError:
                return


class _TCP(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 511


class _Unix(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 511


class PeerEcho:
    """A threaded Python echo server (mode: ok, corrupt, drop, swallow,
    double) on a free loopback port, or on a fresh Unix path."""

    def __init__(self, mode="ok", unix=False):
        if unix:
            self.path = mstest.fresh_unix_path("bench")
            self.srv = _Unix(self.path, _Handler)
            self.args = ["--connect", "unix:" + self.path]
        else:
            self.srv = _TCP(("127.0.0.1", 0), _Handler)
            self.args = ["127.0.0.1", str(self.srv.server_address[1])]
        self.srv.mode = mode
        self.srv.lock = threading.Lock()
        self.srv.accepted = 0
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.srv.shutdown()
        self.srv.server_close()


PY_APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers",
                      "py_app.py")


class PyAppPeer(mstest.Server):
    """bench/peers/py_app.py, `make bench`'s Python selectors app server, on a free port."""

    def __init__(self):
        self.args = [sys.executable, PY_APP, "127.0.0.1", "0"]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addr_text = self._read_listening(10)
        self.family, self.sockaddr = mstest.parse_addr(self.addr_text)
        self._stderr = b""


def bench(*args, timeout=60):
    return mstest.run("bench", *args, timeout=timeout)


SHORT = ["-d", "0.4", "-w", "0.1", "-q"]


class BenchTest(mstest.MsTestCase):
    def run_json(self, *args, code=0):
        p = bench("--json", *SHORT, *args)
        self.assertExit(p, code)
        return json.loads(p.stdout)

    def test_correct_server_no_errors(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "3", "-p", "4", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)
        self.assertGreater(r["latency_us"]["p50"], 0)
        self.assertLessEqual(r["latency_us"]["p50"], r["latency_us"]["p99"])
        self.assertLessEqual(r["latency_us"]["p99"], r["latency_us"]["max"])

    def test_json_keys(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "2", "--pid", str(os.getpid()), *peer.args)
        self.assertEqual(set(r), JSON_KEYS)
        self.assertEqual(set(r["latency_us"]), LAT_KEYS)
        self.assertEqual(set(r["errors"]), ERR_KEYS)
        self.assertEqual(set(r["cpu"]), CPU_KEYS)
        self.assertIsNotNone(r["cpu"]["server_s"])
        self.assertEqual(r["proto"], "echo")
        self.assertEqual(r["connections"], 2)
        self.assertFalse(r["tls"])
        self.assertEqual(set(r["fairness"]), FAIR_KEYS)
        self.assertIsNone(r["connect_error"])
        # client_busy: the generator's CPU time over the window, per thread. It
        # spent some while requests flowed, and one thread cannot be busy for
        # more than the window (a little slack: the main thread's own CPU).
        busy = r["cpu"]["client_busy"]
        self.assertGreater(r["requests"], 0)
        self.assertGreater(busy, 0, r)
        self.assertLessEqual(busy, 1.1, r)
        self.assertEqual(r["cpu"]["generator_bound"], busy >= 0.9, r)

    def test_text_table(self):
        with PeerEcho() as peer:
            p = bench(*SHORT, "-c", "2", *peer.args)
        self.assertExit(p, 0)
        out = p.stdout.decode()
        for word in ("requests", "req/s", "MB/s", "p50", "p99.9", "max", "errors      0", "cpu client"):
            self.assertIn(word, out)

    def test_corrupting_server_is_caught(self):
        with PeerEcho("corrupt") as peer:
            r = self.run_json("-c", "2", "-p", "8", *peer.args, code=1)
        self.assertGreater(r["errors"]["mismatch"], 0, r)
        self.assertEqual(r["errors"]["total"], sum(v for k, v in r["errors"].items() if k != "total"))

    def test_corrupting_server_is_caught_framed(self):
        with PeerEcho("corrupt") as peer:
            r = self.run_json("--proto", "len32", "-c", "2", "-p", "8", *peer.args, code=1)
        # A flipped length prefix is a framing (protocol) error, a flipped payload a mismatch.
        self.assertGreater(r["errors"]["mismatch"] + r["errors"]["protocol"], 0, r)

    def test_dropping_server_is_caught(self):
        with PeerEcho("drop") as peer:
            r = self.run_json("-c", "2", "-p", "4", *peer.args, code=1)
        self.assertGreater(r["errors"]["drop"], 0, r)

    def test_swallowing_server_is_caught(self):
        with PeerEcho("swallow") as peer:
            r = self.run_json("-c", "2", "--timeout", "300", *peer.args, code=1)
        self.assertGreater(r["errors"]["lost"], 0, r)

    def test_repeating_server_is_caught(self):
        with PeerEcho("double") as peer:
            r = self.run_json("-c", "1", *peer.args, code=1)
        self.assertGreater(r["errors"]["excess"] + r["errors"]["mismatch"], 0, r)

    def test_refused_is_an_error(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # bound, not listening: connects are refused
            r = self.run_json("-c", "2", "127.0.0.1", str(port), code=1)
        self.assertEqual(r["errors"]["connect"], 2, r)
        self.assertEqual(r["requests"], 0)
        self.assertEqual(r["connect_error"], "Connection refused", r)
        # Nothing was measured: no window, no latencies made up as zeros.
        self.assertIsNone(r["duration_s"], r)
        self.assertTrue(all(v is None for v in r["latency_us"].values()), r)

    def test_refused_names_reason_and_count_no_table(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            for extra in ([], ["--connect-per-request"]):
                p = bench(*SHORT, "-c", "2", *extra, "127.0.0.1", str(port))
                self.assertExit(p, 1)
                err = p.stderr.decode()
                self.assertIn(f"127.0.0.1:{port}: Connection refused (2 of 2 connections)", err)
                self.assertIn("no connection could be made", err)
                # No table of zeros, no window shorter than the one asked for.
                self.assertEqual(p.stdout, b"", (extra, p.stdout))

    def test_some_connects_time_out(self):
        # A listener that never accepts, with the smallest backlog: the kernel
        # completes one handshake and drops the other SYNs, so those connects
        # time out. The run goes on with the connection that is up.
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(0)
            port = s.getsockname()[1]
            p = bench(*SHORT, "-c", "4", "--timeout", "300", "127.0.0.1", str(port))
        self.assertExit(p, 1)
        m = re.search(rf"127\.0\.0\.1:{port}: Operation timed out \((\d) of 4 connections\)",
                      p.stderr.decode())
        self.assertIsNotNone(m, p.stderr)
        self.assertIn(int(m.group(1)), (1, 2, 3), p.stderr)
        self.assertNotIn(b"no connection could be made", p.stderr)
        self.assertIn(b"window", p.stdout)

    def test_no_reply_prints_no_latency_zeros(self):
        with PeerEcho("swallow") as peer:
            p = bench(*SHORT, "-c", "1", "-s", "4000", "--timeout", "300", *peer.args)
        self.assertExit(p, 1)
        out = p.stdout.decode()
        self.assertIn("window", out)
        self.assertNotIn("p50", out)
        self.assertIn("no reply completed", out)
        self.assertNotIn("us/req", out)  # CPU per request of no request

    def test_rate_mode_runs(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "80", "--rate", "2000", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)
        self.assertEqual(r["rate"], 2000)

    def test_threads_and_framings(self):
        with PeerEcho() as peer:
            for proto in ("len16", "len32", "len64"):
                r = self.run_json("--proto", proto, "--threads", "2", "-c", "4", "-p", "2",
                                  "-s", "300", *peer.args)
                self.assertEqual(r["errors"]["total"], 0, (proto, r))
                self.assertGreater(r["requests"], 0, proto)
                self.assertEqual(r["threads"], 2)

    def test_large_messages(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "2", "-s", "200k", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)

    def test_connect_per_request(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "2", "--connect-per-request", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)
        self.assertTrue(r["connect_per_request"])

    def test_unix_target(self):
        with PeerEcho(unix=True) as peer:
            r = self.run_json("-c", "2", "-p", "2", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)

    def test_app_protocol_against_app_server(self):
        with mstest.Server("app-server", "127.0.0.1", "0") as srv:
            r = self.run_json("--proto", "app", "-c", "2", "-p", "3", *srv.host_port())
            self.assertEqual(r["errors"]["total"], 0, r)
            self.assertGreater(r["requests"], 0)
            r = self.run_json("--proto", "app", "-c", "2", "--connect-per-request", *srv.host_port())
            self.assertEqual(r["errors"]["total"], 0, r)

    @unittest.skipUnless(os.path.exists(PY_APP), "no bench/peers/py_app.py")
    def test_app_protocol_against_python_app_peer(self):
        # bench checks every answer, so no error means py_app.py answers byte for byte.
        with PyAppPeer() as srv:
            r = self.run_json("--proto", "app", "-c", "3", "-p", "8", *srv.host_port())
            self.assertEqual(r["errors"]["total"], 0, r)
            self.assertGreater(r["requests"], 0)
            r = self.run_json("--proto", "app", "-c", "2", "--connect-per-request", *srv.host_port())
            self.assertEqual(r["errors"]["total"], 0, r)
            self.assertGreater(r["requests"], 0)
            self.assertEqual(srv.stop(), 0)
        self.assertNotIn("closing", srv.stderr_text())

    @unittest.skipUnless(os.path.exists(PY_APP), "no bench/peers/py_app.py")
    def test_python_app_peer_bounds_and_half_close(self):
        def header(**kw):
            h = {"byteorder": "little", "content-type": "binary/x", "content-encoding": "binary",
                 "content-length": 1}
            h.update(kw)
            b = json.dumps(h).encode()
            return struct.pack(">H", len(b)) + b

        bad = [struct.pack(">H", 20000) + b"{",                 # header over 16 KiB
               header(**{"content-length": 17 << 20}),           # content over 16 MiB
               header(**{"content-length": -1}) + b"x",
               header(**{"content-length": True}) + b"x",
               struct.pack(">H", 2) + b"[]"]                     # not an object
        with PyAppPeer() as srv:
            for msg in bad:
                with srv.connect(timeout=5) as s:
                    s.sendall(msg)
                    try:
                        self.assertEqual(s.recv(100), b"", msg)
                    except ConnectionResetError:
                        pass
            # Still serving, and a kept connection answers a second request.
            with srv.connect(timeout=5) as s:
                for _ in range(2):
                    s.sendall(header() + b"z")
                    (hl,) = struct.unpack(">H", mstest.recv_exact(s, 2))
                    h = json.loads(mstest.recv_exact(s, hl))
                    self.assertEqual(h["content-type"], "binary/custom-server-binary-type")
                    self.assertEqual(mstest.recv_exact(s, h["content-length"]),
                                     b"First 10 bytes of request: z")
            # A client that shuts down its side after a pipelined burst still
            # gets every answer, then the end of the stream.
            with srv.connect(timeout=5) as s:
                s.sendall((header(**{"content-length": 13}) + b"0123456789abc") * 3000)
                s.shutdown(socket.SHUT_WR)
                got = bytearray()
                while chunk := s.recv(65536):
                    got += chunk
            self.assertEqual(got.count(b"First 10 bytes of request: 0123456789"), 3000)
            self.assertEqual(srv.stop(), 0)
        self.assertEqual(srv.stderr_text().count("closing"), len(bad), srv.stderr_text())

    def test_app_protocol_against_echo_is_caught(self):
        # An echo server sends the request back: a well-framed reply of the wrong type.
        with PeerEcho() as peer:
            r = self.run_json("--proto", "app", "-c", "1", *peer.args, code=1)
        self.assertGreater(r["errors"]["protocol"] + r["errors"]["mismatch"], 0, r)

    def test_fairness_reported(self):
        with PeerEcho() as peer:
            r = self.run_json("-c", "4", "-p", "2", *peer.args)
            p = bench(*SHORT, "-c", "4", "-p", "2", *peer.args)
        f = r["fairness"]
        self.assertGreater(f["min"], 0, r)
        # Four connections: the total lies between 4 x min and 4 x max.
        self.assertLessEqual(4 * f["min"], r["requests"])
        self.assertGreaterEqual(4 * f["max"], r["requests"])
        self.assertGreaterEqual(f["jain"], 0.25)
        self.assertLessEqual(f["jain"], 1.0 + 1e-9)
        self.assertExit(p, 0)
        self.assertRegex(p.stdout.decode(),
                         r"fairness +per connection min \d+ +max \d+ +Jain's index [01]\.\d{4}")

    def test_fairness_shows_a_starved_connection(self):
        # The server answers its first connection 20 ms late each time; the
        # other three as fast as it can: the minimum and Jain's index show it.
        with PeerEcho("starve_first") as peer:
            r = self.run_json("-c", "4", "-d", "1", *peer.args)
        f = r["fairness"]
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertLessEqual(f["min"], 60, r)   # at most one per 20 ms over 1 s (+ slack)
        self.assertGreater(f["max"], 5 * max(f["min"], 1), r)
        self.assertLess(f["jain"], 0.9, r)

    def run_on_tty(self, *args, timeout=60):
        """bench with a pseudo-terminal as stderr (so it prints progress lines);
        returns (exit status, stdout, what the terminal showed)."""
        master, slave = pty.openpty()
        try:
            proc = subprocess.Popen([mstest.BIN, "bench", *args], stdout=subprocess.PIPE,
                                    stderr=slave)
        finally:
            os.close(slave)
        shown = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            shown += chunk
        os.close(master)
        out = proc.communicate(timeout=max(1, deadline - time.monotonic()))[0]
        return proc.returncode, out.decode(), shown.decode().replace("\r", "")

    def test_progress_lines_add_up_to_the_total(self):
        with PeerEcho() as peer:
            code, out, shown = self.run_on_tty("-c", "2", "-p", "2", "-d", "3.5", "-w", "1.2",
                                               *peer.args)
        self.assertEqual(code, 0, shown)
        total = int(re.search(r"^requests +(\d+)", out, re.M).group(1))
        counts = [int(n) for n in re.findall(r"^\[ *[\d.]+s\] +(\d+) req", shown, re.M)]
        # Traffic flowed all along: no line may be empty.
        self.assertNotIn(0, counts, shown)
        # Each line holds its own completions: they add up to the summary's.
        self.assertLessEqual(abs(sum(counts) - total), max(2, total // 200), (counts, total, shown))
        full = re.findall(r"^\[ *[\d.]+s\] +\d+ req/s", shown, re.M)
        tail = re.findall(r"^\[ *[\d.]+s\] +\d+ req in the last ([\d.]+) s", shown, re.M)
        self.assertEqual(len(full), 3, shown)   # 3.5 s: three whole seconds...
        self.assertEqual(len(tail), 1, shown)   # ...and the last half
        self.assertAlmostEqual(float(tail[0]), 0.5, delta=0.1)
        self.assertEqual(len(re.findall(r"^\[ *1\.0s\] warming up", shown, re.M)), 1, shown)

    def test_app_server_serves_pipelined_connections_alike(self):
        # The app-protocol scenario of make bench, scaled down: many
        # connections with requests pipelined, one server loop. None may be
        # starved by the others.
        with mstest.Server("app-server", "--threads", "1", "127.0.0.1", "0") as srv:
            r = self.run_json("--proto", "app", "-c", "20", "-p", "16", "-d", "1",
                              *srv.host_port())
            self.assertEqual(srv.stop(), 0)
        f = r["fairness"]
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(f["min"], f["max"] / 4, r)
        self.assertGreater(f["jain"], 0.9, r)

    def test_plot_path_checked_before_the_run(self):
        with PeerEcho() as peer:
            t0 = time.monotonic()
            p = bench("-q", "-d", "5", "-w", "0", "--plot", "/nonexistent-dir/lat.svg", *peer.args)
            took = time.monotonic() - t0
            self.assertEqual(peer.srv.accepted, 0)  # no connection was even made
        self.assertExit(p, 1)
        self.assertIn(b"--plot /nonexistent-dir/lat.svg: No such file or directory", p.stderr)
        self.assertEqual(p.stdout, b"")
        self.assertLess(took, 4, "the 5 s run went ahead")

    def test_plot_content(self):
        d = tempfile.mkdtemp(prefix="msgsock-bench-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "lat.svg")
        # About 300 samples on a fixed schedule: the curve may not go past 1 - 1/300.
        with PeerEcho() as peer:
            r = self.run_json("-c", "2", "--rate", "300", "-d", "1", "--plot", path, *peer.args)
        n = r["requests"]
        self.assertGreater(n, 100, r)
        self.assertLess(n, 1000, r)
        root = ET.parse(path).getroot()
        ns = "{http://www.w3.org/2000/svg}"

        def texts(cls):
            return [e for e in root.iter(ns + "text") if e.get("class") == cls]

        title = texts("title")[0].text
        self.assertIn(r["target"], title)
        self.assertIn("2 connections", title)
        self.assertRegex(title, r"\d+ req/s")
        self.assertIn(f"over {r['duration_s']:.1f} s", title)

        # Latency on a log scale: ticks a decade apart, evenly spaced.
        unit = {"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6}
        ticks = []
        for e in texts("ytick"):
            v, u = e.text.split()
            ticks.append((float(e.get("y")), float(v) * unit[u]))
        self.assertGreaterEqual(len(ticks), 2, ticks)
        ticks.sort(reverse=True)  # bottom (small latency) first
        for (y0, v0), (y1, v1) in zip(ticks, ticks[1:]):
            self.assertAlmostEqual(v1 / v0, 10, places=6)
            self.assertAlmostEqual(y0 - y1, ticks[0][0] - ticks[1][0], delta=0.5)

        # p50 and p99 marked with their values; p99.9 is beyond 300 samples.
        marks = {g.get("data-percentile"): g for g in root.iter(ns + "g") if g.get("class") == "mark"}
        self.assertEqual(set(marks), {"50", "99"}, list(marks))
        for key, name in (("50", "p50"), ("99", "p99")):
            self.assertAlmostEqual(int(marks[key].get("data-ns")) / 1000, r["latency_us"][name],
                                   delta=r["latency_us"][name] * 1e-5 + 1e-3)
            label = marks[key].find(ns + "text").text
            self.assertTrue(label.startswith(name + " "), label)

        # The curve stops where the samples do: x is log10(1 / (1 - p)), read
        # off the 0% and 90% ticks.
        xt = {e.text: float(e.get("x")) for e in texts("xtick")}
        per_decade = xt["90%"] - xt["0%"]
        curve = [e for e in root.iter(ns + "polyline") if e.get("class") == "curve"][0]
        last_x = float(curve.get("points").split()[-1].split(",")[0])
        last_p = 1 - 10 ** (-(last_x - xt["0%"]) / per_decade)
        self.assertLessEqual(last_p, 1 - 1 / n + 2e-4, (last_p, n))
        self.assertGreaterEqual(last_p, 1 - 1.2 / n, (last_p, n))

    def test_plot_is_svg(self):
        d = tempfile.mkdtemp(prefix="msgsock-bench-")
        path = os.path.join(d, "lat.svg")
        with PeerEcho() as peer:
            self.run_json("-c", "2", "--plot", path, *peer.args)
        root = ET.parse(path).getroot()
        self.assertTrue(root.tag.endswith("svg"))
        self.assertTrue(any(e.tag.endswith("polyline") for e in root.iter()))

    def test_usage_errors(self):
        for args in (["-c", "0"], ["--proto", "nope"], ["-d", "x"], ["--rate", "-1"],
                     ["-s", "0"], ["a", "b", "c"], ["--connect", "nonsense"]):
            self.assertExit(bench(*args), 2)

    def test_help(self):
        p = bench("--help")
        self.assertExit(p, 0)
        self.assertIn(b"--connect-per-request", p.stdout)

    def test_many_connections_open_before_the_warmup(self):
        # 600 connections, opened in parallel: none may fail or be counted late.
        with PeerEcho() as peer:
            r = self.run_json("-c", "600", "-w", "0", "-s", "512", *peer.args)
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)


MKCERTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "mkcerts.sh")


@unittest.skipUnless(shutil.which("openssl"), "no openssl command")
class BenchTlsTest(mstest.MsTestCase):
    """`msgsock bench --tls` against multiconn-server with a test certificate."""

    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="msgsock-bench-tls-")
        subprocess.run(["sh", MKCERTS, cls.certs], check=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def cert(self, name, ext="pem"):
        return os.path.join(self.certs, f"{name}.{ext}")

    def server(self):
        return mstest.Server("multiconn-server", "--tls-cert", self.cert("server"),
                             "--tls-key", self.cert("server", "key"), "127.0.0.1", "0")

    def run_json(self, srv, *args, code=0):
        p = bench("--json", *SHORT, *args, *srv.host_port())
        self.assertExit(p, code)
        return json.loads(p.stdout)

    def test_echo_and_framed_over_tls(self):
        with self.server() as srv:
            for args in (["-c", "3", "-p", "4"], ["-c", "2", "-s", "100k"],
                         ["--proto", "len32", "-c", "2", "-p", "3", "-s", "3000"]):
                r = self.run_json(srv, "--tls", "--tls-ca", self.cert("ca"), *args)
                self.assertEqual(r["errors"]["total"], 0, (args, r))
                self.assertGreater(r["requests"], 0, args)
                self.assertTrue(r["tls"])

    def test_handshake_per_request(self):
        with self.server() as srv:
            r = self.run_json(srv, "--tls", "--tls-ca", self.cert("ca"), "-c", "2",
                              "--connect-per-request")
        self.assertEqual(r["errors"]["total"], 0, r)
        self.assertGreater(r["requests"], 0)
        # Each close said close_notify: the server logged no truncated stream.
        self.assertNotIn("dropped", srv.stderr_text())

    def test_untrusted_server_is_a_connect_error(self):
        with self.server() as srv:
            r = self.run_json(srv, "--tls", "--tls-ca", self.cert("otherca"), "-c", "3", code=1)
        self.assertEqual(r["errors"]["connect"], 3, r)
        self.assertEqual(r["requests"], 0)

    def test_insecure_warns_and_works(self):
        with self.server() as srv:
            p = bench("--json", *SHORT, "--tls-insecure", "-c", "2", *srv.host_port())
        self.assertExit(p, 0)
        self.assertIn(b"not verified", p.stderr)
        self.assertEqual(json.loads(p.stdout)["errors"]["total"], 0)

    def test_plain_bench_against_tls_server_fails(self):
        with self.server() as srv:
            self.run_json(srv, "-c", "2", code=1)

    def test_tls_usage(self):
        self.assertExit(bench("--tls-insecure", "--tls-ca", self.cert("ca"), "127.0.0.1", "1"), 2)


if __name__ == "__main__":
    unittest.main()
