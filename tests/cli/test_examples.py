"""The programs in examples/: each is built by `make` into BUILD/examples/
and run here against the msgsock command as its peer; and examples/Makefile
builds them against an installed copy of the library through pkg-config."""
import io
import os
import re
import shutil
import socket
import subprocess
import tempfile
import unittest

import pyapp
from mstest import BIN, MsTestCase, Server, report_findings

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


class InstalledExamplesTest(MsTestCase):
    """`make install DESTDIR`, then examples/Makefile builds app_client with
    pkg-config against that copy, shared and static, and both run; `make
    uninstall` removes what install put there, man pages included."""

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
        with Server("app-server", "127.0.0.1", "0") as srv:
            addr = srv.addr_text
            for static in (False, True):
                with self.subTest(static=static):
                    subprocess.run(["make", "-s", "-C", work, "clean"], env=pc_env, check=True)
                    args = ["make", "-s", "-C", work, "app_client", "CFLAGS=-O2 -Werror"]
                    b = subprocess.run(args + (["STATIC=1"] if static else []),
                                       capture_output=True, env=pc_env, timeout=120)
                    self.assertExit(b, 0)
                    exe = os.path.join(work, "app_client")
                    needed = subprocess.run(["objdump", "-p", exe], capture_output=True, text=True).stdout
                    self.assertEqual("NEEDED               libmsgsock.so" in needed, not static)
                    run_env = dict(env, LD_LIBRARY_PATH=libdir)
                    r = run_example("app_client", addr, "ring", exe=exe, env=run_env)
                    self.assertExit(r, 0)
                    self.assertEqual(r.stdout.decode(),
                                     "Got result: In the caves beneath the Misty Mountains. \U0001f48d\n")

        p = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", f"DESTDIR={dest}", "PREFIX=/usr"],
                           capture_output=True, env=env, timeout=120)
        self.assertExit(p, 0)
        left = [os.path.join(d, f) for d, _, fs in os.walk(dest) for f in fs]
        self.assertEqual(left, [])
        shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
