"""Shared helpers of the reliability suite (stdlib only): the server's
memory, descriptors, CPU and TCP states from /proc, abortive closes, the
application protocol, and the well-behaved client every case ends with."""
import json
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cli"))

import mstest  # noqa: E402
import pyapp  # noqa: E402
from mstest import MsTestCase, Server, recv_exact  # noqa: E402,F401

RABBIT = "Follow the white rabbit. \U0001f430"

TCP_STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
              6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
              11: "CLOSING"}


def sanitized():
    b = os.environ.get("MSGSOCK_BIN") or ""
    return "build-san" in b or "build-tsan" in b or os.environ.get("MSGSOCK_SLOW") == "1"


def note(text):
    """A figure for the log: one indented line on stderr."""
    sys.stderr.write(f"\n  {text} ")
    sys.stderr.flush()


def wait_for(cond, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def rss_kb(srv):
    return srv.status()["VmRSS"]


def hwm_kb(srv):
    return srv.status()["VmHWM"]


def rst_close(sock):
    """Closes with SO_LINGER 0: the kernel sends a reset, not a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def tcp_states(port):
    """States of the TCP sockets whose local port is port (both families)."""
    out = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    lport = int(fields[1].rsplit(":", 1)[1], 16)
                    if lport == port:
                        out.append(TCP_STATES.get(int(fields[3], 16), fields[3]))
        except FileNotFoundError:
            pass
    return out


def app_message(header, content=b""):
    """header: a dict (dumped as Python does) or raw JSON bytes."""
    hdr = header if isinstance(header, bytes) else pyapp.json_bytes(header)
    return struct.pack(">H", len(hdr)) + hdr + content


def app_header(length=0, content_type="text/json", **over):
    h = {"byteorder": "little", "content-type": content_type,
         "content-encoding": "utf-8" if content_type == "text/json" else "binary",
         "content-length": length}
    h.update(over)
    return h


def read_app_message(sock):
    """(header dict, content) or None at a clean EOF."""
    pre = recv_exact(sock, 2)
    if not pre:
        return None
    if len(pre) < 2:
        raise AssertionError("stream ended inside a proto-header")
    raw = recv_exact(sock, struct.unpack(">H", pre)[0])
    h = json.loads(raw.decode("utf-8"))
    content = recv_exact(sock, h["content-length"])
    if len(content) != h["content-length"]:
        raise AssertionError("stream ended inside content")
    return h, content


def closed_without_answer(sock, timeout=5):
    """True if the peer closes (FIN or reset) without sending a byte."""
    sock.settimeout(timeout)
    try:
        data = sock.recv(65536)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return data == b""


def app_search(srv, value="morpheus", timeout=5):
    """One well-behaved request; returns the seconds the answer took."""
    t0 = time.monotonic()
    with srv.connect(timeout) as s:
        s.sendall(pyapp.make_request("search", value))
        m = read_app_message(s)
    took = time.monotonic() - t0
    if m is None:
        raise AssertionError("the server closed a well-behaved client's connection")
    want = pyapp.SEARCH.get(value, f"No match for '{value}'.")
    if json.loads(m[1]) != {"result": want}:
        raise AssertionError(f"wrong answer {m[1]!r}")
    return took


def echo_check(srv, payload=b"still here", timeout=5):
    with srv.connect(timeout) as s:
        s.sendall(payload)
        got = recv_exact(s, len(payload))
    if got != payload:
        raise AssertionError(f"echo returned {got!r}")


def settled_fds(srv, check):
    """The server's descriptor count at rest, after one served client."""
    check(srv)
    wait_for(lambda: False, 0.2)
    n = srv.open_fds()
    wait_for(lambda: srv.open_fds() < n, 0.3)
    return srv.open_fds()


def app_server(*args, **kw):
    return Server("app-server", "--listen", "127.0.0.1:0", "--threads", "1", *args, **kw)


def echo_server(*args, **kw):
    return Server("multiconn-server", "--listen", "127.0.0.1:0", "--threads", "1", *args, **kw)


def port_of(srv):
    return srv.sockaddr[1]


def have_cmd(name):
    return subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True).returncode == 0
