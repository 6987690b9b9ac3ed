"""Black-box tests of `msgsock app-server` and `msgsock app-client` (the
tutorial's JSON-header application protocol), against the Python reference
programs in pyapp.py."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

import pyapp
from mstest import BIN, MsTestCase, Server, fresh_unix_path, recv_exact, run, unread_bytes, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT = "Follow the white rabbit. \U0001f430"
RING = "In the caves beneath the Misty Mountains. \U0001f48d"
DOG = "\U0001f436"
BALL = "\U0001f43e Playing ball! \U0001f3d0"


def raw_message(header, content=b""):
    """header: a dict (dumped like Python does) or raw JSON bytes."""
    hdr = header if isinstance(header, bytes) else pyapp.json_bytes(header)
    return struct.pack(">H", len(hdr)) + hdr + content


def hdr(content_type="text/json", length=0, drop=None, **over):
    h = {"byteorder": "little", "content-type": content_type,
         "content-encoding": "utf-8" if content_type == "text/json" else "binary",
         "content-length": length}
    h.update({k.replace("_", "-"): v for k, v in over.items()})
    if drop:
        del h[drop]
    return h


def read_message(sock):
    """One whole message: (header dict, raw header bytes, content), or None at EOF."""
    pre = recv_exact(sock, 2)
    if not pre:
        return None
    if len(pre) < 2:
        raise AssertionError(f"stream ended inside a proto-header: {pre!r}")
    raw = recv_exact(sock, struct.unpack(">H", pre)[0])
    h = json.loads(raw.decode("utf-8"))
    content = recv_exact(sock, h["content-length"])
    if len(content) != h["content-length"]:
        raise AssertionError("stream ended inside content")
    return h, raw, content


def expected_response(result=None, binary=None):
    """The exact bytes the guide's app-server sends back."""
    if binary is not None:
        return pyapp.encode_message(b"First 10 bytes of request: " + binary[:10],
                                    "binary/custom-server-binary-type", "binary")
    return pyapp.encode_message(pyapp.json_bytes({"result": result}), "text/json", "utf-8")


def search(value):
    return pyapp.make_request("search", value)


def assert_closed_by_peer(test, sock, timeout=5):
    """The peer closes without sending anything more (FIN or reset)."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return
    except socket.timeout:
        test.fail("server kept the connection open")
    test.assertEqual(data, b"", "server answered a malformed request")


class AppServerTest(MsTestCase):
    MODEL = "event"

    def start(self, *args):
        return Server("app-server", "--model", self.MODEL, *(args or ("127.0.0.1", "0")))

    def setUp(self):
        self.srv = self.start()
        self.host, self.port = self.srv.host_port()

    def tearDown(self):
        self.srv.check_ended()

    def exchange(self, request, timeout=10):
        with self.srv.connect(timeout) as s:
            s.sendall(request)
            return read_message(s)

    def test_guide_client_all_keys_miss_invalid_action_binary(self):
        cases = [
            ("search", "morpheus", {"result": RABBIT}),
            ("search", "ring", {"result": RING}),
            ("search", DOG, {"result": BALL}),
            ("search", "neo", {"result": "No match for 'neo'."}),
            ("search", "it's \"q\"\n\x01", {"result": "No match for 'it's \"q\"\n\x01'."}),
            ("foo", "bar", b"First 10 bytes of request: foobar"),
            ("0123456789", "abcdef", b"First 10 bytes of request: 0123456789"),
        ]
        for action, value, want in cases:
            with self.subTest(action=action, value=value):
                h, resp = pyapp.run_client(self.host, self.port, action, value)
                self.assertEqual(resp, want)
                if isinstance(want, dict):
                    self.assertEqual(h["content-type"], "text/json")
                    self.assertEqual(h["content-encoding"], "utf-8")
                else:
                    self.assertEqual(h["content-type"], "binary/custom-server-binary-type")
                    self.assertEqual(h["content-encoding"], "binary")

    def test_responses_byte_for_byte(self):
        for value in ("morpheus", DOG, "nobody", 'a"b\\c\td\x1f\x7f\u2028\b\f\r\x00\u00e9'):
            with self.subTest(value=value):
                m = self.exchange(search(value))
                want = pyapp.SEARCH.get(value) or f"No match for '{value}'."
                # the header's byteorder is the server's, which is ours here
                self.assertEqual(raw_message(m[0], m[2]), expected_response(want))
                self.assertEqual(struct.pack(">H", len(m[1])) + m[1] + m[2], expected_response(want))

    def test_invalid_action(self):
        body = pyapp.json_bytes({"action": "find", "value": "morpheus"})
        m = self.exchange(raw_message(hdr(length=len(body)), body))
        self.assertEqual(json.loads(m[2]), {"result": "Error: invalid action 'find'."})

    def test_binary_requests_including_empty(self):
        for content in (b"\x00\xff binary data that is long", b"short", b""):
            with self.subTest(content=content):
                m = self.exchange(raw_message(hdr("application/octet-stream", len(content)), content))
                self.assertEqual(m[0]["content-type"], "binary/custom-server-binary-type")
                self.assertEqual(m[2], b"First 10 bytes of request: " + content[:10])

    def test_header_in_any_order_with_extra_keys_and_whitespace(self):
        body = pyapp.json_bytes({"value": "ring", "extra": [1, 2], "action": "search"})
        h = (b' {\n"content-length" :%d,"x-extra":{"a":null},"content-encoding":"utf-8",'
             b'"content-type":"text/json","byteorder":"big"}\t' % len(body))
        m = self.exchange(raw_message(h, body))
        self.assertEqual(json.loads(m[2]), {"result": RING})

    def test_guide_client_script_output(self):
        p = subprocess.run([sys.executable, os.path.join(HERE, "pyapp.py"), "client", self.host, self.port,
                            "search", "morpheus"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.decode().splitlines()
        self.assertIn(f"Got result: {RABBIT}", lines)
        self.assertEqual(lines[0], f"Starting connection to ('{self.host}', {self.port})")
        self.assertEqual(lines[-1], f"Closing connection to ('{self.host}', {self.port})")
        p = subprocess.run([sys.executable, os.path.join(HERE, "pyapp.py"), "client", self.host, self.port,
                            "foo", "bar"], capture_output=True, timeout=30)
        self.assertIn("Got response: b'First 10 bytes of request: foobar'", p.stdout.decode().splitlines())

    def test_connection_stays_open_for_more_requests(self):
        with self.srv.connect() as s:
            for value in ("morpheus", "ring", DOG, "x"):
                s.sendall(search(value))
                m = read_message(s)
                self.assertEqual(json.loads(m[2])["result"], pyapp.SEARCH.get(value, "No match for 'x'."))
            s.shutdown(socket.SHUT_WR)
            self.assertIsNone(read_message(s))  # the server closes after our EOF

    def test_ten_pipelined_requests_answered_in_order(self):
        values = ["morpheus", "ring", DOG, "v3", "v4", "morpheus", "v6", "ring", "v8", "v9"]
        reqs = [search(v) if i % 3 else pyapp.make_request("bin", v) for i, v in enumerate(values)]
        with self.srv.connect() as s:
            s.sendall(b"".join(reqs))
            for i, v in enumerate(values):
                m = read_message(s)
                if i % 3:
                    want = pyapp.SEARCH.get(v) or f"No match for '{v}'."
                    self.assertEqual(json.loads(m[2]), {"result": want}, f"answer {i}")
                else:
                    self.assertEqual(m[2], b"First 10 bytes of request: " + ("bin" + v).encode()[:10])

    def test_requests_sent_byte_at_a_time(self):
        data = search(DOG) + pyapp.make_request("foo", "bar") + search("ring")
        with self.srv.connect() as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                if i % 16 == 0:
                    time.sleep(0.001)  # pacing so the bytes arrive apart, not a wait for state
            self.assertEqual(json.loads(read_message(s)[2]), {"result": BALL})
            self.assertEqual(read_message(s)[2], b"First 10 bytes of request: foobar")
            self.assertEqual(json.loads(read_message(s)[2]), {"result": RING})

    def test_large_binary_request(self):
        content = bytes(range(256)) * 4096  # 1 MiB
        m = self.exchange(raw_message(hdr("binary/x", len(content)), content), timeout=30)
        self.assertEqual(m[2], b"First 10 bytes of request: " + content[:10])

    def test_idle_connection_is_closed(self):
        with self.start("--idle-timeout", "300", "127.0.0.1", "0") as srv:
            t0 = time.monotonic()
            with srv.connect() as s:
                s.sendall(search("ring"))
                self.assertEqual(json.loads(read_message(s)[2]), {"result": RING})
                assert_closed_by_peer(self, s)
                port = s.getsockname()[1]
            self.assertLess(time.monotonic() - t0, 5)
            srv.stop()
            self.assertIn(f"127.0.0.1:{port}: closing: idle timeout", srv.stderr_text())

    def test_sigint_and_sigterm_exit_0(self):
        self.assertEqual(self.exchange(search("ring"))[0]["content-type"], "text/json")
        self.assertEqual(self.srv.stop(signal.SIGINT), 0)
        with self.start() as srv2:
            s = srv2.connect()
            s.sendall(search("ring")[:5])  # in the middle of a request
            wait_for(lambda: unread_bytes(s) == 0, 10, "the server to read the 5 bytes sent")
            srv2.proc.send_signal(signal.SIGTERM)
            s.sendall(search("ring")[5:])  # the drain answers it, then closes
            self.assertEqual(read_message(s)[0]["content-type"], "text/json")
            self.assertEqual(s.recv(1), b"")
            s.close()
            self.assertEqual(srv2.proc.wait(10), 0)


def json_body(body):
    """A text/json request with this content."""
    return raw_message(hdr(length=len(body)), body)


# (name, bytes to send, phrase expected in the server's stderr line)
BODY_JSON = pyapp.json_bytes({"action": "search", "value": "ring"})
MALFORMED = [
    ("header length 65535 of junk", b"\xff\xff" + b"\x07" * 65535, "not valid UTF-8 JSON"),
    ("content-length 10**12", raw_message(hdr(length=10**12)), "larger than the configured limit"),
    ("content-length -1", raw_message(hdr(length=-1)), "content-length is not a non-negative integer"),
    ("content-length '12'", raw_message(hdr(length="12")), "content-length is not a non-negative integer"),
    ("content-length 1.5", raw_message(hdr(length=1.5)), "content-length is not a non-negative integer"),
    ("content-length 1e3", raw_message(
        b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 1e3}'), "content-length is not a non-negative integer"),
    ("content-length true", raw_message(hdr(length=True)), "content-length is not a non-negative integer"),
    ("content-length null", raw_message(hdr(length=None)), "content-length is not a non-negative integer"),
    ("missing byteorder", raw_message(hdr(drop="byteorder")), "missing a required key"),
    ("missing content-type", raw_message(hdr(drop="content-type")), "missing a required key"),
    ("missing content-encoding", raw_message(hdr(drop="content-encoding")), "missing a required key"),
    ("missing content-length", raw_message(hdr(drop="content-length")), "missing a required key"),
    ("header is an array", raw_message(b'["byteorder", "content-length"]'), "not a JSON object"),
    ("header is a string", raw_message(b'"hello"'), "not a JSON object"),
    ("header is not JSON", raw_message(b'{"byteorder": little}'), "not valid UTF-8 JSON"),
    ("empty header", raw_message(b""), "header"),
    ("invalid UTF-8 in header", raw_message(
        b'{"byteorder": "\xff\xfe", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 0}'), "not valid UTF-8 JSON"),
    ("invalid UTF-8 in text/json body", json_body(b'{"action": "search", "value": "\xc3("}'),
     "request content is not valid UTF-8 JSON"),
    ("JSON array body", json_body(b'["a", "b"]'), "request content is not a JSON object"),
    ("body is not JSON", json_body(b"hello"), "request content is not valid UTF-8 JSON"),
    ("good request, then a truncated one", search("ring") + search("ring")[:20], None),
]


class AppServerMalformedTest(MsTestCase):
    MODEL = "event"

    def start(self, *args):
        return Server("app-server", "--model", self.MODEL, *(args or ("127.0.0.1", "0")))

    def test_each_malformed_request_closes_only_its_connection(self):
        with self.start() as srv:
            peers = {}
            for name, data, phrase in MALFORMED:
                with self.subTest(name=name):
                    with srv.connect() as s:
                        peers[name] = s.getsockname()[1]
                        try:
                            s.sendall(data)
                            if phrase is None:
                                s.shutdown(socket.SHUT_WR)  # the stream ends inside a request
                        except (BrokenPipeError, ConnectionResetError):
                            pass  # closed while we were still sending: fine
                        if phrase is None:
                            self.assertEqual(json.loads(read_message(s)[2]), {"result": RING})
                        assert_closed_by_peer(self, s)
                    # a well-formed client right after is served
                    with srv.connect() as g:
                        g.sendall(search("morpheus"))
                        self.assertEqual(json.loads(read_message(g)[2]), {"result": RABBIT})
            self.assertEqual(srv.stop(), 0)
            err = srv.stderr_text()
            for name, _, phrase in MALFORMED:
                with self.subTest(name=name):
                    lines = [ln for ln in err.splitlines()
                             if ln.startswith(f"msgsock app-server: 127.0.0.1:{peers[name]}: closing: ")]
                    self.assertEqual(len(lines), 1, f"stderr: {err}")
                    if phrase:
                        self.assertIn(phrase, lines[0])

    def test_reason_wording(self):
        with self.start() as srv:
            s = srv.connect()
            s.sendall(raw_message(hdr(length=-1)))
            assert_closed_by_peer(self, s)
            port = s.getsockname()[1]
            s.close()
            srv.stop()
            self.assertIn(f"msgsock app-server: 127.0.0.1:{port}: closing: "
                          "content-length is not a non-negative integer\n", srv.stderr_text())

    def test_good_answers_before_a_bad_request_are_sent(self):
        with self.start() as srv, srv.connect() as s:
            s.sendall(search("morpheus") + search(DOG) + raw_message(hdr(length="x")))
            self.assertEqual(json.loads(read_message(s)[2]), {"result": RABBIT})
            self.assertEqual(json.loads(read_message(s)[2]), {"result": BALL})
            assert_closed_by_peer(self, s)

    def test_max_msg_option(self):
        with self.start("--max-msg", "100", "127.0.0.1", "0") as srv:
            with srv.connect() as s:
                s.sendall(raw_message(hdr("binary/x", 100), b"x" * 100))
                self.assertEqual(read_message(s)[2], b"First 10 bytes of request: " + b"x" * 10)
            with srv.connect() as s:
                s.sendall(raw_message(hdr("binary/x", 101)))
                assert_closed_by_peer(self, s)


class IterativeAppServerTest(AppServerTest):
    MODEL = "iterative"


class IterativeAppServerMalformedTest(AppServerMalformedTest):
    MODEL = "iterative"


class EventAppServerConcurrencyTest(MsTestCase):
    """The event model serves connections at once: a slow or bad one does
    not hold up the others."""

    def test_bad_and_good_clients_while_another_is_mid_request(self):
        with Server("app-server", "127.0.0.1", "0") as srv:
            slow = srv.connect()
            req = search("morpheus")
            slow.sendall(req[:7])
            with srv.connect() as bad:
                bad.sendall(raw_message(hdr(length=True)))
                assert_closed_by_peer(self, bad)
            with srv.connect() as good:
                good.sendall(search("ring"))
                self.assertEqual(json.loads(read_message(good)[2]), {"result": RING})
            slow.sendall(req[7:])
            self.assertEqual(json.loads(read_message(slow)[2]), {"result": RABBIT})
            slow.close()

    def test_many_clients_at_once(self):
        with Server("app-server", "--threads", "2", "127.0.0.1", "0") as srv:
            socks = [srv.connect() for _ in range(50)]
            for i, s in enumerate(socks):
                s.sendall(search(f"v{i}") + search(DOG))
            for i, s in enumerate(socks):
                self.assertEqual(json.loads(read_message(s)[2]), {"result": f"No match for 'v{i}'."})
                self.assertEqual(json.loads(read_message(s)[2]), {"result": BALL})
                s.close()
            host, port = srv.host_port()
            p = run("app-client", "--clients", "20", "--count", "50", host, port, "search", "ring")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), (RING + "\n") * 1000)


class AppServerDataTest(MsTestCase):
    def write(self, text, mode="w"):
        fd, path = tempfile.mkstemp(prefix="msgsock-app-", suffix=".json")
        with os.fdopen(fd, mode) as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_data_file_replaces_the_table(self):
        path = self.write(json.dumps({"neo": "The One \u2728", "trinity": "yes"}, ensure_ascii=False))
        with Server("app-server", "--data", path, "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            self.assertEqual(pyapp.run_client(host, port, "search", "neo")[1], {"result": "The One \u2728"})
            self.assertEqual(pyapp.run_client(host, port, "search", "morpheus")[1],
                             {"result": "No match for 'morpheus'."})

    def test_bad_data_files_exit_1(self):
        cases = [
            (self.write("{\"a\": \"b\",}"), "1:"),                 # invalid JSON, with a position
            (self.write("[\"a\", \"b\"]"), "not a JSON object"),
            (self.write("{\"a\": 1}"), "\"a\" is not a string"),
            (self.write(b"{\"a\": \"\xff\"}", "wb"), ""),
            ("/nonexistent/msgsock-app.json", "/nonexistent/msgsock-app.json"),
        ]
        for path, phrase in cases:
            with self.subTest(path=path):
                p = run("app-server", "--data", path, "127.0.0.1", "0", timeout=10)
                self.assertExit(p, 1)
                self.assertIn(path.encode(), p.stderr)
                self.assertIn(phrase.encode(), p.stderr)
                self.assertEqual(p.stdout, b"")  # never got to listening


class AppClientTest(MsTestCase):
    def client(self, *args, **kw):
        return run("app-client", *args, timeout=kw.pop("timeout", 30))

    def test_against_python_server(self):
        cases = [
            ("search", "morpheus", RABBIT + "\n"),
            ("search", "ring", RING + "\n"),
            ("search", DOG, BALL + "\n"),
            ("search", "nobody", "No match for 'nobody'.\n"),
            ("foo", "bar", "b'First 10 bytes of request: foobar'\n"),
            ("it's", "\x01\xe9", "b\"First 10 bytes of request: it's\\x01\\xc3\\xa9\"\n"),
        ]
        with pyapp.AppServer() as py:
            for action, value, want in cases:
                with self.subTest(action=action, value=value):
                    p = self.client("127.0.0.1", str(py.addr[1]), action, value)
                    self.assertExit(p, 0)
                    self.assertEqual(p.stdout.decode(), want)
                    # the request is byte for byte what the guide's client sends
                    self.assertEqual(py.requests[-1], pyapp.make_request(action, value))

    def test_json_output(self):
        with pyapp.AppServer() as py:
            p = self.client("--json", "127.0.0.1", str(py.addr[1]), "search", "morpheus")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.count(b"\n"), 1)
            out = json.loads(p.stdout)
            self.assertEqual(out["content"], {"result": RABBIT})
            self.assertEqual(out["header"], {"byteorder": sys.byteorder, "content-type": "text/json",
                                             "content-encoding": "utf-8",
                                             "content-length": len(pyapp.json_bytes({"result": RABBIT}))})
            p = self.client("--json", "127.0.0.1", str(py.addr[1]), "foo", "bar")
            self.assertExit(p, 0)
            out = json.loads(p.stdout)
            self.assertEqual(out["content"], "First 10 bytes of request: foobar")
            self.assertEqual(out["header"]["content-type"], "binary/custom-server-binary-type")

    def test_unix_socket(self):
        path = fresh_unix_path()
        with pyapp.AppServer(socket.AF_UNIX, path):
            p = self.client("--connect", "unix:" + path, "search", "ring")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), RING + "\n")

    def test_server_closes_without_answering(self):
        with pyapp.AppServer(mode="close") as py:
            p = self.client("127.0.0.1", str(py.addr[1]), "search", "morpheus")
            self.assertExit(p, 1)
            self.assertIn(b"closed the connection before answering", p.stderr)
            self.assertEqual(p.stdout, b"")

    def test_server_closes_in_the_middle_of_the_answer(self):
        with pyapp.AppServer(mode="half") as py:
            p = self.client("127.0.0.1", str(py.addr[1]), "search", "morpheus")
            self.assertExit(p, 1)
            self.assertIn(b"in the middle of a response", p.stderr)

    def test_malformed_answer(self):
        with pyapp.AppServer(mode="junk") as py:
            p = self.client("127.0.0.1", str(py.addr[1]), "search", "morpheus")
            self.assertExit(p, 1)
            self.assertIn(b"malformed response", p.stderr)
            self.assertIn(b"missing a required key", p.stderr)

    def test_silent_server_times_out(self):
        with pyapp.AppServer(mode="silent") as py:
            t0 = time.monotonic()
            p = self.client("--timeout", "300", "127.0.0.1", str(py.addr[1]), "search", "morpheus")
            elapsed = time.monotonic() - t0
            self.assertExit(p, 1)
            self.assertIn(b"no response within 300 ms", p.stderr)
            self.assertLess(elapsed, 5)
            self.assertEqual(len(py.requests), 1)  # the request did arrive

    def test_connection_refused(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = self.client("127.0.0.1", str(port), "search", "x")
        self.assertExit(p, 1)
        self.assertIn(b"Connection refused", p.stderr)

    def test_count_against_python_server_that_closes_after_one(self):
        with pyapp.AppServer() as py:
            p = self.client("--count", "3", "127.0.0.1", str(py.addr[1]), "search", "ring")
            self.assertExit(p, 1)
            self.assertIn(b"after 1 of 3 responses", p.stderr)

    def test_count_and_clients_against_msgsock_server(self):
        with Server("app-server", "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            p = self.client("--count", "10", host, port, "search", DOG)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), (BALL + "\n") * 10)
            p = self.client("--count", "5", "--clients", "4", host, port, "x", "y")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), "b'First 10 bytes of request: xy'\n" * 20)
            p = self.client("--count", "2000", host, port, "search", "morpheus", timeout=60)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), (RABBIT + "\n") * 2000)

    def test_msgsock_client_against_msgsock_server_unix(self):
        path = fresh_unix_path()
        with Server("app-server", "--listen", "unix:" + path):
            p = self.client("--connect", "unix:" + path, "search", "morpheus")
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), RABBIT + "\n")


class AppUsageTest(MsTestCase):
    def test_help_and_version(self):
        for cmd in ("app-server", "app-client"):
            p = run(cmd, "--help")
            self.assertExit(p, 0)
            self.assertIn(b"Usage: msgsock " + cmd.encode(), p.stdout)
            p = run(cmd, "--version")
            self.assertExit(p, 0)
            self.assertRegex(p.stdout, rb"^msgsock \d+\.\d+\.\d+\n$")
        p = run("--help")
        self.assertIn(b"app-server", p.stdout)
        self.assertIn(b"app-client", p.stdout)

    def test_usage_errors_exit_2(self):
        for args in (["app-client"], ["app-client", "127.0.0.1", "1", "search"],
                     ["app-client", "127.0.0.1", "1", "search", "x", "extra"],
                     ["app-client", "--connect", "127.0.0.1:1", "a", "b", "c"],
                     ["app-client", "--timeout", "soon", "127.0.0.1", "1", "search", "x"],
                     ["app-client", "--count", "0", "127.0.0.1", "1", "search", "x"],
                     ["app-client", "--bogus", "127.0.0.1", "1", "search", "x"],
                     ["app-client", "--connect", "127.0.0.1", "search", "x"],
                     ["app-server", "a", "b", "c"], ["app-server", "--model", "nope"],
                     ["app-server", "--max-msg", "lots"], ["app-server", "--threads", "x"], ["app-server", "--listen", "nowhere"]):
            with self.subTest(args=args):
                p = run(*args, timeout=10)
                self.assertExit(p, 2)
                self.assertTrue(p.stderr)

    def test_search_value_must_be_utf8(self):
        p = subprocess.run([BIN, "app-client", "127.0.0.1", "1",
                            "search", b"\xff"], capture_output=True, timeout=10)
        self.assertExit(p, 2)


if __name__ == "__main__":
    unittest.main()
