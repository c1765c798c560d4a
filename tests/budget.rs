//! A plan that needs more descriptors than sentineld may open is said up
//! front, with the numbers and how to raise the limit — not discovered one
//! EMFILE at a time, with services quarantined as if they were broken.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

fn services(n: usize) -> String {
    let mut yaml = String::from("services:\n");
    for k in 0..n {
        yaml.push_str(&format!("  s{k}:\n    command: exec sleep 1000\n"));
    }
    yaml
}

/// Run the binary as uid 65534 (which cannot raise a hard limit) in `dir`
/// with RLIMIT_NOFILE 1024/1024.
fn run_limited(dir: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin_for_anyone());
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SENTINELD_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .uid(65534)
        .gid(65534);
    // SAFETY: setrlimit is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

#[test]
fn a_plan_beyond_the_descriptor_limit_is_refused_with_the_numbers() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("services.yaml"), services(1000)).unwrap();

    let check = run_limited(dir.path(), &["check", "services.yaml"]);
    assert!(check.status.success(), "{check:?}");
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("warning: 1000 services need about 1328 file descriptors")
            && err.contains("at most 1024")
            && err.contains("ulimit -Hn 1328"),
        "{err}"
    );

    let up = run_limited(dir.path(), &["up", "services.yaml"]);
    assert_eq!(up.status.code(), Some(1), "{up:?}");
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(err.contains("1000 services need about 1328"), "{err}");
    // Nothing ran: no control socket was made.
    assert!(!dir.path().join(".sentineld/control.sock").exists());
}

#[test]
fn a_plan_within_the_limit_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("services.yaml"), services(20)).unwrap();
    let check = run_limited(dir.path(), &["check", "services.yaml"]);
    assert!(check.status.success(), "{check:?}");
    assert!(!String::from_utf8_lossy(&check.stderr).contains("warning"));
}

/// As many services as the budget allows under a limit of 1024: every one
/// runs and logs, though only a quarter of their log files can be open at
/// once, and a killed one is restarted, not failed for EMFILE.
#[test]
fn a_plan_that_fills_the_limit_runs_every_service_and_logs_every_line() {
    const N: usize = 650;
    let mut yaml = String::from("services:\n");
    for k in 0..N {
        yaml.push_str(&format!(
            "  s{k}:\n    command: echo started s{k}; exec sleep 1000\n"
        ));
    }
    let nofile = (libc::RLIMIT_NOFILE, 1024, 1024);
    let inst = Instance::start_limited(tempfile::tempdir().unwrap(), &yaml, &[nofile]);
    wait_until(Duration::from_secs(60), "every service running", || {
        let st = inst.status();
        let services = st["services"].as_array().unwrap();
        services.iter().filter(|s| s["state"] == "running").count() == N
    });
    let up_log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    assert!(!up_log.contains("descriptor"), "{up_log}");
    for k in 0..N {
        let name = format!("s{k}");
        let want = format!("started {name}\n");
        wait_until(Duration::from_secs(10), "the line in its log", || {
            inst.log(&name) == want
        });
    }
    let victim = inst.pid_of("s7").unwrap();
    kill(victim, libc::SIGKILL);
    inst.wait_running("s7", Some(victim));
    wait_until(Duration::from_secs(10), "the second run's line", || {
        inst.log("s7") == "started s7\nstarted s7\n"
    });
    let fds = std::fs::read_dir(format!("/proc/{}/fd", inst.pid()))
        .unwrap()
        .count();
    assert!(fds < 1024, "{fds} descriptors open");
}

/// Every kind of probe counts, startup probes too: a plan whose probes
/// would run out of descriptors is refused, not started to fail.
#[test]
fn startup_probes_count_in_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut yaml = String::from("services:\n");
    for k in 0..300 {
        yaml.push_str(&format!(
            "  s{k}:\n    command: exec sleep 1000\n    startup: {{ exec: [/bin/true] }}\n"
        ));
    }
    std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
    let check = run_limited(dir.path(), &["check", "services.yaml"]);
    let err = String::from_utf8_lossy(&check.stderr);
    // 64 + 256 + 300 + 2 × 300 + 8
    assert!(
        err.contains("300 services need about 1228 file descriptors"),
        "{err}"
    );
}
