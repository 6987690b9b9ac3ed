#!/usr/bin/env python3
"""How long an app-server takes to drain on SIGTERM with IDLE idle connections
(each has had one answer and sends nothing more) and BUSY busy ones (each
sends its next request as soon as it has the answer to the last).

Usage: bench/drain_measure.py [--bin build/msgsock] [--idle 1000] [--busy 100]
       [--model event] [--seconds 1]

Prints the time from SIGTERM to the server's exit, how many requests the
busy connections had answered, and what became of the last request each
busy connection sent: answered, or sent after the server had closed its side
(a keep-alive client retries those on a new connection)."""
import argparse
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "cli"))
import pyapp  # noqa: E402

REQ = pyapp.make_request("search", "morpheus")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build/msgsock")
    ap.add_argument("--idle", type=int, default=1000)
    ap.add_argument("--busy", type=int, default=100)
    ap.add_argument("--model", default="event")
    ap.add_argument("--seconds", type=float, default=1.0, help="busy time before SIGTERM")
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    srv = subprocess.Popen([a.bin, "app-server", "--model", a.model, "127.0.0.1", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = srv.stdout.readline().decode().strip()
    host, port = line.rsplit(" ", 1)[1].rsplit(":", 1)
    addr = (host, int(port))

    # The answer is always the same length: count bytes, not messages.
    probe = socket.create_connection(addr)
    probe.sendall(REQ)
    want = b""
    while True:
        d = probe.recv(65536)
        if not d:
            break
        want += d
        if len(want) >= 2 and len(want) >= 2 + int.from_bytes(want[:2], "big"):
            hdr = pyapp.json.loads(want[2:2 + int.from_bytes(want[:2], "big")])
            if len(want) == 2 + int.from_bytes(want[:2], "big") + hdr["content-length"]:
                break
    answer_len = len(want)
    probe.close()

    sel = selectors.DefaultSelector()
    idle = []
    for _ in range(a.idle):
        s = socket.create_connection(addr)
        s.sendall(REQ)
        got = 0
        while got < answer_len:
            got += len(s.recv(65536))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, ("idle", [0]))
        idle.append(s)
    busy = {}
    for _ in range(a.busy):
        s = socket.create_connection(addr)
        s.setblocking(False)
        s.sendall(REQ)
        busy[s] = [0, 0, True]  # bytes of the current answer, answers, request outstanding
        sel.register(s, selectors.EVENT_READ, ("busy", busy[s]))

    answered = 0
    lost_after_close = 0
    idle_closed = 0
    t_term = None
    t_end = time.monotonic() + a.seconds
    open_socks = a.idle + a.busy
    while open_socks > 0:
        if t_term is None and time.monotonic() >= t_end:
            srv.send_signal(signal.SIGTERM)
            t_term = time.monotonic()
        for key, _ in sel.select(0.05):
            s = key.fileobj
            kind, st = key.data
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                d = b""
            if kind == "busy" and d:
                st[0] += len(d)
                if st[0] >= answer_len:
                    st[0] -= answer_len
                    st[1] += 1
                    answered += 1
                    try:
                        s.sendall(REQ)
                    except OSError:
                        st[2] = False
                continue
            if d:
                continue
            if kind == "busy" and st[2]:
                lost_after_close += 1
            if kind == "idle":
                idle_closed += 1
            sel.unregister(s)
            s.close()
            open_socks -= 1
    rc = srv.wait(60)
    t_exit = time.monotonic()
    err = srv.stderr.read().decode(errors="replace")
    print(f"model {a.model}: {a.idle} idle + {a.busy} busy connections")
    print(f"  drain: SIGTERM to exit {1000 * (t_exit - t_term):.0f} ms, exit status {rc}")
    print(f"  busy connections: {answered} answers in all; {lost_after_close} sent a request "
          f"after the server had closed its side (never read by it)")
    print(f"  idle connections closed by the server: {idle_closed}")
    if err.strip():
        print("  server stderr:", err.strip()[:2000])


if __name__ == "__main__":
    main()
