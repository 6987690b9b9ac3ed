#!/usr/bin/env python3
"""Runs msgsock's test suite: every cmocka unit binary, then the black-box
tests of the command (tests/cli/test_*.py, stdlib unittest). Ends with one
line 'N passed, N failed' counting individual test cases."""
import argparse
import os
import re
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_unit(build, pattern):
    passed = failed = 0
    tdir = os.path.join(build, "tests")
    bins = sorted(f for f in os.listdir(tdir)
                  if f.startswith("test_") and "." not in f
                  and os.access(os.path.join(tdir, f), os.X_OK)) if os.path.isdir(tdir) else []
    for name in bins:
        if pattern and pattern not in name:
            continue
        path = os.path.join(tdir, name)
        t0 = time.monotonic()
        proc = subprocess.run([path], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=600)
        out = proc.stdout.decode("utf-8", "replace")
        ok = sum(int(m) for m in re.findall(r"\[  PASSED  \] (\d+) test", out))
        bad = sum(int(m) for m in re.findall(r"\[  FAILED  \] (\d+) test", out))
        if proc.returncode != 0 and bad == 0:
            bad = 1  # crashed or exited early: count the binary as one failure
        passed += ok
        failed += bad
        status = "ok" if proc.returncode == 0 else "FAIL"
        print(f"unit {name}: {ok} passed, {bad} failed ({time.monotonic() - t0:.1f}s) {status}", flush=True)
        if proc.returncode != 0:
            sys.stdout.write(out[-6000:])
    return passed, failed


def run_cli(build, pattern):
    os.environ["MSGSOCK_BIN"] = os.path.abspath(os.path.join(build, "msgsock"))
    os.environ["MSGSOCK_BUILD"] = os.path.abspath(build)
    sys.path.insert(0, os.path.join(HERE, "cli"))
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.join(HERE, "cli"), pattern="test_*.py", top_level_dir=os.path.join(HERE, "cli"))
    if pattern:
        def flat(s):
            for t in s:
                if isinstance(t, unittest.TestSuite):
                    yield from flat(t)
                else:
                    yield t
        suite = unittest.TestSuite(t for t in flat(suite) if pattern in t.id())
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    return res.testsRun - bad - len(res.skipped), bad, len(res.skipped)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", choices=["unit", "cli"])
    ap.add_argument("-k", dest="pattern", default="")
    a = ap.parse_args()
    passed = failed = skipped = 0
    if a.only in (None, "unit"):
        p, f = run_unit(a.build, a.pattern)
        passed += p
        failed += f
    if a.only in (None, "cli"):
        p, f, s = run_cli(a.build, a.pattern)
        passed += p
        failed += f
        skipped += s
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
