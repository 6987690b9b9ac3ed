"""The programs in examples/: each is built by `make` into BUILD/examples/
and run here against the msgsock command as its peer; and examples/Makefile
builds them against an installed copy of the library through pkg-config."""
import io
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import unittest

import pyapp
from mstest import BIN, MsTestCase, Server, parse_addr, report_findings

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("MSGSOCK_BUILD") or os.path.dirname(os.path.abspath(BIN))
EXAMPLES = os.path.join(BUILD, "examples")
SOURCES = sorted(f[:-2] for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".c"))
# Values for a search: every entry of the tutorial's table, a miss, and a
# miss whose value the JSON on either side must escape.
SEARCHES = ("morpheus", "ring", "\U0001f436", "neo", "it's \"q\"\\\n\t\x01/\u00e9")


def run_example(name, *args, exe=None, env=None, timeout=30):
    exe = exe or os.path.join(EXAMPLES, name)
    p = subprocess.run([exe] + list(args), capture_output=True, timeout=timeout, env=env)
    found = report_findings(p.stderr.decode("utf-8", "replace"))
    if found:
        raise AssertionError(f"{name} {args}: sanitizer findings:\n  " + "\n  ".join(found))
    return p


def python_result_line(host, port, value):
    """The 'Got result: ...' line(s) the tutorial's Python app-client
    prints for a search of value (a result may hold newlines)."""
    out = io.StringIO()
    pyapp.run_client(host, port, "search", value, out=out)
    text = out.getvalue()
    start = text.index("Got result: ")
    return text[start:text.index("Closing connection to ", start)].encode()


class ExamplesBuiltTest(MsTestCase):
    def test_every_example_is_built(self):
        self.assertIn("app_client", SOURCES)
        for name in SOURCES:
            with self.subTest(example=name):
                self.assertTrue(os.access(os.path.join(EXAMPLES, name), os.X_OK),
                                f"{EXAMPLES}/{name} not built by make")

    def test_examples_include_only_msgsock_h_of_the_library(self):
        for name in SOURCES:
            with open(os.path.join(ROOT, "examples", name + ".c")) as f:
                includes = [ln for ln in f if ln.startswith("#include")]
            with self.subTest(example=name):
                self.assertIn("#include <msgsock.h>\n", includes)
                for ln in includes:
                    self.assertNotIn('"', ln, "an example includes a private header")
                    self.assertNotRegex(ln, r"<msgsock/", "include <msgsock.h>, not its sections")


def man_programs():
    """(page, C source) of every whole program in an EXAMPLES section of
    man/*.3 and man/*.7, with the roff escapes they use undone."""
    progs = []
    mandir = os.path.join(ROOT, "man")
    for page in sorted(os.listdir(mandir)):
        with open(os.path.join(mandir, page)) as f:
            text = f.read()
        for block in re.findall(r"^\.EX\n(.*?)^\.EE\n", text, re.M | re.S):
            if "int main(" not in block:
                continue
            for roff, c in ((r"\e", "\\"), (r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"')):
                block = block.replace(roff, c)
            progs.append((page, block))
    return progs


class ManExamplesTest(MsTestCase):
    """The whole programs in the man pages compile warning-free against
    today's header (-Werror: a call that does not exist, or has changed its
    arguments, fails)."""

    def test_man_page_programs_compile(self):
        progs = man_programs()
        pages = {page for page, _ in progs}
        for page in ("ms_loop.3", "ms_frame.3", "ms_conn.3", "ms_server.3", "ms_tls.3"):
            self.assertIn(page, pages, f"{page} has no whole program in EXAMPLES")
        tmp = tempfile.mkdtemp(prefix="msgsock-manex-")
        for i, (page, src) in enumerate(progs):
            with self.subTest(page=page, program=i):
                path = os.path.join(tmp, f"ex{i}.c")
                with open(path, "w") as f:
                    f.write(src)
                cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                                     "-I", os.path.join(ROOT, "include"), path],
                                    capture_output=True, text=True)
                self.assertEqual(cc.returncode, 0, f"{page}:\n{cc.stderr}\n{src}")
        shutil.rmtree(tmp)


class GuideTest(MsTestCase):
    """docs/guide.md: a code block that starts with a line
    `// examples/NAME.c` is a piece of that example, copied as it is, so
    the guide cannot drift from the program the tests run."""

    def test_guide_snippets_match_the_examples(self):
        with open(os.path.join(ROOT, "docs", "guide.md")) as f:
            guide = f.read()
        blocks = re.findall(r"^```c\n// (examples/\S+\.c)\n(.*?)^```$", guide, re.M | re.S)
        self.assertGreaterEqual(len(blocks), 3, "the guide quotes examples/app_client.c")
        for path, body in blocks:
            with self.subTest(source=path, first_line=body.splitlines()[0]):
                with open(os.path.join(ROOT, path)) as f:
                    self.assertIn(body, f.read())


class AppClientTest(MsTestCase):
    def test_prints_what_the_python_client_prints(self):
        with Server("app-server", "127.0.0.1", "0") as srv:
            host, port = srv.host_port()
            for value in SEARCHES:
                with self.subTest(value=value):
                    p = run_example("app_client", f"{host}:{port}", value)
                    self.assertExit(p, 0)
                    self.assertEqual(p.stdout, python_result_line(host, port, value))

    def test_unix_socket_and_ipv6(self):
        path = os.path.join(tempfile.mkdtemp(prefix="msgsock-test-"), "app.sock")
        for listen in (f"unix:{path}", "[::1]:0"):
            with self.subTest(listen=listen):
                with Server("app-server", "--listen", listen) as srv:
                    p = run_example("app_client", srv.addr_text, "morpheus")
                    self.assertExit(p, 0)
                    self.assertEqual(p.stdout.decode(), "Got result: Follow the white rabbit. \U0001f430\n")

    def test_server_that_closes_mid_answer(self):
        with pyapp.AppServer(mode="half") as srv:
            p = run_example("app_client", f"127.0.0.1:{srv.addr[1]}", "morpheus")
        self.assertExit(p, 1)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(p.stderr.decode(),
                         "app_client: response: End of stream in the middle of a message\n")

    def test_no_server(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = run_example("app_client", f"127.0.0.1:{port}", "morpheus")
        self.assertExit(p, 1)
        self.assertEqual(p.stderr.decode(), f"app_client: 127.0.0.1:{port}: Connection refused\n")

    def test_usage(self):
        p = run_example("app_client", "127.0.0.1:1")
        self.assertExit(p, 2)
        self.assertIn(b"usage: app_client HOST:PORT VALUE", p.stderr)


class ChatServer:
    """examples/chat_server on port 0; its stdout lines are collected by a
    thread as they come."""

    def __init__(self):
        self.proc = subprocess.Popen([os.path.join(EXAMPLES, "chat_server"), "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.cond = threading.Condition()
        first = self.proc.stdout.readline().decode()
        if not first.startswith("listening on 127.0.0.1:"):
            self.proc.kill()
            raise AssertionError(f"chat_server's first line: {first!r}")
        self.addr = parse_addr(first.split()[-1])[1]
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for ln in self.proc.stdout:
            with self.cond:
                self.lines.append(ln.decode().rstrip("\n"))
                self.cond.notify_all()

    def wait_line(self, pred, what, timeout=10):
        with self.cond:
            if not self.cond.wait_for(lambda: any(pred(ln) for ln in self.lines), timeout):
                raise AssertionError(f"chat_server printed no line {what}: {self.lines}")

    def client(self, rcvbuf=None):
        s = socket.socket()
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(10)
        s.connect(self.addr)
        return s

    def stop(self, clients):
        """SIGINT; each client sees the end of stream and closes; the
        server must exit 0. Returns its stderr."""
        self.proc.send_signal(signal.SIGINT)
        for s in clients:
            rest = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                rest += d
            s.close()
        self.proc.wait(timeout=15)
        self.reader.join(10)  # every line read
        err = self.proc.stderr.read().decode()
        self.proc.stderr.close()
        found = report_findings(err)
        if found:
            raise AssertionError("chat_server: sanitizer findings:\n  " + "\n  ".join(found))
        return err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def name_of(sock):
    return "127.0.0.1:%d" % sock.getsockname()[1]


def read_line(sock):
    line = b""
    while not line.endswith(b"\n"):
        ch = sock.recv(1)
        if not ch:
            raise AssertionError(f"end of stream after {line!r}")
        line += ch
    return line.decode()


class ChatServerTest(MsTestCase):
    def setUp(self):
        self.srv = ChatServer()
        self.addCleanup(self.srv.kill)

    def test_each_line_goes_to_every_other_client(self):
        srv = self.srv
        cl = [srv.client() for _ in range(3)]
        # The 1 s timer on the server's loop prints the count once it changed.
        srv.wait_line(lambda ln: ln == "3 clients", "'3 clients'")
        for i, s in enumerate(cl):
            text = f"line {i} from client {i} \u00e9"
            s.sendall(text[:5].encode())          # one line in two pieces
            s.sendall((text[5:] + "\n").encode())
            for j, other in enumerate(cl):
                if j != i:
                    self.assertEqual(read_line(other), f"{name_of(s)}: {text}\n")
        # Nothing came back to a sender: the next line each client reads is
        # the last sender's, or (for the last sender) the one after it.
        cl[2].sendall(b"bye\n")
        cl[0].sendall(b"bye too\n")
        self.assertEqual(read_line(cl[0]), f"{name_of(cl[2])}: bye\n")
        self.assertEqual(read_line(cl[1]), f"{name_of(cl[2])}: bye\n")
        self.assertEqual(read_line(cl[1]), f"{name_of(cl[0])}: bye too\n")
        self.assertEqual(read_line(cl[2]), f"{name_of(cl[0])}: bye too\n")
        err = srv.stop(cl)
        self.assertEqual(srv.proc.returncode, 0, err)
        self.assertEqual(err, "")
        self.assertIn("stopping: 3 clients", srv.lines)
        self.assertEqual(srv.lines[-1], "served 3 clients, 5 lines")

    def test_count_follows_clients(self):
        srv = self.srv
        a = srv.client()
        srv.wait_line(lambda ln: ln == "1 client", "'1 client'")
        b = srv.client()
        srv.wait_line(lambda ln: ln == "2 clients", "'2 clients'")
        b.close()
        srv.wait_line(lambda ln: ln == "1 client" and srv.lines.count("1 client") == 2,
                      "'1 client' a second time")
        err = srv.stop([a])
        self.assertEqual(srv.proc.returncode, 0, err)
        self.assertEqual(srv.lines[-2:], ["stopping: 1 client", "served 2 clients, 0 lines"])

    def test_a_client_that_does_not_read_is_dropped(self):
        srv = self.srv
        talker = srv.client()
        sleeper = srv.client(rcvbuf=4096)
        sleeper_name = name_of(sleeper)
        srv.wait_line(lambda ln: ln == "2 clients", "'2 clients'")
        line = b"x" * 1000 + b"\n"
        dropped = f"{sleeper_name} dropped: Peer does not read: output limit reached"
        sent = 0
        while dropped not in srv.lines:
            self.assertLess(sent, 64 << 20, f"{sent} bytes sent and {sleeper_name} not dropped: {srv.lines}")
            talker.sendall(line * 100)
            sent += len(line) * 100
        sleeper.close()
        srv.wait_line(lambda ln: ln == "1 client", "'1 client'")
        # The others chat on.
        late = srv.client()
        srv.wait_line(lambda ln: ln == "2 clients" and srv.lines.count("2 clients") == 2,
                      "'2 clients' again")
        talker.sendall(b"still here\n")
        self.assertEqual(read_line(late), f"{name_of(talker)}: still here\n")
        err = srv.stop([talker, late])
        self.assertEqual(srv.proc.returncode, 0, err)

    def test_usage(self):
        for args in (["x"], ["70000"], ["1", "2"]):
            with self.subTest(args=args):
                p = run_example("chat_server", *args)
                self.assertExit(p, 2)
                self.assertIn(b"usage: chat_server [PORT]", p.stderr)


def many_clients_bytes(conns, msgs):
    """The payload bytes many_clients sends (and expects back): message m of
    connection i is 1 + (37 i + 131 m) % 4095 bytes long."""
    return sum(1 + (i * 37 + m * 131) % 4095 for i in range(conns) for m in range(msgs))


def many_clients_out(conns, msgs, failed, left, echoed=None):
    echoed = conns * msgs if echoed is None else echoed
    nbytes = many_clients_bytes(conns, msgs) if echoed else 0
    return (f"{conns} connections, {echoed} messages echoed ({nbytes} bytes), {failed} failed\n"
            f"{left} left open, ended by ms_loop_free: on_close(MS_ECLOSED, \"Handle closed\") once each\n")


class BadEchoServer:
    """Echoes LEN32 messages with the last byte of every third one changed."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf, n = b"", 0
        with c:
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                buf += d
                while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                    end = 4 + struct.unpack(">I", buf[:4])[0]
                    msg, buf = bytearray(buf[:end]), buf[end:]
                    n += 1
                    if n % 3 == 0:
                        msg[-1] ^= 1
                    c.sendall(msg)

    def close(self):
        self.sock.close()


def instrumented(exe):
    """True for a binary built with a sanitizer (make SANITIZE=1 or TSAN=1),
    which cannot run under valgrind."""
    syms = subprocess.run(["nm", exe], capture_output=True, text=True).stdout
    return "__asan_init" in syms or "__tsan_init" in syms


class ManyClientsTest(MsTestCase):
    def server(self):
        return Server("multiconn-server", "--framing", "len32", "127.0.0.1", "0")

    def test_every_echo_checked_and_the_rest_ended_by_loop_free(self):
        with self.server() as srv:
            p = run_example("many_clients", srv.addr_text)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), many_clients_out(100, 10, 0, 5))
            self.assertEqual(p.stderr, b"")
            p = run_example("many_clients", "--conns", "7", "--msgs", "3", "--leave-open", "7",
                            srv.addr_text)
            self.assertExit(p, 0)
            self.assertEqual(p.stdout.decode(), many_clients_out(7, 3, 0, 7))

    def test_under_memcheck(self):
        """Freeing the loop with connections still open leaves nothing
        behind: every on_close ran and every block was freed."""
        exe = os.path.join(EXAMPLES, "many_clients")
        with self.server() as srv:
            if instrumented(exe):
                # ASan's LeakSanitizer does memcheck's job in that build
                # (run_example fails on its report).
                p = run_example("many_clients", srv.addr_text)
                self.assertExit(p, 0)
                print("\nmany_clients (sanitizer build): no LeakSanitizer report", flush=True)
                return
            p = subprocess.run(["valgrind", "--leak-check=full", "--error-exitcode=3", exe,
                                srv.addr_text], capture_output=True, timeout=300)
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, err[-3000:])
        self.assertEqual(p.stdout.decode(), many_clients_out(100, 10, 0, 5))
        summary = [ln for ln in err.splitlines() if "All heap blocks were freed" in ln
                   or "definitely lost" in ln or "ERROR SUMMARY" in ln]
        print("\nmany_clients under valgrind --leak-check=full:\n  " + "\n  ".join(summary), flush=True)
        self.assertIn("All heap blocks were freed -- no leaks are possible", err)
        self.assertNotIn("definitely lost", err)
        self.assertRegex(err, r"ERROR SUMMARY: 0 errors from 0 contexts")

    def test_a_wrong_echo_fails(self):
        srv = BadEchoServer()
        try:
            p = run_example("many_clients", "--conns", "4", "--msgs", "5", "--leave-open", "1",
                            srv.addr)
        finally:
            srv.close()
        self.assertExit(p, 1)
        self.assertIn("many_clients: connection 0: echo does not match what was sent\n",
                      p.stderr.decode())
        self.assertRegex(p.stdout.decode(), r"^4 connections, \d+ messages echoed \(\d+ bytes\), 4 failed\n")

    def test_no_server(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        p = run_example("many_clients", "--conns", "20", f"127.0.0.1:{port}")
        self.assertExit(p, 1)
        self.assertEqual(p.stdout.decode(), many_clients_out(20, 10, 20, 0, echoed=0))
        lines = p.stderr.decode().splitlines()
        self.assertEqual(len(lines), 10, "at most 10 failures are printed")
        for ln in lines:
            self.assertRegex(ln, r"^many_clients: connection \d+: ended early: Connection refused$")

    def test_usage(self):
        for args in ([], ["--conns", "0", "127.0.0.1:1"], ["--leave-open", "9", "--conns", "3", "x:1"],
                     ["--bogus", "127.0.0.1:1"]):
            with self.subTest(args=args):
                p = run_example("many_clients", *args)
                self.assertExit(p, 2)
                self.assertIn(b"usage: many_clients", p.stderr)


class TlsClientTest(MsTestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = tempfile.mkdtemp(prefix="msgsock-tls-")
        subprocess.run(["sh", os.path.join(ROOT, "tests", "tls", "mkcerts.sh"), cls.certs],
                       check=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.certs, ignore_errors=True)

    def pem(self, name, ext="pem"):
        return os.path.join(self.certs, f"{name}.{ext}")

    def server(self, cert="server"):
        return Server("echo-server", "--tls-cert", self.pem(cert), "--tls-key", self.pem(cert, "key"),
                      "127.0.0.1", "0")

    def test_good_name(self):
        with self.server() as srv:
            for extra in ([], ["--name", "localhost"], ["--name", "127.0.0.1"]):
                with self.subTest(extra=extra):
                    p = run_example("tls_client", *extra, srv.addr_text, self.pem("ca"), "hello, TLS \u00e9")
                    self.assertExit(p, 0)
                    self.assertRegex(p.stdout.decode(),
                                     r"^connected with TLSv1\.[23]\necho: hello, TLS \u00e9\n$")
                    self.assertEqual(p.stderr, b"")

    def test_wrong_name(self):
        with self.server() as srv:
            p = run_example("tls_client", "--name", "wrong.example", srv.addr_text, self.pem("ca"), "hi")
        self.assertExit(p, 1)
        self.assertEqual(p.stdout, b"")
        self.assertRegex(p.stderr.decode(),
                         "^tls_client: " + re.escape(srv.addr_text) + r" \(name wrong\.example\): "
                         r"TLS certificate does not match the host name \(.*wrong\.example.*\)\n$")

    def test_certificate_for_another_name(self):
        with self.server("wrongname") as srv:
            p = run_example("tls_client", srv.addr_text, self.pem("ca"), "hi")
        self.assertExit(p, 1)
        self.assertIn("TLS certificate does not match the host name", p.stderr.decode())

    def test_unknown_ca(self):
        with self.server() as srv:
            p = run_example("tls_client", srv.addr_text, self.pem("otherca"), "hi")
        self.assertExit(p, 1)
        self.assertEqual(p.stdout, b"")
        self.assertRegex(p.stderr.decode(), r"^tls_client: .*: TLS certificate signed by an unknown CA \(.+\)\n$")

    def test_missing_ca_file_and_usage(self):
        p = run_example("tls_client", "127.0.0.1:1", os.path.join(self.certs, "none.pem"), "hi")
        self.assertExit(p, 1)
        self.assertIn("none.pem", p.stderr.decode())
        self.assertIn("No such file or directory", p.stderr.decode())
        for args in ([], ["127.0.0.1:1", self.pem("ca")], ["127.0.0.1:1", self.pem("ca"), "a\nb"]):
            with self.subTest(args=args):
                p = run_example("tls_client", *args)
                self.assertExit(p, 2)
                self.assertIn(b"usage: tls_client", p.stderr)


class InstalledExamplesTest(MsTestCase):
    """`make install DESTDIR`, then examples/Makefile builds every example
    with pkg-config against that copy, shared and static, and app_client and
    many_clients run; `make uninstall` removes what install put there, man
    pages included."""

    def test_build_against_installed_library(self):
        tmp = tempfile.mkdtemp(prefix="msgsock-examples-")
        env = {k: v for k, v in os.environ.items()
               if k not in ("SANITIZE", "TSAN", "BUILD", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        dest = os.path.join(tmp, "root")
        p = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={dest}", "PREFIX=/usr"],
                           capture_output=True, env=env, timeout=600)
        self.assertExit(p, 0)
        man = os.path.join(dest, "usr/share/man")
        pages = sorted(f for f in os.listdir(os.path.join(ROOT, "man")) if f[-2:] in (".3", ".7"))
        self.assertIn("ms_loop.3", pages)
        self.assertIn("msgsock.7", pages)
        for page in pages:
            self.assertTrue(os.path.isfile(os.path.join(man, "man" + page[-1], page)), page)

        work = os.path.join(tmp, "examples")
        shutil.copytree(os.path.join(ROOT, "examples"), work)
        libdir = os.path.join(dest, "usr/lib")
        pc_env = dict(env, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"), PKG_CONFIG_SYSROOT_DIR=dest)
        with Server("app-server", "127.0.0.1", "0") as srv, \
                Server("multiconn-server", "--framing", "len32", "127.0.0.1", "0") as echo:
            addr = srv.addr_text
            for static in (False, True):
                with self.subTest(static=static):
                    subprocess.run(["make", "-s", "-C", work, "clean"], env=pc_env, check=True)
                    args = ["make", "-s", "-C", work, "CFLAGS=-O2 -Werror"]
                    b = subprocess.run(args + (["STATIC=1"] if static else []),
                                       capture_output=True, env=pc_env, timeout=300)
                    self.assertExit(b, 0)
                    for name in SOURCES:
                        exe = os.path.join(work, name)
                        self.assertTrue(os.access(exe, os.X_OK), f"examples/Makefile did not build {name}")
                        needed = subprocess.run(["objdump", "-p", exe], capture_output=True, text=True).stdout
                        self.assertEqual("NEEDED               libmsgsock.so" in needed, not static, name)
                    run_env = dict(env, LD_LIBRARY_PATH=libdir)
                    r = run_example("app_client", addr, "ring", exe=os.path.join(work, "app_client"),
                                    env=run_env)
                    self.assertExit(r, 0)
                    self.assertEqual(r.stdout.decode(),
                                     "Got result: In the caves beneath the Misty Mountains. \U0001f48d\n")
                    r = run_example("many_clients", "--conns", "10", echo.addr_text,
                                    exe=os.path.join(work, "many_clients"), env=run_env)
                    self.assertExit(r, 0)
                    self.assertEqual(r.stdout.decode(), many_clients_out(10, 10, 0, 5))

        p = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                           capture_output=True, env=env, timeout=120)
        self.assertExit(p, 0)
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        self.assertEqual(left, [])
        shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
