#!/usr/bin/env python3
"""run.py: msgsock's servers against libuv, libevent and Python peers (echo and app protocol).

Runs each scenario for every server, interleaved (A B C D A B C D ...), the
server pinned to CPU 0 and `msgsock bench` to CPU 1, and prints one table:
each server's figures and msgsock's ratio to the best peer. Writes the raw
figures to bench/results/latest.json. Exit status 1 only if a run found an
error (a wrong byte, a drop, a crash), never because of the figures.

The app section loads msgsock app-server with the tutorial's application
protocol (`msgsock bench --proto app`: searches and binary requests, every
answer checked) against bench/peers/py_app.py, the guide's protocol on Python
selectors; its rows' ratio is msgsock to that one peer, and a line says
whether msgsock reached APP_TARGET times its req/s.

Usage: bench/run.py [--quick] [--only SECTIONS] [--build DIR] [--reps N] [--out FILE]
"""
import argparse
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTIONS = ("echo", "rate", "idle", "unix", "tls", "app")
APP_TARGET = 50  # issue #6: msgsock app-server at >= 50x py_app.py's req/s


class RunError(Exception):
    pass


def pinned(cpu, argv):
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)] + argv
    return argv


class Server:
    """A server process started on port 0 (or a Unix path), pinned to CPU 0."""

    def __init__(self, name, argv):
        self.name = name
        self.proc = subprocess.Popen(pinned(0, argv), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            self.proc.kill()
            err = self.proc.stderr.read().decode(errors="replace")
            raise RunError(f"{name}: no 'listening on' line (got {line!r}): {err}")
        self.addr = line[len("listening on "):]

    def bench_target(self):
        if self.addr.startswith("unix:"):
            return ["--connect", self.addr]
        host, port = self.addr.rsplit(":", 1)
        return [host.strip("[]"), port]

    def rss_bytes(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def stop(self):
        """Stops the server; raises RunError if it had already died."""
        died = self.proc.poll()
        if died is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stdout.close()
        self.proc.stderr.close()
        if died is not None:
            raise RunError(f"{self.name} exited with {died} during the run: {err[-2000:]}")


def server_argvs(build, unix_path=None, tls=None):
    msgsock = os.path.join(build, "msgsock")
    has_multi = subprocess.run([msgsock, "multiconn-server", "--help"],
                               capture_output=True).returncode == 0
    listen = ["--listen", "unix:" + unix_path] if unix_path else ["127.0.0.1", "0"]
    if has_multi:
        ms = [msgsock, "multiconn-server", "--threads", "1", "--max-conns", "30000", *listen]
    else:
        ms = [msgsock, "echo-server", *listen]
    if tls:
        ms[2:2] = ["--tls-cert", os.path.join(tls, "server.pem"),
                   "--tls-key", os.path.join(tls, "server.key")]
    if unix_path or tls:
        return {"msgsock": ms}
    peers = os.path.join(build, "bench")
    return {
        "msgsock": ms,
        # The same server on the readiness backend (the default is io_uring
        # where the kernel allows it, epoll otherwise).
        "ms-epoll": ms + ["--backend", "epoll"],
        "libuv": [os.path.join(peers, "uv_echo"), "127.0.0.1", "0"],
        "libevent": [os.path.join(peers, "ev_echo"), "127.0.0.1", "0"],
        "python": [sys.executable, os.path.join(ROOT, "bench", "peers", "py_echo.py"), "127.0.0.1", "0"],
    }, has_multi


def app_argvs(build):
    """msgsock app-server and the Python selectors app server, one loop each."""
    return {
        "msgsock": [os.path.join(build, "msgsock"), "app-server", "--threads", "1",
                    "--max-conns", "30000", "127.0.0.1", "0"],
        "python": [sys.executable, os.path.join(ROOT, "bench", "peers", "py_app.py"), "127.0.0.1", "0"],
    }


def run_bench(build, srv, args, perf_window=None):
    """One `msgsock bench` run against srv; returns its JSON (plus syscalls
    counted by perf over perf_window=(start_after_s, seconds), if asked)."""
    argv = pinned(1, [os.path.join(build, "msgsock"), "bench", "--json", "-q", "--threads", "1",
                      "--pid", str(srv.proc.pid), *args, *srv.bench_target()])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    syscalls = None
    if perf_window:
        time.sleep(perf_window[0])
        syscalls = perf_syscalls(srv.proc.pid, perf_window[1])
    out, err = proc.communicate(timeout=600)
    try:
        res = json.loads(out)
    except ValueError:
        raise RunError(f"bench {args} on {srv.name}: exit {proc.returncode}: {err.decode()[-2000:]}")
    if res["errors"]["total"] or proc.returncode not in (0,):
        raise RunError(f"bench {args} on {srv.name}: exit {proc.returncode}, errors {res['errors']}: "
                       f"{err.decode()[-500:]}")
    res["syscalls"] = syscalls
    res["perf_s"] = perf_window[1] if perf_window else None
    return res


_perf_ok = None


def perf_syscalls(pid, seconds):
    """System calls pid makes in the next `seconds`, or None without perf."""
    global _perf_ok
    if _perf_ok is False or not shutil.which("perf"):
        _perf_ok = False
        return None
    p = subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "-x,",
                        "--", "sleep", str(seconds)], capture_output=True, text=True)
    for line in p.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and "raw_syscalls:sys_enter" in fields[2] and fields[0].strip().isdigit():
            _perf_ok = True
            return int(fields[0])
    _perf_ok = False
    sys.stderr.write("run.py: perf stat unavailable, syscalls not counted: "
                     + p.stderr.strip().splitlines()[-1][:200] + "\n" if p.stderr.strip() else "")
    return None


def idle_rss(srv, n):
    """Server RSS growth per connection with n idle connections (each
    echoed one byte first, so the server has set it up fully)."""
    family = socket.AF_UNIX if srv.addr.startswith("unix:") else socket.AF_INET
    host, port = srv.addr.rsplit(":", 1)
    time.sleep(0.3)
    before = srv.rss_bytes()
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect((host, int(port)))
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise RunError(f"{srv.name}: idle connection {len(socks)} not echoed")
            socks.append(s)
        time.sleep(0.5)
        after = srv.rss_bytes()
    except OSError as e:
        raise RunError(f"{srv.name}: idle connection {len(socks)}: {e}")
    finally:
        for s in socks:
            s.close()
    return (after - before) / n


def make_certs():
    """A directory with the test CA and server certificate, or None without openssl."""
    if not shutil.which("openssl"):
        return None
    d = tempfile.mkdtemp(prefix="msgsock-bench-tls-")
    p = subprocess.run(["sh", os.path.join(ROOT, "tests", "tls", "mkcerts.sh"), d],
                       capture_output=True, timeout=120)
    return d if p.returncode == 0 else None


def scenarios(quick, rate):
    dw = ["-d", "1", "-w", "0.3"] if quick else ["-d", "4", "-w", "1"]
    every = [
        ("1c_64B_p1", ["-c", "1", "-s", "64", "-p", "1"]),
        ("100c_64B_p1", ["-c", "100", "-s", "64", "-p", "1"]),
        ("100c_64B_p16", ["-c", "100", "-s", "64", "-p", "16"]),
        ("10c_64KiB", ["-c", "10", "-s", "64k", "-p", "1"]),
        ("1000c_512B", ["-c", "1000", "-s", "512", "-p", "1"]),
    ]
    if quick:
        every = [every[0], every[2]]
    else:
        every.append(("4c_connect_per_req", ["-c", "4", "-s", "64", "--connect-per-request"]))
    return [(name, a + dw) for name, a in every], ["-c", "100", "-s", "64", "--rate", str(rate)] + dw


def app_scenarios(quick):
    """The app protocol at the same concurrency for both servers: pipelined on
    kept connections, and one request per connection."""
    dw = ["-d", "1", "-w", "0.3"] if quick else ["-d", "4", "-w", "1"]
    every = [
        ("100c_p16", ["-c", "100", "-s", "64", "-p", "16"]),
        ("4c_connect_per_req", ["-c", "4", "-s", "64", "--connect-per-request"]),
    ]
    if quick:
        every = every[:1]
    return [(name, ["--proto", "app"] + a + dw) for name, a in every]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def parse_only(text):
    only = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in only if w not in SECTIONS]
    if bad or not only:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}; got {text!r}")
    return set(only)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs, fewer scenarios (< 1 min)")
    ap.add_argument("--only", type=parse_only, default=set(SECTIONS), metavar="SECTIONS",
                    help="comma-separated sections to run: " + ", ".join(SECTIONS) + " (default all)")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3, quick 1)")
    ap.add_argument("--rate", type=int, default=20000, help="offered load of the fixed-rate scenario")
    ap.add_argument("--idle", type=int, default=None, help="idle connections (default 10000, quick 1000)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "latest.json"))
    o = ap.parse_args()
    reps = o.reps or (1 if o.quick else 3)
    nidle = o.idle or (1000 if o.quick else 10000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    argvs, has_multi = server_argvs(o.build)
    if not has_multi:
        print("run.py: no multiconn-server yet; msgsock runs as the blocking echo-server "
              "(one connection at a time): multi-connection scenarios are skipped for it")
    names = list(argvs)
    runs, order = scenarios(o.quick, o.rate)
    app_runs = app_scenarios(o.quick)
    app_argv = app_argvs(o.build)
    results = {n: {} for n in names}
    failures = []

    def one(name, key, fn, argv=None):
        if argv is None and name in ("msgsock", "ms-epoll") and not has_multi and key != "1c_64B_p1":
            return
        try:
            srv = Server(name, argv or argvs[name])
        except RunError as e:
            failures.append(str(e))
            return
        try:
            val = fn(srv)
        except (RunError, subprocess.TimeoutExpired) as e:
            failures.append(str(e))
            val = None
        try:
            srv.stop()
        except RunError as e:
            failures.append(str(e))
        if val is not None:
            results[name].setdefault(key, []).append(val)

    t_start = time.monotonic()
    if "echo" in o.only:
        for key, args in runs:
            for rep in range(reps):
                for name in names:
                    print(f"  {key:14} rep {rep + 1}/{reps}  {name}", flush=True)
                    one(name, key, lambda s: run_bench(o.build, s, args))
    if "app" in o.only:
        for key, args in app_runs:
            for rep in range(reps):
                for name, argv in app_argv.items():
                    print(f"  {'app ' + key:14} rep {rep + 1}/{reps}  {name}", flush=True)
                    one(name, "app_" + key, lambda s: run_bench(o.build, s, args), argv)
    dur = float(order[order.index("-d") + 1])
    warm = float(order[order.index("-w") + 1])
    if "rate" in o.only:
        for rep in range(reps):
            for name in names:
                print(f"  {'fixed_rate':14} rep {rep + 1}/{reps}  {name}", flush=True)
                one(name, "fixed_rate", lambda s: run_bench(o.build, s, order,
                                                            perf_window=(warm + 0.2, max(dur - 0.4, 0.3))))
    if "idle" in o.only:
        for name in names:
            print(f"  {'idle_rss':14} {nidle} conns  {name}", flush=True)
            one(name, "idle_rss", lambda s: idle_rss(s, nidle))
    if has_multi and "unix" in o.only:
        upath = os.path.join(tempfile.mkdtemp(prefix="msgsock-bench-"), "ms.sock")
        uargv = server_argvs(o.build, upath)["msgsock"]
        key, args = runs[1] if len(runs) > 1 else runs[0]
        for rep in range(reps):
            print(f"  {'unix ' + key:14} rep {rep + 1}/{reps}  msgsock", flush=True)
            try:
                srv = Server("msgsock-unix", uargv)
                try:
                    results["msgsock"].setdefault("unix_" + key, []).append(run_bench(o.build, srv, args))
                finally:
                    srv.stop()
            except RunError as e:
                failures.append(str(e))

    certs = None if o.quick or not has_multi or "tls" not in o.only else make_certs()
    if certs:
        targv = server_argvs(o.build, tls=certs)["msgsock"]
        tls_args = ["--tls", "--tls-ca", os.path.join(certs, "ca.pem")]
        for key, args in runs:
            if key not in TLS_SCENARIOS:
                continue
            for rep in range(reps):
                print(f"  {'tls ' + key:14} rep {rep + 1}/{reps}  msgsock", flush=True)
                try:
                    srv = Server("msgsock-tls", targv)
                    try:
                        results["msgsock"].setdefault("tls_" + key, []).append(
                            run_bench(o.build, srv, tls_args + args))
                    finally:
                        srv.stop()
                except (RunError, subprocess.TimeoutExpired) as e:
                    failures.append(str(e))
        shutil.rmtree(certs, ignore_errors=True)

    table = summarize(results, names, runs, o.rate, nidle, app_runs)
    print_table(table, names)
    app_target = app_verdict(table, app_runs)
    for line in app_target["lines"]:
        print(line)
    machine = {"cpus": os.cpu_count(), "kernel": platform.release(),
               "loadavg_at_end": os.getloadavg(), "pinned": bool(shutil.which("taskset")),
               "seconds": round(time.monotonic() - t_start, 1),
               "note": "shared 2-CPU machine; other builds may run at the same time: figures are noisy"}
    os.makedirs(os.path.dirname(os.path.abspath(o.out)), exist_ok=True)
    with open(o.out, "w") as f:
        json.dump({"machine": machine, "quick": o.quick, "only": sorted(o.only), "reps": reps,
                   "rate": o.rate, "idle_conns": nidle, "table": table, "app_target": app_target,
                   "runs": results, "failures": failures},
                  f, indent=1)
    print(f"raw figures: {os.path.relpath(o.out)}")
    for msg in failures:
        print("FAILED: " + msg)
    return 1 if failures else 0


APP_LABEL = "app vs py"


def app_verdict(rows, app_runs):
    """Whether msgsock app-server reached APP_TARGET times py_app.py's req/s
    in each app scenario; returns the figures and the lines to print."""
    by_metric = {r["metric"]: r for r in rows}
    scen, lines = {}, []
    for key, _ in app_runs:
        rq = by_metric.get(f"{APP_LABEL} {key} req/s")
        cpu = by_metric.get(f"{APP_LABEL} {key} server CPU us/msg")
        if not rq or rq["ratio"] is None:
            continue
        ms_cpu = cpu["values"].get("msgsock") if cpu else None
        py_cpu = cpu["values"].get("python") if cpu else None
        scen[key] = {"req_per_s_ratio": rq["ratio"], "met": rq["ratio"] >= APP_TARGET,
                     "msgsock_generator_bound": bool(rq["generator_bound"].get("msgsock")),
                     "cpu_per_msg_ratio": (py_cpu / ms_cpu) if py_cpu and ms_cpu else None}
    if scen:
        met = all(v["met"] for v in scen.values())
        each = ", ".join(f"{k} {fmt(v['req_per_s_ratio'])}x" for k, v in scen.items())
        lines.append(f"app target: msgsock app-server >= {APP_TARGET}x py_app.py's req/s at the same "
                     f"concurrency: {'met' if met else 'NOT met'} ({each})")
        cpu = ", ".join(f"{k} {fmt(v['cpu_per_msg_ratio'])}x" for k, v in scen.items()
                        if v["cpu_per_msg_ratio"])
        if cpu:
            lines.append(f"  server CPU per request, python / msgsock: {cpu}")
        gen = [k for k, v in scen.items() if v["msgsock_generator_bound"]]
        if gen:
            lines.append(f"  generator-bound for msgsock in {', '.join(gen)}: its req/s and ratio "
                         "there are lower bounds")
    else:
        met = None
    return {"target": APP_TARGET, "met": met, "scenarios": scen, "lines": lines}


TLS_SCENARIOS = ("100c_64B_p16", "10c_64KiB", "4c_connect_per_req")


def gen_bound(r):
    return bool(r.get("cpu", {}).get("generator_bound"))


def summarize(results, names, runs, rate, nidle, app_runs=()):
    """Rows of (metric, higher_is_better, {server: value}); a closed-loop
    req/s row also says which servers' runs were mostly generator-bound.
    A scenario no server ran (a section left out by --only) has no rows."""
    rows = []

    def row(label, better_high, key, pick, mark_gen=False):
        if not any(results[n].get(key) for n in names):
            return
        vals, gen = {}, {}
        for n in names:
            rs = results[n].get(key)
            vals[n] = median([pick(r) for r in rs]) if rs else None
            gen[n] = bool(rs) and mark_gen and 2 * sum(gen_bound(r) for r in rs) > len(rs)
        rows.append({"metric": label, "higher_is_better": better_high, "values": vals,
                     "generator_bound": gen})

    for key, _ in runs:
        row(f"{key} req/s", True, key, lambda r: r["req_per_s"], mark_gen=True)
        row(f"{key} p99 us", False, key, lambda r: r["latency_us"]["p99"])
        row(f"{key} server CPU us/msg", False, key, lambda r: r["cpu"]["server_us_per_req"])
    if any(k == "10c_64KiB" for k, _ in runs):
        row("10c_64KiB MB/s", True, "10c_64KiB", lambda r: r["mb_per_s"])
    row(f"rate {rate}/s p99 us", False, "fixed_rate", lambda r: r["latency_us"]["p99"])
    row(f"rate {rate}/s server CPU us/msg", False, "fixed_rate",
        lambda r: r["cpu"]["server_us_per_req"])
    row(f"rate {rate}/s syscalls/msg", False, "fixed_rate",
        lambda r: r["syscalls"] / (r["req_per_s"] * r["perf_s"]) if r.get("syscalls") and r["req_per_s"] else None)
    row(f"idle RSS B/conn ({nidle})", False, "idle_rss", lambda r: r)
    for key, _ in runs:
        if results.get("msgsock", {}).get("unix_" + key):
            row(f"unix {key} req/s", True, "unix_" + key, lambda r: r["req_per_s"], mark_gen=True)
            row(f"unix {key} p99 us", False, "unix_" + key, lambda r: r["latency_us"]["p99"])
    for key, _ in runs:
        if results.get("msgsock", {}).get("tls_" + key):
            row(f"tls {key} req/s", True, "tls_" + key, lambda r: r["req_per_s"], mark_gen=True)
            if key == "10c_64KiB":
                row(f"tls {key} MB/s", True, "tls_" + key, lambda r: r["mb_per_s"])
            row(f"tls {key} p99 us", False, "tls_" + key, lambda r: r["latency_us"]["p99"])
            row(f"tls {key} server CPU us/msg", False, "tls_" + key,
                lambda r: r["cpu"]["server_us_per_req"])
    # App rows: msgsock app-server against py_app.py, the one peer in these rows.
    for key, _ in app_runs:
        row(f"{APP_LABEL} {key} req/s", True, "app_" + key, lambda r: r["req_per_s"], mark_gen=True)
        row(f"{APP_LABEL} {key} p99 us", False, "app_" + key, lambda r: r["latency_us"]["p99"])
        row(f"{APP_LABEL} {key} server CPU us/msg", False, "app_" + key,
            lambda r: r["cpu"]["server_us_per_req"])
        # The least served connection's completions over the most served one's:
        # 1 when every connection was served alike, near 0 when one starved.
        row(f"{APP_LABEL} {key} conn min/max", True, "app_" + key,
            lambda r: r["fairness"]["min"] / r["fairness"]["max"]
            if r.get("fairness", {}).get("max") else None)
    for r in rows:
        peers = [v for n, v in r["values"].items()
                 if n not in ("msgsock", "ms-epoll") and v is not None]
        ms = r["values"].get("msgsock")
        best = (max(peers) if r["higher_is_better"] else min(peers)) if peers else None
        r["best_peer"] = best
        r["ratio"] = (ms / best) if (ms is not None and best) else None
    return rows


def fmt_cell(r, n):
    v = fmt(r["values"].get(n))
    return v + "*" if r.get("generator_bound", {}).get(n) else v


def fmt(v):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def print_table(rows, names):
    if not rows:
        print("\n(no figures)")
        return
    names = [n for n in names if any(r["values"].get(n) is not None for r in rows)]
    w0 = max(len(r["metric"]) for r in rows) + 2
    head = f"{'metric':{w0}}" + "".join(f"{n:>12}" for n in names) + f"{'ms/best':>10}"
    print()
    print(head)
    print("-" * len(head))
    for r in rows:
        line = f"{r['metric']:{w0}}" + "".join(f"{fmt_cell(r, n):>12}" for n in names)
        ratio = r["ratio"]
        mark = ""
        if ratio is not None:
            good = ratio >= 1 if r["higher_is_better"] else ratio <= 1
            mark = " ok" if good else ""
            if r.get("generator_bound", {}).get("msgsock"):
                mark = " gen"
        line += f"{(fmt(ratio) + mark) if ratio is not None else '-':>10}"
        print(line)
    print("(ms/best: msgsock divided by the best peer; higher is better for req/s and MB/s, "
          "lower for latency, CPU, syscalls and memory. *: generator-bound, the load generator "
          "was busy >= 90 % of the window, so that req/s is the generator's limit as much as "
          "the server's; 'gen': msgsock's figure is generator-bound and its ratio a lower bound "
          "- compare server CPU us/msg instead)")
    if any(r["metric"].startswith(APP_LABEL + " ") for r in rows):
        print(f"('{APP_LABEL}' rows: the app protocol (msgsock bench --proto app, searches and "
              "binary requests), msgsock app-server --threads 1 against bench/peers/py_app.py; "
              "ms/best there is msgsock / python, the one peer)")


if __name__ == "__main__":
    sys.exit(main())
