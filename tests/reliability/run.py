#!/usr/bin/env python3
"""Runs the reliability suite (tests/reliability/test_*.py, stdlib unittest)
against BUILD/msgsock, or with --suite cli the integration tests of
tests/cli; with --valgrind every msgsock process runs under memcheck and any
error or leak fails. Ends with one line 'N passed, N failed, N skipped'."""
import argparse
import glob
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

VALGRIND = ("valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,possible "
            "--show-leak-kinds=definite,possible --error-exitcode=99 --track-fds=no "
            "--log-file={logdir}/vg.%p.log")


def flat(s):
    for t in s:
        if isinstance(t, unittest.TestSuite):
            yield from flat(t)
        else:
            yield t


def valgrind_wrapper(binary):
    """A script that execs binary under memcheck (the pid stays the same)."""
    d = tempfile.mkdtemp(prefix="msgsock-vg-")
    path = os.path.join(d, "msgsock")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec " + VALGRIND.format(logdir=d) + f" {binary} \"$@\"\n")
    os.chmod(path, 0o755)
    return path, d


def valgrind_findings(logdir):
    """Log files of processes memcheck found errors or leaks in."""
    bad = []
    for log in sorted(glob.glob(os.path.join(logdir, "vg.*.log"))):
        with open(log, errors="replace") as f:
            text = f.read()
        if ("ERROR SUMMARY: 0 errors" not in text and "ERROR SUMMARY:" in text) or \
                "definitely lost: " in text and "definitely lost: 0 bytes" not in text:
            bad.append((log, text))
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--suite", choices=["reliability", "cli"], default="reliability")
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("-k", dest="pattern", default="")
    a = ap.parse_args()
    binary = os.path.abspath(os.path.join(a.build, "msgsock"))
    if not os.access(binary, os.X_OK):
        print(f"run.py: {binary} is missing; build it first", file=sys.stderr)
        return 2
    logdir = None
    if a.valgrind:
        binary, logdir = valgrind_wrapper(binary)
        os.environ["MSGSOCK_SLOW"] = "1"
        os.environ["MSGSOCK_MEMCHECK"] = "1"
    os.environ["MSGSOCK_BIN"] = binary
    os.environ["MSGSOCK_BUILD"] = os.path.abspath(a.build)
    where = HERE if a.suite == "reliability" else os.path.join(ROOT, "tests", "cli")
    sys.path.insert(0, where)
    suite = unittest.TestLoader().discover(where, pattern="test_*.py", top_level_dir=where)
    if a.pattern:
        suite = unittest.TestSuite(t for t in flat(suite) if a.pattern in t.id())
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - bad - len(res.skipped)
    if logdir:
        found = valgrind_findings(logdir)
        for log, text in found[:5]:
            print(f"== memcheck: {log}\n{text[-4000:]}")
        nlogs = len(glob.glob(os.path.join(logdir, "vg.*.log")))
        print(f"memcheck: {nlogs} processes checked, {len(found)} with errors or leaks (logs in {logdir})")
        bad += len(found)
    print(f"{passed} passed, {bad} failed, {len(res.skipped)} skipped")
    return 1 if bad or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
