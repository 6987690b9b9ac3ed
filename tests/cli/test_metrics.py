"""Black-box tests of --metrics ADDR: the Prometheus endpoint every server
has, in every concurrency model. The text is parsed with a real parser:
prometheus_client's, from Debian's python3-prometheus-client, run by
Debian's own /usr/bin/python3 (the suite's python3 may be another one that
does not see Debian's packages)."""
import json
import os
import re
import socket
import struct
import subprocess
import threading
import time

import mstest
from mstest import MsTestCase, Server, fresh_unix_path, recv_exact, run, wait_for

MODELS = ("event", "thread", "fork", "iterative")
DEBIAN_PYTHON = "/usr/bin/python3"
HEAD_MAX = 8192          # serve_metrics.c: a request head's bound
REQUEST_S = 5.0          # and its deadline

_PARSE = r"""
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [[s.name, s.labels, s.value] for s in f.samples]})
print(json.dumps(out))
"""

COUNTERS = ("connections_accepted", "connections_refused", "connections_dropped_bad_input",
            "connections_dropped_output", "connections_timed_out", "log_dropped",
            "bytes_in", "bytes_out", "msgs_in", "msgs_out")


def parse_metrics(text):
    """The exposition text through prometheus_client's parser: a list of
    families {name, type, help, samples: [[name, labels, value]]}."""
    p = subprocess.run([DEBIAN_PYTHON, "-c", _PARSE], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if p.returncode != 0:
        raise AssertionError(f"prometheus_client could not parse the metrics "
                             f"(scripts/deps.sh test installs python3-prometheus-client): "
                             f"{p.stderr.decode()[-2000:]}\n--- text ---\n{text}")
    return json.loads(p.stdout)


def http(addr, request, timeout=10):
    """Sends request (bytes) to addr ('unix:/path' or 'HOST:PORT') and reads
    until the server closes: (status, headers {lower name: value}, body)."""
    fam, sa = mstest.parse_addr(addr)
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sa)
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise AssertionError(f"no whole HTTP answer to {request!r}: {data!r}")
    lines = head.decode("latin-1").split("\r\n")
    m = re.fullmatch(r"HTTP/1\.1 (\d{3}) .+", lines[0])
    if not m:
        raise AssertionError(f"bad status line {lines[0]!r}")
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body


def get(addr, path="/metrics", method="GET", version="1.1", timeout=10):
    req = f"{method} {path} HTTP/{version}\r\nHost: msgsock\r\nAccept: */*\r\n\r\n"
    return http(addr, req.encode(), timeout)


def scrape(addr):
    """GET /metrics, checked and parsed: {sample name or name{k=v,...}: value},
    and the families."""
    status, headers, body = get(addr)
    if status != 200:
        raise AssertionError(f"GET /metrics answered {status}: {body!r}")
    fams = parse_metrics(body.decode())
    values = {}
    for f in fams:
        for name, labels, value in f["samples"]:
            key = name + ("{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"
                          if labels else "")
            values[key] = value
    return values, fams, body.decode(), headers


def wait_values(addr, cond, what, timeout=15):
    """Scrapes until cond(values) holds; returns those values or fails with
    what and the last ones."""
    last = [None]

    def check():
        last[0] = scrape(addr)[0]
        return cond(last[0])
    try:
        wait_for(check, timeout, what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last values: {last[0]}") from None
    return last[0]


def metrics_server(cmd, model, *args):
    path = fresh_unix_path("metrics")
    srv = Server(cmd, "--model", model, "--metrics", "unix:" + path, *args, "127.0.0.1", "0")
    return srv, "unix:" + path


class MetricsFormatTest(MsTestCase):
    def test_scrape_parses_with_help_and_type_for_every_family(self):
        srv, addr = metrics_server("echo-server", "event", "--threads", "2")
        with srv:
            values, fams, text, headers = scrape(addr)
            self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
            self.assertEqual(int(headers["content-length"]), len(text.encode()))
            self.assertEqual(headers["connection"], "close")
            types = {f["name"]: f["type"] for f in fams}
            for c in COUNTERS:
                self.assertEqual(types.get("msgsock_" + c), "counter", c)
                self.assertIn(f"msgsock_{c}_total", values)
            self.assertEqual(types.get("msgsock_connections_open"), "gauge")
            self.assertEqual(values["msgsock_connections_open"], 0)
            # Every family the parser saw has its own HELP and TYPE line.
            for f in fams:
                name = f["name"] + ("_total" if f["type"] == "counter" else "")
                self.assertRegex(text, rf"(?m)^# HELP {re.escape(name)} \S")
                self.assertRegex(text, rf"(?m)^# TYPE {re.escape(name)} {f['type']}$")
                self.assertTrue(f["help"], f)
            # Per-loop gauges, one sample per event loop.
            self.assertEqual(values['msgsock_loop_connections_open{loop=0}'], 0)
            self.assertEqual(values['msgsock_loop_connections_open{loop=1}'], 0)
            self.assertIn('msgsock_loop_output_queued_bytes{loop=1}', values)
            info = [s for f in fams if f["name"] == "msgsock_server_info" for s in f["samples"]]
            self.assertEqual(info[0][1], {"command": "echo-server", "model": "event",
                                          "listen": srv.addr_text})
            # HEAD: the same headers, no body.
            status, hh, body = get(addr, method="HEAD")
            self.assertEqual((status, body), (200, b""))
            self.assertEqual(hh["content-type"], headers["content-type"])
            self.assertGreater(int(hh["content-length"]), 0)

    def test_label_values_are_escaped(self):
        d = fresh_unix_path("esc")
        listen = os.path.join(os.path.dirname(d), 'a"b\\c.sock')
        path = fresh_unix_path("metrics")
        with Server("echo-server", "--listen", "unix:" + listen, "--metrics", "unix:" + path):
            values, fams, text, _ = scrape("unix:" + path)
            self.assertIn('listen="unix:' + listen.replace("\\", "\\\\").replace('"', '\\"') + '"',
                          text)
            info = [s for f in fams if f["name"] == "msgsock_server_info" for s in f["samples"]]
            self.assertEqual(info[0][1]["listen"], "unix:" + listen)

    def test_tcp_loopback_address_and_http_1_0(self):
        with Server("echo-server", "--metrics", "127.0.0.1:0", "127.0.0.1", "0") as srv:
            m = wait_for(lambda: re.search(r"metrics on (127\.0\.0\.1:\d+)", srv.stderr_text()),
                         10, "the 'metrics on ADDR' line")
            status, headers, body = get(m.group(1), version="1.0")
            self.assertEqual(status, 200)
            parse_metrics(body.decode())
            # HTTP/1.0 needs no Host.
            status, _, _ = http(m.group(1), b"GET /metrics HTTP/1.0\r\n\r\n")
            self.assertEqual(status, 200)

    def test_public_address_needs_metrics_public(self):
        p = run("echo-server", "--metrics", "0.0.0.0:0", "127.0.0.1", "0", timeout=20)
        self.assertExit(p, 2)
        self.assertIn(b"--metrics 0.0.0.0:0 is not a loopback or unix: address", p.stderr)
        self.assertIn(b"--metrics-public", p.stderr)
        with Server("echo-server", "--metrics", "0.0.0.0:0", "--metrics-public",
                    "127.0.0.1", "0") as srv:
            m = wait_for(lambda: re.search(r"metrics on 0\.0\.0\.0:(\d+)", srv.stderr_text()),
                         10, "the 'metrics on ADDR' line")
            status, _, _ = get("127.0.0.1:" + m.group(1))
            self.assertEqual(status, 200)


class MetricsTrafficTest(MsTestCase):
    def test_values_move_with_traffic_in_every_model(self):
        payloads = [b"a" * 100, b"bb" * 150, b"ccc" * 200]
        n = len(payloads)
        total = sum(4 + len(p) for p in payloads)   # len32: a 4-byte length each way
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = metrics_server("multiconn-server", model, "--framing", "len32")
                with srv:
                    base = scrape(addr)[0]
                    self.assertEqual(base["msgsock_connections_accepted_total"], 0)
                    self.assertEqual(base["msgsock_bytes_in_total"], 0)
                    for p in payloads:
                        with srv.connect() as s:
                            s.sendall(struct.pack(">I", len(p)) + p)
                            self.assertEqual(recv_exact(s, 4 + len(p))[4:], p)
                    want = {"msgsock_connections_accepted_total": n,
                            "msgsock_connections_open": 0,
                            "msgsock_bytes_in_total": total,
                            "msgsock_bytes_out_total": total,
                            "msgsock_msgs_in_total": n,
                            "msgsock_msgs_out_total": n}
                    v = wait_values(addr, lambda v: all(v[k] == w for k, w in want.items()),
                                    f"{model}: {want}")
                    for k, w in want.items():
                        self.assertEqual(v[k], w, k)
                    # An open connection's traffic counts before it ends.
                    with srv.connect() as s:
                        s.sendall(struct.pack(">I", 996) + b"x" * 996)
                        recv_exact(s, 1000)
                        v = wait_values(addr, lambda v: v["msgsock_connections_open"] == 1 and
                                        v["msgsock_bytes_out_total"] == total + 1000,
                                        f"{model}: the open connection's 1000 bytes")
                        self.assertEqual(v["msgsock_bytes_in_total"], total + 1000)
                        self.assertEqual(v["msgsock_msgs_in_total"], n + 1)
                        self.assertEqual(v["msgsock_connections_accepted_total"], n + 1)
                        if model == "event":
                            per_loop = [x for k, x in v.items()
                                        if k.startswith("msgsock_loop_connections_open{")]
                            self.assertEqual(sum(per_loop), 1, v)
                    # ... and stays counted, once, after it ends.
                    v = wait_values(addr, lambda v: v["msgsock_connections_open"] == 0,
                                    f"{model}: the connection closed")
                    self.assertEqual(v["msgsock_bytes_in_total"], total + 1000)
                    self.assertEqual(v["msgsock_msgs_out_total"], n + 1)

    def test_dropped_and_timed_out_in_every_model(self):
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = metrics_server("multiconn-server", model, "--framing", "len32",
                                           "--max-msg", "64", "--idle-timeout", "300")
                with srv:
                    with srv.connect() as bad:
                        bad.sendall(struct.pack(">I", 1000))
                        wait_values(addr, lambda v:
                                    v["msgsock_connections_dropped_bad_input_total"] == 1,
                                    f"{model}: an over-size message dropped")
                    with srv.connect():
                        v = wait_values(addr, lambda v:
                                        v["msgsock_connections_timed_out_total"] == 1 and
                                        v["msgsock_connections_open"] == 0,
                                        f"{model}: an idle connection timed out")
                    self.assertEqual(v["msgsock_connections_accepted_total"], 2)

    def test_refused(self):
        srv, addr = metrics_server("echo-server", "event", "--max-conns", "1")
        with srv:
            with srv.connect() as held:
                held.sendall(b"k")
                self.assertEqual(recv_exact(held, 1), b"k")
                with srv.connect() as s:
                    s.settimeout(5)
                    try:
                        self.assertEqual(s.recv(1), b"")
                    except ConnectionResetError:
                        pass
                v = wait_values(addr, lambda v: v["msgsock_connections_refused_total"] == 1,
                                "a connection refused at --max-conns 1")
                self.assertEqual(v["msgsock_connections_accepted_total"], 1)
                self.assertEqual(v["msgsock_connections_open"], 1)


class MetricsHttpTest(MsTestCase):
    def test_bad_requests_get_400_404_405_and_a_close(self):
        srv, addr = metrics_server("echo-server", "event")
        with srv:
            cases = [
                (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 404),
                (b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
                (b"DELETE /metrics HTTP/1.0\r\n\r\n", 405),
                (b"GARBAGE\r\n\r\n", 400),
                (b"GET /metrics\r\n\r\n", 400),
                (b"GET /metrics HTTP/1.1\r\n\r\n", 400),                 # no Host
                (b"GET /metrics HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
                (b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400),
                (b"GET /metrics HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
                (b"G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
                (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
                (b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200),
                (b"GET /metrics HTTP/1.1\nHost: x\n\n", 200),            # bare LF
            ]
            for req, want in cases:
                with self.subTest(req=req):
                    t0 = time.monotonic()
                    status, headers, body = http(addr, req)
                    self.assertEqual(status, want, body)
                    self.assertEqual(headers.get("connection"), "close")
                    self.assertEqual(int(headers["content-length"]), len(body))
                    self.assertLess(time.monotonic() - t0, REQUEST_S / 2,
                                    "answered at once, not at the deadline")
                    if want == 405:
                        self.assertEqual(headers["allow"], "GET, HEAD")
            wait_for(lambda: "metrics: " in srv.stderr_text() and
                     "malformed request, closed" in srv.stderr_text(), 10,
                     "a log line naming the malformed request")

    def test_oversized_and_slow_requests_cut_off_while_a_scrape_is_answered(self):
        srv, addr = metrics_server("echo-server", "event")
        with srv:
            fam, sa = mstest.parse_addr(addr)
            stop = threading.Event()
            slow_ends = []

            def slow_client():
                # A byte every 100 ms: never a whole head.
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    s.connect(sa)
                    s.settimeout(0.1)
                    t0 = time.monotonic()
                    data = b""
                    for ch in b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 1000:
                        if stop.is_set():
                            break
                        try:
                            s.send(bytes([ch]))
                            chunk = s.recv(4096)
                        except socket.timeout:
                            continue
                        except OSError:
                            break
                        data += chunk
                        if not chunk:
                            break
                    slow_ends.append((time.monotonic() - t0, data))

            slows = [threading.Thread(target=slow_client) for _ in range(3)]
            for t in slows:
                t.start()
            try:
                # Oversized: a head that never ends, larger than the bound.
                with socket.socket(fam, socket.SOCK_STREAM) as s:
                    s.settimeout(10)
                    s.connect(sa)
                    t0 = time.monotonic()
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * HEAD_MAX)
                    data = b""
                    while True:
                        chunk = s.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.assertTrue(data.startswith(b"HTTP/1.1 431 "), data)
                    self.assertLess(time.monotonic() - t0, REQUEST_S / 2)
                # Meanwhile a real scrape is answered at once, not after
                # the slow ones' deadline.
                t0 = time.monotonic()
                status, _, body = get(addr, timeout=REQUEST_S)
                self.assertLess(time.monotonic() - t0, REQUEST_S / 2)
                self.assertEqual(status, 200)
                parse_metrics(body.decode())
                for t in slows:
                    t.join(REQUEST_S + 10)
            finally:
                stop.set()
                for t in slows:
                    t.join()
            self.assertEqual(len(slow_ends), 3)
            for took, data in slow_ends:
                self.assertTrue(data.startswith(b"HTTP/1.1 408 "), data)
                self.assertGreater(took, REQUEST_S - 0.5)
                self.assertLess(took, REQUEST_S + 3)
            self.assertIn("request head over 8192 bytes, closed", srv.stderr_text())

    def test_many_idle_connections_cannot_lock_a_scrape_out(self):
        srv, addr = metrics_server("echo-server", "thread")
        with srv:
            fam, sa = mstest.parse_addr(addr)
            idle = []
            try:
                for _ in range(100):
                    s = socket.socket(fam, socket.SOCK_STREAM)
                    s.connect(sa)
                    s.sendall(b"GET /metr")
                    idle.append(s)
                for _ in range(3):
                    t0 = time.monotonic()
                    status, _, body = get(addr, timeout=REQUEST_S)
                    self.assertLess(time.monotonic() - t0, REQUEST_S / 2)
                    self.assertEqual(status, 200)
                    parse_metrics(body.decode())
                # The oldest were closed to make room.
                idle[0].settimeout(10)
                self.assertEqual(idle[0].recv(100), b"")
            finally:
                for s in idle:
                    s.close()
