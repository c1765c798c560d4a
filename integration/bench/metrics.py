#!/usr/bin/env python3
"""Metrics benchmark: wall time of `sentineld metrics` with N services.

N services (`exec sleep 1000`), each with a TCP liveness probe every 5 s
against one local listener (so every service has a probe histogram), and
one in every 100 crash-looping (exit 1 after 1 s), so restart counters
and health levels other than healthy are there too. Once every service has
been started and a probe round has passed, `sentineld metrics` is run
TRIALS times with its output to a file (as node_exporter's textfile
collector would run it), each timed from the client's spawn to its exit:
the whole round trip — connect, the daemon's snapshot and rendering, the
reply line, the client's parse and write. `sentineld status` (the table) is timed the
same way for scale, and `GET /metrics` over the HTTP API (`api:` on a free
loopback port) from connect to the body's last byte, on a fresh connection.

Usage: integration/bench/metrics.py [--n 1000] [--trials 50]
           [--bin target/release/sentineld]
Process hygiene: sentineld runs in its own session and is stopped with
`sentineld down`; if it has not exited 30 s later its process group (which
it leads) is SIGKILLed. The listener is a thread of this script.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(4096)

    def serve():
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return s, s.getsockname()[1]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path):
    """Wall ms of one GET on a fresh connection, to the body's last byte."""
    t0 = time.monotonic_ns()
    c = socket.create_connection(("127.0.0.1", port), timeout=30)
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    data = bytearray()
    while True:
        chunk = c.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    c.close()
    ms = (time.monotonic_ns() - t0) / 1e6
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(bytes(data[:200]).decode(errors="replace"))
    return ms, len(data)


def write_yaml(work, n, port, api_port):
    with open(os.path.join(work, "services.yaml"), "w") as f:
        f.write(f"api: {{ listen: '127.0.0.1:{api_port}' }}\n")
        f.write("services:\n")
        for k in range(n):
            if k % 100 == 99:
                f.write(f"  s{k:04d}:\n    command: sleep 1; exit 1\n")
                continue
            f.write(
                f"  s{k:04d}:\n    command: exec sleep 1000\n"
                f"    liveness: {{ tcp: '127.0.0.1:{port}', interval: 5s, timeout: 2s }}\n"
            )


def timed(binary, args, work):
    """Wall ms of `sentineld ARGS > file`, as node_exporter's textfile
    collector would run it, and what it printed."""
    out_path = os.path.join(work, "out.txt")
    with open(out_path, "wb") as out:
        t0 = time.monotonic_ns()
        r = subprocess.run([binary] + args, cwd=work, stdout=out, stderr=subprocess.PIPE,
                           timeout=60)
        ms = (time.monotonic_ns() - t0) / 1e6
    if r.returncode != 0:
        raise RuntimeError(f"{args}: {r.stderr.decode()[:300]}")
    with open(out_path, "rb") as f:
        return ms, f.read()


def summary(ms):
    ms = sorted(ms)
    return {
        "median_ms": round(statistics.median(ms), 2),
        "min_ms": round(ms[0], 2),
        "p90_ms": round(ms[int(0.9 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def wait_started(binary, work, n, limit_s=120):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            _, out = timed(binary, ["status", "--json"], work)
            st = json.loads(out)
            if sum(1 for s in st["services"] if s["state"] == "running") >= n - n // 100:
                return True
        except (RuntimeError, ValueError):
            pass
        time.sleep(0.5)
    return False


def stop(binary, p, work):
    subprocess.run([binary, "down"], cwd=work, capture_output=True, timeout=60)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    sock, port = listener()
    api_port = free_port()
    with tempfile.TemporaryDirectory(prefix="sentineld-metrics.") as work:
        write_yaml(work, a.n, port, api_port)
        log = open(os.path.join(work, "up.log"), "w")
        p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log,
                             stderr=log, start_new_session=True)
        try:
            if not wait_started(binary, work, a.n):
                print("not every service started", file=sys.stderr)
                return 1
            time.sleep(6)  # one probe round: every histogram has data
            metrics, status, http, text = [], [], [], b""
            for _ in range(a.trials):
                ms, text = timed(binary, ["metrics"], work)
                metrics.append(ms)
                ms, _ = timed(binary, ["status"], work)
                status.append(ms)
                ms, _ = http_get(api_port, "/metrics")
                http.append(ms)
        finally:
            stop(binary, p, work)
            sock.close()
    lines = text.count(b"\n")
    print(json.dumps({
        "services": a.n,
        "trials": a.trials,
        "metrics": summary(metrics),
        "status_table": summary(status),
        "http_metrics": summary(http),
        "metrics_bytes": len(text),
        "metrics_lines": lines,
        "loadavg_1m": os.getloadavg()[0],
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
