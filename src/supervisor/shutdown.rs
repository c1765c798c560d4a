//! The end of a shutdown: once every service is down, the hooks still
//! running and the orphans adopted as subreaper (or as PID 1) get SIGTERM
//! and, after one grace period, SIGKILL. The grace is given once: what is
//! adopted after it — an orphan's own orphans, reparented as their parent
//! is killed — is killed at once, so nested orphans cannot stretch the
//! stop past the budget a runtime allows (`terminationGracePeriodSeconds`).

use std::time::{Duration, Instant};

use super::daemon::Daemon;
use super::effects::{self, kill};
use super::reaper;
use crate::strategy::system::Input;

/// How long adopted orphans get after SIGTERM at shutdown before SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

impl Daemon {
    /// Hooks still running.
    fn hooks(&self) -> Vec<i32> {
        self.rt.iter().filter_map(|r| r.hook).collect()
    }

    /// Once every service is down at shutdown, the hooks still running and
    /// the orphans we adopted: SIGTERM, then SIGKILL after the grace; after
    /// it, SIGKILL at once.
    pub(super) fn advance_shutdown(&mut self, now: Instant) {
        if !self.system.finished() || self.finished {
            return;
        }
        let orphans = reaper::adopted_children(&self.by_pid);
        let hooks = self.hooks();
        if orphans.is_empty() && hooks.is_empty() {
            self.finished = true;
            return;
        }
        if self.orphan_grace_over {
            kill_all(&orphans, &hooks);
            return;
        }
        if self.orphan_deadline.is_none() {
            let (o, h) = (orphans.len(), hooks.len());
            tracing::info!("stopping {h} hook(s) and {o} adopted orphan process(es)");
            for pid in hooks {
                effects::signal_group(pid, libc::SIGTERM);
                effects::signal_group(pid, libc::SIGCONT);
            }
            for pid in orphans {
                kill(pid, libc::SIGTERM);
                kill(pid, libc::SIGCONT);
            }
            self.orphan_deadline = Some(now + ORPHAN_GRACE);
        }
    }

    /// The grace is over: SIGKILL to what is left of the hooks and orphans.
    pub(super) fn orphan_grace_due(&mut self, now: Instant) {
        if self.orphan_deadline.is_some_and(|d| d <= now) {
            self.orphan_deadline = None;
            self.orphan_grace_over = true;
            kill_all(&reaper::adopted_children(&self.by_pid), &self.hooks());
        }
    }

    pub(super) fn begin_shutdown(&mut self, now: Instant) {
        if !self.system.shutting_down() {
            tracing::info!("stopping all services");
        }
        self.feed(now, Input::Shutdown);
    }
}

/// SIGKILL to adopted orphans (our unreaped children, by pid) and to the
/// hooks' groups (led by our unreaped children).
fn kill_all(orphans: &[i32], hooks: &[i32]) {
    for &pid in orphans {
        kill(pid, libc::SIGKILL);
    }
    for &pid in hooks {
        effects::signal_group(pid, libc::SIGKILL);
    }
}
