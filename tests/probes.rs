//! Liveness, readiness and startup probes, and sd_notify, with real
//! processes and real sockets.

mod common;

use std::time::Duration;

use common::*;

fn failure_messages(inst: &Instance, name: &str) -> Vec<String> {
    inst.messages_of(name, "failure")
}

#[test]
fn http_liveness_failing_restarts_after_exactly_failure_threshold_misses() {
    let port = free_port();
    let inst = Instance::start(&format!(
        "services:
  web:
    command: [python3, {}, '{port}']
    min_uptime: 100ms
    liveness:
      http: {{ url: 'http://127.0.0.1:{port}/health', expect: 200-299 }}
      interval: 200ms
      timeout: 150ms
      initial_delay: 300ms
      failure_threshold: 3
",
        fixture("health_server.py").display()
    ));
    let first = inst.wait_running("web", None);
    wait_until(Duration::from_secs(10), "a passing liveness probe", || {
        inst.service("web")["probes"]["liveness"]["passing"] == true
    });
    std::fs::write(inst.path("sick"), "").unwrap();
    let second = inst.wait_running("web", Some(first));
    std::fs::remove_file(inst.path("sick")).unwrap();
    assert!(!alive(first));
    let m = inst.messages("web");
    let killed = m
        .iter()
        .position(|x| x.starts_with("liveness probe failed 3 times"))
        .unwrap_or_else(|| panic!("{m:#?}"));
    assert!(m[killed].contains("HTTP 500"), "{m:#?}");
    assert!(
        m[killed].contains(&format!("killing process group {first}")),
        "{m:#?}"
    );
    // Exactly failure_threshold misses: two reported misses, then the kill
    // (a miss earlier, a timeout on a loaded machine, was passed since).
    assert!(killed >= 2, "{m:#?}");
    assert!(
        m[killed - 2..killed]
            .iter()
            .all(|x| x.starts_with("liveness probe missed")),
        "{m:#?}"
    );
    // ... and no third miss of the sick streak before them.
    assert!(
        killed < 3
            || !(m[killed - 3].starts_with("liveness probe missed")
                && m[killed - 3].contains("HTTP 500")),
        "{m:#?}"
    );
    let f = failure_messages(&inst, "web");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(f[0].starts_with("liveness probe failed"), "{f:#?}");
    assert!(f[0].contains("recoverable → restart 1/3"), "{f:#?}");
    let s = inst.service("web");
    assert_eq!(s["pid"], second);
    assert_eq!(s["last_failure"]["cause"], "liveness probe failed");
}

#[test]
fn tcp_readiness_on_a_late_port_flips_ready_without_a_restart() {
    let port = free_port();
    let inst = Instance::start(&format!(
        "services:
  slow:
    command: sleep 1; exec python3 {} {port}
    readiness:
      tcp: '127.0.0.1:{port}'
      interval: 100ms
      failure_threshold: 2
",
        fixture("health_server.py").display()
    ));
    inst.wait_running("slow", None);
    wait_until(Duration::from_secs(5), "not ready at first", || {
        inst.service("slow")["ready"] == false
            && inst.service("slow")["probes"]["readiness"]["last_ok"] == false
    });
    assert_eq!(inst.service("slow")["health"], "degraded");
    wait_until(Duration::from_secs(10), "ready", || {
        inst.service("slow")["ready"] == true
    });
    let s = inst.service("slow");
    assert_eq!(s["restarts"], 0);
    assert_eq!(s["probes"]["readiness"]["kind"], "tcp");
    assert!(
        s["probes"]["readiness"]["latency_ewma_ms"]
            .as_f64()
            .is_some()
    );
    assert!(failure_messages(&inst, "slow").is_empty());
    let m = inst.messages("slow");
    assert!(
        m.iter()
            .any(|x| x.starts_with("ready: readiness probe passed")),
        "{m:#?}"
    );
}

#[test]
fn a_hanging_exec_probe_is_killed_at_its_timeout_and_counts_as_a_miss() {
    let inst = Instance::start(
        "services:
  svc:
    command: exec sleep 1000
    liveness:
      exec: echo $$$$ >> probe.pids; exec sleep 100
      interval: 1s
      timeout: 300ms
      failure_threshold: 5
",
    );
    inst.wait_running("svc", None);
    wait_until(Duration::from_secs(5), "a missed probe", || {
        inst.messages("svc")
            .iter()
            .any(|m| m.starts_with("liveness probe missed"))
    });
    let pids: Vec<i32> = std::fs::read_to_string(inst.path("probe.pids"))
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    // The probe led its own process group, and the whole group is gone.
    assert!(
        !alive(pids[0]),
        "probe process {} survived its timeout",
        pids[0]
    );
    assert!(group_members(pids[0]).is_empty());
    let m = inst.messages("svc");
    let miss = m
        .iter()
        .find(|x| x.starts_with("liveness probe missed"))
        .unwrap();
    assert!(miss.contains("timed out after 3"), "{miss}");
    let s = inst.service("svc");
    assert_eq!(s["probes"]["liveness"]["consecutive_failures"], 1);
    assert_eq!(s["restarts"], 0);
}

#[test]
fn a_startup_probe_that_never_passes_fails_the_start_as_classified() {
    let inst = Instance::start(
        "services:
  never:
    command: exec sleep 1000
    startup:
      exec: exit 1
      interval: 100ms
      failure_threshold: 2
",
    );
    wait_until(Duration::from_secs(10), "the startup failure", || {
        !failure_messages(&inst, "never").is_empty()
    });
    let f = failure_messages(&inst, "never");
    assert!(f[0].starts_with("readiness timeout"), "{f:#?}");
    assert!(f[0].contains("startup probe failed 2 times"), "{f:#?}");
    assert!(f[0].contains("recoverable → restart 1/3"), "{f:#?}");
}

#[test]
fn notify_readiness_and_a_missed_watchdog_restart_the_service() {
    let inst = Instance::start(&format!(
        "services:
  daemon:
    command: [python3, {}, '5']
    readiness: notify
    watchdog: 700ms
    min_uptime: 100ms
",
        fixture("notify.py").display()
    ));
    let first = inst.wait_running("daemon", None);
    wait_until(Duration::from_secs(5), "READY=1", || {
        let s = inst.service("daemon");
        s["ready"] == true && s["notify_status"] == "working"
    });
    // Five pings 100 ms apart, then silence: the watchdog fires 700 ms later.
    let second = inst.wait_running("daemon", Some(first));
    let f = failure_messages(&inst, "daemon");
    assert!(!f.is_empty());
    assert!(
        f[0].contains("watchdog: no WATCHDOG=1 within 700ms"),
        "{f:#?}"
    );
    assert!(f[0].contains("recoverable → restart"), "{f:#?}");
    assert!(!alive(first));
    assert_ne!(first, second);
}

#[test]
fn flapping_readiness_degrades_health_but_restarts_nothing() {
    let inst = Instance::start(
        "services:
  flap:
    command: exec sleep 1000
    readiness:
      exec: test -e ok
      interval: 100ms
      failure_threshold: 1
",
    );
    let pid = inst.wait_running("flap", None);
    for _ in 0..2 {
        std::fs::write(inst.path("ok"), "").unwrap();
        wait_until(Duration::from_secs(5), "ready", || {
            inst.service("flap")["ready"] == true
        });
        assert_eq!(inst.service("flap")["health"], "healthy");
        std::fs::remove_file(inst.path("ok")).unwrap();
        wait_until(Duration::from_secs(5), "not ready", || {
            inst.service("flap")["ready"] == false
        });
        assert_eq!(inst.service("flap")["health"], "degraded");
    }
    let s = inst.service("flap");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["restarts"], 0);
    assert!(failure_messages(&inst, "flap").is_empty());
}

#[test]
fn sentineld_tells_its_own_supervisor_ready_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("systemd-notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        "services:\n  a:\n    command: exec sleep 1000\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["up", "services.yaml"])
        .current_dir(dir.path())
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 within 10 s");
    let ready = String::from_utf8_lossy(&buf[..n]).to_string();
    // SIGTERM right after READY=1 reaches a service that may still be
    // between fork and exec: it must not be swallowed there (it once was,
    // and the stop then waited for the 10 s timeout).
    let t0 = std::time::Instant::now();
    kill(child.id() as i32, libc::SIGTERM);
    let n = sock.recv(&mut buf).expect("STOPPING=1 within 10 s");
    let stopping = String::from_utf8_lossy(&buf[..n]).to_string();
    let status = child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    assert!(ready.starts_with("READY=1\nSTATUS="), "{ready}");
    assert_eq!(stopping, "STOPPING=1");
    assert!(status.success());
}

#[test]
fn an_exec_probe_may_write_more_than_a_pipe_holds() {
    // 300 kB: several pipe buffers. The probe's stdout is an ordinary
    // blocking pipe that sentineld drains as it fills.
    let inst = Instance::start(
        "services:
  chatty:
    command: exec sleep 1000
    readiness: { exec: 'head -c 300000 /dev/zero | tr \"\\\\0\" x; echo; echo done', interval: 5s, timeout: 5s }
",
    );
    inst.wait_running("chatty", None);
    wait_until(Duration::from_secs(10), "ready", || {
        inst.service("chatty")["ready"] == true
    });
    let out = inst.service("chatty")["probes"]["readiness"]["last_output"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(out.starts_with("xxxx"), "{out}");
}
