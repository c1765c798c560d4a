//! sentineld as PID 1 of a PID namespace (`unshare --pid --fork
//! --mount-proc`), as in a container: orphans of orphans reaped, the exit
//! status of a clean, a critical and a signalled end, SIGHUP reloads,
//! forwarded signals, default signal dispositions in children.

mod common;

use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use common::*;

/// sentineld as PID 1 of a new PID namespace, in a temp dir. The
/// `Instance`'s child is `unshare`, which exits with sentineld's status;
/// when PID 1 ends, the kernel ends everything else in the namespace.
struct Init {
    inst: Instance,
    /// sentineld's pid as seen from here.
    pid: i32,
}

impl Init {
    fn start(yaml: &str) -> Init {
        Init::start_in(tempfile::tempdir().unwrap(), yaml, false)
    }

    /// In `dir`; `no_cgroups`: with cgroups hidden (a tmpfs over
    /// /sys/fs/cgroup in the namespace's own mounts), as in most containers.
    fn start_in(dir: tempfile::TempDir, yaml: &str, no_cgroups: bool) -> Init {
        std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
        let hide = if no_cgroups {
            "mount -t tmpfs none /sys/fs/cgroup && "
        } else {
            ""
        };
        let mut unshare = Command::new("unshare");
        unshare
            .args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"])
            .args(["sh", "-c", &format!("{hide}exec {BIN} up services.yaml")]);
        as_test_daemon(&mut unshare, dir.path());
        let child = unshare.spawn().expect("unshare (util-linux) runs");
        let outer = child.id() as i32;
        let mut inst = Instance {
            dir,
            limits: Vec::new(),
            child: Some(child),
            groups: Default::default(),
        };
        let mut pid = 0;
        wait_until(Duration::from_secs(10), "sentineld as PID 1", || {
            if let Some(st) = inst.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("unshare exited ({st}):\n{}", inst.up_log());
            }
            pid = children_of(outer).first().copied().unwrap_or(0);
            pid != 0 && inst.cli(&["status", "--json"]).status.success()
        });
        assert_eq!(ns_pid(pid), Some(1), "sentineld is PID 1 of its namespace");
        Init { inst, pid }
    }

    /// Every process of the namespace: (pid here, state letter).
    fn processes(&self) -> Vec<(i32, char)> {
        in_namespace(pid_ns(self.pid))
    }

    /// Until `name`'s log holds `text` (a trap set, a signal received).
    fn wait_logged(&self, name: &str, text: &str) {
        wait_until(
            Duration::from_secs(10),
            &format!("{text:?} from {name}"),
            || self.inst.log(name).contains(text),
        );
    }

    /// The exit status, within 20 s.
    fn wait_exit(&mut self) -> ExitStatus {
        let child = self.inst.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.inst.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "sentineld did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Instance {
    fn up_log(&self) -> String {
        std::fs::read_to_string(self.path("up.log")).unwrap_or_default()
    }
}

/// Every process of namespace `ns`: (pid here, state letter).
fn in_namespace(ns: Option<std::path::PathBuf>) -> Vec<(i32, char)> {
    all_pids()
        .into_iter()
        .filter(|&p| ns.is_some() && pid_ns(p) == ns)
        .filter_map(|p| Some((p, stat_field(p, 3)?.chars().next()?)))
        .collect()
}

impl Drop for Init {
    /// The pids status gave are the namespace's numbers: the instance must
    /// not take them for process groups here. The namespace ends with its
    /// PID 1 (`--kill-child`: SIGTERM to it when `unshare` is killed).
    fn drop(&mut self) {
        self.inst.groups.borrow_mut().clear();
    }
}

/// The pid namespace `pid` is in.
fn pid_ns(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// `pid`'s number in its own (innermost) namespace.
fn ns_pid(pid: i32) -> Option<i32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    line.split_whitespace().last()?.parse().ok()
}

#[test]
fn orphans_of_orphans_are_reaped_and_no_zombie_is_left() {
    // `spawner`'s shell starts a subshell that backgrounds two more and
    // exits: those are orphans, reparented to PID 1; one of them starts
    // a sleep and exits too (an orphan of an orphan). Each exits in turn.
    let init = Init::start(
        "services:
  spawner:
    command: ( ( (sleep 0.6 &) ; sleep 0.3; exit 3 ) & ( (sleep 0.4 &) & ) ; exit 0 ); exec sleep 300
",
    );
    let main = init.inst.wait_running("spawner", None);
    let mut seen = Vec::new();
    wait_until(
        Duration::from_secs(10),
        "only PID 1 and the service left",
        || {
            seen = init.processes();
            seen.len() == 2 && seen.iter().all(|(_, state)| *state != 'Z')
        },
    );
    // Status gives pids as the namespace numbers them.
    let pids: Vec<Option<i32>> = seen.iter().map(|(p, _)| ns_pid(*p)).collect();
    assert!(
        pids.contains(&Some(1)) && pids.contains(&Some(main)),
        "{seen:?}"
    );
}

#[test]
fn sigterm_as_pid_1_stops_everything_in_order_and_exits_0() {
    let mut init = Init::start(
        "services:
  db:
    command: trap 'echo db stopped; exit 0' TERM; echo db up; while :; do sleep 0.05; done
  web:
    command: trap 'echo web stopped; exit 0' TERM; echo web up; while :; do sleep 0.05; done
    depends_on: { db: started }
",
    );
    // Their traps are set before they say so.
    init.wait_logged("web", "web up");
    init.wait_logged("db", "db up");
    kill(init.pid, libc::SIGTERM);
    let status = init.wait_exit();
    assert_eq!(status.code(), Some(0), "{}", init.inst.up_log());
    assert!(init.inst.log("web").contains("web stopped"));
    assert!(init.inst.log("db").contains("db stopped"));
    let log = init.inst.up_log();
    assert!(log.contains("SIGTERM: stopping all services"), "{log}");
}

#[test]
fn a_critical_end_exits_1_even_when_a_sigterm_ends_it() {
    // The root gives up (intensity 1), but with exit_on_critical off the
    // daemon stays up; the SIGTERM that ends it reports the critical end.
    let mut init = Init::start(
        "supervisor: { intensity: 1, period: 60s }
services:
  crashy:
    command: sleep 0.2; exec kill -ABRT $$
    min_uptime: 100ms
  other:
    command: exec sleep 300
",
    );
    wait_until(Duration::from_secs(10), "the system critical", || {
        init.inst.status()["system"]["health"] == "critical"
    });
    kill(init.pid, libc::SIGTERM);
    assert_eq!(init.wait_exit().code(), Some(1), "{}", init.inst.up_log());
}

#[test]
fn exit_on_critical_as_pid_1_exits_1() {
    let mut init = Init::start(
        "supervisor: { intensity: 1, period: 60s }
exit_on_critical: true
services:
  crashy:
    command: sleep 0.2; exec kill -ABRT $$
    min_uptime: 100ms
",
    );
    assert_eq!(init.wait_exit().code(), Some(1), "{}", init.inst.up_log());
}

#[test]
fn a_signal_with_no_use_stops_the_services_then_exits_128_plus_n() {
    let mut init = Init::start(
        "services:
  app:
    command: trap 'echo app stopped; exit 0' TERM; echo app up; while :; do sleep 0.05; done
",
    );
    init.wait_logged("app", "app up");
    // Forwardable but forwarded to nobody: ignored, sentineld stays.
    kill(init.pid, libc::SIGUSR2);
    kill(init.pid, libc::SIGQUIT);
    let status = init.wait_exit();
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGQUIT),
        "{}",
        init.inst.up_log()
    );
    assert!(
        init.inst.log("app").contains("app stopped"),
        "an orderly stop"
    );
    let log = init.inst.up_log();
    assert!(
        log.contains("SIGUSR2: no running service lists it"),
        "{log}"
    );
}

#[test]
fn sighup_to_pid_1_reloads_the_file() {
    let init = Init::start(
        "services:
  a:
    command: exec sleep 300
",
    );
    let a = init.inst.wait_running("a", None);
    std::fs::write(
        init.inst.path("services.yaml"),
        "services:
  a:
    command: exec sleep 300
  b:
    command: exec sleep 300
",
    )
    .unwrap();
    kill(init.pid, libc::SIGHUP);
    wait_until(Duration::from_secs(10), "b added", || {
        let status = init.inst.status();
        status["services"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "b")
    });
    init.inst.wait_running("b", None);
    assert_eq!(init.inst.pid_of("a"), Some(a), "a unchanged, not restarted");
}

#[test]
fn forwarded_signals_reach_only_the_services_that_list_them() {
    let init = Init::start(
        "services:
  listener:
    command: trap 'echo got USR1' USR1; trap 'echo got WINCH' WINCH; echo listening; while :; do sleep 0.05; done
    forward_signals: [USR1, SIGWINCH]
  bystander:
    command: exec sleep 300
",
    );
    init.wait_logged("listener", "listening");
    // sleep dies of SIGUSR1: it must not get it.
    let bystander = init.inst.wait_running("bystander", None);
    kill(init.pid, libc::SIGUSR1);
    init.wait_logged("listener", "got USR1");
    kill(init.pid, libc::SIGWINCH);
    init.wait_logged("listener", "got WINCH");
    // Not restarted: the same pid, still running (pids as the namespace
    // numbers them).
    let now = init.inst.service("bystander");
    assert_eq!(
        (now["pid"].as_i64(), now["state"].as_str()),
        (Some(bystander as i64), Some("running"))
    );
    let notes = init.inst.messages_of("listener", "signal");
    assert!(
        notes
            .iter()
            .any(|m| m.starts_with("SIGUSR1 forwarded to listener")),
        "{notes:?}"
    );
}

#[test]
fn services_start_with_no_signal_blocked_or_ignored() {
    // sentineld ignores SIGPIPE (Rust's runtime) and blocks SIGCHLD; a
    // service inherits neither. The hook and probes share the spawn path.
    let init = Init::start(
        "services:
  show:
    command: grep -E '^Sig(Blk|Ign)' /proc/self/status; exec sleep 300
",
    );
    init.inst.wait_running("show", None);
    wait_until(Duration::from_secs(10), "the masks logged", || {
        init.inst.log("show").matches("Sig").count() >= 2
    });
    let log = init.inst.log("show");
    for line in log.lines().filter(|l| l.contains("Sig")) {
        let mask = line.split_whitespace().last().unwrap();
        assert!(mask.chars().all(|c| c == '0'), "{line}");
    }
}

#[test]
fn detaching_as_pid_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        "services:\n  a:\n    command: exec sleep 300\n",
    )
    .unwrap();
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", BIN, "up", "-d"])
        .arg("services.yaml")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-d cannot be used as PID 1"), "{err}");
    assert!(!dir.path().join(".sentineld").exists(), "nothing started");
}

#[test]
fn nothing_of_the_namespace_outlives_a_killed_pid_1() {
    // A daemon that left its session (setsid, double fork) as well.
    let mut init = Init::start(
        "services:
  plain:
    command: exec sleep 300
  escaper:
    command: setsid sh -c 'sleep 300 & exit 0'; exec sleep 300
",
    );
    init.inst.wait_running("plain", None);
    init.inst.wait_running("escaper", None);
    let ns = pid_ns(init.pid);
    wait_until(Duration::from_secs(10), "the escaped daemon", || {
        in_namespace(ns.clone()).len() >= 4
    });
    kill(init.pid, libc::SIGKILL);
    init.wait_exit();
    wait_until(Duration::from_secs(10), "the namespace empty", || {
        in_namespace(ns.clone()).is_empty()
    });
    // The killed daemon could not remove its cgroups: the next `up` of the
    // state dir takes them over and its `down` removes them.
    let dir = init.inst.dir.path();
    let up = Command::new(BIN)
        .args(["up", "-d", "services.yaml"])
        .current_dir(dir)
        .output();
    assert!(up.unwrap().status.success());
    let down = Command::new(BIN)
        .arg("down")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(down.status.success(), "{down:?}");
}

/// Bytes `pid` has read so far (`/proc/PID/io`).
fn read_chars(pid: i32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let line = io.lines().find(|l| l.starts_with("rchar:"));
    line.and_then(|l| l.split_whitespace().last()?.parse().ok())
        .unwrap_or(0)
}

/// Whether `sig`'s bit is set in `/proc/PID/status`'s line `field`.
fn mask_has(pid: i32, field: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(field));
    let mask = line.and_then(|l| u64::from_str_radix(l.split_whitespace().last()?, 16).ok());
    mask.is_some_and(|m| m & (1 << (sig - 1)) != 0)
}

#[test]
fn a_sigterm_before_the_handlers_are_in_place_is_not_lost() {
    // A big file keeps sentineld reading it for a while: as PID 1 a SIGTERM
    // that came before its handlers would be dropped, and it would start
    // every service and run on.
    // Only `gate` starts: the others wait for a readiness that never comes.
    let mut yaml = String::from(
        "services:\n  gate:\n    command: exec sleep 300\n    readiness: { exec: \"false\", interval: 1h }\n",
    );
    for i in 0..3000 {
        yaml.push_str(&format!(
            "  s{i}:\n    command: exec sleep 300\n    depends_on: {{ gate: ready }}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml_len = yaml.len();
    std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
    let mut unshare = Command::new("unshare");
    unshare
        .args(["--pid", "--fork", "--mount-proc", "--kill-child=SIGKILL"])
        .args([BIN, "up", "services.yaml"]);
    as_test_daemon(&mut unshare, dir.path());
    let mut child = unshare.spawn().unwrap();
    let outer = child.id() as i32;
    let mut pid = 0;
    // Once it has read the file (`rchar` counts what read(2) returned), it
    // is parsing the plan, opening the state dir, making its loop: its
    // handlers are not in place yet.
    let size = yaml_len as u64;
    wait_until(
        Duration::from_secs(10),
        "sentineld reading its file",
        || {
            pid = children_of(outer).first().copied().unwrap_or(0);
            pid != 0 && read_chars(pid) >= size
        },
    );
    let early = !mask_has(pid, "SigCgt:", libc::SIGTERM);
    assert!(
        early,
        "the handlers were in place already: the test proves nothing"
    );
    kill(pid, libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            kill(outer, libc::SIGKILL);
            let _ = child.wait();
            panic!("the SIGTERM was lost (sent before the handlers: {early})");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let text = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert_eq!(status.code(), Some(0), "{text}");
    assert!(text.contains("SIGTERM: stopping all services"), "{text}");
}

#[test]
fn signal_32_which_glibc_keeps_does_not_end_sentineld_unannounced() {
    // Not PID 1 here: at its default, signal 32 would end sentineld with
    // no shutdown, its services orphaned.
    let inst = Instance::start("services:\n  a:\n    command: exec sleep 300\n");
    let a = inst.wait_running("a", None);
    assert!(mask_has(inst.pid(), "SigIgn:", 32));
    kill(inst.pid(), 32);
    assert_eq!(inst.pid_of("a"), Some(a), "sentineld answers, a unchanged");
    assert!(
        !mask_has(a, "SigIgn:", 32),
        "services get it at its default"
    );
}

#[test]
fn nested_orphans_get_one_grace_not_one_each() {
    // Without cgroups (most containers), a daemon that left its session is
    // an orphan of PID 1 once its service stops; each of its generations,
    // all ignoring SIGTERM, is reparented as its parent is killed. One
    // grace (5 s) for all of them, not 5 s per generation.
    let dir = tempfile::tempdir().unwrap();
    for (name, next) in [("g1", "sh g2.sh"), ("g2", "sh g3.sh"), ("g3", "sleep 300")] {
        let script = format!("trap '' TERM; {next} & wait\n");
        std::fs::write(dir.path().join(format!("{name}.sh")), script).unwrap();
    }
    let mut init = Init::start_in(
        dir,
        "services:
  app:
    command: setsid sh g1.sh & exec sleep 300
    stop: { timeout: 1s }
",
        true,
    );
    init.inst.wait_running("app", None);
    wait_until(Duration::from_secs(10), "four generations", || {
        init.processes().len() >= 6
    });
    let t0 = Instant::now();
    kill(init.pid, libc::SIGTERM);
    assert_eq!(init.wait_exit().code(), Some(0), "{}", init.inst.up_log());
    // 1 s stop + 5 s grace + the log flush; four graces would be 21 s.
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(12),
        "{took:?}\n{}",
        init.inst.up_log()
    );
}
