#!/usr/bin/env python3
"""Crash-loop benchmark: a service that exits 1 at once, for a fixed window.

Reports how many starts the recovery chain allowed and when (the schedule),
sentineld's own CPU (utime+stime) over the window, the CPU of the reaped
children, and the latency of the first retry after a young death (failure
event -> next start, from the daemon's event timestamps).

Usage: integration/bench/crashloop.py [--secs 30] [--bin target/release/sentineld]
Process hygiene: sentineld runs in its own session and is stopped with
SIGTERM by pid (SIGKILL after 10 s); its children die with it.
"""
import argparse, json, os, signal, subprocess, sys, tempfile, time
from datetime import datetime

def ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime stime cutime cstime = fields 14..17 (1-based) -> index 11..14 here
    return [int(x) for x in fields[11:15]]

def sched_ns(pid):
    """CPU time of all of pid's threads, in ns (schedstat)."""
    total = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/schedstat") as f:
            total += int(f.read().split()[0])
    return total

def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=30.0)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryDirectory(prefix="sentineld-crashloop.") as work:
        with open(os.path.join(work, "services.yaml"), "w") as f:
            f.write("services:\n  crash:\n    command: echo x >> count; exit 1\n")
        log = open(os.path.join(work, "up.log"), "w")
        p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log, stderr=log,
                             start_new_session=True)
        try:
            t0 = time.monotonic()
            time.sleep(0.05)
            before, before_ns = ticks(p.pid), sched_ns(p.pid)
            time.sleep(a.secs)
            after, after_ns = ticks(p.pid), sched_ns(p.pid)
            elapsed = time.monotonic() - t0
            out = subprocess.run([binary, "events", "crash", "--json"], cwd=work,
                                 capture_output=True, text=True, timeout=10).stdout
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        events = [json.loads(l) for l in out.splitlines() if l.strip()]
        starts = [ts(e["at"]) for e in events if e["kind"] == "started"]
        first_retry_ms = None
        for k, e in enumerate(events):
            if e["kind"] == "failure" and e.get("action") == "retry":
                nxt = next((x for x in events[k + 1:] if x["kind"] == "started"), None)
                if nxt:
                    first_retry_ms = (ts(nxt["at"]) - ts(e["at"])) * 1000
                break
        own = (after[0] + after[1] - before[0] - before[1]) / hz
        kids = (after[2] + after[3] - before[2] - before[3]) / hz
        with open(os.path.join(work, "count")) as f:
            runs = len(f.read().split())
        result = {
            "window_s": round(elapsed, 1),
            "starts": runs,
            "start_offsets_s": [round(s - starts[0], 3) for s in starts],
            "sentineld_cpu_s": own,
            "sentineld_cpu_ms_schedstat": round((after_ns - before_ns) / 1e6, 2),
            "children_cpu_s": kids,
            "sentineld_cpu_pct_of_core": round(100 * (after_ns - before_ns) / 1e9 / elapsed, 4),
            "first_retry_ms": None if first_retry_ms is None else round(first_retry_ms, 1),
            "actions": [e["message"].split(" → ")[-1].split(" (risk")[0] for e in events if e["kind"] == "failure"],
        }
        print(json.dumps(result, indent=1))

if __name__ == "__main__":
    sys.exit(main())
