//! A plan that needs more descriptors than sentineld may open is said up
//! front, with the numbers and how to raise the limit — not discovered one
//! EMFILE at a time, with services quarantined as if they were broken.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

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
    std::fs::write(dir.path().join("services.yaml"), services(300)).unwrap();

    let check = run_limited(dir.path(), &["check", "services.yaml"]);
    assert!(check.status.success(), "{check:?}");
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("warning: 300 services need about 2472 file descriptors")
            && err.contains("at most 1024")
            && err.contains("ulimit -Hn 2472"),
        "{err}"
    );

    let up = run_limited(dir.path(), &["up", "services.yaml"]);
    assert_eq!(up.status.code(), Some(1), "{up:?}");
    let err = String::from_utf8_lossy(&up.stderr);
    assert!(err.contains("300 services need about 2472"), "{err}");
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
