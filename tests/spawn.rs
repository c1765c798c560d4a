//! What a child gets from sentineld between fork and exec: its user, its
//! resource limits, its death with sentineld.

mod common;

use std::time::Duration;

use common::*;

const NOBODY: u32 = 65534;

/// Real uid of a live process, from /proc/PID/status.
fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_user_service_dies_with_a_sigkilled_sentineld() {
    let mut inst =
        Instance::start("services:\n  guest:\n    command: exec sleep 1000\n    user: nobody\n");
    let pid = inst.wait_running("guest", None);
    wait_until(Duration::from_secs(5), "guest exec'd as nobody", || {
        uid_of(pid) == Some(NOBODY) && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok()
    });
    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    // PR_SET_PDEATHSIG, set after the switch to nobody (which clears it).
    wait_until(Duration::from_secs(5), "guest gone with sentineld", || {
        !alive(pid)
    });
}

#[test]
fn children_get_the_fd_limit_sentineld_was_started_with() {
    let inst = Instance::start_limited(
        tempfile::tempdir().unwrap(),
        "services:\n  count:\n    command: echo nofile $(ulimit -Sn) $(ulimit -Hn); exec sleep 1000\n",
        &[(libc::RLIMIT_NOFILE, 1024, 4096)],
    );
    inst.wait_running("count", None);
    wait_until(Duration::from_secs(5), "the limit in the log", || {
        inst.log("count").contains("nofile ")
    });
    assert!(
        inst.log("count").contains("nofile 1024 4096\n"),
        "{}",
        inst.log("count")
    );
    // sentineld itself still raised its own soft limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", inst.pid())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files"));
    let fields: Vec<&str> = open_files.unwrap().split_whitespace().collect();
    assert_eq!(fields[3..5], ["4096", "4096"], "{limits}");
}
