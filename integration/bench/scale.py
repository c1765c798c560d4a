#!/usr/bin/env python3
"""Scale benchmark: what ../shared/bench does not measure at large N.

For each N, sentineld runs N idle services (the shared bench's payload, a
/bin/sh script that execs /bin/sleep, with the shared bench's sentineld
settings) and this measures:

  restart : one service's child SIGKILLed ROUNDS times (each after it has
            run 1.25 s); the kernel's exit event -> fork of the replacement
            and -> exec of /bin/sleep in it, from the proc connector, as the
            shared bench's restart scenario (whose code this reuses).
  status  : wall time of `sentineld status` and `status --json`, STATUS
            trials each, with all N running.
  fds     : descriptors sentineld holds with all N running.

Usage (root, for the proc connector), from the project root:
  integration/bench/scale.py [--ns "1 1000 5000 10000"] [--rounds 20]
      [--status 10] [--bin target/release/sentineld] [--out /tmp/scale.json]

Process hygiene: the shared bench's Peer class starts sentineld in its own
session, records every pid of its tree with its start time and SIGKILLs
by pid only what survives the graceful stop.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.environ.get("BENCH_DIR", os.path.join(ROOT, "..", "shared", "bench")))
import peers_bench as pb  # noqa: E402


def timed(argv, cwd):
    t0 = time.monotonic_ns()
    r = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60)
    return (time.monotonic_ns() - t0) / 1e6, r


def status_latency(peer, trials):
    out = {}
    for args in (["status"], ["status", "--json"]):
        ms = []
        for _ in range(trials):
            t, r = timed([peer.bin] + args, peer.work)
            if r.returncode != 0:
                return {"error": r.stderr.strip()[:300]}
            ms.append(t)
        out[" ".join(args)] = pb.summarize(ms)
    return out


def one_n(bench, n, rounds, status_trials):
    peer = pb.Sentineld()
    work = bench.workdir(f"scale{n}")
    script = pb.idle_script(work)
    peer.setup(work, [(s, script) for s in pb.svc_names(n)])
    res = {"n": n}
    try:
        t0 = time.monotonic()
        peer.launch()
        if not peer.wait_running(n, 300):
            res["error"] = f"only {len(peer.payload_pids())} of {n} running after 300 s"
            return res
        res["all_running_s"] = round(time.monotonic() - t0, 3)
        res["fds"] = len(os.listdir(f"/proc/{peer.proc.pid}/fd"))
        res["status_ms"] = status_latency(peer, status_trials)
        pids = peer.payload_pids()
        st = {"peer": peer, "cur": min(pids), "up_since": time.monotonic_ns(), "trials": []}
        pc = pb.ProcConnector()
        try:
            for _ in range(rounds):
                bench._kill_once(pc, st, 1.25)
        finally:
            pc.close()
        res["restart"] = {
            "fork_ms": pb.summarize([t.get("fork_ms") for t in st["trials"]]),
            "running_ms": pb.summarize([t.get("running_ms") for t in st["trials"]]),
            "errors": [t["error"] for t in st["trials"] if "error" in t],
        }
    finally:
        res["stop"] = peer.stop(timeout=120)
    return res


def fmt(s):
    if not s:
        return "-"
    return f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ns", default="1 1000 5000 10000")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--status", type=int, default=10)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    ap.add_argument("--out", default="/tmp/scale.json")
    a = ap.parse_args()
    os.environ["SENTINELD"] = os.path.abspath(a.bin)
    results = []
    with tempfile.TemporaryDirectory(prefix="sentineld-scale.") as root:
        bench = pb.Bench(root)
        for n in [int(x) for x in a.ns.split()]:
            pb.log(f"N={n}")
            r = one_n(bench, n, a.rounds, a.status)
            pb.log(json.dumps(r))
            results.append(r)
    with open(a.out, "w") as f:
        json.dump(results, f, indent=1)
    print("| N | all running s | fds | restart exit→fork ms | exit→exec ms | status ms | status --json ms |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['n']} | {r['error']} |")
            continue
        rs, st = r["restart"], r["status_ms"]
        print(f"| {r['n']} | {r['all_running_s']} | {r['fds']} | {fmt(rs['fork_ms'])} | "
              f"{fmt(rs['running_ms'])} | {fmt(st.get('status'))} | {fmt(st.get('status --json'))} |")


if __name__ == "__main__":
    main()
