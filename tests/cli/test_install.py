"""`make install DESTDIR=... PREFIX=/usr`, then a program built with
pkg-config against the installed copy links and runs."""
import os
import shutil
import subprocess
import tempfile
import unittest

from mstest import MsTestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

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
        self.assertIn("libmsgsock.so.0.2", sonames)
        # Before 1.0 the SONAME names the major and minor versions.
        real = [f for f in sonames if f.count(".") == 4][0]
        dump = subprocess.run(["objdump", "-p", os.path.join(tmp, "usr/lib", real)], capture_output=True)
        if dump.returncode == 0:
            self.assertIn(b"SONAME               libmsgsock.so.0.2\n", dump.stdout)
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
        self.assertRegex(out.stdout.decode(), r"^\d+\.\d+\.\d+ \[::1\]:65432 Connection refused\n$")
        shutil.rmtree(tmp)


if __name__ == "__main__":
    unittest.main()
