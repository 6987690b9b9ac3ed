"""The io_uring backend seen from outside: the guide's Python multiconn
client with 500 connections against --backend io_uring, the echo,
multiconn and app suites again with MSGSOCK_BACKEND=io_uring, bulk and
framed traffic through the ring's shared receive buffers, and the
fallback to epoll where the kernel refuses io_uring (a seccomp filter, as
container runtimes install)."""
import ctypes
import errno
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
from mstest import MsTestCase, Server, ring_fds
from test_multiconn import py_multiconn_client, raise_nofile

HERE = os.path.dirname(os.path.abspath(__file__))
NR_IO_URING_SETUP = 425  # the same number on every architecture


def uring_refusal():
    """Why the kernel refuses this process an io_uring instance, or None
    where it grants one: io_uring_disabled=2, else what io_uring_setup(2)
    itself answers (ENOSYS under a seccomp filter or without
    CONFIG_IO_URING, EPERM for io_uring_disabled=1 outside io_uring_group)."""
    try:
        with open("/proc/sys/kernel/io_uring_disabled") as f:
            disabled = f.read().strip()
    except FileNotFoundError:
        disabled = None
    if disabled == "2":
        return "kernel refuses io_uring: /proc/sys/kernel/io_uring_disabled=2"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, zeroed
    fd = libc.syscall(ctypes.c_long(NR_IO_URING_SETUP), ctypes.c_uint(1), params)
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    if err not in (errno.ENOSYS, errno.EPERM):
        return None  # not a refusal: let the tests show what goes wrong
    why = f"kernel refuses io_uring: io_uring_setup(2) fails with {errno.errorcode[err]}"
    return why + (f" (/proc/sys/kernel/io_uring_disabled={disabled})" if disabled else "")


URING_REFUSED = uring_refusal()
needs_uring = unittest.skipIf(URING_REFUSED is not None, URING_REFUSED or "")


def refuse_io_uring():
    """preexec_fn: io_uring_setup(2) fails with ENOSYS in this process."""
    libc = ctypes.CDLL(None, use_errno=True)

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    prog = (SockFilter * 4)(
        SockFilter(0x20, 0, 0, 0),                       # ld seccomp_data.nr
        SockFilter(0x15, 0, 1, NR_IO_URING_SETUP),       # jeq
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
    def assertRing(self, srv):
        """srv runs its loop on a ring: it holds an io_uring instance and
        did not fall back."""
        self.assertGreaterEqual(ring_fds(srv.pid), 1, "the loop should run on a ring")
        self.assertNotIn("io_uring unavailable", srv.stderr_text())

    @needs_uring
    def test_500_python_clients(self):
        raise_nofile(1100)
        with Server("multiconn-server", "--listen", "127.0.0.1:0", "--threads", "1",
                    "--backend", "io_uring", "-v") as srv:
            self.assertRing(srv)
            expected, results = py_multiconn_client(srv.family, srv.sockaddr, 500)
            self.assertEqual(len(results), 500)
            bad = [k for k in expected if results.get(k) != expected[k]]
            self.assertEqual(bad, [], f"{len(bad)} connections got wrong bytes")
            self.assertRing(srv)
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    @needs_uring
    def test_bulk_echo_through_shared_buffers(self):
        """Four connections at once each push 6 MiB in writes of random size
        (1 B to 300 KiB) and read it back: 24 MiB through a 4 MiB pool of
        receive buffers, pieces of different connections interleaved in
        them, every byte where it belongs."""
        with Server("multiconn-server", "--threads", "1", "--backend", "io_uring",
                    "127.0.0.1", "0") as srv:
            self.assertRing(srv)
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
            self.assertRing(srv)
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    @needs_uring
    def test_framed_messages_across_completions(self):
        """len32 messages of 0 B to 200 KiB, many to a write and split at
        random points, from three connections at once: messages cut out of
        the ring's buffer, messages completed in the connection's own
        buffer, each echoed whole once."""
        with Server("multiconn-server", "--threads", "1", "--backend", "io_uring",
                    "--framing", "len32", "127.0.0.1", "0") as srv:
            self.assertRing(srv)
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
            self.assertRing(srv)
            self.assertEqual(srv.stop(signal.SIGINT), 0)

    @needs_uring
    def test_suites_on_io_uring(self):
        """The echo, multiconn and app black-box suites, every server on
        io_uring: each event-model server started there must hold a ring
        (MSGSOCK_EXPECT_RING, checked by mstest.Server)."""
        env = dict(os.environ, MSGSOCK_BACKEND="io_uring", MSGSOCK_EXPECT_RING="1")
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
        mstest.check_reports(f"{args} (pid {proc.pid})", proc.pid, err.decode("utf-8", "replace"))
        self.assertEqual(proc.returncode, 0, err)
        lines = [l for l in err.decode().splitlines() if "io_uring" in l]
        self.assertEqual(len(lines), 1, err)
        self.assertIn("io_uring unavailable (Function not implemented): using epoll", lines[0])


if __name__ == "__main__":
    unittest.main()
