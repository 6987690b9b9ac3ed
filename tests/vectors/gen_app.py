#!/usr/bin/env python3
"""gen_app.py: app-protocol test vectors made with Python's own json and struct
modules, the way the tutorial's programs write messages. One JSON object per
line: name, stream (hex), optional config, the messages a decoder must return
(strings and content as hex) and the final status (an MS_E* name)."""
import json
import struct
import sys


def create_message(content_bytes, content_type, content_encoding, byteorder=sys.byteorder,
                   **dumps_args):
    header = {"byteorder": byteorder, "content-type": content_type,
              "content-encoding": content_encoding, "content-length": len(content_bytes)}
    dumps_args.setdefault("ensure_ascii", False)
    hdr = json.dumps(header, **dumps_args).encode("utf-8")
    return struct.pack(">H", len(hdr)) + hdr + content_bytes


def raw_message(header_text, content=b""):
    hdr = header_text if isinstance(header_text, bytes) else header_text.encode("utf-8")
    return struct.pack(">H", len(hdr)) + hdr + content


def expect(content, ctype, enc, byteorder=sys.byteorder):
    return {"byteorder": byteorder, "content-type": ctype, "content-encoding": enc,
            "content": content.hex()}


def text_json(obj):
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


VECTORS = []


def add(name, stream, messages, status, config=None):
    v = {"name": name, "stream": stream.hex(), "messages": messages, "status": status}
    if config:
        v["config"] = config
    VECTORS.append(v)


def good():
    answers = {"morpheus": "Follow the white rabbit. \U0001f430",
               "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
               "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0"}
    for value, answer in answers.items():
        req = text_json({"action": "search", "value": value})
        resp = text_json({"result": answer})
        add("search " + value.encode("unicode_escape").decode(),
            create_message(req, "text/json", "utf-8") + create_message(resp, "text/json", "utf-8"),
            [expect(req, "text/json", "utf-8"), expect(resp, "text/json", "utf-8")], "MS_EOF")
    binreq = b"foo" + b"bar"
    binresp = b"First 10 bytes of request: " + binreq[:10]
    add("binary request and response",
        create_message(binreq, "binary/custom-client-binary-type", "binary")
        + create_message(binresp, "binary/custom-server-binary-type", "binary"),
        [expect(binreq, "binary/custom-client-binary-type", "binary"),
         expect(binresp, "binary/custom-server-binary-type", "binary")], "MS_EOF")
    allbytes = bytes(range(256))
    add("binary content with every byte value",
        create_message(allbytes, "binary/custom-client-binary-type", "binary", "big"),
        [expect(allbytes, "binary/custom-client-binary-type", "binary", "big")], "MS_EOF")
    add("empty binary request", create_message(b"", "binary/custom-client-binary-type", "binary"),
        [expect(b"", "binary/custom-client-binary-type", "binary")], "MS_EOF")
    c = b"ab"
    hdr = {"content-length": 2, "x-extra": [1, {"y": None}], "content-encoding": "binary",
           "content-type": "t", "zz": 1.5, "byteorder": "little", "n": -7}
    add("extra keys, reordered", raw_message(json.dumps(hdr, ensure_ascii=False), c),
        [expect(c, "t", "binary", "little")], "MS_EOF")
    for label, args in (("compact separators", {"separators": (",", ":")}),
                        ("indented", {"indent": 4}), ("sorted keys", {"sort_keys": True}),
                        ("ascii escapes", {"ensure_ascii": True})):
        ct = "text/json; charset=\u00e9\u20ac\U0001f600"
        add(label, create_message(c, ct, "utf-8", **args), [expect(c, ct, "utf-8")], "MS_EOF")
    add("odd whitespace", raw_message(
        ' \r\n\t{ "byteorder" :"big" ,\n\t"content-type":"a\\"b\\\\c\\n\\u0001" ,'
        '"content-encoding" : "" , "content-length" :0 }\n\r\t ', b""),
        [expect(b"", 'a"b\\c\n\x01', "", "big")], "MS_EOF")
    for n in (127, 128, 65000):
        long_ct = "x" * n
        add("%d-byte content-type" % n, create_message(c, long_ct, "binary"),
            [expect(c, long_ct, "binary")], "MS_EOF")
    text = ('{"byteorder": "%s", "content-type": "%s", "content-encoding": "%s", "content-length": 2}'
            % ("b" * 5000, "\\u00e9" * 5000, "\u20ac" * 400)).encode("utf-8")
    add("escapes and raw UTF-8 in a 65535-byte header", raw_message(text.ljust(65535), c),
        [expect(c, "\u00e9" * 5000, "\u20ac" * 400, "b" * 5000)], "MS_EOF", {"max_header": 65535})
    add("escaped NUL in every string",
        raw_message('{"byteorder":"big\\u0000","content-type":"text/json\\u0000x",'
                    '"content-encoding":"\\u0000","content-length":2}', c),
        [expect(c, "text/json\0x", "\0", "big\0")], "MS_EOF")
    exact = create_message(b"0123456789", "t", "binary")
    hlen = struct.unpack(">H", exact[:2])[0]
    add("header and content exactly at their limits", exact, [expect(b"0123456789", "t", "binary")],
        "MS_EOF", {"max_header": hlen, "max_msg": 10})
    add("content-length zero, then a truncated message",
        create_message(b"", "t", "e") + create_message(b"abc", "t", "e")[:-1],
        [expect(b"", "t", "e")], "MS_ETRUNCATED")


def bad():
    def hdr_with(length_text):
        return ('{"byteorder": "little", "content-type": "text/json", '
                '"content-encoding": "utf-8", "content-length": %s}' % length_text)
    for text, status in (("-1", "MS_EBADLEN"), ('"12"', "MS_EBADLEN"), ("1.5", "MS_EBADLEN"),
                         ("1e3", "MS_EBADLEN"), ("true", "MS_EBADLEN"), ("null", "MS_EBADLEN"),
                         ("[1]", "MS_EBADLEN"), ("10.0", "MS_EBADLEN"),
                         (str(10 ** 12), "MS_ETOOLARGE"), (str(2 ** 64 + 5), "MS_ETOOLARGE"),
                         (str(2 ** 63), "MS_ETOOLARGE"), (str(-2 ** 64 - 5), "MS_EBADLEN"),
                         ("1e400", "MS_EBADLEN"), (str(2 ** 63 - 1), "MS_ETOOLARGE")):
        add("content-length " + text, raw_message(hdr_with(text), b"x"), [], status)
    ok = create_message(b"fine", "t", "e")
    add("11 bytes over a 10-byte limit, after a good message",
        ok + create_message(b"0123456789A", "t", "e"), [expect(b"fine", "t", "e")], "MS_ETOOLARGE",
        {"max_msg": 10})
    add("header length 65535, prefix only, max_header 16k", b"\xff\xff", [], "MS_EHDRSIZE",
        {"max_header": 16384})
    add("header length 65535, prefix only, default max_header", b"\xff\xff", [], "MS_ETRUNCATED")
    add("header one byte over max_header", create_message(b"", "t", "e"), [], "MS_EHDRSIZE",
        {"max_header": len(json.dumps({"byteorder": sys.byteorder, "content-type": "t",
                                       "content-encoding": "e", "content-length": 0})) - 1})
    for name, text, status in (
            ("missing byteorder", '{"content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRKEY"),
            ("missing content-length", '{"byteorder":"big","content-type":"t","content-encoding":"e"}', "MS_EHDRKEY"),
            ("key in another case", '{"Byteorder":"big","content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRKEY"),
            ("content-type a number", '{"byteorder":"big","content-type":5,"content-encoding":"e","content-length":1}', "MS_EHDRVALUE"),
            ("byteorder null", '{"byteorder":null,"content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRVALUE"),
            ("content-encoding an object", '{"byteorder":"big","content-type":"t","content-encoding":{},"content-length":1}', "MS_EHDRVALUE"),
            ("array", "[1, 2]", "MS_EHDRNOTOBJ"), ("string", '"abc"', "MS_EHDRNOTOBJ"),
            ("number", "5", "MS_EHDRNOTOBJ"), ("null", "null", "MS_EHDRNOTOBJ"),
            ("duplicate key", '{"byteorder":"big","byteorder":"little","content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRJSON"),
            ("trailing garbage", '{"byteorder":"big","content-type":"t","content-encoding":"e","content-length":1} x', "MS_EHDRJSON"),
            ("truncated JSON", '{"byteorder":"big"', "MS_EHDRJSON"),
            ("empty header", "", "MS_EHDRJSON"),
            ("huge number elsewhere", '{"x":1e999,"byteorder":"big","content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRJSON"),
            ("lone surrogate escape", '{"byteorder":"\\ud800","content-type":"t","content-encoding":"e","content-length":1}', "MS_EHDRJSON")):
        add(name, raw_message(text, b"x"), [], status)
    add("invalid UTF-8", raw_message(b'{"byteorder":"\xff","content-type":"t","content-encoding":"e","content-length":0}'), [], "MS_EHDRJSON")
    add("raw NUL byte", raw_message(b'{"byteorder":"a\x00","content-type":"t","content-encoding":"e","content-length":0}'), [], "MS_EHDRJSON")
    add("UTF-8 encoded surrogate", raw_message(b'{"byteorder":"\xed\xa0\x80","content-type":"t","content-encoding":"e","content-length":0}'), [], "MS_EHDRJSON")
    add("overlong UTF-8", raw_message(b'{"byteorder":"\xc0\xaf","content-type":"t","content-encoding":"e","content-length":0}'), [], "MS_EHDRJSON")


good()
bad()
for v in VECTORS:
    print(json.dumps(v))
