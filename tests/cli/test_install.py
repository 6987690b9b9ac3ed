"""`make install DESTDIR=... PREFIX=/usr`, then a program built with
pkg-config against the installed copy links and runs."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mstest import MsTestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def header_version():
    """(major, minor, patch) as include/msgsock/common.h declares them;
    the Makefile's VERSION_* must agree (checked below)."""
    vals = {}
    with open(os.path.join(ROOT, "include", "msgsock", "common.h")) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "#define" and parts[1].startswith("MS_VERSION_") \
                    and parts[2].isdigit():
                vals[parts[1][len("MS_VERSION_"):]] = int(parts[2])
    return vals["MAJOR"], vals["MINOR"], vals["PATCH"]

PROGRAM = r"""
#include <msgsock.h>
#include <stdio.h>
#include <string.h>
int main(void)
{
    ms_addr a;
    char text[MS_ADDR_STRLEN];
    if (ms_addr_parse(&a, "[::1]:65432") != 0)
        return 1;
    ms_addr_format(&a, text, sizeof text);
    printf("%s %s %s\n", ms_version(), text, ms_strerror(MS_ECONNREFUSED));
    return strcmp(text, "[::1]:65432") != 0;
}
"""


class InstallTest(MsTestCase):
    def test_install_and_pkg_config(self):
        if not shutil.which("pkg-config"):
            self.skipTest("the pkg-config command is not installed (not on PATH)")
        tmp = tempfile.mkdtemp(prefix="msgsock-install-")
        env = {k: v for k, v in os.environ.items() if k not in ("SANITIZE", "TSAN", "BUILD", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
        p = subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={tmp}", "PREFIX=/usr"],
                           capture_output=True, env=env, timeout=600)
        self.assertExit(p, 0)
        for rel in ("usr/include/msgsock.h", "usr/lib/libmsgsock.a", "usr/lib/pkgconfig/msgsock.pc",
                    "usr/bin/msgsock", "usr/share/man/man1/msgsock.1"):
            self.assertTrue(os.path.exists(os.path.join(tmp, rel)), rel)
        sonames = [f for f in os.listdir(os.path.join(tmp, "usr/lib")) if f.startswith("libmsgsock.so.")]
        # Before 1.0 the SONAME names the major and minor versions.
        soname = "libmsgsock.so.%d.%d" % header_version()[:2]
        self.assertIn(soname, sonames)
        real = "libmsgsock.so.%d.%d.%d" % header_version()
        self.assertIn(real, sonames, "the Makefile's VERSION_* and common.h's MS_VERSION_* differ")
        dump = subprocess.run(["objdump", "-p", os.path.join(tmp, "usr/lib", real)], capture_output=True)
        if dump.returncode == 0:
            self.assertIn(f"SONAME               {soname}\n".encode(), dump.stdout)
        pc_env = dict(env, PKG_CONFIG_PATH=os.path.join(tmp, "usr/lib/pkgconfig"),
                      PKG_CONFIG_SYSROOT_DIR=tmp)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "msgsock"], capture_output=True,
                               env=pc_env, text=True)
        self.assertExit(flags, 0)
        src = os.path.join(tmp, "prog.c")
        with open(src, "w") as f:
            f.write(PROGRAM)
        exe = os.path.join(tmp, "prog")
        cc = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", src, "-o", exe] + flags.stdout.split(),
                            capture_output=True)
        self.assertExit(cc, 0)
        out = subprocess.run([exe], capture_output=True, env=dict(env, LD_LIBRARY_PATH=os.path.join(tmp, "usr/lib")))
        self.assertExit(out, 0)
        self.assertEqual(out.stdout.decode(),
                         "%d.%d.%d [::1]:65432 Connection refused\n" % header_version())
        shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
