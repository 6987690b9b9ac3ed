#!/usr/bin/env python3
"""ab.py: one echo scenario's server CPU per message for two builds of msgsock, alternated.

Where `make bench` compares msgsock with its peers, this compares msgsock with
itself: build A's and build B's server take turns (A B A B ...) under one
generator (B's `msgsock bench`), server on CPU 0 and generator on CPU 1, for
each variant asked (plain: the default backend; epoll: --backend epoll; tls).
Prints each run, then per variant and build the median and the range.

Usage: bench/ab.py --a DIR --b DIR [--scenario 10c_64KiB] [--variants plain,epoll,tls] [--reps 4]
"""
import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as R  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="build directory of A (holds msgsock)")
    ap.add_argument("--b", required=True, help="build directory of B; its msgsock generates the load")
    ap.add_argument("--scenario", default="10c_64KiB",
                    help="one of run.py's echo scenarios (default 10c_64KiB)")
    ap.add_argument("--variants", default="plain,epoll,tls")
    ap.add_argument("--reps", type=int, default=4)
    o = ap.parse_args()
    runs, _ = R.scenarios(False, 20000)
    args = dict(runs).get(o.scenario)
    if args is None:
        sys.exit(f"ab.py: no scenario {o.scenario!r}; one of {', '.join(k for k, _ in runs)}")
    variants = o.variants.split(",")
    bad = [v for v in variants if v not in ("plain", "epoll", "tls")]
    if bad:
        sys.exit(f"ab.py: unknown variant {bad[0]!r} (plain, epoll, tls)")
    certs = R.make_certs() if "tls" in variants else None
    if "tls" in variants and not certs:
        sys.exit("ab.py: tls needs openssl to make certificates")
    builds = {"A": o.a, "B": o.b}
    res = {}
    for rep in range(o.reps):
        for name, build in builds.items():
            for v in variants:
                extra = []
                if v == "tls":
                    argv = R.server_argvs(build, tls=certs)["msgsock"]
                    extra = ["--tls", "--tls-ca", os.path.join(certs, "ca.pem")]
                else:
                    argv = R.server_argvs(build)[0]["msgsock" if v == "plain" else "ms-epoll"]
                srv = R.Server(name, argv)
                try:
                    r = R.run_bench(o.b, srv, extra + args)
                finally:
                    srv.stop()
                us = r["cpu"]["server_us_per_req"]
                res.setdefault((v, name), []).append(us)
                print(f"  {o.scenario} {v:5} {name} rep {rep + 1}/{o.reps}: {us:.2f} us/msg", flush=True)
    print(f"{o.scenario} server CPU us/msg: median (min-max) over {o.reps} runs")
    for v in variants:
        a, b = res[(v, "A")], res[(v, "B")]
        print(f"  {v:5}  A {statistics.median(a):8.2f} ({min(a):.1f}-{max(a):.1f})"
              f"   B {statistics.median(b):8.2f} ({min(b):.1f}-{max(b):.1f})"
              f"   B/A {statistics.median(b) / statistics.median(a):.2f}")


if __name__ == "__main__":
    main()
