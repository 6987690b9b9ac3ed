"""Lying lengths and malformed JSON headers: each is refused without an
answer and without allocating what it claims, and the same server process
then serves a well-behaved client."""
import socket
import struct

import rel
from rel import MsTestCase, app_header, app_message, note


def send_quietly(sock, data):
    """Sends what the server takes; it may close (or reset) mid-way."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class LyingLengthsTest(MsTestCase):
    # Peak growth allowed over the whole attack. A lie honoured even once
    # would cost 1 TB (or 16 MiB for a claim just under --max-msg).
    BOUND_KB = (64 if rel.sanitized() else 8) * 1024

    def check_refused(self, srv, data, label):
        with srv.connect() as s:
            send_quietly(s, data)
            self.assertTrue(rel.closed_without_answer(s), f"{label}: not closed")
        rel.app_search(srv)

    def test_app_server_lengths(self):
        with rel.app_server("--max-header", "65535") as srv:
            rel.app_search(srv)
            base = rel.rss_kb(srv)
            # 2-byte header length 65535, then 65535 bytes of junk.
            self.check_refused(srv, b"\xff\xff" + bytes(range(256)) * 255 + b"\x00" * 255,
                               "65535 junk")
            for v in (b"1000000000000", b"9223372036854775808", b"18446744073709551621",
                      b"-1", b'"10"', b"1.5", b"true", b"null", b"1e3", b"[]", b"{}"):
                raw = (b'{"byteorder": "little", "content-type": "binary/x", '
                       b'"content-encoding": "binary", "content-length": ' + v + b"}")
                self.check_refused(srv, app_message(raw, b"abc"), v.decode())
            peak = rel.hwm_kb(srv) - base
            note(f"app-server lying lengths: VmRSS {base} kB at start, peak +{peak} kB")
            self.assertLess(peak, self.BOUND_KB)
            rel.stop_clean(self, srv)
            err = srv.stderr_text()
        for word in ("header is not valid", "content-length is not a non-negative integer",
                     "message larger than the configured limit"):
            self.assertIn(word, err.lower())

    def test_header_limit_refuses_from_two_bytes(self):
        # The default limit is the field's own maximum (65535), so no length
        # can exceed it; below it, the two bytes of the length are enough.
        with rel.app_server("--max-header", "1024") as srv:
            with srv.connect() as s:
                s.sendall(b"\x04\x01")  # 1025: nothing more is needed
                self.assertTrue(rel.closed_without_answer(s))
            rel.app_search(srv)
            rel.stop_clean(self, srv)
        self.assertIn("header larger than the configured limit", srv.stderr_text().lower())

    def test_claims_under_the_limit_cost_only_what_arrives(self):
        # 200 peers each announce a 16 MiB - 1 message and send 100 bytes of it.
        n = 200
        with rel.app_server("--msg-timeout", "60000") as srv:
            rel.app_search(srv)
            base = rel.rss_kb(srv)
            vm0 = srv.status()["VmSize"]
            socks = []
            try:
                for _ in range(n):
                    s = srv.connect()
                    s.sendall(app_message(app_header((16 << 20) - 1, "binary/x"), b"x" * 100))
                    socks.append(s)
                # Measured once the server holds every peer and has read
                # all each one sent.
                rel.wait_until(lambda: (lambda c: len(c) == n and not any(rx for _, rx, _ in c))(
                    rel.server_sockets(srv)), 20, f"the server reads what {n} peers sent")
                st = srv.status()
                peak = st["VmHWM"] - base
                note(f"{n} peers claiming 16 MiB each: VmRSS +{st['VmRSS'] - base} kB, "
                     f"peak +{peak} kB, VmSize {st['VmSize'] >> 10} MiB")
                self.assertLess(peak, self.BOUND_KB)
                # Not even reserved: 200 x 16 MiB of address space would be 3 GiB.
                self.assertLess(st["VmSize"] - vm0, 512 << 10)
                rel.app_search(srv)
            finally:
                for s in socks:
                    s.close()
            rel.stop_clean(self, srv)

    def check_prefix(self, framing, prefix):
        with rel.echo_server("--framing", framing) as srv:
            n = {"len16": 2, "len32": 4, "len64": 8}[framing]
            good = struct.pack(">Q", 5)[8 - n:] + b"hello"
            with srv.connect() as s:
                s.sendall(good)
                self.assertEqual(rel.recv_exact(s, len(good)), good)
            base = rel.rss_kb(srv)
            with srv.connect() as s:
                send_quietly(s, prefix + b"junk" * 1000)
                self.assertTrue(rel.closed_without_answer(s))
            peak = rel.hwm_kb(srv) - base
            note(f"{framing} prefix {prefix.hex()}: peak +{peak} kB")
            self.assertLess(peak, self.BOUND_KB)
            with srv.connect() as s:
                s.sendall(good)
                self.assertEqual(rel.recv_exact(s, len(good)), good)
            rel.stop_clean(self, srv)
        self.assertIn("MS_ETOOLARGE", srv.stderr_text())

    def test_len64_prefix_2_64_minus_1(self):
        self.check_prefix("len64", b"\xff" * 8)

    def test_len64_prefix_2_63(self):
        self.check_prefix("len64", b"\x80" + b"\x00" * 7)

    def test_len32_prefix_2_32_minus_1(self):
        self.check_prefix("len32", b"\xff" * 4)


BASE = (b'"byteorder": "little", "content-type": "binary/x", '
        b'"content-encoding": "binary", "content-length": 3')

MALFORMED = {
    "truncated": b'{"byteorder": "little", "content-type": "binary/x", "content-',
    "array": b'["byteorder", "little"]',
    "string": b'"byteorder"',
    "number": b"42",
    "empty": b"",
    "whitespace only": b"   ",
    "missing byteorder": b'{"content-type": "binary/x", "content-encoding": "binary", '
                         b'"content-length": 3}',
    "missing content-type": b'{"byteorder": "little", "content-encoding": "binary", '
                            b'"content-length": 3}',
    "missing content-encoding": b'{"byteorder": "little", "content-type": "binary/x", '
                                b'"content-length": 3}',
    "missing content-length": b'{"byteorder": "little", "content-type": "binary/x", '
                              b'"content-encoding": "binary"}',
    "invalid UTF-8": b'{"x": "\xff\xfe", ' + BASE + b"}",
    "overlong UTF-8 /": b'{"x": "\xc0\xaf", ' + BASE + b"}",
    "overlong UTF-8 NUL": b'{"x": "\xc0\x80", ' + BASE + b"}",
    "UTF-8 surrogate": b'{"x": "\xed\xa0\x80", ' + BASE + b"}",
    "past U+10FFFF": b'{"x": "\xf4\x90\x80\x80", ' + BASE + b"}",
    "raw NUL in a value": b'{"byteorder": "lit\x00tle", "content-type": "binary/x", '
                          b'"content-encoding": "binary", "content-length": 3}',
    "raw NUL between tokens": b'{' + BASE + b',\x00 "y": 1}',
    "trailing garbage": b"{" + BASE + b"} xyz",
    "two objects": b"{" + BASE + b"}{}",
    "duplicate key": b"{" + BASE + b', "content-length": 3}',
    "wrong type": b'{"byteorder": 1, "content-type": "binary/x", '
                  b'"content-encoding": "binary", "content-length": 3}',
    "20000-level array nesting": b"[" * 20000 + b"]" * 20000,
    "20000-level nesting in a value": b'{"x": ' + b"[" * 20000 + b"]" * 20000 + b", " + BASE + b"}",
    "13000-level object nesting": b'{"":' * 13000 + b"1" + b"}" * 13000,
}


class MalformedHeadersTest(MsTestCase):
    def test_each_malformed_header(self):
        with rel.app_server("--max-header", "65535") as srv:
            fds0 = rel.settled_fds(srv, rel.app_search)
            base = rel.rss_kb(srv)
            ports = {}
            for name, raw in MALFORMED.items():
                with self.subTest(name):
                    with srv.connect() as s:
                        ports[name] = s.getsockname()[1]
                        send_quietly(s, app_message(raw, b"abc"))
                        self.assertTrue(rel.closed_without_answer(s), name)
                    rel.app_search(srv)
            # The same again, fed one byte at a time on one connection each.
            for name in ("truncated", "invalid UTF-8", "duplicate key", "trailing garbage"):
                with srv.connect() as s:
                    for b in app_message(MALFORMED[name]):
                        send_quietly(s, bytes([b]))
                    self.assertTrue(rel.closed_without_answer(s), name)
            rel.app_search(srv)
            self.assertTrue(rel.wait_for(lambda: srv.open_fds() == fds0, 5),
                            f"{srv.open_fds()} descriptors open, {fds0} at rest")
            peak = rel.hwm_kb(srv) - base
            note(f"{len(MALFORMED)} malformed headers: peak +{peak} kB")
            self.assertLess(peak, LyingLengthsTest.BOUND_KB)
            err = rel.stop_clean(self, srv)
        # Each was refused for what is wrong with it, never for its size
        # (all are within --max-header 65535).
        for name, port in ports.items():
            with self.subTest(name):
                why = [ln for ln in err.splitlines() if f"127.0.0.1:{port}: " in ln]
                self.assertEqual(len(why), 1, f"{name}: server log for port {port}: {why}")
                self.assertRegex(why[0], r"closing: header (is|key)")
                self.assertNotIn("larger than the configured limit", why[0])
        self.assertIn("not valid UTF-8 JSON", err)
        self.assertIn("missing a required key", err)
        self.assertIn("not a JSON object", err)


if __name__ == "__main__":
    import unittest
    unittest.main()
