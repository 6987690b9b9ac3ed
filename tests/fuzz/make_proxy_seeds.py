#!/usr/bin/env python3
"""make_proxy_seeds.py: writes the seed corpus tests/fuzz/corpus/proxy/ (run from
the repo root). Each seed is: a feeding byte, a config byte (see fuzz_proxy.c),
then a stream: the headers HAProxy wrote (tests/vectors/proxy/*.bin) and
hand-made valid and invalid ones."""
import glob
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "proxy")
VECTORS = os.path.join(HERE, "..", "vectors", "proxy")
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd, fam, block):
    return SIG + bytes([ver_cmd, fam]) + struct.pack(">H", len(block)) + block


def tlv(t, value):
    return bytes([t]) + struct.pack(">H", len(value)) + value


def streams():
    s = []
    for path in sorted(glob.glob(os.path.join(VECTORS, "*.bin"))):
        with open(path, "rb") as f:
            s.append(f.read())
    ffff = ":".join(["ffff"] * 8)
    s += [b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\nGET /",
          f"PROXY TCP6 {ffff} {ffff} 65535 65535\r\n".encode(),
          f"PROXY UNKNOWN {ffff} {ffff} 65535 65535\r\n".encode(),
          b"PROXY TCP6 ::ffff:10.0.0.1 2001:DB8::1 0 80\r\n",
          b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
          b"PROXY UNKNOWN " + b"x" * 100, b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
          b"GET / HTTP/1.1\r\n\r\n", b"\x00\x5b{\"byteorder\": \"little\"}"]
    a4 = bytes([192, 0, 2, 1, 198, 51, 100, 7]) + struct.pack(">HH", 40000, 443)
    a6 = bytes(15) + b"\x01" + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02" + struct.pack(">HH", 1, 2)
    unix = b"/run/app.sock".ljust(108, b"\x00") + b"\x00abstract".ljust(108, b"\x00")
    s += [v2(0x21, 0x11, a4), v2(0x21, 0x12, a4), v2(0x21, 0x22, a6), v2(0x21, 0x31, unix),
          v2(0x21, 0x11, a4 + tlv(1, b"h2") + tlv(2, b"example.com") + tlv(4, b"")),
          v2(0x20, 0x00, b""), v2(0x20, 0x00, tlv(5, b"id")), v2(0x21, 0x00, b""),
          v2(0x11, 0x11, a4), v2(0x22, 0x11, a4), v2(0x21, 0x13, a4), v2(0x21, 0x11, a4[:11]),
          v2(0x21, 0x11, a4 + b"\x01\x00\x05ab"), v2(0x21, 0x11, a4 + tlv(3, b"abc")),
          SIG + b"\x21\x11\xff\xff"]
    return s


def main():
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "seed-*")):
        os.remove(old)
    for i, stream in enumerate(streams()):
        feed = (0, 1, 3, 7, 16)[i % 5]
        cfg = (0, 1, 2, 63 << 2, 27 << 2)[i % 5]  # both, v1, v2, largest bound, 232
        with open(os.path.join(OUT, f"seed-{i:02d}"), "wb") as f:
            f.write(bytes([feed, cfg]) + stream)


if __name__ == "__main__":
    main()
