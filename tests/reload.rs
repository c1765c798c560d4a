//! `reload` and SIGHUP: added services start, removed ones stop (what
//! depends on them first), changed ones restart or change in place, the
//! rest keep running untouched; a file with errors changes nothing and is
//! reported until a good reload.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const BEFORE: &str = "services:
  keep:
    command: sleep 1000
  change:
    command: sleep 1001
  probed:
    command: sleep 1002
    liveness: { exec: \"true\", interval: 1s }
  gone:
    command: sleep 1003
  gone_dep:
    command: sleep 1004
    depends_on: { gone: started }
";

const AFTER: &str = "services:
  keep:
    command: sleep 1000
  change:
    command: sleep 1005
  probed:
    command: sleep 1002
    liveness: { exec: \"true\", interval: 2s }
  new:
    command: sleep 1006
    depends_on: { keep: started }
";

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn names(inst: &Instance) -> Vec<String> {
    let status = inst.status();
    let services = status["services"].as_array().unwrap();
    services
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Every event, oldest first.
fn all_events(inst: &Instance) -> Vec<Value> {
    let out = inst.cli(&["events", "--json"]);
    assert!(out.status.success(), "{out:?}");
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_reload_adds_removes_restarts_and_leaves_the_rest_running() {
    let mut inst = Instance::start(BEFORE);
    let before: Vec<i32> = ["keep", "change", "probed", "gone", "gone_dep"]
        .iter()
        .map(|n| inst.wait_running(n, None))
        .collect();
    std::fs::write(inst.path("services.yaml"), AFTER).unwrap();

    let dry = inst.cli(&["reload", "--dry-run"]);
    assert!(dry.status.success(), "{dry:?}");
    let said = text(&dry.stdout);
    for line in [
        "+ new: added",
        "- gone: removed",
        "- gone_dep: removed",
        "~ change: restart (command)",
        "~ probed: in place (liveness)",
        "1 added, 2 removed, 1 restarted, 1 changed in place",
    ] {
        assert!(said.contains(line), "{line:?} in:\n{said}");
    }
    assert!(!said.contains("keep"), "{said}");
    // A dry run changes nothing.
    assert_eq!(inst.pid_of("change"), Some(before[1]));
    assert!(!names(&inst).contains(&"new".to_string()));

    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let new_pid = inst.wait_running("new", None);
    let changed = inst.wait_running("change", Some(before[1]));
    wait_until(Duration::from_secs(10), "removed services gone", || {
        !alive(before[3]) && !alive(before[4]) && !alive(before[1])
    });
    assert_eq!(names(&inst), ["keep", "change", "probed", "new"]);
    // Unchanged and in-place services run on, same pids, same history.
    assert_eq!(inst.pid_of("keep"), Some(before[0]));
    assert_eq!(inst.pid_of("probed"), Some(before[2]));
    assert_eq!(inst.service("keep")["restarts"], 0);
    assert!(![before[0], before[2]].contains(&changed) && new_pid != changed);
    let cmdline = std::fs::read_to_string(format!("/proc/{changed}/cmdline")).unwrap();
    assert!(cmdline.contains("1005"), "{cmdline:?}");
    // What depended on a removed service stopped before it.
    let events = all_events(&inst);
    let stopped = |name: &str| {
        events
            .iter()
            .position(|e| e["service"] == name && e["kind"] == "stopped")
            .unwrap_or_else(|| panic!("no stopped event for {name}: {events:#?}"))
    };
    assert!(stopped("gone_dep") < stopped("gone"));
    assert!(events.iter().any(|e| e["kind"] == "reload"
        && e["message"] == "reloaded: 1 added, 2 removed, 1 restarted, 1 changed in place"));
    // Metrics follow: the added service is there, the removed ones not.
    let metrics = text(&inst.cli(&["metrics"]).stdout);
    assert!(
        metrics.contains("sentineld_service_up{service=\"new\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("service=\"gone\""), "{metrics}");
    // A removed service is no one's now.
    let start = inst.cli(&["start", "gone"]);
    assert!(!start.status.success() && text(&start.stderr).contains("unknown service"));
    // The in-place probe keeps running on the service it probes.
    let checks = |inst: &Instance| inst.service("probed")["probes"]["liveness"]["last_at"].clone();
    let first = checks(&inst);
    assert!(first.is_string(), "{first}");
    wait_until(
        Duration::from_secs(10),
        "the liveness probe to run on",
        || checks(&inst) != first,
    );
    assert!(inst.down().success());
}

#[test]
fn a_file_with_errors_changes_nothing_and_stays_reported_until_a_good_reload() {
    let mut inst = Instance::start(BEFORE);
    let keep = inst.wait_running("keep", None);
    let change = inst.wait_running("change", None);

    for (bad, expect) in [
        ("services:\n  keep: [\n", "services.yaml:"),
        (
            "services:\n  keep:\n    command: sleep 1\n    depends_on: { dbb: started }\n",
            "unknown service \"dbb\"",
        ),
    ] {
        std::fs::write(inst.path("services.yaml"), bad).unwrap();
        let out = inst.cli(&["reload"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = text(&out.stderr);
        assert!(err.contains(expect), "{expect:?} in {err}");
        // The same messages as `check`.
        let check = inst.cli(&["check", "services.yaml"]);
        assert_eq!(text(&check.stderr).trim(), err.trim());
        let status = inst.status();
        let reported = status["system"]["reload_error"]["message"]
            .as_str()
            .unwrap();
        assert_eq!(reported.trim(), err.trim());
        assert_eq!(
            names(&inst),
            ["keep", "change", "probed", "gone", "gone_dep"]
        );
        assert_eq!(inst.pid_of("keep"), Some(keep));
        assert_eq!(inst.pid_of("change"), Some(change));
    }
    let table = inst.cli(&["status"]);
    assert!(
        text(&table.stdout).contains("the last reload failed at "),
        "{table:?}"
    );

    std::fs::write(inst.path("services.yaml"), BEFORE).unwrap();
    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("no changes"), "{out:?}");
    assert!(inst.status()["system"]["reload_error"].is_null());
    assert!(!text(&inst.cli(&["status"]).stdout).contains("reload failed"));
    assert!(inst.down().success());
}

#[test]
fn sighup_reloads_as_reload_does() {
    let mut inst = Instance::start("services:\n  a:\n    command: sleep 1000\n");
    let a = inst.wait_running("a", None);
    std::fs::write(
        inst.path("services.yaml"),
        "services:\n  a:\n    command: sleep 1000\n  b:\n    command: sleep 1001\n",
    )
    .unwrap();
    kill(inst.pid(), libc::SIGHUP);
    wait_until(Duration::from_secs(10), "b added", || {
        names(&inst).len() == 2
    });
    inst.wait_running("b", None);
    assert_eq!(inst.pid_of("a"), Some(a));
    // A bad file by SIGHUP: nothing changes, status says why.
    std::fs::write(inst.path("services.yaml"), "services: 3\n").unwrap();
    kill(inst.pid(), libc::SIGHUP);
    wait_until(
        Duration::from_secs(10),
        "the reload error in status",
        || inst.status()["system"]["reload_error"].is_object(),
    );
    assert_eq!(names(&inst), ["a", "b"]);
    assert!(inst.down().success());
}

#[test]
fn a_reload_may_not_move_the_state_dir() {
    let mut inst = Instance::start("services:\n  a:\n    command: sleep 1000\n");
    inst.wait_running("a", None);
    std::fs::write(
        inst.path("services.yaml"),
        "state_dir: elsewhere\nservices:\n  a:\n    command: sleep 1000\n",
    )
    .unwrap();
    let out = inst.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("state_dir: cannot change while sentineld runs"));
    assert!(!inst.path("elsewhere").exists());
    assert!(inst.down().success());
}

#[test]
fn a_reload_applies_group_changes_without_restarting_anyone() {
    let two = "services:\n  a:\n    command: sleep 1000\n  b:\n    command: sleep 1001\n";
    let mut inst = Instance::start(two);
    let a = inst.wait_running("a", None);
    let b = inst.wait_running("b", None);
    let grouped =
        format!("{two}groups:\n  pair:\n    strategy: one_for_all\n    children: [a, b]\n");
    std::fs::write(inst.path("services.yaml"), grouped).unwrap();
    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text(&out.stdout).contains("~ groups.pair: added"),
        "{out:?}"
    );
    assert_eq!((inst.pid_of("a"), inst.pid_of("b")), (Some(a), Some(b)));
    assert_eq!(inst.service("b")["group"], "pair");
    // Now one_for_all: a's crash (RECOVERABLE: a restart) takes b with it.
    kill(a, libc::SIGSEGV);
    inst.wait_running("a", Some(a));
    inst.wait_running("b", Some(b));
    assert!(inst.down().success());
}

#[test]
fn a_file_that_is_not_a_regular_file_is_refused_at_once() {
    let mut inst = Instance::start("services:\n  a:\n    command: sleep 1000\n");
    let a = inst.wait_running("a", None);
    let file = inst.path("services.yaml");
    std::fs::remove_file(&file).unwrap();
    nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let out = inst.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("not a regular file"), "{out:?}");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let out = inst.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(inst.pid_of("a"), Some(a));
    assert!(inst.down().success());
}

#[test]
fn a_removed_service_is_shown_while_it_stops_and_refuses_requests() {
    let mut inst = Instance::start(
        "services:
  a:
    command: sleep 1000
  slow:
    command: trap '' TERM; sleep 1000
    stop: { timeout: 2s }
",
    );
    inst.wait_running("a", None);
    let slow = inst.wait_running("slow", None);
    std::fs::write(
        inst.path("services.yaml"),
        "services:\n  a:\n    command: sleep 1000\n",
    )
    .unwrap();
    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(inst.service("slow")["state"], "stopping");
    let start = inst.cli(&["start", "slow"]);
    assert!(!start.status.success());
    assert!(
        text(&start.stderr).contains("slow: removed by a reload, and stopping"),
        "{start:?}"
    );
    wait_until(Duration::from_secs(10), "slow gone", || {
        !alive(slow) && names(&inst) == ["a"]
    });
    let start = inst.cli(&["start", "slow"]);
    assert!(
        text(&start.stderr).contains("unknown service \"slow\""),
        "{start:?}"
    );
    assert!(inst.down().success());
}

#[test]
fn reloads_apply_in_the_order_they_were_asked() {
    let mut inst = Instance::start("services:\n  a:\n    command: sleep 1000\n");
    inst.wait_running("a", None);
    let mut big = String::from("services:\n  a:\n    command: sleep 1000\n");
    for k in 0..200 {
        big.push_str(&format!("  s{k}:\n    command: sleep 1000\n"));
    }
    let small = "services:\n  a:\n    command: sleep 1000\n";
    for _ in 0..3 {
        std::fs::write(inst.path("services.yaml"), &big).unwrap();
        let first = std::process::Command::new(BIN)
            .arg("reload")
            .current_dir(inst.path(""))
            .env_remove("SENTINELD_STATE_DIR")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(inst.path("services.yaml"), small).unwrap();
        let out = inst.cli(&["reload"]);
        assert!(out.status.success(), "{out:?}");
        let mut first = first;
        first.wait().unwrap();
        // The last reload read the file as it is now: one service.
        let dry = inst.cli(&["reload", "--dry-run"]);
        assert!(text(&dry.stdout).contains("no changes"), "{dry:?}");
    }
    wait_until(Duration::from_secs(20), "only a", || names(&inst) == ["a"]);
    assert!(inst.down().success());
}

#[test]
fn a_reload_past_the_descriptor_limit_is_refused_as_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let limits = [(libc::RLIMIT_NOFILE, 256, 256)];
    let mut inst =
        Instance::start_limited(dir, "services:\n  a:\n    command: sleep 1000\n", &limits);
    inst.wait_running("a", None);
    let mut big = String::from("services:\n");
    for k in 0..1001 {
        big.push_str(&format!("  s{k}:\n    command: sleep 1000\n"));
    }
    std::fs::write(inst.path("services.yaml"), big).unwrap();
    let out = inst.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("file descriptors"), "{out:?}");
    let reported = inst.status()["system"]["reload_error"]["message"].clone();
    assert!(
        reported.as_str().unwrap().contains("file descriptors"),
        "{reported}"
    );
    assert_eq!(names(&inst), ["a"]);
    assert!(inst.down().success());
}
