#!/usr/bin/env python3
"""check_app.py: reads app-protocol messages on stdin as the tutorial's Python
programs do (struct '>H', json.loads of UTF-8) and prints one JSON line per
message: its header values, content (hex), and whether the JSON header bytes
are exactly what json.dumps(header, ensure_ascii=False) writes. Exits 1 on
anything the tutorial's reader would reject, or on trailing bytes."""
import json
import struct
import sys

REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")


def main():
    data = sys.stdin.buffer.read()
    pos = 0
    while pos < len(data):
        if len(data) - pos < 2:
            sys.exit("truncated proto-header")
        (hlen,) = struct.unpack(">H", data[pos:pos + 2])
        raw = data[pos + 2:pos + 2 + hlen]
        if len(raw) != hlen:
            sys.exit("truncated JSON header")
        header = json.loads(raw.decode("utf-8"))
        for key in REQUIRED:
            if key not in header:
                sys.exit(f"missing required header {key!r}")
        clen = header["content-length"]
        if type(clen) is not int or clen < 0:
            sys.exit("bad content-length")
        start = pos + 2 + hlen
        content = data[start:start + clen]
        if len(content) != clen:
            sys.exit("truncated content")
        same = json.dumps(header, ensure_ascii=False).encode("utf-8") == raw
        print(json.dumps({"byteorder": header["byteorder"], "content-type": header["content-type"],
                          "content-encoding": header["content-encoding"],
                          "content-length": clen, "content": content.hex(), "same_bytes": same}))
        pos = start + clen


if __name__ == "__main__":
    main()
