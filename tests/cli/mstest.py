"""Shared helpers for the black-box tests of the msgsock command (stdlib only).

Servers are started on port 0 or a fresh Unix socket path; the test reads the
`listening on ADDR` line to learn where they are."""
import glob
import os
import re
import selectors
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

BIN = os.environ.get("MSGSOCK_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "msgsock")
# BIN as it was at import: subclasses that run the server through a
# launcher that execs it (prlimit, ip netns exec) swap BIN meanwhile.
_MSGSOCK_BIN = BIN


def wait_for(predicate, timeout, what, step=0.01):
    """Polls predicate until it returns something true, at most timeout
    seconds; returns that value or fails saying what was waited for."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(step)


# Reports the sanitizers and memcheck write; any one of them is a failure.
_REPORT_LINES = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 "WARNING: ThreadSanitizer")
_VG_LINE = re.compile(r"^==\d+== ", re.M)
_VG_SUMMARY = re.compile(r"ERROR SUMMARY: ([\d,]+) errors")
_VG_LOST = re.compile(r"(definitely|possibly) lost: ([\d,]+) bytes")


def report_findings(text, memcheck=False, ended_cleanly=True):
    """The sanitizer and memcheck findings in a process's stderr or log, as
    a list of lines. memcheck: the text is (or includes) memcheck's output,
    so a process that ended by itself or on SIGTERM/SIGINT must have
    written its ERROR SUMMARY."""
    found = [ln.strip() for ln in text.splitlines() if any(r in ln for r in _REPORT_LINES)]
    found += [m.group(0) for m in _VG_SUMMARY.finditer(text) if int(m.group(1).replace(",", ""))]
    found += [m.group(0) for m in _VG_LOST.finditer(text) if int(m.group(2).replace(",", ""))]
    memcheck = memcheck or bool(_VG_LINE.search(text))
    if memcheck and ended_cleanly and not _VG_SUMMARY.search(text):
        found.append("memcheck wrote no ERROR SUMMARY (the process did not end normally)")
    return found


def memcheck_logs(pid):
    """Under `tests/reliability/run.py --valgrind` (MSGSOCK_MEMCHECK=1, every
    msgsock process logs to vg.PID.log beside the wrapper): the log of pid
    and those of the processes it forked. None when not under memcheck."""
    if os.environ.get("MSGSOCK_MEMCHECK") != "1":
        return None
    logdir = os.path.dirname(os.path.abspath(_MSGSOCK_BIN))
    own = os.path.join(logdir, f"vg.{pid}.log")
    logs = [own]
    for path in glob.glob(os.path.join(logdir, "vg.*.log")):
        if path == own:
            continue
        with open(path, errors="replace") as f:
            if f"== Parent PID: {pid}\n" in f.read(2048):
                logs.append(path)
    out = []
    for path in logs:
        try:
            with open(path, errors="replace") as f:
                out.append((path, f.read()))
        except FileNotFoundError:
            out.append((path, ""))
    return out


def check_reports(what, pid, stderr_text, ended_cleanly=True):
    """Fails if stderr_text or pid's memcheck logs hold a finding."""
    found = report_findings(stderr_text, ended_cleanly=ended_cleanly)
    for path, text in memcheck_logs(pid) or ():
        found += [f"{path}: {f}" for f in report_findings(text, True, ended_cleanly)]
    if found:
        raise AssertionError(f"{what}: sanitizer/memcheck findings:\n  " + "\n  ".join(found)
                             + "\n--- stderr (last 4000 chars) ---\n" + stderr_text[-4000:])


def parse_addr(text):
    """'127.0.0.1:5', '[::1]:5', 'unix:/p', 'unix:@n' -> (family, sockaddr)."""
    if text.startswith("unix:@"):
        return socket.AF_UNIX, "\0" + text[6:]
    if text.startswith("unix:"):
        return socket.AF_UNIX, text[5:]
    m = re.fullmatch(r"\[(.*)\]:(\d+)", text)
    if m:
        return socket.AF_INET6, (m.group(1), int(m.group(2)))
    host, port = text.rsplit(":", 1)
    return socket.AF_INET, (host, int(port))


def fresh_unix_path(tag="ms"):
    d = tempfile.mkdtemp(prefix="msgsock-test-")
    return os.path.join(d, tag + ".sock")


class Server:
    """A msgsock server subprocess. Use as a context manager: leaving the
    block stops it with SIGTERM (if still running) and fails unless it
    exited 0, or as the test declared with expect_exit() or kill(reason).
    Its stderr is drained by a thread as it comes (stderr_text() is live),
    and scanned for sanitizer and memcheck reports when it ends."""

    # class-level defaults: subclasses may set up proc themselves
    _reader = None
    _stop_sig = None
    _kill_reason = None
    _expected = 0
    _expect_why = None
    _log_path = None
    _checked = False

    def __init__(self, *args, ready_timeout=10, env=None, stderr=subprocess.PIPE):
        self.args = [BIN] + list(args)
        e = dict(os.environ)
        if env:
            e.update(env)
        self._stderr = b""
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=stderr, env=e)
        if self.proc.stderr is not None:
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()
        elif hasattr(stderr, "name") and isinstance(stderr.name, str):
            self._log_path = stderr.name
        self.addr_text = self._read_listening(ready_timeout)
        self.family, self.sockaddr = parse_addr(self.addr_text)
        if self.expects_ring():
            try:
                wait_for(lambda: ring_fds(self.pid) >= 1, 5,
                         f"{self.args} (MSGSOCK_EXPECT_RING=1) to hold an io_uring instance")
            except AssertionError:
                self.kill(reason="it runs without the ring it must have")
                raise

    def expects_ring(self):
        """MSGSOCK_EXPECT_RING=1 (set by test_uring's suites on io_uring):
        an event-model msgsock server must run its loop on a ring."""
        if os.environ.get("MSGSOCK_EXPECT_RING") != "1" or _MSGSOCK_BIN not in self.args:
            return False
        opt = dict(zip(self.args, self.args[1:]))
        return (opt.get("--model", "event") == "event"
                and opt.get("--backend", "io_uring") == "io_uring")

    def _drain(self):
        fd = self.proc.stderr.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            with self._lock:
                self._stderr += chunk

    def _read_listening(self, timeout):
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                self.kill(reason="no 'listening on' line")
                raise AssertionError(f"{self.args}: no 'listening on' line within {timeout}s: "
                                     f"{self.stderr_text()[-4000:]}")
            ch = os.read(self.proc.stdout.fileno(), 1)
            if not ch:
                self.proc.wait()
                self._collect()
                raise AssertionError(f"{self.args} exited {self.proc.returncode} before listening: "
                                     f"{self.stderr_text()}")
            line += ch
        sel.close()
        text = line.decode().strip()
        if not text.startswith("listening on "):
            self.kill(reason="unexpected first line")
            raise AssertionError(f"unexpected first line {text!r}")
        return text[len("listening on "):]

    @property
    def pid(self):
        return self.proc.pid

    def connect(self, timeout=10):
        s = socket.socket(self.family, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.sockaddr)
        return s

    def host_port(self):
        """(host, port) strings for commands that take HOST PORT."""
        if self.family == socket.AF_UNIX:
            raise ValueError("unix address has no host/port")
        return self.sockaddr[0], str(self.sockaddr[1])

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and waits; returns the exit status. Fails on a
        sanitizer or memcheck report. Leaving the with block then checks
        the status is 0 unless the test said otherwise (expect_exit)."""
        if self.proc.poll() is None:
            self._stop_sig = sig
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(reason=f"did not exit within {timeout}s of signal {sig}")
                raise AssertionError(f"{self.args} did not exit within {timeout}s of signal {sig}: "
                                     f"{self.stderr_text()[-4000:]}")
        self._collect()
        self._check_reports()
        return self.proc.returncode

    def expect_exit(self, status, why):
        """Declares the status this server is to end with (a test that
        checks it itself, e.g. a failure exit)."""
        self._expected = status
        self._expect_why = why

    def _collect(self):
        if self._reader is not None:
            # a forked child that outlives the server would keep the pipe open
            self._reader.join(10)
            if self._reader.is_alive():
                raise AssertionError(f"{self.args}: stderr still open 10 s after the server "
                                     "exited (a child process outlived it)")
            self._reader = None
        if self.proc.stderr and not self.proc.stderr.closed:
            if self._reader is None and not hasattr(self, "_lock"):
                self._stderr += self.proc.stderr.read()  # a subclass without the drain thread
            self.proc.stderr.close()
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def stderr_text(self):
        """What the server wrote on stderr so far (or to its log file)."""
        if self._log_path:
            with open(self._log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        lock = getattr(self, "_lock", None)
        if lock is None:
            return self._stderr.decode("utf-8", "replace")
        with lock:
            return self._stderr.decode("utf-8", "replace")

    def _check_reports(self):
        if self._checked:
            return
        self._checked = True
        if _MSGSOCK_BIN not in self.args:
            return  # not a msgsock process (a subclass running a peer)
        check_reports(f"{self.args} (pid {self.pid})", self.pid, self.stderr_text(),
                      ended_cleanly=self._kill_reason is None)

    def kill(self, reason=None):
        """SIGKILLs the server. reason: why the test must kill it rather
        than stop it (recorded; leaving the with block then accepts the
        kill instead of requiring exit status 0)."""
        if reason is not None and self._kill_reason is None:
            self._kill_reason = reason
        if self.proc.poll() is None:
            if self._kill_reason is None:
                self._kill_reason = "killed without a reason"
            self.proc.kill()
            self.proc.wait()
        self._collect()

    def check_ended(self):
        """Stops the server with SIGTERM if it still runs, then fails unless
        it ended as expected: exit status 0 (or the expect_exit status), or
        SIGKILLed by kill(reason=...). Also fails on sanitizer reports.
        The process is gone afterwards whatever happened."""
        try:
            if self.proc.poll() is None:
                self.stop()
            else:
                self._collect()
                self._check_reports()
            if self._kill_reason is not None:
                if self._kill_reason == "killed without a reason":
                    raise AssertionError(f"{self.args} was killed without a reason given")
                return
            rc = self.proc.returncode
            if rc != self._expected:
                how = (f"after {signal.Signals(self._stop_sig).name}" if self._stop_sig
                       else "by itself")
                want = f"{self._expected}" + (f" ({self._expect_why})" if self._expect_why else "")
                raise AssertionError(f"{self.args} exited {rc} {how}, expected {want}; stderr:\n"
                                     + self.stderr_text()[-4000:])
        finally:
            if self.proc.poll() is None:
                self.kill(reason="cleanup after a failed stop")

    def status(self):
        """/proc/PID/status as a dict of ints (kB) where numeric."""
        out = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                v = v.strip().split()
                if v and v[0].isdigit():
                    out[k] = int(v[0])
        return out

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def cpu_ticks(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.check_ended()
        except AssertionError as e:
            if exc_type is None:
                raise
            # the test body already failed: keep its exception, add this one
            exc.add_note(f"and at server stop: {e}")


def run(*args, timeout=60, input=None, env=None):
    """Runs msgsock with args; returns CompletedProcess with bytes output.
    Fails on a sanitizer or memcheck report from it."""
    e = dict(os.environ)
    if env:
        e.update(env)
    cmd = [BIN] + list(args)
    with subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else None,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    if _MSGSOCK_BIN in cmd:
        check_reports(f"{cmd} (pid {proc.pid})", proc.pid, err.decode("utf-8", "replace"))
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def unread_bytes(sock):
    """How many bytes sent on the TCP socket sock sit in its peer's receive
    queue, not yet read by the peer (from /proc/net/tcp, tcp6); None while
    the peer's end is not found (e.g. not accepted yet)."""
    def hexaddr(addr):
        ip = socket.inet_pton(sock.family, addr[0])
        if sock.family == socket.AF_INET6:
            ip = b"".join(ip[i:i + 4][::-1] for i in range(0, 16, 4))
        else:
            ip = ip[::-1]
        return f"{ip.hex().upper()}:{addr[1]:04X}"
    local, remote = hexaddr(sock.getpeername()), hexaddr(sock.getsockname())
    name = "tcp6" if sock.family == socket.AF_INET6 else "tcp"
    with open(f"/proc/net/{name}") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == local and fields[2] == remote and fields[3] != "0A":
                return int(fields[4].split(":")[1], 16)
    return None


def ring_fds(pid):
    """How many io_uring instances pid holds open."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[io_uring]":
                n += 1
        except OSError:
            pass
    return n


def s_client_echo(port, *extra, send=b"ping\n", timeout=20):
    """openssl s_client sends `send` and keeps its stdin open until the echo
    is back (closing it at once could end the session first); returns
    (exit status, everything it printed)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-brief"]
                         + list(extra), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        p.stdin.write(send)
        p.stdin.flush()
    except BrokenPipeError:
        pass  # s_client already gave up (a refused handshake): its output says why
    out = b""
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ)
    while send.strip() not in out and time.monotonic() < deadline:
        if sel.select(0.2):
            chunk = os.read(p.stdout.fileno(), 4096)
            if not chunk:
                break
            out += chunk
    sel.close()
    try:
        rest, _ = p.communicate(input=b"", timeout=timeout)
    except BrokenPipeError:
        rest, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        rest, _ = p.communicate()
    return p.returncode, (out + rest).decode("utf-8", "replace")


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


class PyEchoServer:
    """The guide's echo server in a thread, serving any number of
    connections one after another (sendall of every recv) until stopped."""

    def __init__(self, family=socket.AF_INET, addr=("127.0.0.1", 0)):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(addr)
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.addr = self.sock.getsockname()
        self.received = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                got = b""
                while True:
                    try:
                        data = conn.recv(1024)
                    except OSError:
                        break
                    if not data:
                        break
                    got += data
                    conn.sendall(data)
                self.received.append(got)

    def close(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class MsTestCase(unittest.TestCase):
    maxDiff = None

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, stdout={proc.stdout!r}, stderr={proc.stderr!r}")
