#!/usr/bin/env python3
"""py_echo.py: a Python selectors echo server, a baseline peer for `make bench`.

Usage: py_echo.py [HOST [PORT]]  (default 127.0.0.1 0). Non-blocking sockets,
TCP_NODELAY, backlog 511; prints `listening on ADDR` once ready; exits 0 on
SIGINT or SIGTERM."""
import selectors
import signal
import socket
import sys


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sel = selectors.DefaultSelector()
    lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(511)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    h, p = lsock.getsockname()[:2]
    print(f"listening on {'[' + h + ']' if ':' in h else h}:{p}", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    pending = {}  # socket -> bytes not yet sent back

    def close(s):
        sel.unregister(s)
        pending.pop(s, None)
        s.close()

    while not stop:
        try:
            events = sel.select(timeout=0.5)
        except InterruptedError:
            continue
        for key, mask in events:
            s = key.fileobj
            if key.data is None:
                for _ in range(64):
                    try:
                        conn, _ = s.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    conn.setblocking(False)
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sel.register(conn, selectors.EVENT_READ, "c")
                continue
            if mask & selectors.EVENT_READ and s not in pending:
                try:
                    data = s.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    close(s)
                    continue
                if not data:
                    close(s)
                    continue
                try:
                    n = s.send(data)
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    close(s)
                    continue
                if n < len(data):
                    # The client does not read: stop reading until it does.
                    pending[s] = data[n:]
                    sel.modify(s, selectors.EVENT_WRITE, "c")
            elif mask & selectors.EVENT_WRITE:
                data = pending[s]
                try:
                    n = s.send(data)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    close(s)
                    continue
                if n < len(data):
                    pending[s] = data[n:]
                else:
                    del pending[s]
                    sel.modify(s, selectors.EVENT_READ, "c")
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
