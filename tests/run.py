#!/usr/bin/env python3
"""Runs msgsock's test suite: the cmocka binary of every tests/unit/test_*.c,
then the black-box tests of the command (tests/cli/test_*.py, stdlib
unittest), after the runner's own tests (tests/runner/). Every test case counts once: passed, failed (a failing subtest,
a crash, a timeout, a binary that ran no test) or skipped, with its reason.
The last line is 'N passed, N failed, N skipped'; the lines before it list
the skips and failures and say how the run was narrowed, if it was.

MSGSOCK_TEST, MSGSOCK_TEST_BACKEND and MSGSOCK_BACKEND left set in the
environment are cleared with a warning (--keep-env honours them). With
MSGSOCK_STRICT_SKIPS=1 a skip that tests/expected-skips.txt does not list
is a failure."""
import argparse
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import runlib  # noqa: E402

# cmocka 1.1 on stdout: a group starts with "Running N test(s)." and ends
# with "N test(s) run."; each case is "[ RUN      ] name" and then OK,
# SKIPPED or FAILED; a case whose setup failed, or that crashed the binary,
# has no result line. The summary (PASSED, "listed below") goes to stderr.
RUN_RE = re.compile(r"^\[ RUN      \] (\S+)")
RESULT_RE = re.compile(r"^\[ {0,7}(OK|SKIPPED|FAILED|ERROR) *\] (\S+)$")
GROUP_RE = re.compile(r"^\[==========\] (?:.*: )?Running (\d+) test\(s\)\.")
GROUP_END_RE = re.compile(r"^\[==========\] (?:.*: )?(\d+) test\(s\) run\.")
REASON_RE = re.compile(r"^SKIP-REASON (\S+): (.*)$")


class UnitRun:
    """The cases of one cmocka binary, parsed from its stdout."""

    def __init__(self, name):
        self.name = name
        self.passed, self.failed, self.skipped = [], [], []
        self.seen = {}
        self.current = None

    def case_id(self, test):
        k = self.seen.get(test, 0)
        return f"unit:{self.name}.{test}" + (f"#{k + 1}" if k else "")

    def parse(self, out, stopped):
        """stopped: why the binary ended early (timeout, crash) or None."""
        reasons = {}
        last_reason = None  # a SKIP-REASON since the current RUN line, whatever its name
        expected = got = 0
        in_group = False
        for line in out.splitlines():
            line = line.rstrip()
            m = REASON_RE.match(line)
            if m:
                reasons[m.group(1)] = last_reason = m.group(2)
                continue
            m = GROUP_RE.match(line)
            if m:
                expected, got, in_group = int(m.group(1)), 0, True
                continue
            m = GROUP_END_RE.match(line)
            if m:
                self.close_group(expected, got, "group setup failed")
                in_group = False
                continue
            m = RUN_RE.match(line)
            if m:
                if self.current:
                    self.finish(self.current, "FAILED", "no result (its setup failed)")
                    got += 1
                self.current = m.group(1)
                last_reason = None
                continue
            m = RESULT_RE.match(line)
            if m and m.group(2) == self.current:
                kind, test = m.groups()
                self.finish(test, kind, reasons.pop(test, last_reason or "no SKIP-REASON line")
                            if kind == "SKIPPED" else kind.lower())
                got += 1
        if self.current:
            self.finish(self.current, "FAILED", stopped or "no result")
            got += 1
        if in_group:
            self.close_group(expected, got, stopped or "binary stopped")

    def close_group(self, expected, got, why):
        if self.current:
            self.finish(self.current, "FAILED", "no result (its setup failed)")
            got += 1
        for i in range(expected - got):
            self.failed.append((f"unit:{self.name} (case {got + i + 1} of {expected} in its "
                                f"group)", f"not run: {why}"))

    def finish(self, test, kind, why):
        cid = self.case_id(test)
        self.seen[test] = self.seen.get(test, 0) + 1
        self.current = None
        if kind == "OK":
            self.passed.append(cid)
        elif kind == "SKIPPED":
            self.skipped.append((cid, why))
        else:
            self.failed.append((cid, why))


def run_binary(path, timeout):
    """(stdout, stderr, returncode or None on timeout)."""
    proc = subprocess.Popen([path], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return out, err, proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return out, err, None


def run_unit(build, pattern, tally, timeout, src_dir):
    sources = sorted(f[:-2] for f in os.listdir(src_dir)
                     if f.startswith("test_") and f.endswith(".c"))
    chosen = [n for n in sources if pattern in n]
    if pattern:
        tally.note(f"NARROWED: -k {pattern!r}: {len(chosen)} of {len(sources)} unit binaries")
    for name in chosen:
        path = os.path.abspath(os.path.join(build, "tests", name))
        if not os.access(path, os.X_OK):
            tally.failed.append((f"unit:{name}", f"{path} was not built"))
            print(f"unit {name}: FAIL ({path} was not built)", flush=True)
            continue
        t0 = time.monotonic()
        out, err, rc = run_binary(path, timeout)
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        if rc is None:
            stopped = f"timed out after {timeout} s"
        elif rc < 0:
            stopped = f"crashed ({signal.Signals(-rc).name})"
        else:
            stopped = None
        u = UnitRun(name)
        u.parse(out, stopped)
        report = runlib.sanitizer_report(err)
        if report:
            u.failed.append((f"unit:{name}", f"sanitizer report: {report}"))
        if not u.failed and (rc != 0 or stopped):
            u.failed.append((f"unit:{name}", stopped or f"exited {rc} with no failing case"))
        if not u.passed and not u.failed and not u.skipped:
            u.failed.append((f"unit:{name}", "ran no test"))
        ok = not u.failed
        print(f"unit {name}: {len(u.passed)} passed, {len(u.failed)} failed, {len(u.skipped)} "
              f"skipped ({time.monotonic() - t0:.1f}s) {'ok' if ok else 'FAIL'}", flush=True)
        for t, r in u.skipped:
            print(f"  skipped {t}: {r}")
        if not ok:
            for t, r in u.failed:
                print(f"  FAILED {t}: {r}")
            sys.stdout.write(f"--- {name} stdout (end)\n{out[-6000:]}\n"
                             f"--- {name} stderr (end)\n{err[-6000:]}\n")
        sys.stdout.flush()
        tally.passed += len(u.passed)
        tally.failed += u.failed
        tally.skipped += u.skipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--only", choices=["runner", "unit", "cli"])
    ap.add_argument("-k", dest="pattern", default="",
                    help="only unit binaries and CLI test ids containing this")
    ap.add_argument("--unit-timeout", type=float, default=600,
                    help="seconds one unit binary may take (a timeout is a failure)")
    ap.add_argument("--unit-dir", default=os.path.join(HERE, "unit"),
                    help="where the unit sources test_*.c are (one binary each in BUILD/tests)")
    runlib.add_env_args(ap)
    a = ap.parse_args()
    tally = runlib.Tally()
    runlib.apply_env_args(tally, a)
    if a.only:
        tally.note(f"NARROWED: --only {a.only}")
    # The runner's layer test reads the objects of this build too.
    os.environ["MSGSOCK_BUILD"] = os.path.abspath(a.build)
    if a.only in (None, "runner"):
        runlib.run_unittest(os.path.join(HERE, "runner"), "runner", a.pattern, tally)
    if a.only in (None, "unit"):
        run_unit(a.build, a.pattern, tally, a.unit_timeout, a.unit_dir)
    if a.only in (None, "cli"):
        os.environ["MSGSOCK_BIN"] = os.path.abspath(os.path.join(a.build, "msgsock"))
        runlib.run_unittest(os.path.join(HERE, "cli"), "cli", a.pattern, tally)
    return tally.finish()


if __name__ == "__main__":
    sys.exit(main())
