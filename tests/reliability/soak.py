#!/usr/bin/env python3
"""Soak: for --seconds, mixed application-protocol and length-framed echo
traffic of random sizes against one app-server and one multiconn-server,
with random misbehaviour mixed in (resets, garbage, half-closes, stalls).
Every answer of a well-behaved exchange is verified. Reports messages sent,
verified and lost, and each server's VmRSS and descriptors at the start
(after a warm-up) and at the end (after the traffic stops).

Exits 1 if a message is lost or wrong, if a server's descriptors do not
return exactly to their start count, if its VmRSS ends more than
RSS_TOLERANCE_KB above the start, if a server does not exit 0 on SIGTERM or
if its log holds a sanitizer report.

  soak.py --build DIR [--seconds N] [--workers N] [--seed N]
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

WARMUP_S = 5
# Allocator caches and fragmentation may keep a little more after hours of
# traffic; a leak of even 100 bytes per exchange would pass this in seconds.
RSS_TOLERANCE_KB = 16 * 1024
RSS_TOLERANCE_SAN_KB = 96 * 1024


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.verified = self.wrong = self.misbehaved = self.errors = 0
        self.first_errors = []

    def add(self, sent=0, verified=0, wrong=0, misbehaved=0, error=None):
        with self.lock:
            self.sent += sent
            self.verified += verified
            self.wrong += wrong
            self.misbehaved += misbehaved
            if error:
                self.errors += 1
                if len(self.first_errors) < 10:
                    self.first_errors.append(error)


def app_exchange(rel, srv, rng, st):
    """1..8 pipelined requests on one connection, every answer checked."""
    reqs, wants = [], []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.5:
            v = rng.choice(["morpheus", "ring", "\U0001f436", "nobody", "x" * rng.randint(0, 300)])
            reqs.append(rel.pyapp.make_request("search", v))
            wants.append(("json", {"result": rel.pyapp.SEARCH.get(v, f"No match for '{v}'.")}))
        else:
            content = rng.randbytes(rng.choice([0, 1, 10, 100, 4096, 65536, 300000]))
            reqs.append(rel.app_message(rel.app_header(len(content), "binary/soak"), content))
            wants.append(("bin", b"First 10 bytes of request: " + content[:10]))
    with srv.connect(10) as s:
        sender = threading.Thread(target=s.sendall, args=(b"".join(reqs),))
        sender.start()
        for kind, want in wants:
            m = rel.read_app_message(s)
            if m is None:
                sender.join()
                st.add(sent=len(reqs), verified=0, error="app: EOF before an answer")
                return
            got = json.loads(m[1]) if kind == "json" else m[1]
            st.add(sent=1, verified=int(got == want), wrong=int(got != want))
        sender.join()
    if len(wants) < len(reqs):
        st.add(sent=len(reqs) - len(wants))


def echo_exchange(rel, srv, rng, st):
    """1..8 len32 messages of random sizes, echoed and compared."""
    with srv.connect(10) as s:
        for _ in range(rng.randint(1, 8)):
            body = rng.randbytes(rng.choice([1, 100, 4096, 65536, 1 << 20]))
            s.sendall(struct.pack(">I", len(body)) + body)
            hdr = rel.recv_exact(s, 4)
            back = rel.recv_exact(s, struct.unpack(">I", hdr)[0]) if len(hdr) == 4 else b""
            st.add(sent=1, verified=int(back == body), wrong=int(back != body))


def misbehave(rel, srv, rng, st, framed_req):
    st.add(misbehaved=1)
    s = srv.connect(10)
    kind = rng.choice(["rst", "rst-mid", "garbage", "half-close", "stall", "rst-unread"])
    try:
        if kind == "rst":
            rel.rst_close(s)
            return
        if kind == "rst-mid":
            s.sendall(framed_req[:rng.randint(1, len(framed_req) - 1)])
            rel.rst_close(s)
            return
        if kind == "garbage":
            s.sendall(rng.randbytes(rng.randint(1, 4096)))
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
        elif kind == "half-close":
            s.sendall(framed_req + framed_req[:rng.randint(0, len(framed_req) - 1)])
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except OSError:
                pass
        elif kind == "stall":
            s.sendall(framed_req[:rng.randint(1, len(framed_req) - 1)])
            time.sleep(rng.uniform(0.1, 0.6))
        elif kind == "rst-unread":
            s.sendall(framed_req * 50)
            rel.rst_close(s)
            return
        s.close()
    except OSError:
        s.close()


def sample(srv):
    st = srv.status()
    return {"VmRSS_kB": st["VmRSS"], "fds": srv.open_fds()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    a = ap.parse_args()
    os.environ["MSGSOCK_BIN"] = os.path.abspath(os.path.join(a.build, "msgsock"))
    import rel  # after MSGSOCK_BIN is set
    tol = RSS_TOLERANCE_SAN_KB if rel.sanitized() else RSS_TOLERANCE_KB
    print(f"soak: {a.seconds:.0f} s, {a.workers} workers, seed {a.seed}, {os.environ['MSGSOCK_BIN']}",
          flush=True)
    # The servers log every dropped connection: into files, because a pipe
    # nobody drains fills up and then blocks the server on its next log line.
    logs = {n: tempfile.TemporaryFile() for n in ("app-server", "multiconn-server")}
    app = rel.Server("app-server", "--listen", "127.0.0.1:0", "--threads", "2",
                     "--msg-timeout", "3000", "--idle-timeout", "10000", stderr=logs["app-server"])
    echo = rel.Server("multiconn-server", "--listen", "127.0.0.1:0", "--threads", "2",
                      "--framing", "len32", "--msg-timeout", "3000", "--idle-timeout", "10000",
                      stderr=logs["multiconn-server"])
    servers = {"app-server": app, "multiconn-server": echo}
    st = Stats()
    stop = threading.Event()
    app_req = rel.pyapp.make_request("search", "morpheus")
    echo_req = struct.pack(">I", 100) + b"e" * 100

    def worker(i):
        rng = random.Random(a.seed * 100 + i)
        while not stop.is_set():
            r = rng.random()
            try:
                if r < 0.15:
                    which = rng.random() < 0.5
                    misbehave(rel, app if which else echo, rng, st, app_req if which else echo_req)
                elif r < 0.6:
                    app_exchange(rel, app, rng, st)
                else:
                    echo_exchange(rel, echo, rng, st)
            except (OSError, AssertionError, ValueError) as e:
                st.add(error=f"{type(e).__name__}: {e}")

    status = 0
    try:
        for srv in servers.values():
            rel.settled_fds(srv, rel.app_search if srv is app else
                            lambda s: None)
        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.workers)]
        for t in ts:
            t.start()
        time.sleep(min(WARMUP_S, a.seconds / 4))
        # Baseline at rest: stop, let connections drain, sample, resume.
        stop.set()
        for t in ts:
            t.join(30)
        for name, srv in servers.items():
            rel.wait_until(lambda: not rel.server_sockets(srv), 30,
                           f"{name} closes every connection of the warm-up")
        start = {name: sample(srv) for name, srv in servers.items()}
        base_counts = (st.sent, st.verified)
        stop.clear()
        ts = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(a.workers)]
        t0 = time.monotonic()
        for t in ts:
            t.start()
        last = t0
        while time.monotonic() - t0 < a.seconds:
            time.sleep(1)
            if time.monotonic() - last >= 60:
                last = time.monotonic()
                print(f"soak: {last - t0:.0f} s: {st.sent} sent, {st.verified} verified, "
                      f"{st.misbehaved} misbehaving clients; "
                      + ", ".join(f"{n} {sample(s)}" for n, s in servers.items()), flush=True)
        stop.set()
        for t in ts:
            t.join(60)
        end = {}
        for name, srv in servers.items():
            rel.wait_for(lambda: srv.open_fds() <= start[name]["fds"], 15)
            end[name] = sample(srv)
        lost = st.sent - st.verified
        print(f"soak: messages sent {st.sent}, verified {st.verified}, lost or wrong {lost} "
              f"({st.wrong} wrong); misbehaving clients {st.misbehaved}; client errors {st.errors}")
        for e in st.first_errors:
            print(f"soak:   error: {e}")
        for name in servers:
            print(f"soak: {name}: VmRSS {start[name]['VmRSS_kB']} -> {end[name]['VmRSS_kB']} kB "
                  f"(tolerance +{tol} kB), descriptors {start[name]['fds']} -> {end[name]['fds']} "
                  f"(tolerance 0)")
            if end[name]["fds"] != start[name]["fds"]:
                print(f"soak: FAIL: {name} leaked descriptors")
                status = 1
            if end[name]["VmRSS_kB"] - start[name]["VmRSS_kB"] > tol:
                print(f"soak: FAIL: {name} grew past the tolerance")
                status = 1
        if lost or st.errors or st.sent == 0:
            print("soak: FAIL: messages lost, wrong or unanswered")
            status = 1
        del base_counts
    finally:
        stop.set()
        for name, srv in servers.items():
            try:
                rc = srv.stop(timeout=30)
            except AssertionError as e:
                print(f"soak: FAIL: {e}")
                rc = -1
            logs[name].seek(0)
            text = logs[name].read().decode("utf-8", "replace")
            logs[name].close()
            print(f"soak: {name} logged {text.count(chr(10))} lines")
            if rc != 0:
                print(f"soak: FAIL: {name} exited {rc}: {text[-2000:]}")
                status = 1
            report = rel.runlib.sanitizer_report(text)
            if report:
                print(f"soak: FAIL: {name} logged a sanitizer report: {report}")
                status = 1
    print("soak: " + ("ok" if status == 0 else "FAILED"))
    return status


if __name__ == "__main__":
    sys.exit(main())
