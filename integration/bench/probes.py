#!/usr/bin/env python3
"""Probe cost benchmark: N services, each with a liveness probe every 1 s,
for a fixed window. Reports sentineld's own CPU (schedstat, all threads) per
probe run, its PSS, and its thread count; once with exec probes (`true`),
once with HTTP probes against one shared local server.

Usage: integration/bench/probes.py [--n 500] [--secs 30] [--bin target/release/sentineld]
Process hygiene: everything is started in its own session and stopped by pid.
"""
import argparse, json, os, signal, socket, subprocess, sys, tempfile, time

def sched_ns(pid):
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total

def pss_kib(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()

def run(binary, n, secs, probe_yaml, work):
    with open(os.path.join(work, "services.yaml"), "w") as f:
        f.write("services:\n")
        for k in range(n):
            f.write(f"  s{k:04d}:\n    command: exec sleep 1000\n    liveness:\n{probe_yaml}")
    log = open(os.path.join(work, "up.log"), "w")
    p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log, stderr=log,
                         start_new_session=True)
    try:
        time.sleep(5)  # start-up and the first probe round are not measured
        t0, c0 = time.monotonic(), sched_ns(p.pid)
        time.sleep(secs)
        t1, c1 = time.monotonic(), sched_ns(p.pid)
        out = subprocess.run([binary, "status", "--json"], cwd=work, capture_output=True,
                             text=True, timeout=30).stdout
        st = json.loads(out)
        threads = len(os.listdir(f"/proc/{p.pid}/task"))
        pss = pss_kib(p.pid)
    finally:
        stop(p)
    passing = sum(1 for s in st["services"] if (s.get("probes", {}).get("liveness") or {}).get("passing"))
    runs = n * (t1 - t0)  # one probe per service per second
    return {
        "services": n,
        "window_s": round(t1 - t0, 1),
        "probe_runs_approx": int(runs),
        "sentineld_cpu_ms": round((c1 - c0) / 1e6, 1),
        "cpu_per_probe_ms": round((c1 - c0) / 1e6 / runs, 4),
        "pss_mib": round(pss / 1024, 1),
        "threads": threads,
        "services_passing": passing,
    }

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--secs", type=float, default=30.0)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    results = {}
    with tempfile.TemporaryDirectory(prefix="sentineld-probes.") as work:
        results["exec"] = run(binary, a.n, a.secs,
                              "      exec: ['true']\n      interval: 1s\n      timeout: 900ms\n", work)
    with tempfile.TemporaryDirectory(prefix="sentineld-probes.") as work:
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                                  cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            time.sleep(1)
            results["http"] = run(binary, a.n, a.secs,
                                  f"      http: http://127.0.0.1:{port}/\n      interval: 1s\n      timeout: 900ms\n",
                                  work)
        finally:
            stop(server)
    print(json.dumps(results, indent=1))

if __name__ == "__main__":
    sys.exit(main())
