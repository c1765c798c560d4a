//! The supervision tree and dependencies with real processes.

mod common;

use std::time::Duration;

use common::*;

/// The root gives up at its second restart, and sentineld then exits 1.
const CRITICAL_AT_ONE: &str = "supervisor: { intensity: 1, period: 60s }
exit_on_critical: true
services:";

/// Three members of one group; `b` aborts (RECOVERABLE) once it has run
/// 0.4 s when `abort-b` exists, which the test creates.
fn group_yaml(strategy: &str, extra: &str) -> String {
    format!(
        "services:
  a:
    command: exec sleep 1000
    min_uptime: 100ms
  b:
    command: sleep 0.4; if [ -e abort-b ]; then rm abort-b; kill -ABRT $$$$; fi; exec sleep 1000
    min_uptime: 100ms
  c:
    command: exec sleep 1000
    min_uptime: 100ms
{extra}groups:
  g:
    strategy: {strategy}
    children: [a, b, c]
"
    )
}

fn pids(inst: &Instance) -> [i32; 3] {
    ["a", "b", "c"].map(|n| inst.wait_running(n, None))
}

fn abort_b_and_wait(inst: &Instance) {
    // b's current run must be past its 0.4 s check before the file appears;
    // restart b so the check happens after the file exists.
    std::fs::write(inst.path("abort-b"), "").unwrap();
    let out = inst.cli(&["restart", "b"]);
    assert!(out.status.success(), "{out:?}");
    wait_until(Duration::from_secs(10), "b's abort and restart", || {
        !inst.path("abort-b").exists()
            && inst.service("b")["actions"]["restart"] == 1
            && inst.service("b")["state"] == "running"
    });
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let inst = Instance::start(&group_yaml("one_for_one", ""));
    let before = pids(&inst);
    abort_b_and_wait(&inst);
    let after = pids(&inst);
    assert_eq!(after[0], before[0], "a untouched");
    assert_eq!(after[2], before[2], "c untouched");
    let s = inst.status();
    let g = s["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "g")
        .unwrap()
        .clone();
    assert_eq!(g["strategy"], "one_for_one");
    assert_eq!(g["restarts_in_period"], 1);
    assert_eq!(inst.service("b")["group"], "g");
}

#[test]
fn one_for_all_restarts_every_child() {
    let inst = Instance::start(&group_yaml("one_for_all", ""));
    let before = pids(&inst);
    abort_b_and_wait(&inst);
    wait_until(Duration::from_secs(10), "a and c restarted", || {
        inst.pid_of("a").is_some_and(|p| p != before[0])
            && inst.pid_of("c").is_some_and(|p| p != before[2])
    });
    assert!(!alive(before[0]) && !alive(before[2]));
    let m = inst.messages("a");
    assert!(
        m.iter()
            .any(|x| x == "restarted with b (one_for_all in group g)"),
        "{m:#?}"
    );
}

#[test]
fn rest_for_one_restarts_the_child_and_those_after_it_in_order() {
    let inst = Instance::start(&group_yaml("rest_for_one", ""));
    let before = pids(&inst);
    abort_b_and_wait(&inst);
    wait_until(Duration::from_secs(10), "c restarted", || {
        inst.pid_of("c").is_some_and(|p| p != before[2])
    });
    assert_eq!(
        inst.pid_of("a"),
        Some(before[0]),
        "a is before b: untouched"
    );
    // c starts after b: group order.
    let b_started = inst.last_event_at("b", "started");
    let c_started = inst.last_event_at("c", "started");
    assert!(b_started <= c_started, "b {b_started} c {c_started}");
}

#[test]
fn a_group_past_its_intensity_escalates_to_its_parent() {
    let inst = Instance::start(
        "services:
  a:
    command: sleep 0.3; exec kill -ABRT $$$$
    min_uptime: 100ms
    recovery: { restart: { attempts: 100 } }
  x:
    command: exec sleep 1000
groups:
  inner:
    intensity: 1
    period: 60s
    children: [a]
  outer:
    strategy: one_for_all
    intensity: 100
    children: [inner, x]
",
    );
    let x = inst.wait_running("x", None);
    wait_until(Duration::from_secs(10), "the escalation", || {
        inst.messages("a")
            .iter()
            .any(|m| m.contains("group inner gave up"))
    });
    let m = inst.messages("a");
    let e = m
        .iter()
        .find(|x| x.contains("group inner gave up"))
        .unwrap();
    assert!(
        e.contains("2 restarts within 60.0s (intensity 1); escalating to outer"),
        "{e}"
    );
    // outer (one_for_all) treats inner as a failed child: x restarts too.
    wait_until(Duration::from_secs(10), "x restarted", || {
        inst.pid_of("x").is_some_and(|p| p != x)
    });
    let mx = inst.messages("x");
    assert!(
        mx.iter()
            .any(|m| m == "restarted with a (one_for_all in group outer)"),
        "{mx:#?}"
    );
}

#[test]
fn past_the_root_intensity_services_go_to_fallback_or_quarantine_and_status_keeps_serving() {
    let inst = Instance::start(
        "supervisor: { intensity: 1, period: 60s }
services:
  crashy:
    command: sleep 0.3; exec kill -ABRT $$$$
    min_uptime: 100ms
    recovery: { restart: { attempts: 100 } }
  withfb:
    command: exec sleep 1000
    recovery: { fallback: { command: exec sleep 1001 } }
  plain:
    command: exec sleep 1000
",
    );
    wait_until(Duration::from_secs(10), "the system to go critical", || {
        inst.status()["system"]["health"] == "critical"
    });
    let s = inst.status();
    assert!(
        s["system"]["reason"]
            .as_str()
            .unwrap()
            .contains("group root gave up"),
        "{s}"
    );
    wait_until(Duration::from_secs(10), "fallback and quarantine", || {
        inst.service("withfb")["state"] == "fallback"
            && inst.service("plain")["state"] == "quarantined"
            && inst.service("crashy")["state"] == "quarantined"
    });
    assert!(alive(
        inst.service("withfb")["fallback_pid"].as_i64().unwrap() as i32
    ));
}

#[test]
fn exit_on_critical_stops_everything_and_exits_1() {
    let mut inst = Instance::start(&format!(
        "{CRITICAL_AT_ONE}
  crashy:
    command: sleep 0.3; exec kill -ABRT $$$$
    min_uptime: 100ms
  other:
    command: exec sleep 1000
"
    ));
    let other = inst.wait_running("other", None);
    let status = inst.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert!(!alive(other));
}

#[test]
fn exit_on_critical_exits_1_when_the_failing_service_is_the_last_one_up() {
    let mut inst = Instance::start(&format!(
        "{CRITICAL_AT_ONE}
  crashy:
    command: sleep 0.3; exec kill -ABRT $$$$
    min_uptime: 100ms
  done:
    command: exit 0
    restart: never
"
    ));
    let status = inst.wait_exit();
    assert_eq!(status.code(), Some(1));
}

#[test]
fn exit_on_critical_waits_for_every_service_to_be_down() {
    // One ignores SIGTERM: sentineld exits only after its SIGKILL.
    let mut inst = Instance::start(&format!(
        "{CRITICAL_AT_ONE}
  crashy:
    command: sleep 0.5; exec kill -ABRT $$$$
    min_uptime: 100ms
  stubborn:
    command: trap '' TERM; while :; do sleep 0.05; done
    stop: {{ timeout: 1s }}
"
    ));
    let stubborn = inst.wait_running("stubborn", None);
    let status = inst.wait_exit();
    assert_eq!(status.code(), Some(1));
    assert!(!alive(stubborn));
    assert!(
        group_members(stubborn).is_empty(),
        "its loop outlived sentineld"
    );
}

#[test]
fn depends_on_ready_starts_the_dependent_only_after_the_probe_passes() {
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
    let s = inst.service("api");
    assert_eq!(s["state"], "starting");
    assert_eq!(s["reason"], "waiting for db (ready)");
    assert_eq!(s["depends_on"][0]["satisfied"], false);
    std::fs::write(inst.path("db-ready"), "").unwrap();
    inst.wait_running("api", None);
    let ready_at = inst.last_event_at("db", "ready");
    let started_at = inst.last_event_at("api", "started");
    assert!(
        ready_at <= started_at,
        "db ready {ready_at}, api started {started_at}"
    );
}

#[test]
fn depends_on_completed_waits_for_a_successful_one_shot_and_blocks_on_a_failed_one() {
    let inst = Instance::start(
        "services:
  migrate_ok:
    command: sleep 0.3; echo migrated
    restart: never
  app_ok:
    command: exec sleep 1000
    depends_on: { migrate_ok: completed }
  migrate_bad:
    command: exit 1
    restart: never
  app_bad:
    command: exec sleep 1000
    depends_on: { migrate_bad: completed }
",
    );
    inst.wait_running("app_ok", None);
    assert_eq!(inst.service("migrate_ok")["exit"]["code"], 0);
    let s = inst.wait_state("app_bad", "blocked");
    assert_eq!(s["reason"], "blocked: waiting for migrate_bad (exit 1)");
    assert_eq!(s["pid"], serde_json::Value::Null);
    let out = inst.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("blocked: waiting for migrate_bad (exit 1)"),
        "{text}"
    );
}

#[test]
fn stop_order_is_the_reverse_of_the_dependency_order() {
    let svc = |n: &str, dep: &str| {
        let d = if dep.is_empty() {
            String::new()
        } else {
            format!("    depends_on: {{ {dep}: started }}\n")
        };
        format!(
            "  {n}:\n    command: trap 'echo {n} >> order.txt; exit 0' TERM; while :; do sleep 0.05; done\n{d}"
        )
    };
    // Declared backwards: c needs b, b needs a.
    let yaml = format!(
        "services:\n{}{}{}",
        svc("c", "b"),
        svc("b", "a"),
        svc("a", "")
    );
    let mut inst = Instance::start(&yaml);
    for n in ["a", "b", "c"] {
        inst.wait_running(n, None);
    }
    wait_until(Duration::from_secs(5), "the loops", || {
        ["a", "b", "c"]
            .iter()
            .all(|n| !children_of(inst.pid_of(n).unwrap()).is_empty())
    });
    assert!(inst.down().success());
    let order = std::fs::read_to_string(inst.path("order.txt")).unwrap();
    assert_eq!(order, "c\nb\na\n");
}
