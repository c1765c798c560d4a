//! `pre_start` (nginx -t): run before every start of the primary; its
//! failure is CRITICAL with its output and the primary does not start.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_failing_pre_start_keeps_the_primary_from_starting_and_says_why() {
    let mut inst = Instance::start(
        "services:
  web:
    command: sh -c 'echo primary >> ran; exec sleep 1000'
    pre_start: [sh, -c, 'echo checking; echo \"nginx: [emerg] unexpected }\" >&2; exit 1']
",
    );
    let s = inst.wait_state("web", "quarantined");
    let last = s["last"].as_str().unwrap_or_default().to_string();
    assert!(last.contains("pre-start failed: exit 1: critical"), "{s}");
    assert!(last.ends_with("— nginx: [emerg] unexpected }"), "{s}");
    let failure = inst.messages_of("web", "failure");
    assert!(
        failure
            .iter()
            .any(|m| m.starts_with("pre-start failed: exit 1")
                && m.ends_with("; last output: nginx: [emerg] unexpected }")),
        "{failure:#?}"
    );
    assert!(
        failure.iter().any(|m| m.contains("critical")),
        "{failure:#?}"
    );
    assert!(!inst.path("ran").exists(), "the primary ran");
    assert!(inst.messages_of("web", "started").is_empty());
    // Its output is in the service's log, as a hook's or cleanup's is.
    assert!(inst.log("web").contains("[emerg] unexpected }"));
    assert!(inst.down().success());
}

#[test]
fn the_primary_starts_after_its_pre_start_passed_every_time() {
    let mut inst = Instance::start(
        "services:
  web:
    command: sh -c 'test -f checked || exit 9; rm checked; exec sleep 1000'
    pre_start: sh -c 'echo x >> checks; touch checked'
",
    );
    let first = inst.wait_running("web", None);
    let out = inst.cli(&["restart", "web"]);
    assert!(out.status.success(), "{out:?}");
    let second = inst.wait_running("web", Some(first));
    kill(second, libc::SIGKILL);
    inst.wait_running("web", Some(second));
    let checks = std::fs::read_to_string(inst.path("checks")).unwrap();
    assert_eq!(checks.lines().count(), 3, "{checks}");
    assert_eq!(inst.service("web")["restarts"].as_u64(), Some(2));
    assert!(inst.down().success());
}

#[test]
fn a_pre_start_past_its_time_limit_is_killed_as_a_group() {
    let mut inst = Instance::start(
        "services:
  web:
    command: sleep 1000
    pre_start: sh -c 'sleep 1000 & echo $! > child; wait'
    pre_start_timeout: 300ms
",
    );
    wait_until(Duration::from_secs(10), "the pre-start's child", || {
        std::fs::read_to_string(inst.path("child")).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let child: i32 = std::fs::read_to_string(inst.path("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let s = inst.wait_state("web", "quarantined");
    assert!(
        s["last"].as_str().unwrap().contains("pre-start failed"),
        "{s}"
    );
    wait_until(Duration::from_secs(5), "the pre-start's child gone", || {
        !alive(child)
    });
    let failure = inst.messages_of("web", "failure");
    assert!(
        failure.iter().any(|m| m.contains("timed out after 300ms")),
        "{failure:#?}"
    );
    assert!(inst.down().success());
}

#[test]
fn what_a_pre_start_leaves_running_is_killed() {
    let mut inst = Instance::start(
        "services:
  web:
    command: sleep 1000
    pre_start: sh -c 'setsid sleep 1000 & echo $! > forked'
",
    );
    inst.wait_running("web", None);
    let forked: i32 = std::fs::read_to_string(inst.path("forked"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until(
        Duration::from_secs(5),
        "the pre-start's daemon gone",
        || !alive(forked),
    );
    assert!(inst.down().success());
}
