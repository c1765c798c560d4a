//! Resource health and `limits:` with the real binary and real processes:
//! a leak is restarted by its memory limit, a busy loop's CPU figure
//! matches /proc, and a double-forked daemon's memory counts.

mod common;

use std::time::{Duration, Instant};

use common::*;

const MIB: u64 = 1 << 20;

/// Grows by 1 MiB (touched) every 50 ms, for ever.
const LEAK: &str = "import time
b = []
while True:
    b.append(b'x' * (1 << 20))
    time.sleep(0.05)";

#[test]
fn a_leak_is_restarted_by_its_memory_limit_with_value_limit_and_trend() {
    let inst = Instance::start(&format!(
        "resources: {{ interval: 200ms }}
services:
  leak:
    command: [python3, -c, {LEAK:?}]
    min_uptime: 100ms
    limits: {{ memory: 64MiB }}
"
    ));
    let first = inst.wait_running("leak", None);
    let second = inst.wait_running("leak", Some(first));
    assert!(!alive(first));
    let limit = inst.messages_of("leak", "limit");
    assert!(
        limit[0].starts_with("memory limit exceeded: ")
            && limit[0].ends_with(&format!("killing process group {first}")),
        "{limit:?}"
    );
    let failure = &inst.messages_of("leak", "failure")[0];
    // `memory limit exceeded: 65 MiB > 64 MiB (+1187 MiB/min): recoverable → restart 1/3 ...`
    let rest = failure
        .strip_prefix("memory limit exceeded: ")
        .unwrap_or_else(|| panic!("{failure}"));
    let (value, rest) = rest.split_once(" MiB > 64 MiB (+").expect(failure);
    let (trend, rest) = rest.split_once(" MiB/min): ").expect(failure);
    assert!(value.parse::<u64>().unwrap() >= 64, "{failure}");
    // About 1200 MiB/min, less what the sleeps lose on a busy machine.
    let trend: f64 = trend.parse().unwrap();
    assert!(trend > 100.0, "{failure}");
    assert!(rest.starts_with("recoverable → restart 1/3"), "{failure}");
    let s = inst.service("leak");
    assert_eq!(s["last_failure"]["cause"], "memory limit exceeded");
    assert_eq!(s["pid"], second);
}

#[test]
fn a_busy_loop_over_its_cpu_limit_for_the_window_is_restarted() {
    let inst = Instance::start(
        "resources: { interval: 300ms }
services:
  spin:
    command: [sh, -c, 'while :; do :; done']
    limits: { cpu: 20% for 1s }
",
    );
    let first = inst.wait_running("spin", None);
    inst.wait_running("spin", Some(first));
    let failure = &inst.messages_of("spin", "failure")[0];
    // `cpu limit exceeded: 98% > 20% for 1s: recoverable → restart 1/3 ...`
    let rest = failure
        .strip_prefix("cpu limit exceeded: ")
        .unwrap_or_else(|| panic!("{failure}"));
    let (mean, rest) = rest.split_once("% > 20% for 1s: ").expect(failure);
    assert!(mean.parse::<f64>().unwrap() > 20.0, "{failure}");
    assert!(rest.starts_with("recoverable → restart 1/3"), "{failure}");
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let field = |n| stat_field(pid, n).unwrap().parse::<u64>().unwrap();
    field(14) + field(15)
}

#[test]
fn a_busy_loops_cpu_figure_is_within_ten_percent_of_proc() {
    let inst = Instance::start(
        "resources: { interval: 1s }
services:
  busy:
    command: [sh, -c, 'while :; do :; done']
",
    );
    let pid = inst.wait_running("busy", None);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // Note /proc's figure each time a new sample shows in status, so both
    // cover the same passes (give or take the time status takes).
    let mut marks: Vec<(Instant, u64, f64)> = Vec::new();
    let mut seen = serde_json::Value::Null;
    wait_until(Duration::from_secs(30), "four CPU samples", || {
        let s = inst.service("busy");
        if s["sampled_at"] != seen && s["cpu_percent"].is_f64() {
            seen = s["sampled_at"].clone();
            let cpu = s["cpu_percent"].as_f64().unwrap();
            marks.push((Instant::now(), cpu_ticks(pid), cpu));
        }
        marks.len() >= 4
    });
    let (t0, ticks0, _) = marks[0];
    let (t1, ticks1, _) = marks[marks.len() - 1];
    let proc_percent = (ticks1 - ticks0) as f64 / hz / (t1 - t0).as_secs_f64() * 100.0;
    let ours: f64 = marks[1..].iter().map(|m| m.2).sum::<f64>() / (marks.len() - 1) as f64;
    assert!(
        proc_percent > 20.0,
        "the loop hardly ran: {proc_percent:.1}%"
    );
    assert!(
        (ours - proc_percent).abs() <= proc_percent * 0.10,
        "status says {ours:.1}%, /proc says {proc_percent:.1}% ({marks:?})"
    );
    let s = inst.service("busy");
    assert_eq!(s["threads"], 1);
    assert_eq!(s["processes"], 1);
    assert!(s["fds"].as_u64().unwrap() >= 3, "{s}");
}

/// Forks twice (the middle one leaves at once), the grandchild in a
/// session of its own holding 100 MiB; the primary itself stays small.
const DOUBLE_FORK: &str = "import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        b = b'x' * (100 << 20)
        open('grandchild.pid', 'w').write(str(os.getpid()))
        time.sleep(600)
    os._exit(0)
os.wait()
time.sleep(600)";

#[test]
fn a_double_forked_childs_memory_counts() {
    if !cgroups_writable() {
        // Without cgroups a daemon in a session of its own is not found
        // (README: resource health).
        eprintln!("skipped: cgroup v2 is not writable here");
        return;
    }
    let inst = Instance::start(&format!(
        "resources: {{ interval: 200ms }}
services:
  forks:
    command: [python3, -c, {DOUBLE_FORK:?}]
"
    ));
    inst.wait_running("forks", None);
    let mut grandchild = None;
    wait_until(Duration::from_secs(20), "the grandchild's memory", || {
        grandchild = grandchild.or_else(|| {
            std::fs::read_to_string(inst.path("grandchild.pid"))
                .ok()?
                .parse::<i32>()
                .ok()
        });
        let s = inst.service("forks");
        let counted = s["rss_bytes"].as_u64().unwrap_or(0) > 100 * MIB && s["processes"] == 2;
        counted && grandchild.is_some()
    });
    let grandchild = grandchild.expect("the grandchild wrote its pid");
    let table = String::from_utf8(inst.cli(&["status"]).stdout).unwrap();
    assert!(table.lines().next().unwrap().contains("  CPU  "), "{table}");
    let mem = table.lines().nth(1).unwrap();
    assert!(mem.contains("M  "), "{table}");
    let mut inst = inst;
    inst.down();
    wait_until(
        Duration::from_secs(10),
        "the grandchild stopped with it",
        || !alive(grandchild),
    );
}

/// Quiet for a while (its figures are then kept from pass to pass where
/// there is a cgroup), then starts four threads and opens a file.
const WAKES_UP: &str = "import threading, time
time.sleep(5)
f = open('woke', 'w')
for _ in range(4):
    threading.Thread(target=time.sleep, args=(600,)).start()
time.sleep(600)";

#[test]
fn a_quiet_services_figures_follow_it_when_it_wakes() {
    let inst = Instance::start(&format!(
        "resources: {{ interval: 100ms }}
services:
  quiet:
    command: [python3, -c, {WAKES_UP:?}]
"
    ));
    inst.wait_running("quiet", None);
    let mut quiet = serde_json::Value::Null;
    // Its start (python importing) is over once a pass finds no CPU used.
    wait_until(Duration::from_secs(20), "figures while quiet", || {
        quiet = inst.service("quiet");
        quiet["cpu_percent"].as_f64() == Some(0.0)
    });
    assert_eq!(quiet["threads"], 1, "{quiet}");
    let fds = quiet["fds"].as_u64().unwrap();
    assert!(
        fds >= 3 && quiet["rss_bytes"].as_u64().unwrap() > 0,
        "{quiet}"
    );
    let mut woke = serde_json::Value::Null;
    wait_until(Duration::from_secs(20), "five threads", || {
        woke = inst.service("quiet");
        woke["threads"] == 5
    });
    assert!(woke["fds"].as_u64().unwrap() > fds, "{quiet} then {woke}");
}
