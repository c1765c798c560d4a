//! `--json` on every command that prints data, against a real daemon and
//! real services: the output parses and says what status says (names,
//! pids, lines); an error with `--json` is a JSON object on stderr.

mod common;

use std::io::BufRead;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

const TWO: &str = "services:\n  web:\n    command: sleep 1000\n  db:\n    command: sleep 1001\n";

#[test]
fn actions_print_the_daemons_reply_and_errors_go_to_stderr_as_json() {
    let mut inst = Instance::start(TWO);
    let first = inst.wait_running("web", None);
    let reply = json(&inst.cli(&["restart", "web", "--json"]));
    let second = inst.wait_running("web", Some(first));
    assert_eq!(reply["type"], "done");
    assert_eq!(reply["message"], format!("web running (pid {second})"));
    let reply = json(&inst.cli(&["signal", "web", "CONT", "--json"]));
    assert_eq!(
        reply["message"],
        format!("SIGCONT sent to web (pid {second}) by request")
    );
    assert_eq!(
        json(&inst.cli(&["stop", "web", "--json"]))["message"],
        "web stopped"
    );
    let reply = json(&inst.cli(&["start", "web", "--json"]));
    let third = inst.wait_running("web", Some(second));
    assert_eq!(reply["message"], format!("web running (pid {third})"));
    assert_eq!(json(&inst.cli(&["reset", "web", "--json"]))["type"], "done");

    let out = inst.cli(&["stop", "nosuch", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{out:?}");
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(err["type"], "error");
    assert_eq!(err["kind"], "unknown_service");
    assert!(err["message"].as_str().unwrap().contains("nosuch"), "{err}");

    let reply = json(&inst.cli(&["down", "--json"]));
    assert_eq!(reply["type"], "done");
    assert!(inst.wait_exit().success());
    let err: Value = serde_json::from_slice(&inst.cli(&["status", "--json"]).stderr).unwrap();
    assert_eq!(err["kind"], "not_running");
}

#[test]
fn reload_json_gives_the_changes_dry_run_and_applied() {
    let inst = Instance::start(TWO);
    inst.wait_running("db", None);
    let edited = "services:\n  web:\n    command: sleep 1000\n    stop: { timeout: 3s }\n  db:\n    command: sleep 1002\n  extra:\n    command: sleep 1003\n";
    std::fs::write(inst.path("services.yaml"), edited).unwrap();
    let dry = json(&inst.cli(&["reload", "--dry-run", "--json"]));
    let changes = &dry["changes"];
    assert_eq!(changes["dry_run"], true);
    let by_name = |name: &str| -> Value {
        let list = changes["services"].as_array().unwrap();
        list.iter().find(|c| c["name"] == name).cloned().unwrap()
    };
    assert_eq!(by_name("extra")["change"], "added");
    assert_eq!(by_name("db")["change"], "restart");
    assert_eq!(by_name("db")["keys"], serde_json::json!(["command"]));
    assert_eq!(by_name("web")["change"], "in_place");
    assert_eq!(by_name("web")["keys"], serde_json::json!(["stop"]));
    assert_eq!(
        changes["summary"],
        "1 added, 1 restarted, 1 changed in place"
    );
    assert!(inst.status()["services"].as_array().unwrap().len() == 2);

    let applied = json(&inst.cli(&["reload", "--json"]));
    assert_eq!(applied["changes"]["dry_run"], false);
    assert_eq!(applied["changes"]["services"], changes["services"]);
    inst.wait_running("extra", None);
}

#[test]
fn logs_json_gives_one_object_per_line_tail_and_follow() {
    let inst = Instance::start(
        "services:\n  talk:\n    command: echo first; echo 'second \"quoted\"'; for i in $$(seq 600); do echo tick $$i; sleep 0.1; done; exec sleep 1000\n",
    );
    wait_until(Duration::from_secs(10), "a tick in the log", || {
        inst.log("talk").contains("tick 2\n")
    });
    let lines = json_lines(&inst.cli(&["logs", "talk", "--json", "-n", "1000"]).stdout);
    assert_eq!(
        lines[0],
        serde_json::json!({"service": "talk", "line": "first"})
    );
    assert_eq!(lines[1]["line"], "second \"quoted\"");
    assert!(lines.iter().all(|l| l["service"] == "talk"));
    let out = inst.cli(&["logs", "talk", "--json", "-n", "1"]);
    assert_eq!(json_lines(&out.stdout).len(), 1);

    let mut child = Command::new(BIN)
        .args(["logs", "talk", "-f", "--json", "-n", "0"])
        .current_dir(inst.dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let lines = std::io::BufReader::new(stdout).lines();
        let three: Vec<Value> = lines
            .take(3)
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect();
        three
    });
    wait_until(Duration::from_secs(10), "three followed lines", || {
        reader.is_finished()
    });
    kill(pid, libc::SIGKILL);
    let _ = child.wait();
    let followed = reader.join().unwrap();
    assert_eq!(followed.len(), 3);
    for l in &followed {
        assert_eq!(l["service"], "talk");
        assert!(l["line"].as_str().unwrap().starts_with("tick "), "{l}");
    }
}

#[test]
fn metrics_json_gives_the_samples_of_the_prometheus_text() {
    let inst = Instance::start(TWO);
    inst.wait_running("web", None);
    inst.wait_running("db", None);
    let m = json(&inst.cli(&["metrics", "--json"]));
    let samples = m["samples"].as_array().unwrap();
    let up: Vec<&Value> = samples
        .iter()
        .filter(|s| s["name"] == "sentineld_service_up")
        .collect();
    assert_eq!(up.len(), 2, "{up:?}");
    for s in up {
        assert!(s["labels"]["service"] == "web" || s["labels"]["service"] == "db");
        assert_eq!(s["value"], 1.0);
    }
    let text = String::from_utf8(inst.cli(&["metrics"]).stdout).unwrap();
    let families = |name: &str| text.lines().filter(|l| l.starts_with(name)).count();
    let named = |name: &str| samples.iter().filter(|s| s["name"] == name).count();
    for name in [
        "sentineld_service_up",
        "sentineld_services",
        "sentineld_build_info",
    ] {
        assert_eq!(
            named(name),
            families(&format!("{name} ")) + families(&format!("{name}{{"))
        );
    }
}

fn check_json(file: &std::path::Path) -> Output {
    let mut check = Command::new(BIN);
    check.args(["check", "--json"]).arg(file).output().unwrap()
}

#[test]
fn check_json_is_the_resolved_plan_and_errors_have_locations() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    command: sleep 5\n  api:\n    command: [sleep, '6']\n    depends_on: { web: started }\n",
    )
    .unwrap();
    let out = check_json(&file);
    let plan = json(&out);
    assert_eq!(plan["services"][0]["name"], "web");
    assert_eq!(
        plan["services"][0]["command"],
        serde_json::json!(["sleep", "5"])
    );
    assert_eq!(
        plan["services"][1]["command"],
        serde_json::json!(["sleep", "6"])
    );
    assert_eq!(plan["start_order"], serde_json::json!(["web", "api"]));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    std::fs::write(
        &file,
        "services:\n  web:\n    command: sleep 5\n    restrat: always\n",
    )
    .unwrap();
    let out = check_json(&file);
    assert_eq!(out.status.code(), Some(2));
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["kind"], "invalid_config");
    let first = &error["errors"][0];
    assert_eq!(
        (first["line"].as_u64(), first["col"].as_u64()),
        (Some(4), Some(5))
    );
    assert_eq!(first["path"], "services.web.restrat");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains(":4:5: services.web.restrat: ")
    );
}

#[test]
fn openapi_json_is_the_document() {
    let out = Command::new(BIN)
        .args(["openapi", "--json"])
        .output()
        .unwrap();
    let doc = json(&out);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["paths"]["/api/v1/status"].is_object());
    let yaml = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(
        String::from_utf8(yaml.stdout)
            .unwrap()
            .starts_with("openapi: 3.1")
    );
}

/// `sentineld ARGS` in `inst`'s directory with stdout and stderr already
/// closed at their other end: every write fails with EPIPE.
fn closed_pipes(inst: &Instance, args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(BIN)
        .args(args)
        .current_dir(inst.dir.path())
        .env_remove("SENTINELD_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .status()
        .unwrap()
}

#[test]
fn a_closed_stdout_or_stderr_does_not_turn_a_done_action_into_a_failure() {
    let mut inst = Instance::start("services:\n  web:\n    command: exec sleep 1000\n");
    let web = inst.wait_running("web", None);
    let restart = closed_pipes(&inst, &["restart", "web"]);
    assert_eq!(restart.code(), Some(0));
    inst.wait_running("web", Some(web));
    assert_eq!(
        closed_pipes(&inst, &["check", "services.yaml"]).code(),
        Some(0)
    );
    assert_eq!(
        closed_pipes(&inst, &["reload", "--dry-run"]).code(),
        Some(0)
    );
    assert_eq!(closed_pipes(&inst, &["stop", "nosuch"]).code(), Some(1));
    assert_eq!(closed_pipes(&inst, &["down"]).code(), Some(0));
    assert_eq!(inst.wait_exit().code(), Some(0));
    let gone = closed_pipes(&inst, &["status", "--json"]);
    assert_eq!(gone.code(), Some(1), "no daemon: 1, not a panic's 101");
}

#[test]
fn usage_errors_with_json_are_json_and_the_status_fast_path_agrees_with_clap() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for args in [
        &["logs", "--json"][..],
        &["status", "--json", "--bogus"],
        &["status", "--json", "--color", "bogus"],
        &["status", "--state-dir", "--json"],
    ] {
        let (code, stderr) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let v: Value =
            serde_json::from_str(stderr.trim()).unwrap_or_else(|e| panic!("{e}: {stderr}"));
        assert_eq!(
            (v["type"].as_str(), v["kind"].as_str()),
            (Some("error"), Some("usage"))
        );
    }
    let (code, stderr) = run(&["logs", "--json"]);
    assert!(
        stderr.contains("<NAME>"),
        "says what is missing: {stderr} {code:?}"
    );
    // Without --json, clap's text.
    let (code, stderr) = run(&["status", "--state-dir", "-x"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("'-x'"), "clap's own words: {stderr}");
}
