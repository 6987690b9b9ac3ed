"""Shared helpers of the reliability suite (stdlib only): the server's
memory, descriptors, CPU and TCP states from /proc, abortive closes, the
application protocol, the well-behaved client every case ends with, and the
clean stop every case ends on (exit status, sanitizer and memcheck reports)."""
import glob
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "cli"))
sys.path.insert(0, os.path.join(HERE, ".."))

import mstest  # noqa: E402
import pyapp  # noqa: E402
import runlib  # noqa: E402
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


def wait_until(cond, timeout, what):
    """Polls cond until it holds; fails with what after timeout seconds."""
    if not wait_for(cond, timeout):
        raise AssertionError(f"not reached within {timeout} s: {what}")


def memcheck_log(pid):
    """The memcheck log of process pid when run.py --valgrind runs this."""
    d = os.environ.get("MSGSOCK_VG_LOGDIR")
    return os.path.join(d, f"vg.{pid}.log") if d else None


def memcheck_problem(text):
    """Why a memcheck log fails, or None: errors, leaks, or no ERROR
    SUMMARY at all (the process never reached its exit: SIGKILL)."""
    if "ERROR SUMMARY:" not in text:
        return "no ERROR SUMMARY: the process was killed before memcheck could check it"
    if "ERROR SUMMARY: 0 errors" not in text:
        return "memcheck found errors"
    if "definitely lost: " in text and "definitely lost: 0 bytes" not in text:
        return "memcheck found a leak"
    return None


def stop_clean(test, srv, expect=0):
    """Stops srv with SIGTERM and requires exit status expect, no sanitizer
    report in its stderr and, under memcheck, a clean ERROR SUMMARY."""
    rc = srv.stop()
    err = srv.stderr_text()
    test.assertEqual(rc, expect, f"{srv.args} exited {rc} after SIGTERM: {err[-2000:]}")
    report = runlib.sanitizer_report(err)
    test.assertIsNone(report, f"sanitizer report in {srv.args}'s stderr: {err[-4000:]}")
    log = memcheck_log(srv.pid)
    if log:
        with open(log, errors="replace") as f:
            text = f.read()
        test.assertIsNone(memcheck_problem(text), f"{log}: {text[-4000:]}")
    return err


def mark_killed(pid, why):
    """Records why pid is SIGKILLed next to its memcheck log (memcheck
    then writes no summary); run.py excuses that log."""
    log = memcheck_log(pid)
    if log:
        with open(log[:-len(".log")] + ".killed", "w") as f:
            f.write(why)


def kill_on_purpose(srv, why):
    """SIGKILLs srv where a test must, saying why."""
    mark_killed(srv.pid, why)
    try:
        srv.kill(reason=why)
    except TypeError:  # an mstest.Server.kill that takes no reason
        srv.kill()


def memcheck_findings(logdir):
    """[(log, problem, text)] over every process memcheck ran, except those a
    test killed on purpose (their reason is the problem's excuse)."""
    out = []
    for log in sorted(glob.glob(os.path.join(logdir, "vg.*.log"))):
        with open(log, errors="replace") as f:
            text = f.read()
        problem = memcheck_problem(text)
        if problem and not os.path.exists(log[:-len(".log")] + ".killed"):
            cmd = next((ln.split("Command: ", 1)[1] for ln in text.splitlines()
                        if "Command: " in ln), "?")
            out.append((log, f"{problem} ({cmd})", text))
    return out


def server_sockets(srv):
    """[(state, rx_queue, tx_queue)] of the server's own TCP sockets other
    than its listeners, read in the server's network namespace: an
    accepted connection is here until the server closes its descriptor."""
    inodes = set()
    for fd in os.listdir(f"/proc/{srv.pid}/fd"):
        try:
            link = os.readlink(f"/proc/{srv.pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for path in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{srv.pid}/net/{path}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    state = TCP_STATES.get(int(fields[3], 16), fields[3])
                    if fields[9] in inodes and state != "LISTEN":
                        tx, rx = (int(x, 16) for x in fields[4].split(":"))
                        out.append((state, rx, tx))
        except FileNotFoundError:
            pass
    return out


QUEUED = 1 << 20  # a megabyte: far more than a reading peer leaves unacknowledged


def push_until_blocked(sock, data):
    """Sends data on sock (made non-blocking) until all is sent or sock
    stays unwritable for a while (the peer stopped reading); returns the
    bytes sent."""
    sock.setblocking(False)
    quiet = 2.0 if sanitized() else 0.5
    sent = 0
    while sent < len(data) and select.select([], [sock], [], quiet)[1]:
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            pass
    return sent


def wait_queued(srv, at_least=QUEUED, timeout=30):
    """Waits until the server has at_least bytes of output unacknowledged
    on one connection: a peer that does not read holds them up."""
    wait_until(lambda: any(tx >= at_least for _, _, tx in server_sockets(srv)), timeout,
               f"the server has {at_least} bytes queued for a peer that does not read")


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


def peer_gone(srv, peer_port, timeout=150):
    """Waits until the server's kernel holds no connection from peer_port
    (the peer reset it); returns the seconds that took. A reset whose
    sequence number is not exactly the next one the server expects (the
    peer had sent data the full receive queue dropped) is answered with a
    challenge ACK, rate-limited per socket (tcp_invalid_ratelimit, 500 ms);
    when that ACK is skipped the kernel learns of the reset only at its next
    zero-window probe, and those back off (up to 120 s) while the peer's
    window stays shut. Until then the server cannot know either."""
    def gone():
        for path in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{srv.pid}/net/{path}") as f:
                    next(f)
                    for line in f:
                        fields = line.split()
                        if (int(fields[2].rsplit(":", 1)[1], 16) == peer_port and
                                TCP_STATES.get(int(fields[3], 16)) != "LISTEN"):
                            return False
            except FileNotFoundError:
                pass
        return True
    t0 = time.monotonic()
    wait_until(gone, timeout, f"the server's kernel drops the connection from port {peer_port}")
    return time.monotonic() - t0


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
    """The server's descriptor count at rest, after one served client: once
    the server has closed that client's connection."""
    check(srv)
    wait_until(lambda: not server_sockets(srv), 10, "the server closes the served connection")
    return srv.open_fds()


def app_server(*args, **kw):
    return Server("app-server", "--listen", "127.0.0.1:0", "--threads", "1", *args, **kw)


def echo_server(*args, **kw):
    return Server("multiconn-server", "--listen", "127.0.0.1:0", "--threads", "1", *args, **kw)


def port_of(srv):
    return srv.sockaddr[1]


def have_cmd(name):
    return subprocess.run(["sh", "-c", f"command -v {name}"], capture_output=True).returncode == 0
