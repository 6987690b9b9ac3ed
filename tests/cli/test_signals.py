"""A stop signal sent the moment a server says it is listening stops it
cleanly (exit 0), in every model and with the stats thread running."""
import signal
import unittest

from mstest import MsTestCase, Server


class StopSignalRaceTest(MsTestCase):
    def check(self, *args, rounds=15):
        for i in range(rounds):
            sig = signal.SIGTERM if i % 2 else signal.SIGINT
            with Server(*args) as srv:
                self.assertEqual(srv.stop(sig), 0, f"{args} round {i}: {srv.stderr_text()}")

    def test_event_with_stats(self):
        self.check("app-server", "--stats", "127.0.0.1:0", "127.0.0.1", "0")

    def test_threads_with_stats(self):
        self.check("multiconn-server", "--threads", "2", "--stats", "127.0.0.1:0", "127.0.0.1", "0")

    def test_blocking_models(self):
        for model in ("thread", "fork", "iterative"):
            self.check("echo-server", "--model", model, "--stats", "127.0.0.1:0", "127.0.0.1", "0",
                       rounds=6)


if __name__ == "__main__":
    unittest.main()
