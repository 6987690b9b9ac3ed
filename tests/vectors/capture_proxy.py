#!/usr/bin/env python3
"""capture_proxy.py: records the PROXY headers real HAProxy writes (send-proxy,
send-proxy-v2, its health checks) into tests/vectors/proxy/ (run from the repo
root; needs the haproxy binary, e.g. apt-get install haproxy).

Each case is a frontend HAProxy listens on and a backend server line pointing
at a Python socket here. A client connects to the frontend and sends PAYLOAD;
the recording socket keeps every byte it receives until PAYLOAD has arrived
(or, for a health check, until HAProxy closes), and writes them, header and
payload, to NAME.bin. manifest.txt gets one line per file with what the
header must say, taken from the sockets themselves (the client's own
address, the frontend's address), not from the header:
    NAME VERSION COMMAND SRC DST PAYLOAD_LEN
(SRC and DST in ms_addr_format's spelling, '-' when the header has none)."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proxy")
PAYLOAD = b"hello msgsock\n"


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def fmt(family, addr):
    if family == socket.AF_INET:
        return f"{addr[0]}:{addr[1]}"
    if family == socket.AF_INET6:
        return f"[{addr[0]}]:{addr[1]}"
    return "unix:" + addr if addr else "-"


class Recorder:
    """Accepts connections on a loopback port and keeps the bytes of each."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.lock = threading.Lock()
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.record, args=(c,), daemon=True).start()

    def record(self, c):
        data = b""
        c.settimeout(5)
        try:
            while not data.endswith(PAYLOAD):
                b = c.recv(4096)
                if not b:
                    break
                data += b
        except OSError:
            pass
        c.close()
        with self.lock:
            self.got.append(data)

    def wait(self, pred, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for d in self.got:
                    if pred(d):
                        return d
            time.sleep(0.05)
        sys.exit(f"capture_proxy: no {what} recorded within {timeout} s")


def main():
    tmp = tempfile.mkdtemp(prefix="msgsock-haproxy-")
    unix_fe = os.path.join(tmp, "fe.sock")
    unix_fe2 = os.path.join(tmp, "fe2.sock")
    cases = []  # (name, client family, frontend bind, client target, server options, recorder)
    p4 = [free_port() for _ in range(3)]
    p6 = [free_port(socket.AF_INET6, "::1") for _ in range(2)]
    recs = {}
    cfg = ["global", "  maxconn 100", "defaults", "  mode tcp", "  timeout connect 2s",
           "  timeout client 10s", "  timeout server 10s"]

    def case(name, bind, opts, family, target, fe_extra=()):
        r = recs[name] = Recorder()
        cfg.extend([f"frontend fe_{name.replace('-', '_')}", f"  bind {bind}", *fe_extra,
                    f"  default_backend be_{name.replace('-', '_')}",
                    f"backend be_{name.replace('-', '_')}",
                    f"  server s 127.0.0.1:{r.port} {opts}"])
        cases.append((name, family, target))

    case("v1-tcp4", f"127.0.0.1:{p4[0]}", "send-proxy", socket.AF_INET, ("127.0.0.1", p4[0]))
    case("v1-tcp6", f"[::1]:{p6[0]}", "send-proxy", socket.AF_INET6, ("::1", p6[0]))
    case("v1-unknown", f"unix@{unix_fe}", "send-proxy", socket.AF_UNIX, unix_fe)
    case("v2-inet", f"127.0.0.1:{p4[1]}", "send-proxy-v2", socket.AF_INET, ("127.0.0.1", p4[1]))
    case("v2-unix", f"unix@{unix_fe2}", "send-proxy-v2", socket.AF_UNIX, unix_fe2)
    case("v2-inet6", f"[::1]:{p6[1]}", "send-proxy-v2", socket.AF_INET6, ("::1", p6[1]))
    case("v2-tlv", f"127.0.0.1:{p4[2]}", "send-proxy-v2 proxy-v2-options crc32c,unique-id",
         socket.AF_INET, ("127.0.0.1", p4[2]), ["  unique-id-format msgsock-%{+X}o\\ %ci:%cp"])
    # Health checks: HAProxy's own connections, no client behind them.
    chk = {n: Recorder() for n in ("v1-check", "v2-check")}
    cfg.extend(["backend be_checks", "  option tcp-check",
                f"  server c1 127.0.0.1:{chk['v1-check'].port} send-proxy check inter 200ms",
                f"  server c2 127.0.0.1:{chk['v2-check'].port} send-proxy-v2 check inter 200ms"])

    conf = os.path.join(tmp, "haproxy.cfg")
    with open(conf, "w") as f:
        f.write("\n".join(cfg) + "\n")
    proc = subprocess.Popen(["haproxy", "-db", "-f", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    manifest = []
    try:
        for name, family, target in cases:
            deadline = time.monotonic() + 10
            while True:
                c = socket.socket(family, socket.SOCK_STREAM)
                try:
                    c.connect(target)
                    break
                except OSError:
                    c.close()
                    if proc.poll() is not None:
                        sys.exit(f"capture_proxy: haproxy exited: "
                                 f"{proc.stderr.read().decode(errors='replace')}")
                    if time.monotonic() > deadline:
                        sys.exit(f"capture_proxy: haproxy not listening for {name} within 10 s")
                    time.sleep(0.05)
            src = fmt(family, c.getsockname()) if family != socket.AF_UNIX else "-"
            dst = fmt(family, c.getpeername()) if family != socket.AF_UNIX else "-"
            c.sendall(PAYLOAD)
            data = recs[name].wait(lambda d: d.endswith(PAYLOAD), name)
            c.close()
            unknown = family == socket.AF_UNIX
            version = 2 if name.startswith("v2") else 1
            cmd = "UNKNOWN" if unknown and version == 1 else "PROXY"
            if unknown and version == 2:
                cmd = "LOCAL"
            manifest.append((name, version, cmd, src, dst, len(PAYLOAD), data))
        for name, r in chk.items():
            data = r.wait(lambda d: len(d) > 0, name)
            version = 2 if name.startswith("v2") else 1
            # A check's addresses are HAProxy's own; only the command is known.
            cmd = "LOCAL" if version == 2 else "PROXY"
            manifest.append((name, version, cmd, "*", "*", 0, data))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "manifest.txt"), "w") as m:
        for name, version, cmd, src, dst, plen, data in manifest:
            with open(os.path.join(OUT, name + ".bin"), "wb") as f:
                f.write(data)
            m.write(f"{name}.bin {version} {cmd} {src} {dst} {plen}\n")
    print(open(os.path.join(OUT, "manifest.txt")).read(), end="")


if __name__ == "__main__":
    main()
