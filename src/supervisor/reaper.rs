//! The reaper: the only caller of waitpid/waitid in sentineld.
//!
//! On SIGCHLD it collects every exited child (`WNOHANG` until none is left)
//! and hands each exit to its owner: a service's primary, fallback or
//! cleanup to its machine, a probe to the probe runner, a hook to nobody;
//! orphans adopted as subreaper are simply reaped. A leader is first looked
//! at with `WNOWAIT`, so that while its zombie pins the process-group number
//! the rest of its group can be killed with no risk of hitting a reused id.

use std::collections::HashMap;
use std::time::Instant;

use super::cgroup::Cgroups;
use super::daemon::{Daemon, Owner};
use super::effects::kill;
use crate::strategy::machine::{Event, Exit, Fallback, Phase, Role};
use crate::strategy::restart::ExitStatus;
use crate::strategy::system::Input;

/// The next exited child (`P_ALL`), or child `pid` if it exited
/// (`P_PID`), still unreaped. `P_ALL` looks through every child the kernel
/// lists for us, `P_PID` at one.
fn peek(which: libc::idtype_t, pid: i32) -> Option<(i32, ExitStatus)> {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: valid pointer to a siginfo_t.
    let r = unsafe { libc::waitid(which, pid as libc::id_t, &mut info, flags) };
    // SAFETY: si_pid/si_status are valid for SIGCHLD-style siginfo.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => (pid, ExitStatus::Code(status)),
        _ => (pid, ExitStatus::Signal(status)),
    })
}

/// Reap every exited child: a look through all of them, which costs in
/// proportion to how many there are — done after the turn's restarts,
/// never before them (see [`reap_reported`]).
pub(super) fn reap_all(daemon: &mut Daemon, now: Instant) {
    let mut orphans_reaped = false;
    while let Some((pid, status)) = peek(libc::P_ALL, 0) {
        orphans_reaped |= reap(daemon, pid, status, now);
    }
    if orphans_reaped {
        recheck_remnants(daemon, now);
    }
}

/// The children the kernel named in SIGCHLD's signal information, each
/// reaped at once by pid, so a restart does not wait for a look through
/// 10,000 children. SIGCHLD does not queue — two exits at once may name
/// one — so a full [`reap_all`] follows, after the turn.
pub(super) fn reap_reported(daemon: &mut Daemon, pids: &[i32], now: Instant) {
    let mut orphans_reaped = false;
    for &pid in pids {
        if let Some((pid, status)) = peek(libc::P_PID, pid) {
            orphans_reaped |= reap(daemon, pid, status, now);
        }
    }
    if orphans_reaped {
        recheck_remnants(daemon, now);
    }
    daemon.sweep_due = true;
}

/// Hand an exited child to its owner and reap it; true if it was an
/// adopted orphan.
fn reap(daemon: &mut Daemon, pid: i32, status: ExitStatus, now: Instant) -> bool {
    let owner = daemon.by_pid.remove(&pid);
    let takes_group = match owner {
        Some((i, Owner::Service(_))) => daemon.system.services[i].kills_group_on_exit(pid, status),
        Some((_, Owner::Hook | Owner::Probe(_))) => true,
        None => false,
    };
    let mut left_behind = 0;
    if takes_group {
        // The rest of its group goes with it, while the zombie leader
        // still pins the group id — and with its cgroup, whatever left
        // the group by setsid().
        kill(-pid, libc::SIGKILL);
        if let Some((i, owner)) = owner
            && let Some(path) = daemon.cgroup_for(i, owner)
        {
            left_behind = Cgroups::count(&path);
            Cgroups::signal(&path, libc::SIGKILL);
        }
    }
    daemon.left_behind = left_behind;
    let mut raw = 0;
    // SAFETY: reaping a child we just saw exit.
    unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) };
    match owner {
        Some((i, owner)) => {
            daemon.on_exit(i, owner, pid, status, now);
            false
        }
        None => true,
    }
}

/// Whether any process of the group led by `pgid`, or of the role's
/// cgroup, is left.
fn group_alive(daemon: &Daemon, i: usize, role: Role, pgid: i32) -> bool {
    kill(-pgid, 0)
        || daemon
            .cgroup_of(i, role)
            .is_some_and(|p| Cgroups::populated(&p))
}

/// A stopping service whose leader is gone has no member of its group left.
pub(super) fn remnants_gone(daemon: &Daemon, i: usize) -> bool {
    match daemon.system.services[i].phase {
        Phase::Stopping {
            pid: None, pgid, ..
        } => !group_alive(daemon, i, Role::Primary, pgid),
        _ => false,
    }
}

/// Likewise for a stopped fallback's group.
pub(super) fn fallback_remnants_gone(daemon: &Daemon, i: usize) -> bool {
    match daemon.system.services[i].fallback {
        Fallback::Remnants { pgid } => !group_alive(daemon, i, Role::Fallback, pgid),
        _ => false,
    }
}

/// An adopted orphan was reaped: groups waiting on remnants may be empty now.
fn recheck_remnants(daemon: &mut Daemon, now: Instant) {
    for i in 0..daemon.system.services.len() {
        if remnants_gone(daemon, i) {
            daemon.feed(now, Input::Event(i, Event::GroupGone));
        }
        if fallback_remnants_gone(daemon, i) {
            daemon.feed(now, Input::Event(i, Event::FallbackGroupGone));
        }
    }
}

impl Daemon {
    fn on_exit(&mut self, i: usize, owner: Owner, pid: i32, status: ExitStatus, now: Instant) {
        if let (Some(hub), Owner::Service(_) | Owner::Hook) = (&self.logs, owner) {
            hub.process_ended(i);
        }
        let event = match owner {
            Owner::Service(Role::Primary) => {
                self.registry.touch(i);
                let exit = self.primary_exit(i, pid, status);
                Event::Exited { pid, exit }
            }
            Owner::Service(Role::Fallback) => {
                self.registry.touch(i);
                Event::FallbackExited {
                    pid,
                    status,
                    group_alive: group_alive(self, i, Role::Fallback, pid),
                }
            }
            Owner::Service(Role::Cleanup) => Event::CleanupExited { pid, status },
            Owner::Service(Role::PreStart) => {
                self.end_pre_start_leftovers(i, pid);
                Event::PreStartExited {
                    pid,
                    status,
                    output: match &self.logs {
                        Some(hub) if !status.success() => hub.recent_output(i),
                        _ => Vec::new(),
                    },
                }
            }
            Owner::Hook => {
                self.rt[i].hook = None;
                self.timers.cancel(i, super::timers::Key::HookLimit);
                return;
            }
            Owner::Probe(kind) => return self.on_probe_exit(i, kind, pid, status, now),
        };
        self.feed(now, Input::Event(i, event));
    }

    /// A `pre_start` check leaves nothing running: whatever it started
    /// (a daemon it forked, a setsid'd child) is killed once it exits —
    /// its cgroup, or its process group where there are no cgroups.
    fn end_pre_start_leftovers(&self, i: usize, pid: i32) {
        match self.cgroup_of(i, Role::PreStart) {
            Some(cg) if Cgroups::populated(&cg) => Cgroups::signal(&cg, libc::SIGKILL),
            Some(_) => {}
            // The group's survivors keep its number from being reused.
            None if kill(-pid, 0) => {
                kill(-pid, libc::SIGKILL);
            }
            None => {}
        }
    }

    /// What the machine needs to know of a primary's exit.
    fn primary_exit(&mut self, i: usize, pid: i32, status: ExitStatus) -> Exit {
        let running = matches!(self.system.services[i].phase, Phase::Running { .. });
        let oom =
            running && status == ExitStatus::Signal(libc::SIGKILL) && self.oom_kill_happened();
        let output = match &self.logs {
            Some(hub) if running && !status.success() => hub.recent_output(i),
            _ => Vec::new(),
        };
        Exit {
            status: Some(status),
            oom,
            group_alive: group_alive(self, i, Role::Primary, pid),
            output,
            left_behind: std::mem::take(&mut self.left_behind),
        }
    }
}

/// Children of ours that are not registered: orphans re-parented to us
/// because we are a subreaper (a daemonizing grandchild, say).
pub(super) fn adopted_children<V>(known: &HashMap<i32, V>) -> Vec<i32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) else {
        return out;
    };
    for t in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(t.path().join("children")) {
            let pids = text
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok());
            out.extend(pids.filter(|pid| !known.contains_key(pid)));
        }
    }
    out
}
