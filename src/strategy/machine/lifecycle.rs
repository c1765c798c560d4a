//! Starting, running, exiting and stopping the primary.

use std::time::{Duration, Instant};

use super::super::backoff::PLAIN;
use super::super::classify::Cause;
use super::super::restart::{ExitStatus, restarts};
use super::super::text::{describe_exit, fmt_duration};
use super::{Context, Exit, Fallback, Phase, Pid, Role, Service, Target, Then, Timer};

/// How often a stop whose group outlived its SIGKILL looks again.
pub(super) const REMNANT_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl Service {
    pub(super) fn go(&mut self, now: Instant, ctx: &mut Context) {
        if self.phase == Phase::Waiting {
            self.wants_start = false;
            self.held = None;
            self.spawn_primary(now, ctx);
        }
    }

    pub(super) fn hold(&mut self, why: String, blocked: bool) {
        if self.phase == Phase::Waiting {
            self.wants_start = false;
            self.held = Some((why, blocked));
        }
    }

    pub(super) fn spawn_primary(&mut self, now: Instant, ctx: &Context) {
        if ctx.shutting_down || self.spawning[Role::Primary as usize] {
            return;
        }
        self.cancel(Timer::Start);
        // Never beside a cleanup (one a stop killed may not be reaped
        // yet): the primary starts once it is over.
        if self.cleanup.is_some() {
            self.phase = Phase::Restarting { start_at: now };
            return;
        }
        // Nor beside a fallback that may hold its port: it goes first.
        if self.fallback_in_the_way(now) {
            return;
        }
        // The `pre_start` check, each time.
        if self.pre_start_first() {
            return;
        }
        self.spawning[Role::Primary as usize] = true;
        self.out.push(super::Action::Spawn(Role::Primary));
    }

    pub(super) fn spawned(&mut self, role: Role, pid: Pid, now: Instant) {
        if !std::mem::take(&mut self.spawning[role as usize]) {
            return;
        }
        match role {
            Role::Primary => self.primary_spawned(pid, now),
            Role::Fallback => {
                self.fallback = Fallback::Running {
                    pid,
                    since: now,
                    stopping: false,
                };
                self.record("fallback", format!("fallback started (pid {pid})"));
                if self.handover {
                    self.stop_fallback(now);
                }
            }
            Role::PreStart => self.pre_start_spawned(pid, now),
            Role::Cleanup => {
                self.cleanup = Some(pid);
                let limit = self.config.cleanup.unwrap_or_default();
                self.set_timer(Timer::Cleanup, now + limit);
                self.record("cleanup", format!("cleanup started (pid {pid})"));
            }
        }
    }

    fn primary_spawned(&mut self, pid: Pid, now: Instant) {
        self.generation += 1;
        self.pre_started = false;
        self.launching = self.config.forking;
        self.phase = Phase::Running { pid, since: now };
        self.held = None;
        self.probe_passed = false;
        let on_trial = matches!(
            self.fallback,
            Fallback::Running { .. } | Fallback::Respawn { .. }
        ) || !self.ladder.breaker.is_closed();
        if on_trial {
            self.set_timer(Timer::Settled, now + self.config.min_uptime);
        }
        self.record("started", format!("started (pid {pid})"));
        self.start_probes(now);
        self.watch_recovery(now);
    }

    pub(super) fn spawn_failed(
        &mut self,
        role: Role,
        errno: i32,
        message: String,
        now: Instant,
        ctx: &mut Context,
    ) {
        if !std::mem::take(&mut self.spawning[role as usize]) {
            return;
        }
        match role {
            Role::Primary => {
                self.phase = Phase::Stopped;
                let detail = Some(message);
                self.on_failure(Cause::Spawn(errno), detail, Duration::ZERO, &[], now, ctx);
            }
            Role::Fallback => {
                let until = now + Duration::from_secs(1);
                self.fallback = Fallback::Respawn { until };
                self.set_timer(Timer::Fallback, until);
                self.record(
                    "fallback",
                    format!("fallback could not start: {message}; trying again in 1s"),
                );
            }
            Role::PreStart => {
                let detail = Some(format!("pre-start: {message}"));
                self.pre_start_failed(Cause::Spawn(errno), detail, &[], now, ctx);
            }
            Role::Cleanup => {
                self.record("cleanup", format!("cleanup could not start: {message}"));
                self.start_after_cleanup(now, ctx);
            }
        }
    }

    pub(super) fn primary_exited(&mut self, pid: Pid, exit: Exit, now: Instant, ctx: &mut Context) {
        let status = exit.status.unwrap_or(ExitStatus::Code(0));
        match self.phase.clone() {
            Phase::Running { pid: p, since } if p == pid => {
                self.phase = Phase::Stopped;
                self.cancel(Timer::Settled);
                self.cancel(Timer::Recovered);
                self.stop_probes();
                let uptime = now.saturating_duration_since(since);
                self.last_exit = Some((status, now));
                if std::mem::take(&mut self.launching)
                    && status.success()
                    && self.pending_cause.is_none()
                {
                    self.adopting = true;
                    self.out.push(super::Action::Adopt);
                    return;
                }
                if let Some((cause, why)) = self.pending_cause.take() {
                    // A limit's figures follow its name: `memory limit
                    // exceeded: 540 MiB > 512 MiB (+30 MiB/min)`.
                    let detail = match cause {
                        Cause::Limit(_) => Some(why),
                        _ => Some(format!("({why})")),
                    };
                    self.on_failure(cause, detail, uptime, &exit.output, now, ctx);
                    return;
                }
                self.on_ended(status, uptime, &exit, now, ctx);
            }
            Phase::Stopping {
                pid: Some(p),
                pgid,
                since,
                then,
                killed,
            } if p == pid => {
                self.last_exit = Some((status, now));
                if exit.group_alive {
                    self.phase = Phase::Stopping {
                        pid: None,
                        pgid,
                        since,
                        then,
                        killed,
                    };
                    let what = describe_exit(status);
                    let msg = format!("main process {what}; waiting for the rest of group {pgid}");
                    self.record("stopping", msg);
                } else {
                    self.stopped(then, status, now, ctx);
                }
            }
            _ => {}
        }
    }

    /// The primary ended on its own after `uptime`.
    fn on_ended(
        &mut self,
        status: ExitStatus,
        uptime: Duration,
        exit: &Exit,
        now: Instant,
        ctx: &mut Context,
    ) {
        let hint = match exit.left_behind {
            0 => String::new(),
            n => format!(
                ", leaving {n} process(es) in its cgroup, stopped with it \
                 (a program that daemonizes? declare `type: forking`, with its `pid_file`)"
            ),
        };
        let what = format!(
            "{} after {}{hint}",
            describe_exit(status),
            fmt_duration(uptime)
        );
        let restart = restarts(self.config.restart, status) && !ctx.shutting_down;
        if status.success() {
            if !restart {
                return self.exited_for_good(&what, ctx);
            }
            let min = self.config.min_uptime;
            let delay = PLAIN.after_run(&mut self.ladder.young, uptime, min, 0.0, 0.5);
            if delay.is_zero() {
                self.record("exited", format!("{what}; restarting now"));
                self.spawn_primary(now, ctx);
            } else {
                self.phase = Phase::Backoff { until: now + delay };
                self.set_timer(Timer::Start, now + delay);
                let d = fmt_duration(delay);
                let msg = format!("{what}; restarting in {d} (ran less than min_uptime)");
                self.record("exited", msg);
            }
            return;
        }
        if !restart {
            // Not restarted, but a failed run: its last words are shown,
            // as a failure's are.
            let said = super::super::text::last_line(&exit.output);
            let what = match &said {
                Some(line) => format!("{what}; last output: {line}"),
                None => what,
            };
            self.exited_for_good(&what, ctx);
            if let Some(line) = said {
                self.summary = Some(format!("{}: not restarted — {line}", describe_exit(status)));
            }
            return;
        }
        let cause = match status {
            ExitStatus::Code(c) => Cause::Exit(c),
            ExitStatus::Signal(libc::SIGKILL) if exit.oom => Cause::OomKill,
            ExitStatus::Signal(s) => Cause::Signal(s),
        };
        let detail = Some(format!("after {}{hint}", fmt_duration(uptime)));
        self.on_failure(cause, detail, uptime, &exit.output, now, ctx);
    }

    /// A forking service's daemon takes its launcher's place.
    pub(super) fn adopted(&mut self, pid: Pid, now: Instant) {
        if !std::mem::take(&mut self.adopting) {
            return;
        }
        self.phase = Phase::Running { pid, since: now };
        self.record(
            "started",
            format!("daemon running (pid {pid}), in its launcher's place"),
        );
        self.start_probes(now);
        self.watch_recovery(now);
    }

    pub(super) fn adopt_failed(&mut self, why: String, now: Instant, ctx: &mut Context) {
        if std::mem::take(&mut self.adopting) {
            self.on_failure(Cause::NoDaemon, Some(why), Duration::ZERO, &[], now, ctx);
        }
    }

    /// The exit ends the service: its restart policy does not restart it.
    fn exited_for_good(&mut self, what: &str, ctx: &Context) {
        self.phase = Phase::Exited;
        let msg = match ctx.shutting_down {
            true => format!("{what}; not restarted (shutting down)"),
            false => format!(
                "{what}; not restarted (restart: {})",
                self.config.restart.as_str()
            ),
        };
        self.record("exited", msg);
    }

    /// Signal the primary to stop; `then` says what follows once it is down.
    pub(super) fn stop(&mut self, then: Then, now: Instant, ctx: &mut Context) {
        // A start waiting for the fallback to go is called off.
        self.handover = false;
        let pre_start = self.call_off_pre_start();
        self.stop_probes();
        self.pending_cause = None;
        self.pending_restart = None;
        for t in [
            Timer::Start,
            Timer::Settled,
            Timer::Recovered,
            Timer::Cleanup,
        ] {
            self.cancel(t);
        }
        // Off to the fallback anyway: the one running keeps serving.
        if then != Then::Quarantine {
            self.stop_fallback(now);
        }
        if let Some(pid) = self.cleanup {
            self.signal(pid, libc::SIGKILL, Target::Group);
        }
        match &mut self.phase {
            Phase::Running { pid, since } => {
                let (pid, since) = (*pid, *since);
                let (sig, timeout) = (self.config.stop_signal, self.config.stop_timeout);
                self.signal(pid, sig, Target::Group);
                self.signal(pid, libc::SIGCONT, Target::Group);
                self.phase = Phase::Stopping {
                    pid: Some(pid),
                    pgid: pid,
                    since,
                    then,
                    killed: false,
                };
                self.set_timer(Timer::Stop, now + timeout);
                let name = super::super::classify::signal_name(sig);
                let msg = format!(
                    "stopping: {name} to process group {pid}, SIGKILL in {}",
                    fmt_duration(timeout)
                );
                self.record("stopping", msg);
            }
            Phase::Stopping { then: t, .. } => *t = then,
            // Nothing runs; how it ended stays what its dependents see.
            Phase::Exited | Phase::Failed { .. } if then == Then::Stay => {}
            _ => {
                if then == Then::Stay && self.phase != Phase::Stopped {
                    let msg = match pre_start {
                        Some(pid) => format!("stopped: its pre_start (pid {pid}) was killed"),
                        None => "stopped: nothing of it was running".into(),
                    };
                    self.record("stopped", msg);
                }
                self.phase = Phase::Stopped;
                self.after_down(then, now, ctx);
            }
        }
    }

    fn after_down(&mut self, then: Then, now: Instant, ctx: &mut Context) {
        match then {
            _ if ctx.shutting_down => {}
            Then::Start => {
                self.phase = Phase::Waiting;
                self.wants_start = true;
            }
            Then::Quarantine => self.quarantine_now(now, ctx),
            Then::Stay => {}
        }
    }

    pub(super) fn group_gone(&mut self, now: Instant, ctx: &mut Context) {
        if let Phase::Stopping {
            pid: None, then, ..
        } = self.phase
        {
            let status = self.last_exit.map_or(ExitStatus::Code(0), |(s, _)| s);
            self.stopped(then, status, now, ctx);
        }
    }

    fn stopped(&mut self, then: Then, status: ExitStatus, now: Instant, ctx: &mut Context) {
        self.cancel(Timer::Stop);
        self.phase = Phase::Stopped;
        self.record("stopped", format!("stopped ({})", describe_exit(status)));
        self.after_down(then, now, ctx);
    }

    pub(super) fn stop_timeout(&mut self, now: Instant) {
        if let Phase::Stopping {
            pgid,
            ref mut killed,
            ..
        } = self.phase
        {
            // With the leader unreaped the group is certainly ours. Without
            // it, the group's surviving members keep its number from being
            // reused, so a group that is still non-empty is still ours.
            let first = !std::mem::replace(killed, true);
            self.signal(pgid, libc::SIGKILL, Target::GroupOnly);
            if first {
                let msg = format!("stop timeout: SIGKILL to process group {pgid}");
                self.record("stopping", msg);
            }
            // Down only once the group is gone (the leader's exit, or
            // `GroupGone` for the last of the rest): the next primary never
            // runs beside the last one's processes. Until then, look again.
            self.set_timer(Timer::Stop, now + REMNANT_CHECK);
        }
    }

    /// Backoff, retry delay, restart delay or cooldown is over.
    pub(super) fn start_timer(&mut self, now: Instant, ctx: &mut Context) {
        match self.phase {
            Phase::Backoff { .. } | Phase::Retrying { .. } => self.spawn_primary(now, ctx),
            Phase::Restarting { .. } if self.cleanup.is_none() => self.restart_when_allowed(ctx),
            Phase::Quarantined { .. } => {
                if self.ladder.breaker.poll(now) {
                    let msg = "half-open: trying the primary again".to_string();
                    self.record("trial", msg);
                }
                self.spawn_primary(now, ctx);
            }
            _ => {}
        }
    }

    pub(super) fn shutdown(&mut self, now: Instant, ctx: &mut Context) {
        match self.phase {
            Phase::Running { .. } | Phase::Stopping { .. } => self.stop(Then::Stay, now, ctx),
            Phase::Stopped | Phase::Exited | Phase::Failed { .. } => {
                self.call_off_pre_start();
                self.stop_fallback(now);
                if let Some(pid) = self.cleanup {
                    self.signal(pid, libc::SIGKILL, Target::Group);
                }
            }
            _ => {
                self.stop(Then::Stay, now, ctx);
                self.phase = Phase::Stopped;
            }
        }
        self.wants_start = false;
    }
}
