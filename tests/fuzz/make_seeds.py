#!/usr/bin/env python3
"""make_seeds.py: writes the seed corpora tests/fuzz/corpus/<target>/ (run from the repo root).
Each seed is: selector byte, the target's config bytes, then a stream."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def app_msg(hdr, content, raw_json=None):
    j = raw_json if raw_json is not None else json.dumps(hdr, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(j)) + j + content


def std_hdr(content, ctype="text/json", enc="utf-8", order="little"):
    return {"byteorder": order, "content-type": ctype, "content-encoding": enc,
            "content-length": len(content)}


def seeds():
    s = {}
    s["raw"] = [b"\x00\x00Hello, world", b"\x01\x05" + b"x" * 40, b"\x02\x00"]
    s["fixed"] = [b"\x00\x04abcdefgh", b"\x03\x00z", b"\x01\x07" + b"12345678" * 3 + b"123"]
    s["delim"] = [b"\x00\x00\x00one\ntwo\n\nthree\n", b"\x01\x01\x00GET /\r\nHost: x\r\n\r\n",
                  b"\x02\x02\x05xaaaxaa", b"\x03\x03\x04aaabaab", b"\x00\x04\x03abababab",
                  b"\x01\x05\x02a\x00bb\x00ccc\x00", b"\x02\x06\x00h: 1\r\n\r\nbody",
                  b"\x03\x07\x06abcabcabdabcabd", b"\x00\x00\x03toolong\n"]
    s["len16"] = [b"\x00\x00\x00\x05hello\x00\x00\x00\x01x", b"\x01\x04\x00\x05hello",
                  b"\x02\x00\xff\xff"]
    s["len32"] = [b"\x00\x00\x00\x00\x00\x03abc\x00\x00\x00\x00", b"\x03\x10\xff\xff\xff\xff"]
    s["len64"] = [b"\x00\x00" + struct.pack(">Q", 3) + b"abc" + struct.pack(">Q", 0),
                  b"\x01\x00" + b"\xff" * 8, b"\x02\x08" + struct.pack(">Q", 9) + b"123456789"]
    s["decimal"] = [b"\x00\x04\x0000005hello00000", b"\x01\x04\x0400012abc",
                    b"\x02\x01\x0012x3", b"\x03\x13\x00" + b"9" * 20, b"\x00\x04\x00000a1"]
    s["close"] = [b"\x00\x00everything until the end", b"\x01\x01" + b"y" * 10, b"\x02\x00"]
    answers = ["Follow the white rabbit. \U0001f430", "In the caves beneath the Misty Mountains. \U0001f48d",
               "\U0001f43e Playing ball! \U0001f3d0"]
    app = []
    for i, a in enumerate(answers):
        c = json.dumps({"result": a}, ensure_ascii=False).encode("utf-8")
        app.append(bytes([i, 0, 0]) + app_msg(std_hdr(c), c))
    req = json.dumps({"action": "search", "value": "\U0001f436"}, ensure_ascii=False).encode()
    app.append(b"\x03\x00\x00" + app_msg(std_hdr(req), req) + app_msg(std_hdr(b"foobar", "binary/custom-client-binary-type", "binary"), b"foobar"))
    app.append(b"\x00\x00\x00" + app_msg(None, b"ab", b'{"content-length":2,"x":[1,{"y":null}],"content-encoding":"binary","content-type":"t","byteorder":"big"}'))
    app.append(b"\x01\x00\x00" + app_msg(None, b"", b' \n{ "byteorder" :"little" ,\t"content-type":"a\\u00e9\\"\\\\\\n", "content-encoding":"", "content-length":0 } \r\n'))
    for bad in [b'{"byteorder":"little","content-type":"t","content-encoding":"e","content-length":1e3}',
                b'{"byteorder":"little","content-type":"t","content-encoding":"e","content-length":-1}',
                b'{"byteorder":"little","content-type":"t","content-encoding":"e","content-length":"12"}',
                b'{"byteorder":"little","content-type":"t","content-encoding":"e","content-length":18446744073709551621}',
                b'{"byteorder":"little","content-type":"t","content-encoding":"e","content-length":1000000000000}',
                b'{"byteorder":"little","content-type":1,"content-encoding":"e","content-length":1}',
                b'{"byteorder":"little","content-encoding":"e","content-length":1}',
                b'{"a":1,"a":2}', b'[1]', b'"x"', b'{"a":"\\u0000"}', b'{"a":"\xff"}', b'']:
        app.append(b"\x02\x00\x00" + app_msg(None, b"x", bad))
    app.append(b"\x03\x10\x00\xff\xff")
    # A 60 KiB header (limit 65535: d[1] = 0xff), fed in chunks of up to 17
    # bytes, then a small message: the large-header path end to end.
    big = std_hdr(b"0123456789")
    big["x-padding"] = ""
    pad = 60 * 1024 - len(json.dumps(big).encode())
    big["x-padding"] = "".join(chr(ord("a") + i % 26) for i in range(pad))
    app.append(b"\x02\xff\x00" + app_msg(big, b"0123456789") + app_msg(std_hdr(b"ok"), b"ok"))
    s["app"] = app
    return s


def main():
    for target, items in seeds().items():
        d = os.path.join(ROOT, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, f"seed-{i:02d}"), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
