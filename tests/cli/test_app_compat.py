"""msgsock app-server and app-client side by side with the guide's original
Python app-server (issue 13): the same request bytes get the same response
bytes, or both close without answering; where the original crashes or hangs,
msgsock answers the way Python's str() would, and where msgsock is stricter it
closes with a reason logged."""
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from mstest import BIN, MsTestCase, Server, recv_exact, run

# The guide's app-server (app-server.py with libserver.py's Message), reduced
# to what decides the bytes on the wire: the selector loop, the incremental
# read of proto-header, JSON header and content, _json_decode through a
# TextIOWrapper with the content-encoding, dict.get() of action and value,
# `answer or f"No match ..."`, json.dumps(ensure_ascii=False), one response
# per connection, and an exception closing only its connection.
ORIGINAL_SERVER = r'''
import io, json, selectors, socket, struct, sys

request_search = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


class Message:
    def __init__(self, selector, sock, addr):
        self.selector, self.sock, self.addr = selector, sock, addr
        self._recv_buffer = b""
        self._send_buffer = b""
        self._jsonheader_len = None
        self.jsonheader = None
        self.request = None
        self.response_created = False

    def _set_selector_events_mask(self, mode):
        events = {"r": selectors.EVENT_READ, "w": selectors.EVENT_WRITE}[mode]
        self.selector.modify(self.sock, events, data=self)

    def _read(self):
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            pass
        else:
            if data:
                self._recv_buffer += data
            else:
                raise RuntimeError("Peer closed.")

    def _write(self):
        if self._send_buffer:
            try:
                sent = self.sock.send(self._send_buffer)
            except BlockingIOError:
                pass
            else:
                self._send_buffer = self._send_buffer[sent:]
                if sent and not self._send_buffer:
                    self.close()

    def _json_encode(self, obj, encoding):
        return json.dumps(obj, ensure_ascii=False).encode(encoding)

    def _json_decode(self, json_bytes, encoding):
        tiow = io.TextIOWrapper(io.BytesIO(json_bytes), encoding=encoding, newline="")
        obj = json.load(tiow)
        tiow.close()
        return obj

    def _create_message(self, *, content_bytes, content_type, content_encoding):
        jsonheader = {
            "byteorder": sys.byteorder,
            "content-type": content_type,
            "content-encoding": content_encoding,
            "content-length": len(content_bytes),
        }
        jsonheader_bytes = self._json_encode(jsonheader, "utf-8")
        message_hdr = struct.pack(">H", len(jsonheader_bytes))
        return message_hdr + jsonheader_bytes + content_bytes

    def _create_response_json_content(self):
        action = self.request.get("action")
        if action == "search":
            query = self.request.get("value")
            answer = request_search.get(query) or f"No match for '{query}'."
            content = {"result": answer}
        else:
            content = {"result": f"Error: invalid action '{action}'."}
        content_encoding = "utf-8"
        return {
            "content_bytes": self._json_encode(content, content_encoding),
            "content_type": "text/json",
            "content_encoding": content_encoding,
        }

    def _create_response_binary_content(self):
        return {
            "content_bytes": b"First 10 bytes of request: " + self.request[:10],
            "content_type": "binary/custom-server-binary-type",
            "content_encoding": "binary",
        }

    def process_events(self, mask):
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE:
            self.write()

    def read(self):
        self._read()
        if self._jsonheader_len is None:
            self.process_protoheader()
        if self._jsonheader_len is not None:
            if self.jsonheader is None:
                self.process_jsonheader()
        if self.jsonheader:
            if self.request is None:
                self.process_request()

    def write(self):
        if self.request:
            if not self.response_created:
                self.create_response()
        self._write()

    def close(self):
        try:
            self.selector.unregister(self.sock)
        except Exception:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.sock = None

    def process_protoheader(self):
        hdrlen = 2
        if len(self._recv_buffer) >= hdrlen:
            self._jsonheader_len = struct.unpack(">H", self._recv_buffer[:hdrlen])[0]
            self._recv_buffer = self._recv_buffer[hdrlen:]

    def process_jsonheader(self):
        hdrlen = self._jsonheader_len
        if len(self._recv_buffer) >= hdrlen:
            self.jsonheader = self._json_decode(self._recv_buffer[:hdrlen], "utf-8")
            self._recv_buffer = self._recv_buffer[hdrlen:]
            for reqhdr in ("byteorder", "content-length", "content-type", "content-encoding"):
                if reqhdr not in self.jsonheader:
                    raise ValueError(f"Missing required header '{reqhdr}'.")

    def process_request(self):
        content_len = self.jsonheader["content-length"]
        if not len(self._recv_buffer) >= content_len:
            return
        data = self._recv_buffer[:content_len]
        self._recv_buffer = self._recv_buffer[content_len:]
        if self.jsonheader["content-type"] == "text/json":
            encoding = self.jsonheader["content-encoding"]
            self.request = self._json_decode(data, encoding)
        else:
            self.request = data
        self._set_selector_events_mask("w")

    def create_response(self):
        if self.jsonheader["content-type"] == "text/json":
            response = self._create_response_json_content()
        else:
            response = self._create_response_binary_content()
        message = self._create_message(**response)
        self.response_created = True
        self._send_buffer += message


sel = selectors.DefaultSelector()
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0))
lsock.listen()
print("listening on 127.0.0.1:%d" % lsock.getsockname()[1], flush=True)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, data=None)
while True:
    for key, mask in sel.select(timeout=None):
        if key.data is None:
            conn, addr = key.fileobj.accept()
            conn.setblocking(False)
            sel.register(conn, selectors.EVENT_READ, data=Message(sel, conn, addr))
        else:
            message = key.data
            try:
                message.process_events(mask)
            except Exception:
                message.close()
'''

MODELS = ("event", "thread", "fork", "iterative")


def message(header, content):
    """proto-header + header (a dict dumped as the guide does, or raw JSON bytes) + content."""
    hdr = header if isinstance(header, bytes) else json.dumps(header, ensure_ascii=False).encode()
    return struct.pack(">H", len(hdr)) + hdr + content


def header(content, content_type="text/json", encoding="utf-8", **extra):
    h = {"byteorder": sys.byteorder, "content-type": content_type,
         "content-encoding": encoding, "content-length": len(content)}
    h.update(extra)
    return h


def json_request(body, encoding="utf-8", raw=None):
    """A text/json request whose content is body (an object, dumped as the
    guide's client does) encoded with encoding, or the bytes raw."""
    content = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode(encoding)
    return message(header(content, encoding=encoding), content)


def search(value, **kw):
    return json_request({"action": "search", "value": value}, **kw)


def read_response(s):
    """One whole response message's bytes, or None if the peer closed (or
    reset) before its first byte."""
    try:
        first = s.recv(2)
    except ConnectionResetError:
        return None
    if not first:
        return None
    pre = first + recv_exact(s, 2 - len(first))
    hdr = recv_exact(s, struct.unpack(">H", pre)[0])
    n = json.loads(hdr)["content-length"]
    return pre + hdr + recv_exact(s, n)


def ask(addr, data, timeout=10):
    """Sends data on a new connection; the response bytes or None."""
    with socket.create_connection(addr, timeout=timeout) as s:
        s.sendall(data)
        return read_response(s)


def result_of(resp):
    """The "result" string of a text/json response."""
    (hl,) = struct.unpack(">H", resp[:2])
    h = json.loads(resp[2:2 + hl])
    assert h["content-type"] == "text/json", h
    return json.loads(resp[2 + hl:].decode("utf-8"))["result"]


def closed_without_answer(addr, data, timeout=10):
    with socket.create_connection(addr, timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return True
        return read_response(s) is None


class Original:
    """The guide's app-server, run by this Python on a free port."""

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="msgsock-guide-app-server-", suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(ORIGINAL_SERVER)
        self.proc = subprocess.Popen([sys.executable, self.path], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            self.close()
            raise AssertionError(f"original app-server did not start: {line!r}")
        self.addr = ("127.0.0.1", int(line.rsplit(":", 1)[1]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        os.unlink(self.path)


def start_msgsock(model="event", *args):
    srv = Server("app-server", "--model", model, *args, "127.0.0.1", "0")
    return srv, srv.sockaddr


# Values whose str() the original answers with (No match for '...').
SCALARS = [5, -7, 0, 123456789012345678, -2**63, 2**63 - 1, None, True, False,
           1.5, 0.1, -0.0, 0.0, 1e16, 1e15, 1e-05, 0.0001, 1.5e300, 1e100, 2.5e-300,
           5e-324, 1.7976931348623157e308, 123456.789, 1 / 3, -1e22, 9007199254740993.0,
           "plain", "", "it's", 'say "hi"', "\u0000nul", "tab\tnew\nline"]
# The original crashes on these (unhashable in dict.get); msgsock answers with str().
CONTAINERS = [[1, "a", None], {"k": True}, [], {}, [[1.5, {"x": [False]}], "it's"],
              {"a": 1, "z": 2, "m": 3, "b": [0.1]}, ["\n\t\\\x01\x7f\u00e9\u00a0\u200b\U0001f436"],
              {"it's": 'say "hi"', "both ' and \"": "\\"}]
# Encodings the original decodes with (name in the header, then the codec to encode with).
ENCODINGS = [("latin-1", "latin-1"), ("latin1", "latin-1"), ("L1", "latin-1"),
             ("ISO-8859-1", "latin-1"), ("iso8859_1", "latin-1"), ("iso 8859 1", "latin-1"),
             ("ascii", "ascii"), ("US-ASCII", "ascii"), ("646", "ascii"),
             ("cp1252", "cp1252"), ("Windows-1252", "cp1252"),
             ("utf-16", "utf-16"), ("UTF16", "utf-16"), ("u16", "utf-16"),
             ("utf-16-le", "utf-16-le"), ("utf_16le", "utf-16-le"), ("UTF-16-BE", "utf-16-be"),
             ("utf-32", "utf-32"), ("utf-32-le", "utf-32-le"), ("utf_32_be", "utf-32-be"),
             ("utf8", "utf-8"), ("U8", "utf-8"), ("UTF_8", "utf-8"), ("  utf--8 ", "utf-8"),
             ("utf-8-sig", "utf-8-sig"), ("utf-8-sig", "utf-8"),
             ("latin\u00e91", "latin-1"), ("\u00e9utf8\u00e9", "utf-8"), ("UTF\u00e916", "utf-16")]


def text_for(codec):
    """A search value the codec can encode, non-ASCII where it can."""
    if codec == "ascii":
        return "morpheus"
    if codec in ("latin-1", "cp1252"):
        return "caf\u00e9 \u00ff" + ("\u20ac" if codec == "cp1252" else "")
    return "\U0001f436"


# Request bytes the original cannot decode: it closes without answering, and so does msgsock.
UNDECODABLE = [
    ("unknown encoding", json_request(None, "klingon", raw=b'{"action": "search"}')),
    ("binary encoding on text/json", json_request(None, "binary", raw=b'{"action": "search"}')),
    ("NUL in the encoding name", json_request(None, "utf-8\u0000", raw=b'{"action": "search"}')),
    ("ascii with a byte over 127", json_request(None, "ascii", raw=b'{"value": "\xe9"}')),
    ("utf-8 with 0xff", json_request(None, "utf-8", raw=b'{"value": "\xff"}')),
    ("utf-8 with a BOM", json_request(None, "utf-8", raw=b'\xef\xbb\xbf{"value": 1}')),
    ("utf-16 of odd length", json_request(None, "utf-16-le", raw='{"value": 1}'.encode("utf-16-le") + b"x")),
    ("utf-16 lone surrogate", json_request(None, "utf-16-le", raw='{"value": "'.encode("utf-16-le")
                                           + b"\x00\xd8" + '"}'.encode("utf-16-le"))),
    ("utf-16 without a BOM", json_request(None, "utf-16", raw='{"v": 1}'.encode("utf-16-le"))),
    ("utf-32 without a BOM", json_request(None, "utf-32", raw='{"v": 1}'.encode("utf-32-le"))),
    ("utf-16-le with a BOM", json_request(None, "utf-16-le", raw=b"\xff\xfe" + '{"v": 1}'.encode("utf-16-le"))),
    ("utf-32 past U+10FFFF", json_request(None, "utf-32-le", raw='{"value": "'.encode("utf-32-le")
                                          + b"\x00\x00\x11\x00" + '"}'.encode("utf-32-le"))),
    ("cp1252 undefined byte", json_request(None, "cp1252", raw=b'{"value": "\x81"}')),
    ("latin-1 raw control byte", json_request(None, "latin-1", raw=b'{"value": "\x01"}')),
]


def py_float_cases(n, seed):
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        d = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        if d == d and abs(d) != float("inf"):
            out.append(d)
    out += [rng.uniform(-1e6, 1e6) for _ in range(n // 4)]
    out += [float(rng.randint(-10**17, 10**17)) for _ in range(n // 4)]
    out += [rng.random() * 10 ** rng.randint(-8, 20) for _ in range(n // 4)]
    return out


class SideBySideTest(MsTestCase):
    """The same requests to the original and to msgsock: identical bytes back."""

    @classmethod
    def setUpClass(cls):
        cls.orig = Original()

    @classmethod
    def tearDownClass(cls):
        cls.orig.close()

    def same(self, msaddr, data, name):
        want = ask(self.orig.addr, data)
        got = ask(msaddr, data)
        self.assertIsNotNone(want, f"{name}: the original did not answer")
        self.assertEqual(got, want, name)
        return got

    def test_non_string_values(self):
        srv, addr = start_msgsock()
        with srv:
            for v in SCALARS:
                with self.subTest(value=v):
                    got = self.same(addr, search(v), repr(v))
                    if not isinstance(v, str):
                        self.assertEqual(result_of(got), f"No match for '{v}'.")
            # The examples, spelt out.
            for text, want in ((b"5", "5"), (b"null", "None"), (b"true", "True"), (b"1.5", "1.5"),
                               (b"1e16", "1e+16"), (b"0.1", "0.1"), (b"1E-5", "1e-05"),
                               (b"-0.0", "-0.0"), (b"1000000000000000.0", "1000000000000000.0"),
                               (b"1e-400", "0.0"), (b"-1e-400", "-0.0"), (b"1e308", "1e+308"),
                               (b"2.4703282292062328e-324", "5e-324"), (b"-0", "0"), (b"1E+2", "100.0"),
                               (b'"\\ud83d\\ude00"', "\U0001f600")):
                got = self.same(addr, json_request(None, raw=b'{"action": "search", "value": %s}' % text), text)
                self.assertEqual(result_of(got), f"No match for '{want}'.")
            # Missing keys are None, as dict.get() makes them; any action but "search" is named.
            for body, want in (({"action": "search"}, "No match for 'None'."),
                               ({"value": "ring"}, "Error: invalid action 'None'."),
                               ({"action": 5, "value": "x"}, "Error: invalid action '5'."),
                               ({"action": None}, "Error: invalid action 'None'."),
                               ({"action": 1.0, "value": "x"}, "Error: invalid action '1.0'."),
                               ({"action": "Search", "value": "ring"}, "Error: invalid action 'Search'."),
                               ({"action": "search", "value": "ring", "action": "x"}, "Error: invalid action 'x'."),
                               ({"action": "search", "value": "\U0001f436"}, "\U0001f43e Playing ball! \U0001f3d0")):
                got = self.same(addr, json_request(body), json.dumps(body))
                self.assertEqual(result_of(got), want)
            # A repeated key in the content: the last one counts, as in Python.
            got = self.same(addr, json_request(None, raw=b'{"action": "x", "value": 1, "action": "search"}'),
                            "repeated action")
            self.assertEqual(result_of(got), "No match for '1'.")
            self.assertEqual(srv.stop(), 0)
        self.assertNotIn("closing", srv.stderr_text())

    def test_encodings(self):
        srv, addr = start_msgsock()
        with srv:
            for name, codec in ENCODINGS:
                for value in ("morpheus", text_for(codec)):
                    with self.subTest(encoding=name, value=value):
                        body = json.dumps({"action": "search", "value": value}, ensure_ascii=False)
                        raw = body.encode(codec)
                        got = self.same(addr, message(header(raw, encoding=name), raw), name)
                        want = "Follow the white rabbit. \U0001f430" if value == "morpheus" \
                            else ("\U0001f43e Playing ball! \U0001f3d0" if value == "\U0001f436"
                                  else f"No match for '{value}'.")
                        self.assertEqual(result_of(got), want)
            # utf-16 and utf-32: either BOM (without one the original closes: see UNDECODABLE).
            body = '{"action": "search", "value": "ring"}'
            for name, raw in (("utf-16", b"\xfe\xff" + body.encode("utf-16-be")),
                              ("utf-16", b"\xff\xfe" + body.encode("utf-16-le")),
                              ("utf-32", b"\x00\x00\xfe\xff" + body.encode("utf-32-be")),
                              ("utf-32", b"\xff\xfe\x00\x00" + body.encode("utf-32-le")),
                              ("utf-16-be", body.encode("utf-16-be"))):
                with self.subTest(encoding=name, bom=raw[:4]):
                    got = self.same(addr, message(header(raw, encoding=name), raw), name)
                    self.assertIn("Misty Mountains", result_of(got))
            self.assertEqual(srv.stop(), 0)
        self.assertNotIn("closing", srv.stderr_text())

    def test_undecodable_content_closes_like_the_original(self):
        srv, addr = start_msgsock()
        with srv:
            for name, data in UNDECODABLE:
                with self.subTest(name):
                    self.assertTrue(closed_without_answer(self.orig.addr, data), f"original: {name}")
                    self.assertTrue(closed_without_answer(addr, data), f"msgsock: {name}")
            # Every other connection goes on.
            self.same(addr, search("ring"), "after")
            self.assertEqual(srv.stop(), 0)
        err = srv.stderr_text()
        self.assertIn("content-encoding names no codec msgsock decodes", err)
        self.assertIn("request content is not valid in its content-encoding", err)
        self.assertIn("request content is not valid UTF-8 JSON", err)
        self.assertGreaterEqual(err.count("closing:"), len(UNDECODABLE))

    def test_content_type_compared_with_all_its_bytes(self):
        srv, addr = start_msgsock()
        body = b'{"action": "search", "value": "ring"}'
        with srv:
            for ct in ("text/json\u0000x", "text/json\u0000", "text/json ", "TEXT/JSON", "text/jsonx",
                       "text/" + "j" * 20000):
                with self.subTest(content_type=ct[:20]):
                    got = self.same(addr, message(header(body, content_type=ct), body), repr(ct[:20]))
                    self.assertEqual(got[-37:], b"First 10 bytes of request: " + body[:10])
            # Long byteorder and encoding values are fine too.
            got = self.same(addr, message(header(body, content_type="text/json", byteorder="b" * 30000), body),
                            "30000-byte byteorder")
            self.assertIn("Misty", result_of(got))
            self.assertEqual(srv.stop(), 0)

    def test_header_up_to_65535_bytes_by_default(self):
        srv, addr = start_msgsock()
        body = b'{"action": "search", "value": "morpheus"}'
        with srv:
            for total in (16385, 40000, 65535):
                h = header(body)
                h["x"] = ""
                base = len(json.dumps(h, ensure_ascii=False).encode())
                h["x"] = "p" * (total - base)
                raw = json.dumps(h, ensure_ascii=False).encode()
                self.assertEqual(len(raw), total)
                with self.subTest(header_bytes=total):
                    got = self.same(addr, message(raw, body), total)
                    self.assertIn("white rabbit", result_of(got))
            self.assertEqual(srv.stop(), 0)
        self.assertNotIn("closing", srv.stderr_text())

    def test_four_models(self):
        cases = [search(5), search(None), search(0.1), search(1e16),
                 search("caf\u00e9", encoding="latin-1"), search("\U0001f436", encoding="utf-16"),
                 json_request({"value": 1}),
                 message(header(b"abc", content_type="text/json\u0000"), b"abc")]
        for model in MODELS:
            with self.subTest(model=model):
                srv, addr = start_msgsock(model)
                with srv:
                    for i, data in enumerate(cases):
                        self.same(addr, data, f"{model} case {i}")
                    self.assertTrue(closed_without_answer(addr, json_request(None, "klingon", raw=b"{}")))
                    self.same(addr, search(True), f"{model} after a close")
                    self.assertEqual(srv.stop(), 0)
                self.assertIn("content-encoding names no codec", srv.stderr_text())


class PythonStrTest(MsTestCase):
    """Where the original crashes, msgsock answers with Python's str() of the value."""

    @classmethod
    def setUpClass(cls):
        cls.srv, cls.addr = start_msgsock()

    @classmethod
    def tearDownClass(cls):
        status = cls.srv.stop()
        cls.srv.kill()
        assert status == 0, status

    def answer(self, value):
        return result_of(ask(self.addr, search(value)))

    def test_lists_and_dicts(self):
        for v in CONTAINERS:
            with self.subTest(value=v):
                self.assertEqual(self.answer(v), f"No match for '{v}'.")

    def test_floats_against_python_repr(self):
        floats = py_float_cases(2000, 13)
        self.assertEqual(self.answer(floats), f"No match for '{floats}'.")
        for d in floats[:50] + [1e16, 1e-5, 1e22, 1e21, 123e-7, 0.5e-4]:
            self.assertEqual(self.answer(d), f"No match for '{d}'.")

    def test_string_repr_against_python(self):
        tricky = ["", "'", '"', "'\"", "it's", 'say "hi"', "both ' and \"", "\\", "\\'", "\x00\x01\x1f\x7f",
                  "\t\n\r\x0b\x0c", "\u0080\u009f\u00a0\u00ad\u00e9", "\u2028\u2029\u200b\ufeff\ue000",
                  "\U0001f436\U000e0001\U000f0000\U0010fffd\U0001d173", "\u0378\u0600\ufffe\uffff"]
        self.assertEqual(self.answer(tricky), f"No match for '{tricky}'.")
        # Every code point of the BMP (surrogates aside), and of planes 1, 14, 15 and 16 in part.
        ranges = [(0, 0xd800), (0xe000, 0x10000), (0x10000, 0x20000), (0x20000, 0x20100),
                  (0xe0000, 0xe0200), (0xf0000, 0xf0010), (0x10fff0, 0x110000)]
        for lo, hi in ranges:
            for start in range(lo, hi, 0x4000):
                chunk = ["".join(chr(c) for c in range(start, min(start + 0x4000, hi)))]
                with self.subTest(start=hex(start)):
                    self.assertEqual(self.answer(chunk), f"No match for '{chunk}'.")

    def test_empty_object_is_answered(self):
        # The original never answers {} (an empty dict is false in its
        # `if self.request:`); msgsock answers it as dict.get() reads it.
        self.assertEqual(result_of(ask(self.addr, json_request({}))), "Error: invalid action 'None'.")


class DataTableTest(MsTestCase):
    def test_empty_answer_is_no_match(self):
        # The original's `request_search.get(query) or f"No match ..."`.
        fd, path = tempfile.mkstemp(prefix="msgsock-app-data-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump({"empty": "", "full": "yes"}, f)
        try:
            srv, addr = start_msgsock("event", "--data", path)
            with srv:
                self.assertEqual(result_of(ask(addr, search("empty"))), "No match for 'empty'.")
                self.assertEqual(result_of(ask(addr, search("full"))), "yes")
                self.assertEqual(srv.stop(), 0)
        finally:
            os.unlink(path)


class StricterThanOriginalTest(MsTestCase):
    """Where msgsock closes and the original answers: documented in msgsock(1)."""

    def test_closes_with_a_reason(self):
        body = b'{"action": "search", "value": "ring"}'
        base = ('"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8"')
        cases = [
            ("duplicate header key", b'{%s, "content-length": %d, "content-type": "text/json"}'
             % (base.encode(), len(body)), "repeats a key"),
            ("negative content-length", b'{%s, "content-length": -1}' % base.encode(), "content-length"),
            ("non-integer content-length", b'{%s, "content-length": 37.0}' % base.encode(), "content-length"),
            ("content-length true", b'{%s, "content-length": true}' % base.encode(), "content-length"),
            ("number past 64 bits in the content", None, "number msgsock cannot represent"),
        ]
        for model in MODELS:
            srv, addr = start_msgsock(model)
            with srv:
                for name, hdr, phrase in cases:
                    with self.subTest(model=model, case=name):
                        data = message(hdr, body) if hdr else \
                            json_request(None, raw=b'{"action": "search", "value": 123456789012345678901234567890}')
                        self.assertTrue(closed_without_answer(addr, data), name)
                self.assertEqual(result_of(ask(addr, search("ring")))[:6], "In the")
                self.assertEqual(srv.stop(), 0)
            err = srv.stderr_text()
            for name, _, phrase in cases:
                self.assertIn(phrase, err, f"{model}: {name}")


class FakeServer:
    """Answers each connection's one request with a fixed response."""

    def __init__(self, response):
        self.response = response
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen()
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.lsock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                read_response(conn)
                conn.sendall(self.response)

    def close(self):
        # Shut down first, to wake the thread's accept, and only close once
        # it has returned: closed under it, the listener's descriptor number
        # could be reused by the next test's FakeServer, and this thread
        # would answer that test's client with this test's response.
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.lsock.close()


class AppClientPrintTest(MsTestCase):
    """app-client prints a result as the guide's client's print() does."""

    def client_prints(self, content, encoding="utf-8"):
        srv = FakeServer(message(header(content, encoding=encoding), content))
        try:
            p = run("app-client", "127.0.0.1", str(srv.port), "search", "x", timeout=30)
        finally:
            srv.close()
        self.assertExit(p, 0)
        return p.stdout.decode("utf-8")

    def test_results_that_are_not_strings(self):
        for v in [True, False, None, 0.1, 1e16, 1e100, 1e-05, -0.0, 5, 1.5, [1, "a", None], {"k": True},
                  "text", "it's", ""] + py_float_cases(20, 7):
            with self.subTest(result=v):
                out = self.client_prints(json.dumps({"result": v}, ensure_ascii=False).encode())
                self.assertEqual(out, f"{v}\n")

    def test_no_result_prints_none(self):
        self.assertEqual(self.client_prints(b'{"other": 1}'), "None\n")

    def test_response_in_another_encoding(self):
        for enc in ("utf-16", "latin-1", "utf-32-be"):
            with self.subTest(encoding=enc):
                self.assertEqual(self.client_prints('{"result": "caf\u00e9"}'.encode(enc), enc), "caf\u00e9\n")


if __name__ == "__main__":
    unittest.main()
