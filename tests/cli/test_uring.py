"""The io_uring backend seen from outside: the guide's Python multiconn
client with 500 connections against --backend io_uring, the echo,
multiconn and app suites again with MSGSOCK_BACKEND=io_uring, bulk and
framed traffic through the ring's shared receive buffers, and the
fallback to epoll where the kernel refuses io_uring (a seccomp filter, as
container runtimes install)."""
import ctypes
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import unittest

import mstest
from mstest import MsTestCase, Server
from test_multiconn import py_multiconn_client, raise_nofile

HERE = os.path.dirname(os.path.abspath(__file__))


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


def kernel_has_uring():
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            return f.read().strip() == "0"
    except OSError:
        return True


def refuse_io_uring():
    """preexec_fn: io_uring_setup(2) fails with ENOSYS in this process."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    nr_io_uring_setup = 425  # the same number on every architecture
    prog = (SockFilter * 4)(
        SockFilter(0x20, 0, 0, 0),                       # ld seccomp_data.nr
        SockFilter(0x15, 0, 1, nr_io_uring_setup),       # jeq
        SockFilter(0x06, 0, 0, 0x00050000 | 38),         # ret ERRNO(ENOSYS)
        SockFilter(0x06, 0, 0, 0x7fff0000),              # ret ALLOW
    )
    fprog = SockFprog(4, prog)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:
        os._exit(99)


def pattern(seed, n):
    """n pseudo-random bytes, different for every seed."""
    return random.Random(seed).randbytes(n)


def exchange(sock, chunks, expect_len):
    """Sends chunks from a thread while reading expect_len bytes back."""
    err = []

    def writer():
        try:
            for c in chunks:
                sock.sendall(c)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=writer)
    th.start()
    got = mstest.recv_exact(sock, expect_len)
    th.join()
    return got, err


class UringTest(MsTestCase):
    def test_500_python_clients(self):
        raise_nofile(1100)
        with Server("multiconn-server", "--listen", "127.0.0.1:0", "--threads", "1",
                    "--backend", "io_uring", "-v") as srv:
            if kernel_has_uring():
                self.assertEqual(ring_fds(srv.pid), 1, "the loop should run on a ring")
            expected, results = py_multiconn_client(srv.family, srv.sockaddr, 500)
            self.assertEqual(len(results), 500)
            bad = [k for k in expected if results.get(k) != expected[k]]
            self.assertEqual(bad, [], f"{len(bad)} connections got wrong bytes")
            self.assertEqual(srv.stop(signal.SIGINT), 0)
            if kernel_has_uring():
                self.assertNotIn("io_uring unavailable", srv.stderr_text())

    def test_bulk_echo_through_shared_buffers(self):
        """Four connections at once each push 6 MiB in writes of random size
        (1 B to 300 KiB) and read it back: 24 MiB through a 4 MiB pool of
        receive buffers, pieces of different connections interleaved in
        them, every byte where it belongs."""
        with Server("multiconn-server", "--threads", "1", "--backend", "io_uring",
                    "127.0.0.1", "0") as srv:
            if kernel_has_uring():
                self.assertEqual(ring_fds(srv.pid), 1, "the loop should run on a ring")
            results = {}

            def client(k):
                rnd = random.Random(k)
                data = pattern(100 + k, 6 << 20)
                cuts, at = [], 0
                while at < len(data):
                    n = min(rnd.choice([1, 7, 1000, 4096, 65536, 65537, 300 << 10]), len(data) - at)
                    cuts.append(data[at:at + n])
                    at += n
                with srv.connect(timeout=60) as s:
                    got, err = exchange(s, cuts, len(data))
                results[k] = (got == data, len(got), err)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for k, (same, n, err) in sorted(results.items()):
                self.assertEqual(err, [], f"connection {k}")
                self.assertEqual(n, 6 << 20, f"connection {k}: bytes back")
                self.assertTrue(same, f"connection {k}: bytes differ")
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_framed_messages_across_completions(self):
        """len32 messages of 0 B to 200 KiB, many to a write and split at
        random points, from three connections at once: messages cut out of
        the ring's buffer, messages completed in the connection's own
        buffer, each echoed whole once."""
        with Server("multiconn-server", "--threads", "1", "--backend", "io_uring",
                    "--framing", "len32", "127.0.0.1", "0") as srv:
            results = {}

            def client(k):
                rnd = random.Random(k)
                wire = bytearray()
                for i in range(300):
                    n = rnd.choice([0, 1, 5, 100, 4095, 4096, 65536, rnd.randrange(200 << 10)])
                    wire += struct.pack(">I", n) + pattern(k * 1000 + i, n)
                wire = bytes(wire)
                cuts, at = [], 0
                while at < len(wire):
                    n = rnd.randrange(1, 256 << 10)
                    cuts.append(wire[at:at + n])
                    at += n
                with srv.connect(timeout=60) as s:
                    got, err = exchange(s, cuts, len(wire))
                results[k] = (got == wire, err)

            threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for k, (same, err) in sorted(results.items()):
                self.assertEqual(err, [], f"connection {k}")
                self.assertTrue(same, f"connection {k}: echoed messages differ")
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_suites_on_io_uring(self):
        """The echo, multiconn and app black-box suites, every server on io_uring."""
        env = dict(os.environ, MSGSOCK_BACKEND="io_uring")
        p = subprocess.run([sys.executable, "-m", "unittest", "-q", "test_echo", "test_multiconn",
                            "test_app"], cwd=HERE, env=env, capture_output=True, text=True,
                           timeout=600)
        self.assertEqual(p.returncode, 0, p.stderr[-4000:])

    def test_refused_falls_back_to_epoll(self):
        args = [mstest.BIN, "echo-server", "--backend", "io_uring", "-v", "127.0.0.1", "0"]
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=refuse_io_uring)
        try:
            line = proc.stdout.readline().decode()
            self.assertTrue(line.startswith("listening on "), line)
            host, port = line.split()[-1].rsplit(":", 1)
            self.assertEqual(ring_fds(proc.pid), 0)
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(b"hello")
                self.assertEqual(mstest.recv_exact(s, 5), b"hello")
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        lines = [l for l in err.decode().splitlines() if "io_uring" in l]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("io_uring unavailable (Function not implemented): using epoll", lines[0])


if __name__ == "__main__":
    unittest.main()
