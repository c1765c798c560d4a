//! Validation as a whole: a services file in, a plan or every error out.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::plan_from_str;
use crate::config::*;

fn check(yaml: &str) -> Result<Plan, Vec<ConfigError>> {
    let env = |k: &str| match k {
        "PORT" => Some("8080".to_string()),
        _ => None,
    };
    let ctx = Context {
        env: &env,
        euid: 1000,
    };
    plan_from_str(yaml, Path::new("/tmp/services.yaml"), &ctx)
}

fn messages(yaml: &str) -> Vec<String> {
    check(yaml)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn minimal_service_gets_defaults() {
    let plan = check("services:\n  web:\n    command: ./web --port ${PORT}\n").unwrap();
    let web = &plan.services[0];
    assert_eq!(web.command, Command::Shell("./web --port 8080".into()));
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.min_uptime, Duration::from_secs(1));
    assert_eq!(web.stop.signal, Signal::SIGTERM);
    assert_eq!(plan.state_dir, Path::new("/tmp/.sentineld"));
    assert_eq!(web.cwd, Path::new("/tmp"));
}

#[test]
fn list_command_and_every_key() {
    let plan = check(
        "state_dir: st\nservices:\n  a:\n    command: [sleep, '10']\n    env: {X: 1, Y: ~}\n    restart: on-failure\n    min_uptime: 2s\n    stop: {signal: INT, timeout: 3s}\n    logs: {max_size: 1MiB, keep: 2}\n",
    )
    .unwrap();
    let a = &plan.services[0];
    assert_eq!(a.command, Command::Exec(vec!["sleep".into(), "10".into()]));
    assert_eq!(a.env["X"], "1");
    assert_eq!(a.env["Y"], "");
    assert_eq!(a.stop.signal, Signal::SIGINT);
    assert_eq!(a.stop.timeout, Duration::from_secs(3));
    assert_eq!(
        a.logs,
        LogSpec {
            max_size: 1 << 20,
            keep: 2
        }
    );
    assert_eq!(plan.state_dir, Path::new("/tmp/st"));
}

#[test]
fn errors_carry_line_column_and_path() {
    let m = messages("services:\n  web:\n    command: x\n    restrat: always\n");
    assert_eq!(
        m,
        vec![
            "/tmp/services.yaml:4:5: services.web.restrat: unknown key \"restrat\" (did you mean \"restart\"?); allowed keys: command, cwd, env, env_file, user, restart, min_uptime, stop, logs, classify, recovery, escalation, on_event, liveness, readiness, startup, watchdog, start_timeout, depends_on"
        ]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let m = messages(
        "services:\n  a:\n    command: ''\n  b:\n    command: x\n    min_uptime: fast\n  c:\n    command: x\n    stop: {signal: SIGNOPE}\n",
    );
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].contains("services.a.command: empty command"));
    assert!(m[1].contains("services.b.min_uptime"));
    assert!(m[2].contains("services.c.stop.signal: unknown signal"));
}

#[test]
fn later_keys_are_rejected_not_ignored() {
    let m = messages("api: {listen: ':1'}\nservices:\n  web:\n    command: x\n");
    assert_eq!(m, vec!["/tmp/services.yaml:1:1: api: not supported yet"]);
}

#[test]
fn plain_command_lines_skip_the_shell() {
    let words = |s: &str| plain_words(s);
    assert_eq!(
        words("./api --port 8080").unwrap(),
        vec!["./api", "--port", "8080"]
    );
    assert_eq!(words("  sleep   10 ").unwrap(), vec!["sleep", "10"]);
    for shell in [
        "exit 3",
        "echo hi",
        "a | b",
        "a && b",
        "A=1 cmd",
        "cmd $HOME",
        "cmd 'quoted arg'",
        "cmd > out",
        "cmd &",
        "trap '' TERM",
        "x; y",
        "ls *.txt",
        "",
    ] {
        assert_eq!(words(shell), None, "{shell}");
    }
    let plan = check("services:\n  a:\n    command: sleep 5\n  b:\n    command: exit 5\n").unwrap();
    assert_eq!(plan.services[0].command.argv(), vec!["sleep", "5"]);
    assert_eq!(
        plan.services[1].command.argv(),
        vec!["/bin/sh", "-c", "exit 5"]
    );
}

#[test]
fn user_needs_root() {
    let m = messages("services:\n  web:\n    command: x\n    user: nobody\n");
    assert!(
        m[0].contains("needs root (sentineld runs as uid 1000)"),
        "{m:?}"
    );
}

#[test]
fn duplicate_service() {
    let m = messages("services:\n  a:\n    command: x\n  a:\n    command: y\n");
    assert!(
        m[0].contains("4:3: services.a: duplicate service name"),
        "{m:?}"
    );
}

#[test]
fn missing_command_and_services() {
    assert!(
        messages("services:\n  a:\n    restart: never\n")[0]
            .contains("services.a.command: missing")
    );
    assert!(messages("state_dir: x\n")[0].contains("services: missing"));
}
