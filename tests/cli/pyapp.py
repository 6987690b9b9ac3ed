#!/usr/bin/env python3
"""Python stdlib reference implementations of the tutorial's app-client and
app-server wire behaviour (selectors, json, struct), written for msgsock's
tests from the protocol in tutorial-programs.md.

    python3 pyapp.py client HOST PORT ACTION VALUE
    python3 pyapp.py server HOST PORT

The client prints the lines the guide's app-client prints (Starting
connection to ..., Sending ..., Received response ..., Got result: ...,
Closing connection to ...). The server answers one request per connection
and then closes it, as the guide's app-server does."""
import io
import json
import selectors
import socket
import struct
import sys
import threading

SEARCH = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}
REQUIRED = ("byteorder", "content-length", "content-type", "content-encoding")


def json_bytes(obj):
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def encode_message(content, content_type, content_encoding, byteorder=sys.byteorder):
    """proto-header (u16 big-endian) + JSON header + content."""
    header = {
        "byteorder": byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content),
    }
    hdr = json_bytes(header)
    return struct.pack(">H", len(hdr)) + hdr + content


def make_request(action, value):
    """The request the guide's app-client sends for ACTION VALUE."""
    if action == "search":
        return encode_message(json_bytes({"action": action, "value": value}), "text/json", "utf-8")
    return encode_message(action.encode() + value.encode(), "binary/custom-client-binary-type", "binary")


def make_response(header, content):
    """The guide's app-server answer to one decoded request."""
    if header["content-type"] == "text/json":
        req = json.loads(content.decode(header["content-encoding"]))
        action = req.get("action")
        if action == "search":
            value = req.get("value")
            answer = SEARCH.get(value) or f"No match for '{value}'."
            body = {"result": answer}
        else:
            body = {"result": f"Error: invalid action '{action}'."}
        return encode_message(json_bytes(body), "text/json", "utf-8")
    return encode_message(b"First 10 bytes of request: " + content[:10],
                          "binary/custom-server-binary-type", "binary")


class Decoder:
    """Incremental decoder of one message: feed bytes, then .done."""

    def __init__(self):
        self.buf = b""
        self.hdrlen = None
        self.header = None
        self.content = None

    @property
    def done(self):
        return self.content is not None

    def feed(self, data):
        self.buf += data
        if self.hdrlen is None and len(self.buf) >= 2:
            self.hdrlen = struct.unpack(">H", self.buf[:2])[0]
            self.buf = self.buf[2:]
        if self.hdrlen is not None and self.header is None and len(self.buf) >= self.hdrlen:
            self.header = json.loads(self.buf[:self.hdrlen].decode("utf-8"))
            self.buf = self.buf[self.hdrlen:]
            for key in REQUIRED:
                if key not in self.header:
                    raise ValueError(f"missing required header '{key}'")
        if self.header is not None and self.content is None:
            n = self.header["content-length"]
            if len(self.buf) >= n:
                self.content, self.buf = self.buf[:n], self.buf[n:]


class ClientConn:
    """One guide-style client connection driven by a selector."""

    def __init__(self, sel, sock, addr, request, out):
        self.sel, self.sock, self.addr, self.out = sel, sock, addr, out
        self.send_buf = request
        self.dec = Decoder()
        self.result = None

    def handle(self, mask):
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                data = None
            if data == b"":
                raise RuntimeError("Peer closed.")
            if data:
                self.dec.feed(data)
                if self.dec.done:
                    self.process()
                    return
        if mask & selectors.EVENT_WRITE and self.send_buf:
            print(f"Sending {self.send_buf!r} to {self.addr}", file=self.out)
            try:
                sent = self.sock.send(self.send_buf)
            except BlockingIOError:
                sent = 0
            self.send_buf = self.send_buf[sent:]
            if not self.send_buf:
                self.sel.modify(self.sock, selectors.EVENT_READ, data=self)

    def process(self):
        h, content = self.dec.header, self.dec.content
        if h["content-type"] == "text/json":
            resp = json.loads(content.decode(h["content-encoding"]))
            print(f"Received response {resp!r} from {self.addr}", file=self.out)
            print(f"Got result: {resp.get('result')}", file=self.out)
        else:
            resp = content
            print(f"Received {h['content-type']} response from {self.addr}", file=self.out)
            print(f"Got response: {resp!r}", file=self.out)
        self.result = (h, resp)
        self.close()

    def close(self):
        print(f"Closing connection to {self.addr}", file=self.out)
        self.sel.unregister(self.sock)
        self.sock.close()


def run_client(host, port, action, value, out=None, family=socket.AF_INET, timeout=10):
    """Runs the guide's app-client once; returns (header, response) where
    response is a dict for text/json and bytes otherwise."""
    out = out if out is not None else io.StringIO()
    addr = (host, int(port)) if family != socket.AF_UNIX else host
    print(f"Starting connection to {addr}", file=out)
    sel = selectors.DefaultSelector()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.connect_ex(addr)
    conn = ClientConn(sel, sock, addr, make_request(action, value), out)
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, data=conn)
    try:
        while sel.get_map():
            events = sel.select(timeout)
            if not events:
                raise TimeoutError("no answer")
            for key, mask in events:
                key.data.handle(mask)
    finally:
        if sel.get_map():
            conn.close()
        sel.close()
    return conn.result


class AppServer:
    """The guide's app-server in a thread: one request per connection,
    answered, then the connection is closed. mode changes what it does
    after reading a request: "answer", "close" (no answer), "half" (half
    an answer, then close), "silent" (keep the connection, never answer),
    "junk" (a malformed answer). requests collects the raw request bytes."""

    def __init__(self, family=socket.AF_INET, addr=("127.0.0.1", 0), mode="answer"):
        self.mode = mode
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen()
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()
        self.requests = []
        self.held = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, data=None)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    try:
                        conn, _ = self.sock.accept()
                    except OSError:
                        continue
                    conn.setblocking(False)
                    self.sel.register(conn, selectors.EVENT_READ, data=[Decoder(), b""])
                else:
                    self._read(key.fileobj, key.data)
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()

    def _read(self, conn, state):
        dec = state[0]
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            self.sel.unregister(conn)
            conn.close()
            return
        state[1] += data
        dec.feed(data)
        if not dec.done:
            return
        self.requests.append(state[1])
        self.sel.unregister(conn)
        if self.mode == "silent":
            self.held.append(conn)
            return
        conn.setblocking(True)
        reply = make_response(dec.header, dec.content)
        if self.mode == "answer":
            conn.sendall(reply)
        elif self.mode == "half":
            conn.sendall(reply[:len(reply) // 2])
        elif self.mode == "junk":
            hdr = b'{"byteorder": "little", "content-type": "text/json"}'
            conn.sendall(struct.pack(">H", len(hdr)) + hdr)
        conn.close()

    def close(self):
        self._stop.set()
        self.thread.join(5)
        for c in self.held:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv):
    if len(argv) == 6 and argv[1] == "client":
        try:
            run_client(argv[2], argv[3], argv[4], argv[5], out=sys.stdout)
        except Exception as e:  # the guide prints the error and exits
            print(f"Error: {e!r}")
            return 1
        return 0
    if len(argv) == 4 and argv[1] == "server":
        srv = AppServer(addr=(argv[2], int(argv[3])))
        print(f"Listening on {srv.addr}", flush=True)
        try:
            srv.thread.join()
        except KeyboardInterrupt:
            print("Caught keyboard interrupt, exiting")
        srv.close()
        return 0
    print(f"Usage: {argv[0]} client HOST PORT ACTION VALUE | server HOST PORT", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
