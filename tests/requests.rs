//! Control requests that arrive mid-step get a defined answer: applied
//! after the current step, or answered with what the service waits for —
//! never a second primary, never a client left waiting.

mod common;

use std::time::Duration;

use common::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn start_during_a_restarts_cleanup_starts_the_primary_after_the_cleanup() {
    // The first run aborts (RECOVERABLE → restart), and the restart's
    // cleanup takes a while; `start` arrives while it runs.
    let inst = Instance::start(
        "services:
  svc:
    command: echo $$$$ >> pids; if [ -f ran ]; then exec sleep 1000; fi; touch ran; kill -ABRT $$$$
    min_uptime: 100ms
    recovery:
      restart: { cleanup: 'sleep 1.5; touch cleaned' }
",
    );
    wait_until(Duration::from_secs(10), "the cleanup to start", || {
        inst.messages("svc")
            .iter()
            .any(|m| m.starts_with("cleanup started"))
    });
    assert_eq!(inst.service("svc")["state"], "restarting");
    let out = inst.cli(&["start", "svc"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).starts_with("svc running (pid "), "{out:?}");
    // The answer came once the primary ran, and it started only after the
    // cleanup was done.
    assert!(inst.path("cleaned").exists());
    let m = inst.messages("svc");
    let finished = m.iter().position(|x| x.starts_with("cleanup finished"));
    let started = m.iter().rposition(|x| x.starts_with("started (pid"));
    assert!(finished.is_some() && finished < started, "{m:#?}");
    let pid = inst.wait_running("svc", None);
    wait_until(Duration::from_secs(5), "the second run's pid", || {
        std::fs::read_to_string(inst.path("pids")).is_ok_and(|p| p.lines().count() >= 2)
    });
    // Two runs in all, one of them alive: never a second primary.
    let pids = std::fs::read_to_string(inst.path("pids")).unwrap();
    let pids: Vec<i32> = pids.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert_eq!(pids.iter().filter(|p| alive(**p)).count(), 1, "{pids:?}");
    assert_eq!(pids[1], pid);
}

#[test]
fn restart_or_start_of_a_service_waiting_on_a_dependency_is_answered() {
    let inst = Instance::start(
        "services:
  db:
    command: exec sleep 1000
    readiness: { exec: test -e db-ready, interval: 100ms }
  api:
    command: exec sleep 1000
    depends_on: { db: ready }
",
    );
    inst.wait_running("db", None);
    for verb in ["restart", "start"] {
        let out = inst.cli(&[verb, "api"]);
        assert!(out.status.success(), "{verb}: {out:?}");
        assert_eq!(
            stdout(&out).trim(),
            "api starts once it is no longer waiting for db (ready)",
            "{verb}"
        );
        assert_eq!(inst.service("api")["state"], "starting");
    }
    // Once the dependency is met, it starts by itself, once.
    std::fs::write(inst.path("db-ready"), "").unwrap();
    inst.wait_running("api", None);
    let started = inst.messages("api");
    assert_eq!(
        started.iter().filter(|m| m.starts_with("started")).count(),
        1,
        "{started:#?}"
    );
}

#[test]
fn start_of_a_service_blocked_by_a_failed_dependency_is_refused_with_why() {
    let inst = Instance::start(
        "services:
  migrate:
    command: exit 3
    restart: never
  api:
    command: exec sleep 1000
    depends_on: { migrate: completed }
",
    );
    inst.wait_state("api", "blocked");
    let out = inst.cli(&["start", "api"]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("api cannot start: blocked: waiting for migrate (exit 3)"),
        "{err}"
    );
    assert_eq!(inst.service("api")["pid"], serde_json::Value::Null);
}

#[test]
fn stop_then_start_while_stopping_leaves_exactly_one_primary() {
    let inst = Instance::start(
        "services:
  slow:
    command: echo $$$$ >> pids; trap 'sleep 0.5; exit 0' TERM; while :; do sleep 0.05; done
",
    );
    let first = inst.wait_running("slow", None);
    wait_until(Duration::from_secs(5), "the trap", || {
        !children_of(first).is_empty()
    });
    // `restart` stops it; a `start` that arrives meanwhile is applied once
    // it is down — one new primary, not two.
    let restart = std::process::Command::new(BIN)
        .args(["restart", "slow"])
        .current_dir(inst.path(""))
        .env_remove("SENTINELD_STATE_DIR")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(5), "stopping", || {
        inst.service("slow")["state"] == "stopping"
    });
    let start = inst.cli(&["start", "slow"]);
    assert!(start.status.success(), "{start:?}");
    let restart = restart.wait_with_output().unwrap();
    assert!(restart.status.success(), "{restart:?}");
    let second = inst.wait_running("slow", Some(first));
    wait_until(Duration::from_secs(5), "the second run's pid", || {
        std::fs::read_to_string(inst.path("pids")).is_ok_and(|p| p.lines().count() >= 2)
    });
    let pids = std::fs::read_to_string(inst.path("pids")).unwrap();
    assert_eq!(pids.lines().count(), 2, "{pids}");
    assert!(!alive(first) && alive(second));
}

#[test]
fn signal_reaches_the_main_process_and_bad_ones_are_refused() {
    let inst = Instance::start(
        "services:
  web:
    command: trap 'echo reloaded >> hup' HUP; while :; do sleep 0.05; done
",
    );
    let pid = inst.wait_running("web", None);
    let out = inst.cli(&["signal", "web", "HUP"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out).trim(),
        format!("SIGHUP sent to web (pid {pid}) by request")
    );
    wait_until(Duration::from_secs(5), "the trap to run", || {
        std::fs::read_to_string(inst.path("hup")).is_ok_and(|s| s.contains("reloaded"))
    });
    // Reloaded in place: the same process, no failure.
    assert_eq!(inst.pid_of("web"), Some(pid));
    assert!(inst.messages_of("web", "failure").is_empty());
    assert_eq!(inst.messages_of("web", "signal").len(), 1);
    let refused = |args: &[&str], why: &str| {
        let out = inst.cli(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success() && err.contains(why),
            "{args:?}: {err}"
        );
    };
    refused(&["signal", "web", "NOPE"], "unknown signal \"NOPE\"");
    refused(&["signal", "web", "99"], "99 is not a signal number");
    // Not a signal is bad input, as a bad flag: exit 2.
    assert_eq!(inst.cli(&["signal", "web", "NOPE"]).status.code(), Some(2));
    refused(&["signal", "nosuch", "HUP"], "unknown service \"nosuch\"");
    assert!(inst.cli(&["stop", "web"]).status.success());
    refused(
        &["signal", "web", "HUP"],
        "web has no main process to signal: stopped",
    );
}
