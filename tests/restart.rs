//! Restart policy and exit reporting, with real processes.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigkilled_service_comes_back_with_a_new_pid() {
    let inst =
        Instance::start("services:\n  web:\n    command: exec sleep 1000\n    min_uptime: 100ms\n");
    let first = inst.wait_running("web", None);
    wait_until(Duration::from_secs(5), "min_uptime to pass", || {
        inst.service("web")["uptime_s"].as_f64().unwrap_or(0.0) > 0.2
    });
    kill(first, libc::SIGKILL);
    let second = inst.wait_running("web", Some(first));
    assert_ne!(first, second);
    assert!(!alive(first));
    let s = inst.service("web");
    assert_eq!(s["restarts"], 1);
    assert_eq!(s["exit"]["signal"], "SIGKILL");
    assert_eq!(s["exit"]["code"], serde_json::Value::Null);
    assert_eq!(s["health"], "healthy");
}

#[test]
fn exit_codes_are_reported_exactly() {
    let mut yaml = String::from("services:\n");
    for code in [0, 1, 2, 127, 255] {
        yaml += &format!("  c{code}:\n    command: exit {code}\n    restart: never\n");
    }
    let inst = Instance::start(&yaml);
    for code in [0, 1, 2, 127, 255] {
        let s = inst.wait_state(&format!("c{code}"), "exited");
        assert_eq!(s["exit"]["code"], code, "{s}");
        assert_eq!(s["exit"]["signal"], serde_json::Value::Null);
        assert_eq!(s["restarts"], 0);
        assert_eq!(s["health"], if code == 0 { "healthy" } else { "critical" });
    }
}

#[test]
fn killing_signals_are_reported_exactly() {
    let mut yaml = String::from("services:\n");
    for sig in ["TERM", "HUP", "KILL", "SEGV"] {
        yaml += &format!("  s{sig}:\n    command: exec sleep 1000\n    restart: never\n");
    }
    // One that kills itself, to see a signal that did not come from outside.
    yaml += "  selfsegv:\n    command: kill -SEGV $$$$\n    restart: never\n";
    let inst = Instance::start(&yaml);
    for (sig, num) in [
        ("TERM", libc::SIGTERM),
        ("HUP", libc::SIGHUP),
        ("KILL", libc::SIGKILL),
        ("SEGV", libc::SIGSEGV),
    ] {
        let name = format!("s{sig}");
        let pid = inst.wait_running(&name, None);
        kill(pid, num);
        let s = inst.wait_state(&name, "exited");
        assert_eq!(s["exit"]["signal"], format!("SIG{sig}"), "{s}");
        assert_eq!(s["exit"]["code"], serde_json::Value::Null);
    }
    let s = inst.wait_state("selfsegv", "exited");
    assert_eq!(s["exit"]["signal"], "SIGSEGV", "{s}");
}

#[test]
fn restart_policies() {
    let inst = Instance::start(
        "services:
  never_fail:
    command: exit 1
    restart: never
  onfail_ok:
    command: exit 0
    restart: on-failure
  onfail_bad:
    command: exit 3
    restart: on-failure
  onfail_sig:
    command: kill -TERM $$$$
    restart: on-failure
  always_ok:
    command: exit 0
    restart: always
",
    );
    inst.wait_state("never_fail", "exited");
    inst.wait_state("onfail_ok", "exited");
    for name in ["onfail_bad", "onfail_sig", "always_ok"] {
        wait_until(
            Duration::from_secs(5),
            &format!("{name} restarted twice"),
            || inst.service(name)["restarts"].as_u64().unwrap() >= 2,
        );
    }
    assert_eq!(inst.service("never_fail")["restarts"], 0);
    assert_eq!(inst.service("onfail_ok")["restarts"], 0);
}

#[test]
fn exit_0_under_always_backs_off_when_young_and_is_not_a_failure() {
    let inst = Instance::start("services:\n  quick:\n    command: exit 0\n");
    let t0 = Instant::now();
    wait_until(Duration::from_secs(5), "four starts", || {
        inst.service("quick")["restarts"].as_u64().unwrap() >= 3
    });
    // 100 + 200 + 400 ms of backoff before the fourth start.
    assert!(
        t0.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t0.elapsed()
    );
    let s = inst.service("quick");
    assert_eq!(s["failures"]["transient"], 0, "{s}");
    assert_eq!(s["last_failure"], serde_json::Value::Null);
    let out = inst.cli(&["status", "quick"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("restarting in 100ms"), "{text}");
    assert!(text.contains("restarting in 200ms"), "{text}");
    assert!(text.contains("restarting in 400ms"), "{text}");
}

#[test]
fn a_missing_program_fails_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("notexec.sh");
    std::fs::write(&script, "#!/bin/sh\nsleep 1000\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let inst = Instance::start_in(
        dir,
        "services:\n  ghost:\n    command: [definitely-not-a-program-xyz]\n  noexec:\n    command: [./notexec.sh]\n",
    );
    // A missing or non-executable program is CRITICAL: retrying cannot help.
    // Without a fallback the service is quarantined.
    for (name, why) in [
        ("ghost", "definitely-not-a-program-xyz: not found in PATH"),
        ("noexec", "Permission denied"),
    ] {
        let s = inst.wait_state(name, "quarantined");
        assert_eq!(s["health"], "quarantined", "{s}");
        assert_eq!(s["last_failure"]["severity"], "critical", "{s}");
        assert!(
            s["last_failure"]["cause"]
                .as_str()
                .unwrap()
                .starts_with("spawn failed"),
            "{s}"
        );
        assert_eq!(
            s["exit"],
            serde_json::Value::Null,
            "a failed exec is not an exit: {s}"
        );
        let out = inst.cli(&["status", name]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(why), "{text}");
    }
}

#[test]
fn a_missing_program_under_restart_never_fails_with_its_reason() {
    let inst = Instance::start(
        "services:\n  ghost:\n    command: [definitely-not-a-program-xyz]\n    restart: never\n",
    );
    let s = inst.wait_state("ghost", "failed");
    assert_eq!(s["health"], "critical");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("definitely-not-a-program-xyz: not found in PATH"),
        "{s}"
    );
    // The event names the program and the error once.
    let f = inst.messages_of("ghost", "failure");
    assert_eq!(
        f,
        ["spawn failed: definitely-not-a-program-xyz: not found in PATH; not restarted"]
    );
}
