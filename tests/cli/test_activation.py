"""Socket activation and --listen fd:N: the server serves on a listening
socket it inherits instead of binding one. No systemd is needed: the test
makes the listener itself, passes it as descriptor 3 (or N) and sets
LISTEN_FDS, and LISTEN_PID to the server's own pid (sh -c 'LISTEN_PID=$$
exec ...': the pid exec keeps), as systemd does."""
import os
import shutil
import socket
import subprocess
import threading
import unittest

import mstest
from mstest import MsTestCase, Server, recv_exact, wait_for

MODELS = (("event", "--threads", "1"), ("event", "--threads", "3"), ("thread",), ("fork",),
          ("iterative",))
# sh's $$ is the pid of the shell, which exec hands on to msgsock.
WITH_OWN_PID = ["sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh"]


def listener(family=socket.AF_INET, addr=("127.0.0.1", 0)):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(addr)
    s.listen(16)
    return s


def addr_text(sock):
    a = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return "unix:" + a
    if sock.family == socket.AF_INET6:
        return f"[{a[0]}]:{a[1]}"
    return f"{a[0]}:{a[1]}"


class Inherited(Server):
    """A msgsock server started with sock as descriptor fdnum. activate:
    LISTEN_FDS=1 and LISTEN_PID its own pid; listen_pid: that LISTEN_PID
    instead (someone else's)."""

    def __init__(self, sock, *args, fdnum=3, activate=True, listen_pid=None, env=None):
        self.args = [mstest.BIN] + list(args)
        self._stderr = b""
        self._lock = threading.Lock()
        e = dict(os.environ)
        e.pop("LISTEN_PID", None)
        e.update(env or {})
        cmd = self.args
        if activate:
            e["LISTEN_FDS"] = "1"
            if listen_pid is None:
                cmd = WITH_OWN_PID + cmd
            else:
                e["LISTEN_PID"] = str(listen_pid)
        fd = sock.fileno()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                                     pass_fds=(fd, fdnum), preexec_fn=lambda: os.dup2(fd, fdnum))
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        self.addr_text = self._read_listening(10)
        self.family, self.sockaddr = mstest.parse_addr(self.addr_text)


def ask(sock, data=b"hello"):
    sock.sendall(data)
    return recv_exact(sock, len(data))


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat") as f:
                if name.isdigit() and int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(name))
        except OSError:
            pass
    return out


class ActivationTest(MsTestCase):
    def serve_every_model(self, family, addr):
        for model in MODELS:
            with self.subTest(model=model):
                path = addr if family == socket.AF_UNIX else None
                with listener(family, addr) as ls:
                    where = addr_text(ls)
                    # queued before the server exists: served once it starts
                    early = socket.create_connection(ls.getsockname()[:2], 10) \
                        if family != socket.AF_UNIX else socket.socket(socket.AF_UNIX)
                    if family == socket.AF_UNIX:
                        early.settimeout(10)
                        early.connect(path)
                    with early:
                        early.sendall(b"early")
                        with Inherited(ls, "echo-server", "--model", *model) as srv:
                            self.assertEqual(srv.addr_text, where)
                            self.assertEqual(recv_exact(early, 5), b"early")
                            with srv.connect() as c:
                                self.assertEqual(ask(c), b"hello")
                    # the first server left the listener (and its path) alone
                    if path:
                        self.assertTrue(os.path.exists(path), "inherited unix path unlinked")
                    with Inherited(ls, "echo-server", "--model", *model) as srv2, \
                            srv2.connect() as c:
                        self.assertEqual(ask(c, b"again"), b"again")
                if path:
                    os.unlink(path)

    def test_tcp_every_model(self):
        self.serve_every_model(socket.AF_INET, ("127.0.0.1", 0))

    def test_unix_every_model(self):
        self.serve_every_model(socket.AF_UNIX, mstest.fresh_unix_path("act"))

    @unittest.skipUnless(mstest.have_ipv6(), "no IPv6 loopback")
    def test_ipv6(self):
        with listener(socket.AF_INET6, ("::1", 0)) as ls, \
                Inherited(ls, "echo-server") as srv, srv.connect() as c:
            self.assertEqual(srv.addr_text, addr_text(ls))
            self.assertEqual(ask(c), b"hello")

    def test_address_arguments_ignored_when_activated(self):
        with listener() as ls, Inherited(ls, "app-server", "127.0.0.1", "0") as srv:
            self.assertEqual(srv.addr_text, addr_text(ls))

    @unittest.skipUnless(shutil.which("gdb"), "gdb needed to read a child's environment")
    def test_fork_child_does_not_see_listen_vars(self):
        # /proc/PID/environ shows the environment a process was exec'd
        # with, not what unsetenv left: ask the child's getenv itself.
        with listener() as ls, Inherited(ls, "echo-server", "--model", "fork") as srv, \
                srv.connect() as c:
            self.assertEqual(ask(c), b"hello")
            kids = wait_for(lambda: children(srv.pid), 10, "the fork child")
            for var in ("LISTEN_PID", "LISTEN_FDS"):
                out = subprocess.run(
                    ["gdb", "-nx", "-batch", "-p", str(kids[0]), "-ex",
                     f'print (long)getenv("{var}")'],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=60).stdout
                self.assertRegex(out.decode(), r"\$1 = 0\b", f"{var} in the child: {out!r}")

    def test_wrong_listen_pid_binds_its_own_address(self):
        with listener() as ls, \
                Inherited(ls, "echo-server", "127.0.0.1", "0", listen_pid=1) as srv:
            self.assertNotEqual(srv.addr_text, addr_text(ls))
            with srv.connect() as c:
                self.assertEqual(ask(c), b"hello")

    def test_more_than_one_listener_refused(self):
        with listener() as ls:
            p = subprocess.run(WITH_OWN_PID + [mstest.BIN, "echo-server"], pass_fds=(ls.fileno(),),
                               env=dict(os.environ, LISTEN_FDS="2"), capture_output=True,
                               timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"LISTEN_FDS=2", p.stderr)

    def test_activated_non_listening_fd_fails(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))  # bound, never listening
            p = subprocess.run(WITH_OWN_PID + [mstest.BIN, "echo-server"],
                               pass_fds=(s.fileno(), 3),
                               preexec_fn=lambda: os.dup2(s.fileno(), 3),
                               env=dict(os.environ, LISTEN_FDS="1"), capture_output=True,
                               timeout=30)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(b"fd:3: not a listening stream socket", p.stderr)
        self.assertEqual(p.stdout, b"")

    def test_listen_fd_n_without_activation(self):
        for model in MODELS:
            with self.subTest(model=model), listener() as ls, \
                    Inherited(ls, "multiconn-server", "--model", *model, "--listen", "fd:7",
                              fdnum=7, activate=False) as srv, srv.connect() as c:
                self.assertEqual(srv.addr_text, addr_text(ls))
                self.assertEqual(ask(c), b"hello")

    def test_listen_fd_errors(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u, \
                open(os.devnull) as f:
            cases = [("fd:x", 2, b"wants a descriptor number"),
                     ("fd:-1", 2, b"wants a descriptor number"),
                     ("fd:1000", 1, b"fd:1000: not an open descriptor"),
                     (f"fd:{f.fileno()}", 1, b"not a socket"),
                     (f"fd:{u.fileno()}", 1, b"not a listening stream socket")]
            for arg, code, msg in cases:
                with self.subTest(arg=arg):
                    p = subprocess.run([mstest.BIN, "echo-server", "--listen", arg],
                                       pass_fds=(u.fileno(), f.fileno()), capture_output=True,
                                       timeout=30)
                    self.assertEqual(p.returncode, code, p.stderr)
                    self.assertIn(msg, p.stderr)


if __name__ == "__main__":
    unittest.main()
