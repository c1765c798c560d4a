//! Processes that leave their service's process group with setsid() are
//! still the service's: its cgroup holds them, so a stop, a crash of the
//! main process, and the next `up` after a SIGKILLed sentineld reach them.

mod common;

use std::time::Duration;

use common::*;

fn pids(inst: &Instance, file: &str) -> Vec<i32> {
    std::fs::read_to_string(inst.path(file))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

const ESCAPES: &str = "services:
  leaky:
    command: setsid sleep 9001 & echo $$! >> escaped; sleep 0.4; exit 1
    min_uptime: 100ms
";

#[test]
fn a_grandchild_that_calls_setsid_dies_with_its_main_process() {
    if !cgroups_writable() {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    let mut inst = Instance::start(ESCAPES);
    wait_until(Duration::from_secs(15), "three runs", || {
        pids(&inst, "escaped").len() >= 3
    });
    // Every run's escapee but the current one's died with its main process.
    let all = pids(&inst, "escaped");
    let earlier = &all[..all.len() - 1];
    wait_until(
        Duration::from_secs(2),
        "the earlier escapees to die",
        || earlier.iter().all(|p| !alive(*p)),
    );
    let out = inst.cli(&["stop", "leaky"]);
    assert!(out.status.success(), "{out:?}");
    let all = pids(&inst, "escaped");
    wait_until(Duration::from_secs(2), "every escapee to die", || {
        all.iter().all(|p| !alive(*p))
    });
    assert!(inst.down().success());
}

#[test]
fn the_next_up_kills_a_setsid_grandchild_a_killed_sentineld_left() {
    if !cgroups_writable() {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    let mut inst = Instance::start(
        "services:
  leaky:
    command: setsid sleep 9002 & echo $$! >> escaped; exec sleep 1000
",
    );
    inst.wait_running("leaky", None);
    wait_until(Duration::from_secs(5), "the escapee", || {
        !pids(&inst, "escaped").is_empty()
    });
    let escapee = pids(&inst, "escaped")[0];
    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    assert!(
        alive(escapee),
        "it left the group: PDEATHSIG and pgid miss it"
    );
    inst.launch();
    wait_until(
        Duration::from_secs(3),
        "the leftover escapee to be killed",
        || !alive(escapee),
    );
    inst.wait_running("leaky", None);
    assert!(inst.down().success());
}

/// The cgroup a child is born in (or moves to) after its predecessor's
/// group was killed through `cgroup.kill`: the child lives there, and runs
/// (Linux 6.18 kills a child born into a cgroup that was ever killed).
#[test]
fn a_restarted_service_runs_in_its_cgroup_after_each_kill() {
    if !cgroups_writable() {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    let mut inst = Instance::start(
        "services:
  again:
    command: exec sleep 9002
    min_uptime: 10ms
    recovery: { retry: { attempts: 10 } }
",
    );
    let mut pid = inst.wait_running("again", None);
    for round in 0..3 {
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        let unified = cgroup.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        assert!(unified.ends_with("/again@main"), "round {round}: {unified}");
        kill(pid, libc::SIGKILL);
        let next = inst.wait_running("again", Some(pid));
        // It got as far as exec: not killed at birth.
        wait_until(
            Duration::from_secs(5),
            "the new process to run sleep",
            || {
                std::fs::read_link(format!("/proc/{next}/exe"))
                    .is_ok_and(|exe| exe.to_string_lossy().ends_with("/sleep"))
            },
        );
        assert!(alive(next), "round {round}: {:#?}", inst.messages("again"));
        assert_eq!(inst.pid_of("again"), Some(next));
        pid = next;
    }
    assert_eq!(inst.service("again")["restarts"], 3);
    assert!(inst.down().success());
}

/// A service named like another's fallback is a service of its own: the
/// other's fallback and it each have their cgroup and their record, and
/// stopping the other leaves it alone.
#[test]
fn a_service_named_like_a_fallback_is_not_that_fallback() {
    let mut inst = Instance::start(
        "services:
  a.fallback:
    command: exec sleep 7777
  a:
    command: exit 78
    recovery: { fallback: { command: exec sleep 7778 } }
",
    );
    let other = inst.wait_running("a.fallback", None);
    wait_until(Duration::from_secs(10), "a's fallback", || {
        inst.service("a")["fallback_pid"].as_i64().is_some()
    });
    let fallback = inst.service("a")["fallback_pid"].as_i64().unwrap() as i32;
    if cgroups_writable() {
        let cg = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cg(other).contains("/a.fallback@main"), "{}", cg(other));
        assert!(cg(fallback).contains("/a@fallback"), "{}", cg(fallback));
    }
    let out = inst.cli(&["stop", "a"]);
    assert!(out.status.success(), "{out:?}");
    wait_until(Duration::from_secs(5), "a's fallback to stop", || {
        !alive(fallback)
    });
    assert!(alive(other));
    assert_eq!(inst.pid_of("a.fallback"), Some(other));
    assert_eq!(inst.service("a.fallback")["restarts"], 0);
    assert!(inst.down().success());
}

/// What an `on_event` hook, a cleanup command or an exec probe starts and
/// leaves behind with setsid() goes with it: each has a cgroup.
#[test]
fn a_hooks_cleanups_and_probes_escapees_die_with_them() {
    if !cgroups_writable() {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    let mut inst = Instance::start(
        "services:
  svc:
    command: sleep 0.3; exit 1
    min_uptime: 100ms
    on_event: setsid sleep 3101 & echo $$! >> hook.pids; exit 0
    recovery:
      retry: { attempts: 1 }
      restart: { attempts: 5, cleanup: setsid sleep 3102 & echo $$! >> cleanup.pids; exit 0 }
    liveness:
      exec: setsid sleep 3103 & echo $$! >> probe.pids; exit 0
      interval: 100ms
",
    );
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(20), "escapees of each kind", || {
        seen = ["hook.pids", "cleanup.pids", "probe.pids"]
            .iter()
            .map(|f| pids(&inst, f))
            .collect();
        seen.iter().all(|p| p.len() >= 2)
    });
    // All but the newest of each kind ended with what started it.
    for list in &seen {
        let earlier = &list[..list.len() - 1];
        wait_until(
            Duration::from_secs(5),
            "the earlier escapees to die",
            || earlier.iter().all(|p| !alive(*p)),
        );
    }
    assert!(inst.down().success());
    for list in &seen {
        for p in list {
            assert!(!alive(*p), "escapee {p} outlived down");
        }
    }
}

/// A killed sentineld's cgroups were emptied through `cgroup.kill`; the
/// next `up` of the state dir makes them anew, so its first start is not
/// SIGKILLed at birth.
#[test]
fn the_first_start_after_a_killed_daemon_runs() {
    if !cgroups_writable() {
        eprintln!("skipped: no writable cgroup v2 hierarchy on this machine");
        return;
    }
    let mut inst = Instance::start(
        "services:
  a:
    command: if [ ! -f fixed ]; then exit 78; fi; echo ran >> runs; exec sleep 9003
    recovery: { fallback: { retry_primary: 30s } }
",
    );
    inst.wait_state("a", "quarantined");
    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    std::fs::write(inst.path("fixed"), "").unwrap();
    inst.launch();
    let pid = inst.wait_running("a", None);
    wait_until(Duration::from_secs(5), "the command to run", || {
        std::fs::read_to_string(inst.path("runs")).is_ok_and(|r| r.contains("ran"))
    });
    assert!(alive(pid));
    let failures = inst.messages_of("a", "failure");
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(inst.down().success());
}
