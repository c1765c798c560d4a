#!/usr/bin/env python3
"""Resource sampling cost: N idle services (`exec sleep`), sampled every
--interval, against the same N with `resources: { interval: off }`.

For each setting: start sentineld, wait until every service runs (and, with
sampling, until every service has figures), then measure --windows windows
of --secs seconds each. A window's figure is sentineld's CPU (utime + stime
of all its threads, from /proc/PID/stat) as a percent of one core; the
sampler thread's own share (/proc/PID/task/TID/schedstat of the thread
named `resources`) is reported beside it, and so is the whole process's
CPU in ms per window from schedstat (sum_exec_runtime of every thread, as
the shared peers benchmark measures idle CPU: finer than ticks, which round
a quiet window to 0), and the sampler's cost per pass and per service.
Prints JSON: per setting the median and range of the windows, and the
median difference on minus off.

Usage: integration/bench/resources.py [--n 1000|500] [--interval 5s] [--secs 30]
       [--windows 3] [--bin target/release/sentineld]
Process hygiene: sentineld runs in its own session and is stopped by pid
(SIGTERM, which stops every service); nothing is killed by name.
"""
import argparse, json, os, signal, statistics, subprocess, sys, tempfile, time

HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def sampler_ns(pid):
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/comm") as f:
                if f.read().strip() != "resources":
                    continue
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                return int(f.read().split()[0])
        except FileNotFoundError:
            continue
    return None


def process_ns(pid):
    """sum_exec_runtime (ns) of every thread of `pid` (schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue
    return total


def seconds(interval):
    units = {"ms": 1e-3, "s": 1.0, "m": 60.0}
    for u in ("ms", "s", "m"):
        if interval.endswith(u):
            return float(interval[: -len(u)]) * units[u]
    return float(interval)


def status(binary, work):
    out = subprocess.run([binary, "status", "--json"], cwd=work, capture_output=True,
                         text=True, timeout=60).stdout
    return json.loads(out)["services"]


def wait_for(what, cond, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def run(binary, n, interval, secs, windows, work):
    with open(os.path.join(work, "services.yaml"), "w") as f:
        f.write(f"resources: {{ interval: {interval} }}\nservices:\n")
        for k in range(n):
            f.write(f"  s{k:04d}:\n    command: exec sleep 100000\n")
    log = open(os.path.join(work, "up.log"), "w")
    p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log, stderr=log,
                         start_new_session=True)
    try:
        time.sleep(1)
        wait_for("every service running",
                 lambda: sum(s["state"] == "running" for s in status(binary, work)) == n, 120)
        if interval != "off":
            wait_for("every service sampled",
                     lambda: all(s.get("rss_bytes") for s in status(binary, work)), 120)
        time.sleep(2)  # the last status call's own cost is not measured
        cpu, sampler, ms, pass_us = [], [], [], []
        for _ in range(windows):
            t0, c0, s0 = time.monotonic(), cpu_ticks(p.pid), sampler_ns(p.pid)
            n0 = process_ns(p.pid)
            time.sleep(secs)
            t1, c1, s1 = time.monotonic(), cpu_ticks(p.pid), sampler_ns(p.pid)
            n1 = process_ns(p.pid)
            cpu.append((c1 - c0) / HZ / (t1 - t0) * 100)
            ms.append((n1 - n0) / 1e6 * 30.0 / (t1 - t0))
            if s0 is not None and s1 is not None:
                sampler.append((s1 - s0) / 1e9 / (t1 - t0) * 100)
                passes = (t1 - t0) / seconds(interval)
                pass_us.append((s1 - s0) / 1e3 / passes)
        threads = len(os.listdir(f"/proc/{p.pid}/task"))
        with open(f"/proc/{p.pid}/smaps_rollup") as f:
            pss = next(int(l.split()[1]) for l in f if l.startswith("Pss:")) / 1024
    finally:
        stop(p)
    out = {
        "interval": interval,
        "services": n,
        "windows": [round(c, 3) for c in cpu],
        "cpu_percent_of_a_core_median": round(statistics.median(cpu), 3),
        "cpu_percent_range": [round(min(cpu), 3), round(max(cpu), 3)],
        "threads": threads,
        "pss_mib": round(pss, 1),
        "cpu_ms_per_30s_schedstat": [round(x, 2) for x in ms],
        "cpu_ms_per_30s_median": round(statistics.median(ms), 2),
        "cpu_ms_per_30s_range": [round(min(ms), 2), round(max(ms), 2)],
    }
    if pass_us:
        med = statistics.median(pass_us)
        out["sampler_us_per_pass_median"] = round(med, 1)
        out["sampler_us_per_pass_range"] = [round(min(pass_us), 1), round(max(pass_us), 1)]
        out["sampler_us_per_service_per_pass"] = round(med / n, 2)
    if sampler:
        out["sampler_thread_percent_median"] = round(statistics.median(sampler), 3)
        out["sampler_thread_percent_range"] = [round(min(sampler), 3), round(max(sampler), 3)]
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--interval", default="5s")
    ap.add_argument("--secs", type=float, default=30.0)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    results = {}
    for interval in (a.interval, "off"):
        with tempfile.TemporaryDirectory(prefix="sentineld-resources.") as work:
            results[interval] = run(binary, a.n, interval, a.secs, a.windows, work)
    on, off = results[a.interval], results["off"]
    results["sampling_cost_percent_of_a_core"] = round(
        on["cpu_percent_of_a_core_median"] - off["cpu_percent_of_a_core_median"], 3)
    results["sampling_cost_ms_per_30s"] = round(
        on["cpu_ms_per_30s_median"] - off["cpu_ms_per_30s_median"], 2)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
