//! sentineld under a manager that speaks sd_notify (systemd `Type=notify`,
//! `WatchdogSec=`): READY=1 once started, WATCHDOG=1 from the event loop,
//! RELOADING=1 … READY=1 around a reload, STOPPING=1; and the manager's
//! variables kept from the services.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// The manager's end: a datagram socket in the test's temp dir.
struct Manager {
    sock: UnixDatagram,
    path: std::path::PathBuf,
}

impl Manager {
    fn bind() -> (Manager, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        (Manager { sock, path }, dir)
    }

    /// Datagrams until one satisfies `done` (within 10 s); all of them.
    fn until(&self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let last = done(&msg);
                got.push(msg);
                if last {
                    return got;
                }
            }
        }
        panic!("no {what} within 10 s; got {got:?}");
    }
}

const TWO: &str = "services:
  a:
    command: env; exec sleep 300
";

#[test]
fn ready_then_watchdog_from_the_loop_then_stopping() {
    let (manager, _keep) = Manager::bind();
    let mut inst = Instance::start_with(tempfile::tempdir().unwrap(), TWO, |up| {
        up.env("NOTIFY_SOCKET", &manager.path)
            .env("WATCHDOG_USEC", "100000")
            .env("LISTEN_FDS", "0");
    });
    let got = manager.until("READY=1", |m| m.starts_with("READY=1"));
    assert!(
        got.last()
            .unwrap()
            .contains("STATUS=supervising 1 services")
    );
    // At half of WATCHDOG_USEC: three in well under a second.
    let start = Instant::now();
    for _ in 0..3 {
        manager.until("WATCHDOG=1", |m| m == "WATCHDOG=1");
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    // The manager's variables describe sentineld, not the services.
    inst.wait_running("a", None);
    wait_until(Duration::from_secs(10), "a's environment", || {
        inst.log("a").contains("PATH=")
    });
    let env = inst.log("a");
    assert!(
        !env.contains("WATCHDOG_USEC") && !env.contains("LISTEN_FDS"),
        "{env}"
    );
    let own = manager.path.to_string_lossy().into_owned();
    assert!(!env.contains(&own), "the manager's socket leaked: {env}");

    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let got = manager.until("READY=1 after the reload", |m| m.starts_with("READY=1"));
    let reloading = got
        .iter()
        .position(|m| m.starts_with("RELOADING=1\nMONOTONIC_USEC="));
    assert!(reloading.is_some(), "{got:?}");

    inst.cli(&["down"]);
    manager.until("STOPPING=1", |m| m == "STOPPING=1");
    assert_eq!(inst.wait_exit().code(), Some(0));
}

#[test]
fn no_watchdog_when_it_is_meant_for_another_process() {
    let (manager, _keep) = Manager::bind();
    let _inst = Instance::start_with(tempfile::tempdir().unwrap(), TWO, |up| {
        up.env("NOTIFY_SOCKET", &manager.path)
            .env("WATCHDOG_USEC", "20000")
            .env("WATCHDOG_PID", "1");
    });
    manager.until("READY=1", |m| m.starts_with("READY=1"));
    // 20 ms would give ~15 pings in 300 ms.
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut buf = [0u8; 256];
    while Instant::now() < deadline {
        if let Ok(n) = manager.sock.recv(&mut buf) {
            assert_ne!(
                &buf[..n],
                b"WATCHDOG=1",
                "WATCHDOG_PID names another process"
            );
        }
    }
}

#[test]
fn a_manager_that_never_reads_cannot_stop_the_loop() {
    // Its queue fills after a few datagrams; a blocking send would then
    // hang the event loop, and with it status, reloads and the stop.
    let (manager, _keep) = Manager::bind();
    let mut inst = Instance::start_with(tempfile::tempdir().unwrap(), TWO, |up| {
        up.env("NOTIFY_SOCKET", &manager.path)
            .env("WATCHDOG_USEC", "2000");
    });
    // Far more than the queue holds: a ping every millisecond.
    for _ in 0..20 {
        let out = inst.cli(&["reload"]);
        assert!(out.status.success(), "{out:?}");
    }
    inst.wait_running("a", None);
    assert_eq!(inst.down().code(), Some(0));
    let log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    let warned = log.matches("cannot notify our own supervisor").count();
    assert_eq!(warned, 1, "one warning, not one per message: {log}");
}

#[test]
fn the_variable_the_api_token_came_from_is_kept_from_the_services() {
    // In a container the token comes from the environment (a Secret); the
    // services inherit sentineld's: not that variable.
    let port = free_port();
    let token = "from-the-environment-0123456789";
    let yaml = format!(
        "api: {{ listen: 127.0.0.1:{port}, token: \"${{API_SECRET}}\" }}\nservices:\n  a:\n    command: env; exec sleep 300\n"
    );
    let inst = Instance::start_with(tempfile::tempdir().unwrap(), &yaml, |up| {
        up.env("API_SECRET", token).env("OTHER_VAR", "kept");
    });
    inst.wait_running("a", None);
    wait_until(Duration::from_secs(10), "a's environment", || {
        inst.log("a").contains("OTHER_VAR=kept")
    });
    let env = inst.log("a");
    assert!(!env.contains("API_SECRET") && !env.contains(token), "{env}");
}
