#!/usr/bin/env python3
"""Load for the network-fault tests, run inside the client's namespace:
CONNS connections to a len32-framed echo server, each sending MSGS messages
of random sizes and checking every echoed byte by SHA-256. Prints one JSON
line {"sent", "verified", "bad", "failed_conns", "seconds"}; exits 0 when
every message came back intact.

  netload.py ADDR PORT CONNS MSGS SEED [TIMEOUT_S]
"""
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("EOF")
        buf += chunk
    return bytes(buf)


def main():
    host, port, conns, msgs, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4]), int(sys.argv[5])
    timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 60
    totals = {"sent": 0, "verified": 0, "bad": 0, "failed_conns": 0}
    lock = threading.Lock()
    t0 = time.monotonic()

    def one(i):
        rng = random.Random(seed * 1000 + i)
        sent = verified = bad = 0
        try:
            with socket.create_connection((host, port), timeout=timeout) as s:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for _ in range(msgs):
                    body = rng.randbytes(rng.randint(1, 16384))
                    s.sendall(struct.pack(">I", len(body)) + body)
                    sent += 1
                    n = struct.unpack(">I", recv_exact(s, 4))[0]
                    back = recv_exact(s, n)
                    if hashlib.sha256(back).digest() == hashlib.sha256(body).digest():
                        verified += 1
                    else:
                        bad += 1
            failed = 0
        except OSError as e:
            print(f"netload: connection {i}: {e}", file=sys.stderr)
            failed = 1
        with lock:
            totals["sent"] += sent
            totals["verified"] += verified
            totals["bad"] += bad
            totals["failed_conns"] += failed

    ts = [threading.Thread(target=one, args=(i,)) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    totals["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(totals), flush=True)
    ok = totals["verified"] == conns * msgs and not totals["bad"] and not totals["failed_conns"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
