"""What tests/run.py and tests/reliability/run.py share: the tally of every
test case (passed, failed, skipped with its reason), the unittest result
that counts subtests honestly, the environment variables that would narrow
the suite, the allowlist of expected skips (MSGSOCK_STRICT_SKIPS=1) and the
closing lines, whose last is always 'N passed, N failed, N skipped'."""
import fnmatch
import os
import re
import sys
import traceback
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
EXPECTED_SKIPS = os.path.join(HERE, "expected-skips.txt")

# Variables that change what the suite covers when left set in a shell.
NARROWING_ENV = {
    "MSGSOCK_TEST": "keeps only the test_conn cases whose name matches it",
    "MSGSOCK_TEST_BACKEND": "keeps only the test_conn cases of one backend",
    "MSGSOCK_BACKEND": "puts every server the tests start on one backend",
}

# Reports of ASan, LSan, UBSan, TSan and memcheck in a process's stderr.
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error: |"
                          r"WARNING: ThreadSanitizer|ERROR: ThreadSanitizer|"
                          r"UndefinedBehaviorSanitizer|== ?Invalid (read|write|free)")


def sanitizer_report(text):
    """The first line of a sanitizer report in text, or None."""
    m = SANITIZER_RE.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    end = text.find("\n", m.end())
    return text[start:end if end >= 0 else len(text)].strip()


class Tally:
    """Every test case of a run, by id ('unit:test_sock.test_x', 'cli:...')."""

    def __init__(self):
        self.passed = 0
        self.failed = []    # (id, why)
        self.skipped = []   # (id, reason)
        self.notes = []     # closing lines: narrowing and warnings
        self.expected_skips = EXPECTED_SKIPS

    def note(self, text, loud=False):
        self.notes.append(text)
        if loud:
            print(f"run.py: {text}", file=sys.stderr, flush=True)

    def finish(self):
        """Prints the closing lines; returns the exit status."""
        unexpected = []
        if os.environ.get("MSGSOCK_STRICT_SKIPS") == "1":
            allowed = load_expected_skips(self.expected_skips)
            unexpected = [(t, r) for t, r in self.skipped
                          if not any(fnmatch.fnmatchcase(t, p) for p, _ in allowed)]
            self.skipped = [s for s in self.skipped if s not in unexpected]
            self.failed += [(t, f"unexpected skip (MSGSOCK_STRICT_SKIPS=1, not in "
                                f"tests/expected-skips.txt): {r}") for t, r in unexpected]
        if self.skipped:
            print(f"skipped ({len(self.skipped)}):")
            for t, r in self.skipped:
                print(f"  {t}: {r}")
        if self.failed:
            print(f"FAILED ({len(self.failed)}):")
            for t, r in self.failed:
                print(f"  {t}: {r}")
        if self.passed == 0 and not self.failed:
            why = "every test skipped" if self.skipped else "no test ran"
            self.failed.append(("(run)", why))
            print(f"FAILED: {why}")
        for n in self.notes:
            print(n)
        print(f"{self.passed} passed, {len(self.failed)} failed, {len(self.skipped)} skipped",
              flush=True)
        return 1 if self.failed else 0


def load_expected_skips(path):
    """[(glob, cause)]: one glob on a test id per line, '# cause' after it."""
    out = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for i, line in enumerate(lines, 1):
        pat, _, cause = line.partition("#")
        pat = pat.strip()
        if not pat:
            continue
        if not cause.strip():
            sys.exit(f"{path}:{i}: '{pat}' gives no cause ('PATTERN  # why it skips')")
        out.append((pat, cause.strip()))
    return out


def apply_env_args(tally, a):
    """Clears the narrowing variables a shell left set (or, with
    --keep-env, honours them and says so); --backend sets MSGSOCK_BACKEND
    on purpose."""
    keep, backend = a.keep_env, a.backend
    tally.expected_skips = a.expected_skips
    for var, what in NARROWING_ENV.items():
        val = os.environ.get(var)
        if val is None or (var == "MSGSOCK_BACKEND" and backend):
            continue
        if keep:
            tally.note(f"NARROWED: {var}={val!r} honoured (--keep-env): it {what}")
        else:
            del os.environ[var]
            tally.note(f"WARNING: {var}={val!r} was set in the environment and is ignored: it "
                       f"{what}; pass --keep-env to honour it", loud=True)
    if backend:
        os.environ["MSGSOCK_BACKEND"] = backend
        tally.note(f"NARROWED: --backend {backend}: every server the tests start runs on it")


def add_env_args(ap):
    ap.add_argument("--keep-env", action="store_true",
                    help="honour " + ", ".join(NARROWING_ENV) + " (cleared otherwise)")
    ap.add_argument("--backend", choices=["epoll", "poll", "io_uring"],
                    help="run the servers the tests start on this backend")
    ap.add_argument("--expected-skips", default=EXPECTED_SKIPS,
                    help="the skips MSGSOCK_STRICT_SKIPS=1 allows (default %(default)s)")


def flat(s):
    for t in s:
        if isinstance(t, unittest.TestSuite):
            yield from flat(t)
        else:
            yield t


class CountingResult(unittest.TextTestResult):
    """Counts a test as passed only when it and all its subtests passed;
    each failing subtest is one failure."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ok = 0
        self.bad = []
        self.skips = []

    @staticmethod
    def _why(err):
        lines = [ln for ln in "".join(
            traceback.format_exception_only(err[0], err[1])).splitlines() if ln]
        return lines[0][:300] if lines else "error"

    def addSuccess(self, test):
        super().addSuccess(test)
        self.ok += 1

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.bad.append((test.id(), self._why(err)))

    def addError(self, test, err):
        super().addError(test, err)
        self.bad.append((test.id(), self._why(err)))

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self.bad.append((subtest.id(), self._why(err)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.skips.append((test.id(), reason))

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.skips.append((test.id(), "expected failure: " + self._why(err)))

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self.bad.append((test.id(), "unexpected success"))


def run_unittest(where, label, pattern, tally):
    """Discovers where/test_*.py and runs the tests whose id contains
    pattern; adds them to tally as '<label>:<id>'."""
    sys.path.insert(0, where)
    suite = unittest.TestLoader().discover(where, pattern="test_*.py", top_level_dir=where)
    tests = list(flat(suite))
    if pattern:
        chosen = [t for t in tests if pattern in t.id()]
        tally.note(f"NARROWED: -k {pattern!r}: {len(chosen)} of {len(tests)} {label} tests")
        tests = chosen
    if not tests:
        return None
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout,
                                  resultclass=CountingResult).run(unittest.TestSuite(tests))
    tally.passed += res.ok
    tally.failed += [(f"{label}:{t}", r) for t, r in res.bad]
    tally.skipped += [(f"{label}:{t}", r) for t, r in res.skips]
    return res
