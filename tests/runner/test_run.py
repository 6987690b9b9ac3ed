"""The runner itself (tests/run.py, tests/runlib.py): real cmocka binaries
built from fake_unit.c that pass, skip, fail, die, hang or run nothing, and
unittest cases with failing subtests, must come out in the closing line as
what they are."""
import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
RUN = os.path.join(TESTS, "run.py")
sys.path.insert(0, TESTS)

import runlib  # noqa: E402

MODES = {"test_pass_skip": 1, "test_empty": 2, "test_fail_die": 3, "test_hang": 4,
         "test_bad_exit": 5, "test_group_setup": 6}


class UnitRunnerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="msgsock-runner-")
        cls.build = os.path.join(cls.tmp, "build")
        os.makedirs(os.path.join(cls.build, "tests"))
        cc = os.environ.get("CC", "cc")
        for name, mode in MODES.items():
            d = os.path.join(cls.tmp, name)
            os.makedirs(d)
            open(os.path.join(d, name + ".c"), "w").close()
            subprocess.run([cc, "-std=c11", "-D_GNU_SOURCE", f"-DFAKE_MODE={mode}", "-o",
                            os.path.join(cls.build, "tests", name),
                            os.path.join(HERE, "fake_unit.c"), "-lcmocka"], check=True)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_fake(self, *names, args=(), env=None):
        """Runs tests/run.py over the fakes named; (exit status, output)."""
        src = os.path.join(self.tmp, "src-" + "-".join(names))
        if not os.path.isdir(src):
            os.makedirs(src)
            for n in names:
                open(os.path.join(src, n + ".c"), "w").close()
        e = {k: v for k, v in os.environ.items() if not k.startswith("MSGSOCK_")}
        e.update(env or {})
        p = subprocess.run([sys.executable, RUN, "--build", self.build, "--only", "unit",
                            "--unit-dir", src, *args], capture_output=True, text=True, env=e,
                           timeout=120)
        return p.returncode, p.stdout + p.stderr

    def closing(self, out):
        return out.rstrip().splitlines()[-1]

    def test_skip_counted_with_its_reason(self):
        rc, out = self.run_fake("test_pass_skip")
        self.assertEqual(self.closing(out), "1 passed, 0 failed, 1 skipped", out)
        self.assertIn("unit:test_pass_skip.test_skips: no frobnicator here", out)
        self.assertEqual(rc, 0, out)

    def test_binary_that_ran_no_test_fails(self):
        rc, out = self.run_fake("test_pass_skip", "test_empty")
        self.assertEqual(self.closing(out), "1 passed, 1 failed, 1 skipped", out)
        self.assertIn("unit:test_empty: ran no test", out)
        self.assertEqual(rc, 1)

    def test_failure_and_death_mid_test(self):
        rc, out = self.run_fake("test_fail_die")
        # ok, fails, dies (SIGKILL: no result line), and the one never run.
        self.assertEqual(self.closing(out), "1 passed, 3 failed, 0 skipped", out)
        self.assertIn("unit:test_fail_die.test_dies: crashed (SIGKILL)", out)
        self.assertIn("not run", out)
        self.assertEqual(rc, 1)

    def test_timeout_fails_and_the_rest_still_runs(self):
        rc, out = self.run_fake("test_hang", "test_pass_skip", args=("--unit-timeout", "3"))
        self.assertIn("unit:test_hang.test_hangs: timed out after 3.0 s", out)
        self.assertIn("unit test_pass_skip: 1 passed", out)
        self.assertEqual(self.closing(out), "2 passed, 1 failed, 1 skipped", out)
        self.assertEqual(rc, 1)

    def test_exit_status_counts_when_every_case_passed(self):
        rc, out = self.run_fake("test_bad_exit")
        self.assertEqual(self.closing(out), "1 passed, 1 failed, 0 skipped", out)
        self.assertIn("exited 3 with no failing case", out)
        self.assertEqual(rc, 1)

    def test_group_whose_setup_failed(self):
        rc, out = self.run_fake("test_group_setup")
        self.assertEqual(self.closing(out), "2 passed, 2 failed, 0 skipped", out)
        self.assertEqual(rc, 1)

    def test_stray_env_cleared_loudly_or_honoured_on_purpose(self):
        rc, out = self.run_fake("test_pass_skip", env={"MSGSOCK_TEST": "test_skips"})
        self.assertEqual(rc, 0, out)
        self.assertIn("WARNING: MSGSOCK_TEST='test_skips' was set in the environment and is "
                      "ignored", out)
        rc, out = self.run_fake("test_pass_skip", args=("--keep-env",),
                                env={"MSGSOCK_TEST": "test_skips"})
        self.assertEqual(rc, 1, out)
        self.assertIn("NARROWED: MSGSOCK_TEST='test_skips' honoured", out)

    def test_strict_skips(self):
        strict = {"MSGSOCK_STRICT_SKIPS": "1"}
        rc, out = self.run_fake("test_pass_skip", env=strict)
        self.assertEqual(self.closing(out), "1 passed, 1 failed, 0 skipped", out)
        self.assertIn("unexpected skip", out)
        self.assertEqual(rc, 1)
        allow = os.path.join(self.tmp, "allow.txt")
        with open(allow, "w") as f:
            f.write("# comment\nunit:test_pass_skip.test_sk*  # no frobnicator on CI\n")
        rc, out = self.run_fake("test_pass_skip", args=("--expected-skips", allow), env=strict)
        self.assertEqual(self.closing(out), "1 passed, 0 failed, 1 skipped", out)
        self.assertEqual(rc, 0, out)
        with open(allow, "w") as f:
            f.write("unit:test_pass_skip.test_skips\n")
        rc, out = self.run_fake("test_pass_skip", args=("--expected-skips", allow), env=strict)
        self.assertNotEqual(rc, 0, out)
        self.assertIn("gives no cause", out)


PY_CASES = '''
import unittest

class T(unittest.TestCase):
    def test_two_subtests_fail(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertEqual(i, 0)

    def test_passes(self):
        pass

    def test_skips(self):
        self.skipTest("not here")
'''


class UnittestCountingTest(unittest.TestCase):
    def test_failing_subtests_count_one_each_and_never_as_passed(self):
        with tempfile.TemporaryDirectory(prefix="msgsock-runner-") as d:
            with open(os.path.join(d, "test_fakepy.py"), "w") as f:
                f.write(PY_CASES)
            tally = runlib.Tally()
            with contextlib.redirect_stdout(io.StringIO()), \
                    contextlib.redirect_stderr(io.StringIO()):
                runlib.run_unittest(d, "py", "", tally)
            sys.modules.pop("test_fakepy", None)
        self.assertEqual(tally.passed, 1)
        self.assertEqual(sorted(t for t, _ in tally.failed),
                         ["py:test_fakepy.T.test_two_subtests_fail (i=1)",
                          "py:test_fakepy.T.test_two_subtests_fail (i=2)"])
        self.assertEqual(tally.skipped, [("py:test_fakepy.T.test_skips", "not here")])


if __name__ == "__main__":
    unittest.main()
