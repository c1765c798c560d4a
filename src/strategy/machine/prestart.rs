//! The `pre_start` command (nginx -t, a migration check): run before every
//! start of the primary, which starts only once it exited 0. Its failure —
//! a non-zero exit, a signal, its time limit — is the CRITICAL cause
//! `pre-start failed`, with its last output line, and goes through the
//! recovery chain like any other (fallback or quarantine, the primary
//! tried again later); the primary is not started.

use std::time::{Duration, Instant};

use super::super::classify::Cause;
use super::super::restart::ExitStatus;
use super::super::text::fmt_duration;
use super::{Action, Context, Phase, Pid, Role, Service, Target, Timer};

/// How a running `pre_start` ends, besides by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PreStartEnd {
    /// Its own exit decides.
    Decides,
    /// Killed at its time limit: a failure, whatever the status.
    TimedOut,
    /// Killed by a stop: its exit starts nothing.
    CalledOff,
}

impl Service {
    /// Before the primary's spawn: true if the `pre_start` command must
    /// run (or still runs) first.
    pub(super) fn pre_start_first(&mut self) -> bool {
        if self.config.pre_start.is_none() || self.pre_started {
            return false;
        }
        match self.pre_start {
            // One a stop called off is still being killed: a new one once
            // it is gone.
            Some((_, PreStartEnd::CalledOff)) => self.pre_start_again = true,
            Some(_) => {}
            None if self.spawning[Role::PreStart as usize] => {}
            None => {
                self.spawning[Role::PreStart as usize] = true;
                self.out.push(Action::Spawn(Role::PreStart));
            }
        }
        true
    }

    pub(super) fn pre_start_spawned(&mut self, pid: Pid, now: Instant) {
        self.pre_start = Some((pid, PreStartEnd::Decides));
        let limit = self.config.pre_start.unwrap_or(Duration::from_secs(30));
        self.set_timer(Timer::PreStart, now + limit);
    }

    pub(super) fn pre_start_exited(
        &mut self,
        pid: Pid,
        status: ExitStatus,
        output: &[u8],
        now: Instant,
        ctx: &mut Context,
    ) {
        let end = match self.pre_start {
            Some((p, end)) if p == pid => end,
            _ => return,
        };
        self.pre_start = None;
        self.cancel(Timer::PreStart);
        match end {
            PreStartEnd::CalledOff => {
                if std::mem::take(&mut self.pre_start_again) {
                    self.spawn_primary(now, ctx);
                }
            }
            PreStartEnd::Decides if status.success() => {
                self.pre_started = true;
                self.spawn_primary(now, ctx);
            }
            _ => {
                let limit = self.config.pre_start.unwrap_or_default();
                let detail = (end == PreStartEnd::TimedOut)
                    .then(|| format!("(timed out after {})", fmt_duration(limit)));
                self.pre_start_failed(Cause::PreStart(status), detail, output, now, ctx);
            }
        }
    }

    /// The `pre_start` command could not be run, or failed.
    /// Its output is the failure's (the event and LAST quote its last
    /// line; `classify` rules with `output_matches` see it).
    pub(super) fn pre_start_failed(
        &mut self,
        cause: Cause,
        detail: Option<String>,
        output: &[u8],
        now: Instant,
        ctx: &mut Context,
    ) {
        self.spawning[Role::Primary as usize] = false;
        self.phase = Phase::Stopped;
        self.on_failure(cause, detail, Duration::ZERO, output, now, ctx);
    }

    pub(super) fn pre_start_timed_out(&mut self) {
        if let Some((pid, end)) = &mut self.pre_start {
            *end = PreStartEnd::TimedOut;
            let pid = *pid;
            self.signal(pid, libc::SIGKILL, Target::Group);
        }
    }

    /// A stop: a `pre_start` that runs is killed, and its end starts
    /// nothing; the next start runs it again.
    /// The pre-start's pid, if one ran and was killed.
    pub(super) fn call_off_pre_start(&mut self) -> Option<Pid> {
        self.pre_started = false;
        self.pre_start_again = false;
        self.spawning[Role::PreStart as usize] = false;
        self.cancel(Timer::PreStart);
        let (pid, end) = self.pre_start.as_mut()?;
        *end = PreStartEnd::CalledOff;
        let pid = *pid;
        self.signal(pid, libc::SIGKILL, Target::Group);
        Some(pid)
    }
}
