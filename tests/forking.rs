//! Services that daemonize (`redis-server --daemonize yes`, classic init
//! scripts): with `type: forking` the daemon becomes the supervised main
//! process; undeclared, the case is detected and said.

mod common;

use std::time::Duration;

use common::*;

const FORKING: &str = "services:
  daemon:
    type: forking
    pid_file: app.pid
    command: setsid sleep 9200 & echo $$! > app.pid; exit 0
";

fn pid_in(inst: &Instance, file: &str) -> Option<i32> {
    std::fs::read_to_string(inst.path(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn a_forking_services_daemon_is_its_main_process() {
    let mut inst = Instance::start(FORKING);
    wait_until(Duration::from_secs(5), "the daemon's pid", || {
        inst.pid_of("daemon")
            .is_some_and(|p| Some(p) == pid_in(&inst, "app.pid"))
    });
    let daemon = inst.pid_of("daemon").unwrap();
    let s = inst.service("daemon");
    assert_eq!(s["state"], "running");
    assert_eq!(s["restarts"], 0, "{s}");
    // Killed, it is restarted: a new launcher, a new daemon.
    kill(daemon, libc::SIGKILL);
    wait_until(Duration::from_secs(5), "a new daemon", || {
        let pid = inst.pid_of("daemon");
        pid.is_some_and(|p| p != daemon) && pid == pid_in(&inst, "app.pid")
    });
    let second = inst.pid_of("daemon").unwrap();
    let out = inst.cli(&["stop", "daemon"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!alive(second));
    assert!(inst.down().success());
}

#[test]
fn after_kill_9_the_next_up_kills_a_forking_services_daemon() {
    let mut inst = Instance::start(FORKING);
    wait_until(Duration::from_secs(5), "the daemon", || {
        inst.pid_of("daemon")
            .is_some_and(|p| Some(p) == pid_in(&inst, "app.pid"))
    });
    let daemon = inst.pid_of("daemon").unwrap();
    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    assert!(alive(daemon), "a daemon outlives its parent by design");
    std::fs::remove_file(inst.path("app.pid")).unwrap();
    inst.launch();
    wait_until(
        Duration::from_secs(3),
        "the old daemon to be killed",
        || !alive(daemon),
    );
    inst.wait_running("daemon", Some(daemon));
    assert!(inst.down().success());
}

#[test]
fn a_pid_file_naming_a_process_not_of_the_service_is_refused() {
    let mut other = std::process::Command::new("sleep")
        .arg("9203")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Ended by pid even if the test fails.
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            kill(self.0, libc::SIGKILL);
        }
    }
    let _reap = Reap(other.id() as i32);
    let yaml = format!(
        "services:
  liar:
    type: forking
    pid_file: app.pid
    command: echo {} > app.pid; exit 0
    restart: never
",
        other.id()
    );
    let mut inst = Instance::start(&yaml);
    let s = inst.wait_state("liar", "failed");
    assert!(
        s["reason"]
            .as_str()
            .unwrap_or("")
            .contains("is not a process of liar"),
        "{s}"
    );
    assert!(inst.down().success());
    assert!(
        alive(other.id() as i32),
        "a process named by a pid file was signalled"
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn an_undeclared_daemonizer_is_detected_and_said() {
    let inst = Instance::start(
        "services:
  sneaky:
    command: setsid sleep 9201 & exit 0
    restart: never
",
    );
    inst.wait_state("sneaky", "exited");
    let m = inst.messages("sneaky");
    let exit = m
        .iter()
        .find(|x| x.starts_with("exit 0"))
        .expect("an exit event");
    if exit.contains("leaving") {
        assert!(
            exit.contains("leaving 1 process(es) in its cgroup")
                && exit.contains("declare `type: forking`"),
            "{exit}"
        );
    } else {
        eprintln!("no writable cgroup v2 here: the daemon cannot be told apart");
    }
}

#[test]
fn a_pid_file_naming_another_services_process_is_refused() {
    let mut inst = Instance::start(
        "services:
  victim:
    command: exec sleep 9204
  thief:
    type: forking
    pid_file: app.pid
    restart: never
    depends_on: { victim: started }
    command: until grep -q '^victim ' .sentineld/pgids; do sleep 0.01; done; awk '$$1 == \"victim\" { print $$2 }' .sentineld/pgids > app.pid; exit 0
",
    );
    let victim = inst.wait_running("victim", None);
    let s = inst.wait_state("thief", "failed");
    assert!(
        s["reason"]
            .as_str()
            .unwrap_or("")
            .contains("is not a process of thief"),
        "{s}"
    );
    assert!(alive(victim));
    assert_eq!(inst.pid_of("victim"), Some(victim));
    assert!(inst.down().success());
}

#[test]
fn a_pid_file_is_never_followed_through_a_symlink_nor_echoed() {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "top secret line\n").unwrap();
    let yaml = format!(
        "services:
  peeker:
    type: forking
    pid_file: app.pid
    restart: never
    command: ln -sf {} app.pid; exit 0
",
        secret.path().display()
    );
    let mut inst = Instance::start(&yaml);
    let s = inst.wait_state("peeker", "failed");
    let all = inst.messages("peeker").join("\n") + &s.to_string();
    assert!(!all.contains("top secret"), "{all}");
    assert!(all.contains("cannot read"), "{all}");
    assert!(inst.down().success());
}
