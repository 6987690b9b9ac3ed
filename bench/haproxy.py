#!/usr/bin/env python3
"""bench/haproxy.py: what HAProxy in front of msgsock costs (issue 14).

Starts two `msgsock app-server --threads 1 --proxy-protocol` backends and
HAProxy (Debian's haproxy, mode tcp, nbthread 1, send-proxy-v2), all on
loopback, then runs `msgsock bench --proto app` against:
  direct      one backend, no HAProxy (the backend without --proxy-protocol)
  haproxy-1   HAProxy with one backend
  haproxy-2   HAProxy with both backends, round robin
for kept connections (-c CONNS) and a connection per request. Prints req/s,
p99, and HAProxy's and the backends' CPU time per request (utime+stime from
/proc over the measured run). Every process is stopped by its pid.

  python3 bench/haproxy.py [--build build] [--duration 5] [--conns 50]
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # pacing the retries of a connect, not a wait for state
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Proc:
    def __init__(self, argv, **kw):
        self.p = subprocess.Popen(argv, **kw)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


def backend(binary, proxy):
    args = [binary, "app-server", "--threads", "1"] + (["--proxy-protocol"] if proxy else []) + \
           ["127.0.0.1", "0"]
    p = Proc(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.p.stdout.readline().decode()
    if not line.startswith("listening on "):
        raise SystemExit(f"{args}: {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def haproxy(ports, tmp):
    port = free_port()
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p} send-proxy-v2"
                        for i, p in enumerate(ports))
    cfg = os.path.join(tmp, f"haproxy-{len(ports)}.cfg")
    with open(cfg, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance roundrobin
{servers}
""")
    p = Proc(["haproxy", "-f", cfg, "-db"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p, port


def bench(binary, port, duration, extra):
    args = [binary, "bench", "--proto", "app", "-d", str(duration), "-w", "1", "--json"] + extra + \
           ["127.0.0.1", str(port)]
    out = subprocess.run(args, capture_output=True, timeout=duration + 60)
    if out.returncode != 0:
        raise SystemExit(f"{args}: exit {out.returncode}: {out.stderr.decode()[-500:]}")
    return json.loads(out.stdout)


def measure(binary, port, duration, extra, pids):
    before = {k: cpu_s(v) for k, v in pids.items()}
    r = bench(binary, port, duration, extra)
    after = {k: cpu_s(v) for k, v in pids.items()}
    # The CPU figures span warm-up and window; charge them to every request
    # the run completed (req/s over the window, times warm-up plus window).
    total = r["req_per_s"] * (r["duration_s"] + r["warmup_s"])
    cpu = {k: (after[k] - before[k]) * 1e6 / total for k in pids}
    return r, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conns", type=int, default=50)
    a = ap.parse_args()
    binary = os.path.abspath(os.path.join(a.build, "msgsock"))
    tmp = tempfile.mkdtemp(prefix="msgsock-haproxy-")
    procs = []
    try:
        plain, plain_port = backend(binary, False)
        procs.append(plain)
        b1, p1 = backend(binary, True)
        b2, p2 = backend(binary, True)
        procs += [b1, b2]
        h1, h1_port = haproxy([p1], tmp)
        procs.append(h1)
        h2, h2_port = haproxy([p1, p2], tmp)
        procs.append(h2)
        scenarios = [(f"{a.conns} conns kept", ["-c", str(a.conns)]),
                     ("4 conns, connect per request", ["-c", "4", "--connect-per-request"])]
        targets = [("direct", plain_port, {"backend": plain.p.pid}),
                   ("haproxy-1", h1_port, {"haproxy": h1.p.pid, "backend": b1.p.pid}),
                   ("haproxy-2", h2_port, {"haproxy": h2.p.pid, "backend": b1.p.pid,
                                           "backend2": b2.p.pid})]
        print(f"{'scenario':32} {'target':10} {'req/s':>10} {'p99 us':>9} "
              f"{'haproxy us/req':>15} {'backends us/req':>16}")
        for name, extra in scenarios:
            for tname, port, pids in targets:
                r, cpu = measure(binary, port, a.duration, extra, pids)
                be = sum(v for k, v in cpu.items() if k.startswith("backend"))
                hp = cpu.get("haproxy")
                print(f"{name:32} {tname:10} {r['req_per_s']:>10,.0f} "
                      f"{r['latency_us']['p99']:>9,.1f} "
                      f"{'' if hp is None else f'{hp:.2f}':>15} {be:>16.2f}", flush=True)
    finally:
        for p in reversed(procs):
            p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
