//! The reaper: the only caller of waitpid/waitid in sentineld.
//!
//! On SIGCHLD it collects every exited child (`WNOHANG` until none is left):
//! service leaders go to their service; probes, hooks and orphans adopted as
//! subreaper are simply reaped. A service leader is first looked at with
//! `WNOWAIT`, so that while its zombie pins the process-group number the rest
//! of the group can be killed without any risk of hitting a reused id.

use std::collections::HashMap;
use std::time::Instant;

use super::{Daemon, Phase, Role, kill};
use crate::strategy::restart::ExitStatus;

pub(super) fn reap_all(daemon: &mut Daemon, now: Instant) {
    let mut orphans_reaped = false;
    loop {
        // SAFETY: siginfo_t is plain data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer to a siginfo_t.
        let r = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid/si_status are valid for SIGCHLD-style siginfo.
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if r != 0 || pid == 0 {
            break;
        }
        let status = if info.si_code == libc::CLD_EXITED {
            ExitStatus::Code(status)
        } else {
            ExitStatus::Signal(status)
        };
        let owner = daemon.by_pid.get(&pid).copied();
        let leader_died_on_its_own = match owner {
            Some((i, Role::Primary)) => matches!(daemon.services[i].phase, Phase::Running { .. }),
            Some((i, Role::Fallback)) => daemon.services[i]
                .fallback
                .as_ref()
                .is_some_and(|f| !f.stopping),
            Some((_, Role::Cleanup | Role::Hook | Role::Probe(_))) => true,
            None => false,
        };
        if leader_died_on_its_own {
            // The rest of its group goes with it, while the zombie leader
            // still pins the group id.
            kill(-pid, libc::SIGKILL);
        }
        let mut raw = 0;
        // SAFETY: reaping a child we just saw exit.
        unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
        match owner {
            Some(_) => daemon.on_exit(pid, status, now),
            None => orphans_reaped = true,
        }
    }
    if orphans_reaped {
        daemon.recheck_remnants(now);
    }
    daemon.advance_shutdown(now);
}

/// Children of ours that are not service leaders: orphans re-parented to us
/// because we are a subreaper (a daemonizing grandchild, say).
pub(super) fn adopted_children(leaders: &HashMap<i32, (usize, Role)>) -> Vec<i32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        let path = t.path().join("children");
        if let Ok(text) = std::fs::read_to_string(path) {
            for pid in text
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                if !leaders.contains_key(&pid) {
                    out.push(pid);
                }
            }
        }
    }
    out
}
