#!/usr/bin/env python3
"""py_app.py: the Real Python guide's app-server protocol on Python selectors,
the baseline peer of `make bench`'s app scenarios.

Usage: py_app.py [HOST [PORT]]  (default 127.0.0.1 0). Non-blocking sockets,
TCP_NODELAY, backlog 511; prints `listening on ADDR` once ready; exits 0 on
SIGINT or SIGTERM.

Written in the guide's style (libserver.py: a Message object per connection
with _read, _write, process_protoheader, process_jsonheader, process_request,
create_response) and answering as its app-server does, byte for byte: a
text/json search gets {"result": ANSWER}, any other content-type gets
"First 10 bytes of request: " and the first 10 content bytes. Unlike the
guide it keeps a connection open after a response and serves the next
request, taking every complete request out of each recv (pipelining), so it
can be loaded at the same concurrency as msgsock app-server; it also answers a
binary request with empty content (the guide never does). A header length over
MAX_HEADER, a content-length over MAX_CONTENT or not a non-negative integer, a
header that is not a JSON object with the four keys: that connection is closed
and logged once on stderr."""
import json
import selectors
import signal
import socket
import struct
import sys

MAX_HEADER = 16 * 1024           # msgsock app-server's default --max-header
MAX_CONTENT = 16 * 1024 * 1024   # and its default --max-msg
OUT_HIGH = 1024 * 1024           # queued reply bytes that pause reading
RECV_SIZE = 65536
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")

request_search = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


class BadRequest(Exception):
    pass


class Message:
    """One connection's state: its buffers and the request being decoded."""

    def __init__(self, selector, sock, addr):
        self.selector = selector
        self.sock = sock
        self.addr = addr
        self._recv_buffer = bytearray()
        self._send_buffer = bytearray()
        self._mask = selectors.EVENT_READ
        self._peer_done = False  # the peer shut down its side: answer, then close
        self._reset()

    def _reset(self):
        self._jsonheader_len = None
        self.jsonheader = None
        self.request = None

    def _set_selector_events_mask(self, mask):
        if mask != self._mask:
            self._mask = mask
            self.selector.modify(self.sock, mask, data=self)

    def _read(self):
        try:
            data = self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            if not self._send_buffer:
                raise ConnectionError("peer closed")
            self._peer_done = True
            return
        self._recv_buffer += data

    def _write(self):
        if self._send_buffer:
            try:
                sent = self.sock.send(self._send_buffer)
            except (BlockingIOError, InterruptedError):
                sent = 0
            del self._send_buffer[:sent]
        # A peer that does not read its replies is not read from until it does.
        if self._peer_done:
            if not self._send_buffer:
                raise ConnectionError("peer closed, every answer sent")
            self._set_selector_events_mask(selectors.EVENT_WRITE)
        elif not self._send_buffer:
            self._set_selector_events_mask(selectors.EVENT_READ)
        elif len(self._send_buffer) >= OUT_HIGH:
            self._set_selector_events_mask(selectors.EVENT_WRITE)
        else:
            self._set_selector_events_mask(selectors.EVENT_READ | selectors.EVENT_WRITE)

    def _json_encode(self, obj, encoding):
        return json.dumps(obj, ensure_ascii=False).encode(encoding)

    def _json_decode(self, json_bytes, encoding):
        return json.loads(json_bytes.decode(encoding))

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
            self._write()

    def read(self):
        self._read()
        # Every complete request in the buffer is answered now (pipelining).
        while True:
            if self._jsonheader_len is None:
                self.process_protoheader()
            if self._jsonheader_len is not None and self.jsonheader is None:
                self.process_jsonheader()
            if self.jsonheader is not None and self.request is None:
                self.process_request()
            if self.request is None:
                break
            self.create_response()
            self._reset()
        self._write()

    def process_protoheader(self):
        hdrlen = 2
        if len(self._recv_buffer) >= hdrlen:
            (n,) = struct.unpack_from(">H", self._recv_buffer)
            if n > MAX_HEADER:
                raise BadRequest(f"JSON header of {n} bytes (at most {MAX_HEADER})")
            self._jsonheader_len = n
            del self._recv_buffer[:hdrlen]

    def process_jsonheader(self):
        hdrlen = self._jsonheader_len
        if len(self._recv_buffer) >= hdrlen:
            try:
                header = self._json_decode(bytes(self._recv_buffer[:hdrlen]), "utf-8")
            except ValueError as e:
                raise BadRequest(f"JSON header: {e}")
            if not isinstance(header, dict):
                raise BadRequest("JSON header is not an object")
            for reqhdr in REQUIRED:
                if reqhdr not in header:
                    raise BadRequest(f"missing required header '{reqhdr}'")
            n = header["content-length"]
            if type(n) is not int or n < 0:
                raise BadRequest(f"content-length {n!r} is not a non-negative integer")
            if n > MAX_CONTENT:
                raise BadRequest(f"content-length {n} (at most {MAX_CONTENT})")
            if not isinstance(header["content-type"], str):
                raise BadRequest("content-type is not a string")
            self.jsonheader = header
            del self._recv_buffer[:hdrlen]

    def process_request(self):
        content_len = self.jsonheader["content-length"]
        if len(self._recv_buffer) < content_len:
            return
        data = bytes(self._recv_buffer[:content_len])
        del self._recv_buffer[:content_len]
        if self.jsonheader["content-type"] == "text/json":
            try:
                request = self._json_decode(data, self.jsonheader["content-encoding"])
            except (ValueError, LookupError, TypeError) as e:
                raise BadRequest(f"text/json content: {e}")
            if not isinstance(request, dict):
                raise BadRequest("text/json content is not an object")
            self.request = request
        else:
            self.request = data

    def create_response(self):
        if self.jsonheader["content-type"] == "text/json":
            response = self._create_response_json_content()
        else:
            response = self._create_response_binary_content()
        self._send_buffer += self._create_message(**response)

    def close(self):
        try:
            self.selector.unregister(self.sock)
        except (KeyError, ValueError):
            pass
        self.sock.close()


def fmt_addr(addr):
    h, p = addr[:2]
    return f"{'[' + h + ']' if ':' in h else h}:{p}"


def accept_wrapper(sel, lsock):
    for _ in range(64):
        try:
            conn, addr = lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # EMFILE and the like: try again on the next event
            print(f"py_app: accept: {e}", file=sys.stderr, flush=True)
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(conn, selectors.EVENT_READ, data=Message(sel, conn, addr))


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(511)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)
    print(f"listening on {fmt_addr(lsock.getsockname())}", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        try:
            events = sel.select(timeout=0.5)
        except InterruptedError:
            continue
        for key, mask in events:
            if key.data is None:
                accept_wrapper(sel, key.fileobj)
                continue
            message = key.data
            try:
                message.process_events(mask)
            except BadRequest as e:
                print(f"{fmt_addr(message.addr)}: closing: {e}", file=sys.stderr, flush=True)
                message.close()
            except OSError:  # the peer closed or reset
                message.close()
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    sel.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
