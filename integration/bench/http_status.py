#!/usr/bin/env python3
"""`GET /api/v1/status` against `sentineld status`, for the same services.

Starts one daemon with N services (`exec sleep`) and the HTTP API on a free
loopback port, then times, each R times after a warm-up, and reports the
median and the 10th-90th percentiles in ms:
  cli         `sentineld status` (the table; the whole command: exec, connect,
              request, reply, print)
  cli_json    `sentineld status --json` (every field of every service)
  http        GET /api/v1/status on a fresh connection (every field), from
              connect to the last byte of the body, from this script
and the ratio http / cli. The HTTP client is Python's plain socket, so the
figure includes no client library's overhead beyond a few microseconds.

Usage: integration/bench/http_status.py [--ns 10 100 500] [--runs 50]
       [--bin target/release/sentineld]
Process hygiene: sentineld runs in its own session and is stopped with
SIGTERM by pid (SIGKILL after 30 s); its children die with it.
"""
import argparse, json, os, socket, statistics, subprocess, tempfile, time

from probes import free_port, stop


def timed(f, runs):
    f()  # warm-up
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1000)
    out.sort()
    return {
        "median": round(statistics.median(out), 2),
        "p10": round(out[len(out) // 10], 2),
        "p90": round(out[len(out) * 9 // 10], 2),
    }


def http_get(port, path):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    chunks = []
    while True:
        b = s.recv(1 << 20)
        if not b:
            break
        chunks.append(b)
    s.close()
    data = b"".join(chunks)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:100]
    return body


def run(binary, n, runs):
    with tempfile.TemporaryDirectory() as work:
        port = free_port()
        services = "".join(f"  s{i}:\n    command: exec sleep 100000\n" for i in range(n))
        with open(f"{work}/services.yaml", "w") as f:
            f.write(f"api:\n  listen: 127.0.0.1:{port}\nservices:\n{services}")
        log = open(f"{work}/up.log", "w")
        p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log,
                             stderr=log, start_new_session=True)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    st = json.loads(http_get(port, "/api/v1/status"))
                    if all(s["state"] == "running" for s in st["services"]):
                        break
                except (OSError, AssertionError, ValueError):
                    pass
                assert time.time() < deadline, "services not running within 60 s"
                time.sleep(0.1)

            def cli(*args):
                subprocess.run([binary, "status", *args], cwd=work, check=True,
                               stdout=subprocess.DEVNULL)

            r = {
                "cli": timed(lambda: cli(), runs),
                "cli_json": timed(lambda: cli("--json"), runs),
                "http": timed(lambda: http_get(port, "/api/v1/status"), runs),
                "http_bytes": len(http_get(port, "/api/v1/status")),
            }
            r["ratio_http_to_cli"] = round(r["http"]["median"] / r["cli"]["median"], 2)
            return r
        finally:
            stop(p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", type=int, nargs="+", default=[10, 100, 500])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--bin", default="target/release/sentineld")
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    print(json.dumps({n: run(binary, n, a.runs) for n in a.ns}, indent=1))


if __name__ == "__main__":
    main()
