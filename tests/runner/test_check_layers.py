"""scripts/check-layers.py: a small tree laid out like msgsock's, built with
cc, passes; the same tree with an include of a higher layer, a call up the
layers (a cycle between folders), a command using an internal symbol or a
folder the table does not list fails with one line naming each. The real
tree, with the objects of the build being tested, passes."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "scripts", "check-layers.py")

# Four layers and the command; src/conn/a.c and b.c call each other (a cycle
# of files inside one folder, which is allowed).
TREE = {
    "include/msgsock.h": '#include "msgsock/common.h"\n#include "msgsock/net.h"\n'
                         '#include "msgsock/loop.h"\n#include "msgsock/conn.h"\n',
    "include/msgsock/common.h": "int ms_common_one(void);\n",
    "include/msgsock/net.h": '#include "common.h"\nint ms_net_one(void);\n',
    "include/msgsock/loop.h": '#include "common.h"\nint ms_loop_one(void);\n',
    "include/msgsock/conn.h": '#include "loop.h"\n#include "net.h"\nint ms_conn_one(void);\n',
    "src/common/error.c": '#include "msgsock/common.h"\nint ms_common_one(void) { return 1; }\n',
    "src/net/wait.h": "int msi_wait(void);\n",
    "src/net/wait.c": '#include "net/wait.h"\nint msi_wait(void) { return 2; }\n',
    "src/net/sock.c": '#include "msgsock/net.h"\n#include "net/wait.h"\n\n'
                      "int ms_net_one(void) { return ms_common_one() + msi_wait(); }\n",
    "src/loop/loop.c": '#include "msgsock/loop.h"\n#include "msgsock/net.h"\n#include "net/wait.h"\n\n'
                       "int ms_loop_one(void) { return ms_net_one() + msi_wait(); }\n",
    "src/conn/int.h": '#include "msgsock/conn.h"\nint msi_a(int n);\nint msi_b(int n);\n',
    "src/conn/a.c": '#include "conn/int.h"\n'
                    "int msi_a(int n) { return n ? msi_b(n - 1) : ms_loop_one(); }\n"
                    "int ms_conn_one(void) { return msi_a(3); }\n",
    "src/conn/b.c": '#include "conn/int.h"\nint msi_b(int n) { return msi_a(n); }\n',
    "cli/main.c": '#include "msgsock.h"\n#include <stdio.h>\n\n'
                  'int main(void) { printf("%d\\n", ms_conn_one()); return 0; }\n',
}


def compile_c(root, rel):
    obj = os.path.join(root, "build", "obj", rel[:-2] + ".o")
    os.makedirs(os.path.dirname(obj), exist_ok=True)
    cc = os.environ.get("CC", "cc")
    subprocess.run([cc, "-std=c11", "-c", "-Iinclude", "-Isrc", "-o", obj, rel],
                   cwd=root, check=True)


def check(root, *args, build="build"):
    p = subprocess.run([sys.executable, SCRIPT, "--root", root, "--build", build, *args],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


class FixtureTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="msgsock-layers-")
        cls.base = os.path.join(cls.tmp, "base")
        for rel, text in TREE.items():
            cls.write(cls.base, rel, text)
        for rel in TREE:
            if rel.endswith(".c"):
                compile_c(cls.base, rel)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @staticmethod
    def write(root, rel, text):
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)

    def tree(self):
        """A fresh copy of the built fixture for one test."""
        root = tempfile.mkdtemp(dir=self.tmp)
        os.rmdir(root)
        shutil.copytree(self.base, root)
        return root

    def plant(self, root, rel, text, build=True):
        self.write(root, rel, text)
        if build:
            compile_c(root, rel)

    def test_clean_tree_passes_and_prints_its_graphs(self):
        rc, out = check(self.base, "--graph", "--files")
        self.assertEqual(rc, 0, out)
        self.assertIn("check-layers: ok", out)
        self.assertRegex(out, r"src/loop +-> src/net +2\n")
        self.assertRegex(out, r"cli +-> src/conn +1\n")
        self.assertIn("largest strongly connected component of the file graph: 2 files\n"
                      "  src/conn/a.o\n  src/conn/b.o\n", out)

    def test_includes_of_a_higher_layer_fail(self):
        root = self.tree()
        self.plant(root, "src/net/sock.c", '#include "msgsock.h"\n' + TREE["src/net/sock.c"])
        self.plant(root, "src/common/error.c", TREE["src/common/error.c"] + '#include "net/wait.h"\n')
        self.plant(root, "include/msgsock/net.h", TREE["include/msgsock/net.h"] + '#include "loop.h"\n')
        self.plant(root, "cli/main.c", '#include "conn/int.h"\n' + TREE["cli/main.c"])
        rc, out = check(root)
        self.assertEqual(rc, 1, out)
        self.assertIn('src/net/sock.c:1: includes "msgsock.h" (include/msgsock.h, the umbrella, '
                      "top level only, layer 7 cli) from layer 2 net\n", out)
        self.assertIn('src/common/error.c:3: includes "net/wait.h" (src/net/wait.h, internal, '
                      "layer 2 net) from layer 0 common\n", out)
        self.assertIn('include/msgsock/net.h:3: includes "loop.h" (include/msgsock/loop.h, '
                      "public section, layer 3 loop) from layer 2 net\n", out)
        self.assertIn('cli/main.c:1: includes "conn/int.h" (src/conn/int.h) from layer 7 cli: '
                      "the command uses the public header only\n", out)
        self.assertIn("check-layers: 4 violation(s)", out)

    def test_a_call_up_the_layers_is_a_cycle_and_fails(self):
        # Declared in the file itself: no include gives it away, the objects do.
        root = self.tree()
        self.plant(root, "src/net/wait.c", '#include "net/wait.h"\nint ms_loop_one(void);\n'
                   "int msi_wait(void) { return ms_loop_one(); }\n")
        rc, out = check(root)
        self.assertEqual(rc, 1, out)
        self.assertIn("src/net/wait.o: uses ms_loop_one of src/loop/loop.o (layer 3 loop) "
                      "from layer 2 net\n", out)
        self.assertIn("cycle between folders src/loop src/net: "
                      "src/loop -> src/net (2), src/net -> src/loop (1)\n", out)
        self.assertIn("check-layers: 2 violation(s)", out)

    def test_command_using_an_internal_symbol_fails(self):
        root = self.tree()
        self.plant(root, "cli/main.c", TREE["cli/main.c"].replace(
            "int main", "int msi_wait(void);\nint main").replace("ms_conn_one()", "msi_wait()"))
        rc, out = check(root)
        self.assertEqual(rc, 1, out)
        self.assertIn("cli/main.o: uses msi_wait of src/net/wait.o, not public: "
                      "the command uses ms_ symbols only\n", out)

    def test_a_connection_file_including_the_server_section_fails(self):
        # The server section is layer 6: a server file may include it, a
        # connection file (layer 5) may not, even for one constant.
        root = self.tree()
        self.plant(root, "include/msgsock/server.h",
                   '#include "conn.h"\nint ms_server_one(void);\n', build=False)
        self.plant(root, "src/server/s.c", '#include "msgsock/server.h"\n'
                   "int ms_server_one(void) { return ms_conn_one(); }\n")
        rc, out = check(root)
        self.assertEqual(rc, 0, out)
        self.plant(root, "src/conn/b.c", '#include "msgsock/server.h"\n' + TREE["src/conn/b.c"])
        rc, out = check(root)
        self.assertEqual(rc, 1, out)
        self.assertIn('src/conn/b.c:1: includes "msgsock/server.h" (include/msgsock/server.h, '
                      "public section, layer 6 server) from layer 5 conn\n", out)
        self.assertIn("check-layers: 1 violation(s)", out)

    def test_folder_not_in_the_table_fails(self):
        root = self.tree()
        self.plant(root, "src/extra/plain.c", '#include "msgsock/net.h"\n'
                   "int ms_plain(void) { return ms_net_one(); }\n")
        rc, out = check(root)
        self.assertEqual(rc, 1, out)
        self.assertIn("src/extra/plain.c:1: is in a folder the layer table does not list; "
                      "add it to LAYERS in scripts/check-layers.py\n", out)

    def test_no_objects_is_an_error(self):
        rc, out = check(self.base, build="nowhere")
        self.assertEqual(rc, 2, out)
        self.assertIn("build first", out)


class RealTreeTest(unittest.TestCase):
    def test_real_tree_passes(self):
        build = os.environ.get("MSGSOCK_BUILD", os.path.join(ROOT, "build"))
        rc, out = check(ROOT, "--graph", "--files", build=build)
        self.assertEqual(rc, 0, out)
        self.assertIn("check-layers: ok", out)
        self.assertRegex(out, r"src/conn +-> src/loop +\d+\n")
        # Transports, connections, servers: each uses only the ones below.
        self.assertRegex(out, r"src/server +-> src/conn +\d+\n")
        self.assertRegex(out, r"src/conn +-> src/transport +\d+\n")
        self.assertNotRegex(out, r"src/(conn|transport) +-> src/server ")
        self.assertNotRegex(out, r"src/transport +-> src/conn ")
        self.assertRegex(out, r"largest strongly connected component of the file graph: "
                              r"(none|\d+ files)")

    def test_connections_and_servers_have_sections_of_their_own(self):
        """conn.h declares connections and clients only, server.h (layer 6,
        in the umbrella after conn.h) the servers; no file of src/conn
        speaks of servers but for the TLS side and name it checks."""
        def code(rel):
            with open(os.path.join(ROOT, rel)) as f:
                return re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
        conn = code("include/msgsock/conn.h")
        self.assertEqual(re.findall(r"\b(?:ms|MS)_(?:server|SERVER)\w*|\bms_log\w*", conn), [])
        server = code("include/msgsock/server.h")
        for name in ("ms_server_create", "ms_conn_server", "ms_server_snapshot_get",
                     "ms_log_stderr", "MS_SERVER_DRAIN_FIRST_MS", "ms_server_model"):
            self.assertRegex(server, r"\b%s\b" % name)
        self.assertRegex(code("include/msgsock.h"),
                         r'#include "msgsock/conn.h"\s*#include "msgsock/server.h"')
        spoken = []
        for d, _, names in os.walk(os.path.join(ROOT, "src", "conn")):
            for n in sorted(names):
                with open(os.path.join(d, n)) as f:
                    for no, line in enumerate(f, 1):
                        rest = re.sub(r"server_name|ms_tls_ctx_is_server|ctx->server\b|TLS server",
                                      "", line)
                        if re.search(r"server", rest, re.I):
                            spoken.append(f"src/conn/{n}:{no}: {line.strip()}")
        self.assertEqual(spoken, [])


if __name__ == "__main__":
    unittest.main()
