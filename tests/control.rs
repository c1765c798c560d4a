//! The control socket and the client commands around it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn raw_exchange(inst: &Instance, payload: &[u8]) -> Value {
    let mut s = UnixStream::connect(inst.path(".sentineld/control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(payload).unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

const ONE: &str = "services:\n  web:\n    command: exec sleep 1000\n";

#[test]
fn socket_is_private() {
    let inst = Instance::start(ONE);
    let mode = std::fs::metadata(inst.path(".sentineld/control.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let dir = std::fs::metadata(inst.path(".sentineld"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir & 0o777, 0o700);
}

#[test]
fn a_second_up_on_the_same_state_dir_is_refused() {
    let inst = Instance::start(ONE);
    let web = inst.wait_running("web", None);
    let out = inst.cli(&["up", "services.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "sentineld: sentineld is already running for {} (pid {})",
            inst.path(".sentineld").display(),
            inst.pid()
        )
    );
    // The first one is untouched.
    assert_eq!(inst.pid_of("web"), Some(web));
    assert!(alive(web));
}

#[test]
fn a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join(".sentineld")).unwrap();
    let stale =
        std::os::unix::net::UnixListener::bind(dir.path().join(".sentineld/control.sock")).unwrap();
    drop(stale);
    assert!(dir.path().join(".sentineld/control.sock").exists());
    let inst = Instance::start_in(dir, ONE);
    inst.wait_running("web", None);
    let log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    assert!(log.contains("replaced a stale socket"), "{log}");
}

#[test]
fn bad_requests_get_an_error_and_the_daemon_keeps_serving() {
    let inst = Instance::start(ONE);
    let web = inst.wait_running("web", None);
    // (request, kind, message)
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            b"garbage\n".to_vec(),
            "bad_request",
            "invalid request: not JSON (expected value at line 1 column 1)",
        ),
        (
            b"[1,2]\n".to_vec(),
            "bad_request",
            "invalid request: expected a JSON object",
        ),
        (
            br#"{"type":"status"}"#.to_vec(),
            "bad_request",
            "invalid request: missing \"version\"",
        ),
        (
            b"{\"version\":2,\"type\":\"status\"}\n".to_vec(),
            "version",
            "protocol version 2 is not supported: this daemon speaks version 1",
        ),
        (
            b"{\"version\":1,\"type\":\"explode\"}\n".to_vec(),
            "bad_request",
            "unknown request type \"explode\"; known: ping, status, start, stop, restart, reset, signal, events, health, metrics, reload, down",
        ),
        (
            b"{\"version\":1,\"type\":\"stop\"}\n".to_vec(),
            "bad_request",
            "invalid \"stop\" request: missing field `name`",
        ),
        (
            b"{\"version\":1,\"type\":\"stop\",\"name\":\"nope\"}\n".to_vec(),
            "unknown_service",
            "unknown service \"nope\"",
        ),
    ];
    for (payload, kind, message) in cases {
        let mut payload = payload;
        if payload.last() != Some(&b'\n') {
            payload.push(b'\n');
        }
        let reply = raw_exchange(&inst, &payload);
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(reply["kind"], kind, "{reply}");
        assert_eq!(reply["message"], message, "{reply}");
    }
    let mut huge = vec![b'x'; 100 * 1024];
    huge.push(b'\n');
    let reply = raw_exchange(&inst, &huge);
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["kind"], "bad_request", "{reply}");
    assert_eq!(
        reply["message"],
        "request too large: the limit is 65536 bytes per line"
    );
    // Still serving, nothing changed.
    assert_eq!(inst.pid_of("web"), Some(web));
    let reply = raw_exchange(&inst, b"{\"version\":1,\"type\":\"ping\"}\n");
    assert_eq!(reply["type"], "pong");
    assert_eq!(reply["pid"], inst.pid());
}

#[test]
fn empty_lines_and_mistyped_fields_get_errors_that_say_so() {
    let inst = Instance::start(ONE);
    let web = inst.wait_running("web", None);
    let empty =
        "invalid request: empty line (expected a JSON object with \"version\" and \"type\")";
    let version = |got: &str| {
        format!(
            "invalid request: \"version\" must be an unsigned 64-bit integer \
             (this daemon speaks 1), got {got}"
        )
    };
    for (payload, message) in [
        ("\n", empty.to_string()),
        (" \t\r\n", empty.to_string()),
        (
            r#"{"version":"1","type":"status"}"#,
            version(r#"a string ("1")"#),
        ),
        (
            r#"{"version":1.0,"type":"status"}"#,
            version("the number 1.0"),
        ),
        (
            r#"{"version":18446744073709551616,"type":"status"}"#,
            version("the number 1.8446744073709552e+19"),
        ),
        (
            r#"{"version":1,"type":["status"]}"#,
            "invalid request: \"type\" must be a string, got an array".into(),
        ),
    ] {
        let reply = raw_exchange(
            &inst,
            format!("{}\n", payload.trim_end_matches('\n')).as_bytes(),
        );
        assert_eq!(reply["type"], "error", "{payload:?}: {reply}");
        assert_eq!(reply["kind"], "bad_request", "{payload:?}: {reply}");
        assert_eq!(reply["message"], message, "{payload:?}");
    }
    assert_eq!(inst.pid_of("web"), Some(web));
}

#[test]
fn an_empty_line_is_answered_and_the_connection_goes_on() {
    let inst = Instance::start(ONE);
    inst.wait_running("web", None);
    let mut s = UnixStream::connect(inst.path(".sentineld/control.sock")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"\n{\"version\":1,\"type\":\"ping\"}\n")
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    let first = next();
    assert_eq!(first["type"], "error", "{first}");
    assert_eq!(first["kind"], "bad_request", "{first}");
    let second = next();
    assert_eq!(second["type"], "pong", "{second}");
}

#[test]
fn a_start_that_fails_is_a_conflict() {
    let inst = Instance::start(
        "services:\n  ghost:\n    command: [definitely-not-a-program-xyz]\n    restart: never\n",
    );
    inst.wait_state("ghost", "failed");
    let reply = raw_exchange(
        &inst,
        b"{\"version\":1,\"type\":\"start\",\"name\":\"ghost\"}\n",
    );
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["kind"], "conflict", "{reply}");
    assert!(
        reply["message"].as_str().unwrap().starts_with("ghost: "),
        "{reply}"
    );
}

#[test]
fn status_json_has_the_documented_shape() {
    let inst = Instance::start(ONE);
    let pid = inst.wait_running("web", None);
    let v = inst.status();
    assert_eq!(v["version"], 1);
    let s = &v["services"][0];
    for key in [
        "name",
        "state",
        "health",
        "pid",
        "started_at",
        "uptime_s",
        "restarts",
        "exit",
    ] {
        assert!(s.get(key).is_some(), "missing {key}: {s}");
    }
    assert_eq!(s["name"], "web");
    assert_eq!(s["state"], "running");
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["exit"], Value::Null);
    assert!(s["started_at"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn status_table_and_one_service() {
    let inst = Instance::start(
        "services:\n  web:\n    command: exec sleep 1000\n  api:\n    command: exec sleep 1000\n",
    );
    let web = inst.wait_running("web", None);
    inst.wait_running("api", None);
    let out = inst.cli(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("NAME"), "{text}");
    assert!(
        lines[0].contains("STATE") && lines[0].contains("RESTARTS") && lines[0].contains("LAST")
    );
    assert!(
        lines[1].starts_with("web ")
            && lines[1].contains("running")
            && lines[1].contains(&web.to_string())
    );
    assert!(!text.contains('\x1b'), "NO_COLOR is set");
    let out = inst.cli(&["status", "web"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("recent events:"), "{text}");
    assert!(text.contains(&format!("started (pid {web})")), "{text}");
}

#[test]
fn clients_without_a_daemon_say_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["status"][..], &["stop", "web"], &["down"]] {
        let out = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("SENTINELD_STATE_DIR")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let tried = dir.path().join(".sentineld");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            format!(
                "sentineld: no sentineld is running for {} (start one with `sentineld up services.yaml`, or pass --state-dir)",
                tried.display()
            )
        );
    }
}

#[test]
fn state_dir_from_flag_and_environment() {
    let inst = Instance::start(ONE);
    inst.wait_running("web", None);
    let elsewhere = tempfile::tempdir().unwrap();
    let sd = inst.path(".sentineld");
    let out = Command::new(BIN)
        .args(["status", "--state-dir", sd.to_str().unwrap()])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(BIN)
        .args(["status"])
        .env("SENTINELD_STATE_DIR", &sd)
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn peers_of_another_uid_are_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return; // needs root to act as another uid
    }
    let inst = Instance::start(ONE);
    let web = inst.wait_running("web", None);
    // Open the file modes, so only SO_PEERCRED stands in the way.
    std::fs::set_permissions(inst.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        inst.path(".sentineld"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::set_permissions(
        inst.path(".sentineld/control.sock"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let out = Command::new(bin_for_anyone())
        .args(["stop", "web"])
        .current_dir(inst.dir.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "sentineld: permission denied: uid 65534 may not control a sentineld run by uid 0"
    );
    assert_eq!(inst.pid_of("web"), Some(web));
}

#[test]
fn up_detached_returns_once_started_and_down_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), ONE).unwrap();
    let out = Command::new(BIN)
        .args(["up", "-d", "services.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let daemon: i32 = text
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?} / {out:?}"));
    struct Guard(i32);
    impl Drop for Guard {
        fn drop(&mut self) {
            if alive(self.0) {
                kill(self.0, libc::SIGTERM);
            }
        }
    }
    let _guard = Guard(daemon);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("control socket:"), "{text}");
    assert!(text.contains("service logs:"), "{text}");
    // Started already when `up -d` returned.
    let st = Command::new(BIN)
        .args(["status", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(v["services"][0]["state"], "running");
    let web = v["services"][0]["pid"].as_i64().unwrap() as i32;
    // Detached: its own session, not ours.
    assert_eq!(stat_field(daemon, 6).unwrap(), daemon.to_string());
    let out = Command::new(BIN)
        .arg("down")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "all services stopped"
    );
    wait_until(Duration::from_secs(5), "the daemon to exit", || {
        !alive(daemon)
    });
    assert!(!alive(web));
    let log = std::fs::read_to_string(dir.path().join(".sentineld/sentineld.log")).unwrap();
    assert!(log.contains("web: started"), "{log}");
}

#[test]
fn the_brief_table_says_what_the_full_report_says() {
    // Only services that are not running, so no column moves between calls.
    let inst = Instance::start(
        "services:
  oneshot:
    command: exit 3
    restart: never
  dependent:
    command: exec sleep 1000
    depends_on: { oneshot: completed }
  ghost:
    command: [definitely-not-a-program-xyz]
    restart: never
  broken:
    command: exit 78
",
    );
    inst.wait_state("oneshot", "exited");
    inst.wait_state("dependent", "blocked");
    inst.wait_state("ghost", "failed");
    inst.wait_state("broken", "quarantined");
    let table = String::from_utf8(inst.cli(&["status"]).stdout).unwrap();
    let full: sentineld::control::protocol::StatusReport =
        serde_json::from_slice(&inst.cli(&["status", "--json"]).stdout).unwrap();
    let rows: Vec<_> = full
        .services
        .iter()
        .map(sentineld::report::table::row)
        .collect();
    let from_full =
        sentineld::report::table::render(&rows, &sentineld::report::table::Style { color: false });
    // RISK decays between the two calls; compare everything else.
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .map(|l| {
                l.split_whitespace()
                    .filter(|w| !(w.len() == 4 && w.starts_with("0.")))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    assert_eq!(
        strip(&table),
        strip(&from_full),
        "{table}\n---\n{from_full}"
    );
    assert!(
        table.contains("blocked: waiting for oneshot (exit 3)"),
        "{table}"
    );
}
