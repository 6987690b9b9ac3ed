"""Slowloris: hundreds of connections trickle a request one byte a second
while a normal client keeps getting answers at once; the tricklers are cut
at the message deadline (--msg-timeout) and every descriptor comes back."""
import select
import time

import rel
from rel import MsTestCase, note

N = 300
DEADLINE_MS = 3000


class SlowlorisTest(MsTestCase):
    def test_trickle_one_byte_a_second(self):
        with rel.app_server("--msg-timeout", str(DEADLINE_MS)) as srv:
            fds0 = rel.settled_fds(srv, rel.app_search)
            req = rel.pyapp.make_request("search", "morpheus")
            socks, start, cut = [], {}, {}
            for _ in range(N):
                s = srv.connect()
                s.setblocking(False)
                socks.append(s)
            self.assertTrue(rel.wait_for(lambda: srv.open_fds() >= fds0 + N, 5))
            sent = {s: 0 for s in socks}
            worst = 0.0
            answers = 0
            t0 = time.monotonic()
            next_tick = t0
            # Bounded: every trickler must be cut by 3 x the deadline.
            while len(cut) < N and time.monotonic() - t0 < 3 * DEADLINE_MS / 1000:
                now = time.monotonic()
                if now >= next_tick:
                    for s in socks:
                        if s in cut:
                            continue
                        try:
                            s.send(req[sent[s]:sent[s] + 1])
                            sent[s] += 1
                            start.setdefault(s, now)
                        except OSError:
                            cut[s] = now
                    next_tick += 1.0
                r, _, _ = select.select([s for s in socks if s not in cut], [], [], 0)
                for s in r:
                    try:
                        data = s.recv(100)
                    except OSError:
                        data = b""
                    self.assertEqual(data, b"", "a trickler got an answer to half a request")
                    cut[s] = time.monotonic()
                worst = max(worst, rel.app_search(srv))
                answers += 1
            took = [cut[s] - start[s] for s in cut]
            note(f"slowloris: {N} tricklers, {answers} normal requests answered meanwhile, "
                 f"worst answer {worst * 1000:.1f} ms; tricklers cut after "
                 f"{min(took):.2f}..{max(took):.2f} s (deadline {DEADLINE_MS} ms), "
                 f"having sent at most {max(sent.values())} bytes")
            self.assertEqual(len(cut), N, "some tricklers were never cut")
            self.assertLess(worst, 1.0)
            self.assertGreater(min(took), DEADLINE_MS / 1000 - 0.5)
            self.assertLess(max(took), DEADLINE_MS / 1000 + 2.0)
            for s in socks:
                s.close()
            self.assertTrue(rel.wait_for(lambda: srv.open_fds() == fds0, 5),
                            f"{srv.open_fds()} descriptors open, {fds0} at rest")
            rel.app_search(srv)
            rel.stop_clean(self, srv)
        self.assertIn("not completed within its deadline", srv.stderr_text())

    def test_silent_connections_hit_the_idle_timeout(self):
        with rel.app_server("--idle-timeout", "1500") as srv:
            fds0 = rel.settled_fds(srv, rel.app_search)
            socks = [srv.connect() for _ in range(100)]
            t0 = time.monotonic()
            for s in socks:
                self.assertTrue(rel.closed_without_answer(s, 5))
            took = time.monotonic() - t0
            note(f"100 silent connections closed after {took:.2f} s (idle timeout 1.5 s)")
            self.assertGreater(took, 1.2)
            for s in socks:
                s.close()
            self.assertTrue(rel.wait_for(lambda: srv.open_fds() == fds0, 5))
            rel.app_search(srv)
            rel.stop_clean(self, srv)


if __name__ == "__main__":
    import unittest
    unittest.main()
