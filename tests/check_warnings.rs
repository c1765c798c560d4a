//! `check` warns, exit 0, at the line of the value: a program that is not
//! in PATH or not executable, a probe's port that another process listens
//! on — and is silent when all is well, or when the listener is the
//! service itself under the daemon of this state dir.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn check(dir: &std::path::Path) -> Output {
    Command::new(BIN)
        .args(["check", "services.yaml"])
        .current_dir(dir)
        .env_remove("SENTINELD_STATE_DIR")
        .output()
        .unwrap()
}

fn warnings(out: &Output) -> Vec<String> {
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(": warning: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn missing_and_unexecutable_programs_are_warned_at_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bin/serve.sh");
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::write(&script, "#!/bin/sh\nexec sleep 100\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let yaml = "services:
  web:
    command: ./serve.sh --port 1
    cwd: bin
  api:
    command: [no-such-program-sentineld, -x]
    recovery:
      fallback: { command: also-missing-sentineld }
      restart: { cleanup: \"rm -f x && no-such-inner-word\" }
  tools:
    command: private-tool
    env: { PATH: /nonexistent-dir }
  fine:
    command: sleep 10
    liveness: { exec: [true] }
";
    std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
    let file = dir.path().join("services.yaml");
    let at = |line: u32, col: u32| format!("{}:{line}:{col}: warning: ", file.display());
    let w = warnings(&check(dir.path()));
    assert_eq!(w.len(), 4, "{w:#?}");
    assert_eq!(
        w[0],
        format!(
            "{}services.web.command: program \"./serve.sh\" is not executable ({})",
            at(3, 14),
            dir.path().join("bin/./serve.sh").display()
        )
    );
    assert!(
        w[1].starts_with(&format!(
            "{}services.api.command: program \"no-such-program-sentineld\" not found in PATH",
            at(6, 14)
        )),
        "{}",
        w[1]
    );
    assert!(w[2].starts_with(&format!(
        "{}services.api.recovery.fallback.command: program \"also-missing-sentineld\" not found in PATH",
        at(8, 28)
    )));
    // The service's own PATH is searched, not ours.
    assert_eq!(
        w[3],
        format!(
            "{}services.tools.command: program \"private-tool\" not found in PATH (/nonexistent-dir)",
            at(11, 14)
        )
    );

    // Fixed: executable, and `private-tool` in the service's PATH.
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fixed = yaml
        .replace("no-such-program-sentineld", "sleep")
        .replace("also-missing-sentineld", "true")
        .replace("private-tool", "serve.sh")
        .replace(
            "/nonexistent-dir",
            &dir.path().join("bin").display().to_string(),
        );
    std::fs::write(dir.path().join("services.yaml"), fixed).unwrap();
    let out = check(dir.path());
    assert!(warnings(&out).is_empty(), "{out:?}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

#[test]
fn a_probe_port_another_process_listens_on_is_warned_with_its_owner() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = listener.local_addr().unwrap().port();
    let free = free_port();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "services:
  web:
    command: sleep 10
    readiness: {{ tcp: \"127.0.0.1:{taken}\" }}
  api:
    command: sleep 10
    liveness:
      http: {{ url: \"http://localhost:{taken}/health\" }}
  free:
    command: sleep 10
    liveness: {{ tcp: \"127.0.0.1:{free}\" }}
"
    );
    std::fs::write(dir.path().join("services.yaml"), &yaml).unwrap();
    let file = dir.path().join("services.yaml");
    let w = warnings(&check(dir.path()));
    let me = std::process::id();
    let who = format!("pid {me} (");
    assert_eq!(w.len(), 2, "{w:#?}");
    let first = format!(
        "{}:4:23: warning: services.web.readiness.tcp: port {taken} is already taken: {who}",
        file.display()
    );
    assert!(w[0].starts_with(&first), "{}", w[0]);
    assert!(
        w[0].ends_with(&format!(") listens on 127.0.0.1:{taken}")),
        "{}",
        w[0]
    );
    let second = format!(
        "{}:8:20: warning: services.api.liveness.http: port {taken} is already taken: {who}",
        file.display()
    );
    assert!(w[1].starts_with(&second), "{}", w[1]);

    drop(listener);
    assert!(warnings(&check(dir.path())).is_empty());
}

#[test]
fn a_port_held_by_the_running_service_itself_is_not_a_warning() {
    let port = free_port();
    let inst = Instance::start(&format!(
        "services:\n  web:\n    command: [python3, {}, '{port}']\n    readiness: {{ http: \"http://127.0.0.1:{port}/health\", interval: 200ms }}\n",
        fixture("health_server.py").display()
    ));
    inst.wait_running("web", None);
    wait_until(Duration::from_secs(10), "web ready", || {
        inst.service("web")["ready"] == true
    });
    let out = check(inst.dir.path());
    assert!(warnings(&out).is_empty(), "{out:?}");
    // The same port under another state dir's check is someone else's.
    let other = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(inst.path("services.yaml")).unwrap();
    std::fs::write(other.path().join("services.yaml"), yaml).unwrap();
    let w = warnings(&check(other.path()));
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].contains(&format!("port {port} is already taken: pid ")),
        "{}",
        w[0]
    );
    // Unless it names the running daemon's state dir, as `up` takes it.
    let state = inst.path(".sentineld");
    let named = |configure: &dyn Fn(&mut Command)| {
        let mut cmd = Command::new(BIN);
        cmd.args(["check", "services.yaml"])
            .current_dir(other.path());
        configure(&mut cmd);
        warnings(&cmd.output().unwrap())
    };
    let by_flag = named(&|c| {
        c.env_remove("SENTINELD_STATE_DIR")
            .arg("--state-dir")
            .arg(&state);
    });
    assert!(by_flag.is_empty(), "{by_flag:#?}");
    let by_env = named(&|c| {
        c.env("SENTINELD_STATE_DIR", &state);
    });
    assert!(by_env.is_empty(), "{by_env:#?}");
}

#[test]
fn a_listener_on_another_address_of_the_port_is_not_a_warning() {
    let other = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let port = other.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "services:\n  web:\n    command: exec sleep 1\n    readiness: {{ tcp: \"127.0.0.1:{port}\" }}\n  api:\n    command: exec sleep 1\n    readiness: {{ tcp: \"127.0.0.2:{port}\" }}\n"
    );
    std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
    let w = warnings(&check(dir.path()));
    assert_eq!(w.len(), 1, "only api's probe meets it: {w:#?}");
    assert!(w[0].contains("services.api.readiness.tcp"), "{}", w[0]);
}
