#!/usr/bin/env python3
"""Control-socket flood: what hostile or careless clients cost the daemon.

Two floods against a daemon supervising one service:
  partial  N clients each send a 64 KiB request line minus its newline, then
           stall; then they all hang up.
  idle     N clients connect and send nothing.
For each it reports the daemon's RSS and open descriptors before, during and
after (the clients gone), whether `sentineld status` answers during the
flood, and whether a SIGKILLed service is respawned during it.

Usage: integration/bench/control_flood.py [--n 3000] [--bin target/release/sentineld]
       [--nofile N]   (run the daemon with RLIMIT_NOFILE = N, soft and hard)
Process hygiene: sentineld runs in its own session and is stopped with
SIGTERM by pid (SIGKILL after 10 s); its children die with it.
"""
import argparse, json, os, resource, signal, socket, subprocess, tempfile, time

from probes import stop

YAML = "services:\n  web:\n    command: exec sleep 100000\n"

def rss_kib(pid):
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024

def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))

def cli(binary, work, *args, timeout=10):
    try:
        out = subprocess.run([binary, *args], cwd=work, capture_output=True, timeout=timeout)
        return out.returncode, out.stdout.decode(), out.stderr.decode()
    except subprocess.TimeoutExpired:
        return None, "", f"no answer within {timeout} s"

def web_pid(binary, work):
    code, out, _ = cli(binary, work, "status", "--json")
    if code != 0:
        return None, None
    s = json.loads(out)["services"][0]
    return s["pid"], s["state"]

def respawned(binary, work, pid, deadline=10):
    """Whether the service runs again under another pid; and if not, what
    status says (asked once the flood is over, if not before)."""
    end = time.time() + deadline
    state = "status does not answer"
    while time.time() < end:
        new, st = web_pid(binary, work)
        if new is not None and new != pid and st == "running":
            return f"yes (pid {pid} -> {new})"
        state = st or state
        time.sleep(0.05)
    return f"no: {state}"

def last_event(binary, work):
    code, out, _ = cli(binary, work, "events", "web")
    return out.strip().splitlines()[-1] if code == 0 and out.strip() else "?"

def flood(kind, n, sock_path):
    """The clients that got through: a refused connect (a full backlog) is
    tried again for up to 2 s."""
    conns = []
    payload = b"x" * (64 * 1024 - 1)
    for _ in range(n):
        end = time.time() + 2
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            try:
                s.connect(sock_path)
                if kind == "partial":
                    s.sendall(payload)
                conns.append(s)
                break
            except OSError:
                s.close()
                if time.time() > end:
                    break
                time.sleep(0.001)
    return conns

def report(label, daemon, binary, work):
    code, _, err = cli(binary, work, "status")
    answer = "answers" if code == 0 else f"fails: {err.strip() or code}"
    print(f"  {label:<8} rss {rss_kib(daemon) / 1024:7.1f} MiB  fds {fds(daemon):6d}  status {answer}")

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--bin", default=os.environ.get("SENTINELD", "target/release/sentineld"))
    ap.add_argument("--nofile", type=int)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    def limit():
        if a.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (a.nofile, a.nofile))
    for kind in ["partial", "idle"]:
        with tempfile.TemporaryDirectory(prefix="sentineld-flood.") as work:
            with open(os.path.join(work, "services.yaml"), "w") as f:
                f.write(YAML)
            log = open(os.path.join(work, "up.log"), "w")
            p = subprocess.Popen([binary, "up", "services.yaml"], cwd=work, stdout=log,
                                 stderr=log, start_new_session=True, preexec_fn=limit)
            try:
                sock = os.path.join(work, ".sentineld", "control.sock")
                end = time.time() + 10
                while cli(binary, work, "status")[0] != 0:
                    assert time.time() < end, "the daemon did not start"
                    time.sleep(0.05)
                print(f"{kind} flood, {a.n} clients:")
                report("before", p.pid, binary, work)
                pid, _ = web_pid(binary, work)
                conns = flood(kind, a.n, sock)
                print(f"  {len(conns)} clients connected")
                time.sleep(1)
                report("during", p.pid, binary, work)
                os.kill(pid, signal.SIGKILL)
                verdict = respawned(binary, work, pid)
                print(f"  service SIGKILLed during the flood, respawned: {verdict}")
                for s in conns:
                    s.close()
                time.sleep(1)
                report("after", p.pid, binary, work)
                if not verdict.startswith("yes"):
                    print(f"  after the flood: {web_pid(binary, work)[1]}; last event: {last_event(binary, work)}")
            finally:
                stop(p)

if __name__ == "__main__":
    main()
