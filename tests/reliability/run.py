#!/usr/bin/env python3
"""Runs the reliability suite (tests/reliability/test_*.py, stdlib unittest)
against BUILD/msgsock, or with --suite cli the integration tests of
tests/cli; with --valgrind every msgsock process runs under memcheck and any
error, leak or missing ERROR SUMMARY (a process killed before its exit)
fails, unless a test killed it on purpose with rel.kill_on_purpose, which
records why. Counts, skips, strict skips and the environment as tests/run.py
does (tests/runlib.py); the last line is 'N passed, N failed, N skipped'."""
import argparse
import inspect
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, HERE)

import runlib  # noqa: E402

VALGRIND = ("valgrind --tool=memcheck --leak-check=full --errors-for-leak-kinds=definite,possible "
            "--show-leak-kinds=definite,possible --error-exitcode=99 --track-fds=no "
            "--log-file={logdir}/vg.%p.log")


def valgrind_wrapper(binary):
    """A script that execs binary under memcheck (the pid stays the same)."""
    d = tempfile.mkdtemp(prefix="msgsock-vg-")
    path = os.path.join(d, "msgsock")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec " + VALGRIND.format(logdir=d) + f" {binary} \"$@\"\n")
    os.chmod(path, 0o755)
    return path, d


def excuse_reasoned_kills():
    """A test that SIGKILLs a server says why with mstest.Server.kill(
    reason=...) where that exists: the reason is recorded beside the
    server's memcheck log, so the check over every log at the end excuses
    it as it does rel.kill_on_purpose."""
    import rel  # puts tests/cli on the path
    import mstest
    kill = mstest.Server.kill
    if "reason" not in inspect.signature(kill).parameters:
        return

    def kill_recorded(self, reason=None):
        if reason is not None:
            rel.mark_killed(self.pid, reason)
        return kill(self, reason)
    mstest.Server.kill = kill_recorded


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--suite", choices=["reliability", "cli"], default="reliability")
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("-k", dest="pattern", default="")
    runlib.add_env_args(ap)
    a = ap.parse_args()
    tally = runlib.Tally()
    runlib.apply_env_args(tally, a)
    binary = os.path.abspath(os.path.join(a.build, "msgsock"))
    if not os.access(binary, os.X_OK):
        print(f"run.py: {binary} is missing; build it first", file=sys.stderr)
        return 2
    logdir = None
    if a.valgrind:
        binary, logdir = valgrind_wrapper(binary)
        os.environ["MSGSOCK_SLOW"] = "1"
        os.environ["MSGSOCK_MEMCHECK"] = "1"
        os.environ["MSGSOCK_VG_LOGDIR"] = logdir
    os.environ["MSGSOCK_BIN"] = binary
    os.environ["MSGSOCK_BUILD"] = os.path.abspath(a.build)
    if logdir:
        excuse_reasoned_kills()
    where = HERE if a.suite == "reliability" else os.path.join(ROOT, "tests", "cli")
    runlib.run_unittest(where, a.suite, a.pattern, tally)
    if logdir:
        import rel
        found = rel.memcheck_findings(logdir)
        for log, problem, text in found[:5]:
            print(f"== memcheck: {log}: {problem}\n{text[-4000:]}")
        nlogs = len([f for f in os.listdir(logdir) if f.endswith(".log")])
        tally.note(f"memcheck: {nlogs} processes checked, {len(found)} with errors, leaks or no "
                   f"summary (logs in {logdir})")
        tally.failed += [(f"memcheck:{os.path.basename(log)}", problem) for log, problem, _ in found]
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
