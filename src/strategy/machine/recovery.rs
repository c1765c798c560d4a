//! The failure path: classify, decide on the ladder, and carry the remedy
//! through the machine — retry, restart with its cleanup command, fallback
//! or quarantine — and the accounting of what worked.

use std::time::{Duration, Instant};

use super::super::backoff::PLAIN;
use super::super::classify::{self, Cause};
use super::super::correlation::stagger;
use super::super::orchestrator::{Action as Remedy, Decision, Verdict};
use super::super::policy::RestartPolicy;
use super::super::restart::ExitStatus;
use super::super::text::{describe_exit, fmt_duration, one_line};
use super::lifecycle::REMNANT_CHECK;
use super::{Action, Context, Fallback, Phase, Pid, Role, Service, Target, Then, Timer};

fn remedy_text(remedy: &Remedy, now: Instant) -> String {
    let after = |at: Instant| fmt_duration(at.saturating_duration_since(now));
    match *remedy {
        Remedy::Retry { delay, of: 0, .. } if delay.is_zero() => "retry now".to_string(),
        Remedy::Retry { delay, of: 0, .. } => format!("retry in {}", fmt_duration(delay)),
        Remedy::Retry { delay, attempt, of } if delay.is_zero() => {
            format!("retry {attempt}/{of} now")
        }
        Remedy::Retry { delay, attempt, of } => {
            format!("retry {attempt}/{of} in {}", fmt_duration(delay))
        }
        Remedy::Restart { delay, attempt, of } if delay.is_zero() => {
            format!("restart {attempt}/{of}")
        }
        Remedy::Restart { delay, attempt, of } => {
            format!("restart {attempt}/{of} in {}", fmt_duration(delay))
        }
        Remedy::Fallback { retry_primary_at } => {
            format!("fallback (primary retried in {})", after(retry_primary_at))
        }
        Remedy::Quarantine { until } => {
            format!("quarantined (primary retried in {})", after(until))
        }
    }
}

/// The cause with its detail: a spawn failure's detail names the step,
/// the program and the error, so the errno is not said twice.
fn cause_text(cause: &Cause, detail: Option<&str>) -> String {
    match (cause, detail) {
        (Cause::Spawn(_), Some(detail)) => format!("spawn failed: {detail}"),
        (Cause::Limit(_), Some(detail)) => format!("{}: {detail}", cause.describe()),
        (_, Some(detail)) => format!("{} {detail}", cause.describe()),
        (_, None) => cause.describe(),
    }
}

/// The failure event's text: cause, classification, escalation, notes,
/// the remedy, correlation and risk.
fn failure_text(
    d: &Decision,
    detail: Option<&str>,
    rule: Option<usize>,
    correlated: Option<(usize, Duration)>,
    now: Instant,
) -> String {
    let mut msg = cause_text(&d.cause, detail);
    msg.push_str(&format!(": {}", d.classified));
    if let Some(r) = rule {
        msg.push_str(&format!(" (classify rule {})", r + 1));
    }
    if let Some(e) = &d.escalation {
        msg.push_str(&format!(", {e}"));
    }
    for n in &d.notes {
        msg.push_str(&format!(", {n}"));
    }
    msg.push_str(&format!(" → {}", remedy_text(&d.action, now)));
    if let Some((others, by)) = correlated {
        msg.push_str(&format!(
            "; correlated: {others} other services failed within 1s, start staggered by {}",
            fmt_duration(by)
        ));
    }
    msg.push_str(&format!(" (risk {:.2})", d.risk));
    msg
}

/// How often a trial that has run `min_uptime` looks again for a probe's
/// pass.
const TRIAL_RECHECK: Duration = Duration::from_millis(250);

impl Service {
    /// Classify, decide, record and act.
    pub(super) fn on_failure(
        &mut self,
        cause: Cause,
        detail: Option<String>,
        uptime: Duration,
        output: &[u8],
        now: Instant,
        ctx: &mut Context,
    ) {
        if self.config.restart == RestartPolicy::Never || ctx.shutting_down {
            let msg = format!("{}; not restarted", cause_text(&cause, detail.as_deref()));
            let reason = one_line(&detail.unwrap_or_else(|| cause.describe()));
            self.phase = Phase::Failed { reason };
            self.record("failure", msg);
            return;
        }
        let (classified, rule) = classify::classify(&cause, &self.config.rules, output);
        let verdict = Verdict {
            severity: classified,
            waits_on: classify::waits_on(&cause, rule, output),
        };
        let draws = [ctx.lottery.next_f64(), ctx.jitter.next_f64()];
        let policy = &self.config.recovery;
        let d = self
            .ladder
            .on_failure(policy, cause.clone(), verdict, uptime, now, draws);
        let others = ctx.correlation.on_failure(now, self.index);
        let staggered = match d.action {
            Remedy::Retry { .. } | Remedy::Restart { .. } => {
                stagger(others, ctx.jitter.next_f64()).map(|by| (others, by))
            }
            _ => None,
        };
        let s = &mut self.stats;
        s.failures[d.severity.index()] += 1;
        s.actions[d.action.index()] += 1;
        s.remedies[d.severity.index()][d.action.index()] += 1;
        s.episode.get_or_insert(now);
        s.attempt_pending = matches!(d.action, Remedy::Retry { .. } | Remedy::Restart { .. });
        s.attempts += u64::from(s.attempt_pending);
        let mut msg = failure_text(&d, detail.as_deref(), rule, staggered, now);
        let last = super::super::text::last_line(output);
        if let Some(line) = &last {
            msg.push_str(&format!("; last output: {line}"));
        }
        let remedy = remedy_text(&d.action, now);
        let said = last.map(|l| format!(" — {l}")).unwrap_or_default();
        let what = match cause {
            Cause::Spawn(_) => cause_text(&cause, detail.as_deref()),
            _ => cause.describe(),
        };
        self.summary = Some(format!("{what}: {} → {remedy}{said}", d.severity));
        let (severity, action) = (d.severity, d.action);
        self.last_failure = Some((d, now));
        self.record_full("failure", msg, Some(severity), Some(action.name()));
        let extra = staggered.map_or(Duration::ZERO, |(_, by)| by);
        if matches!(action, Remedy::Restart { .. }) {
            self.phase = Phase::Stopped;
            self.pending_restart = Some((action, extra));
            self.out.push(Action::AskTree);
            return;
        }
        self.execute(action, extra, now, ctx);
    }

    /// The tree accounted the restart: carry it out.
    pub(super) fn proceed(&mut self, now: Instant, ctx: &mut Context) {
        if let Some((remedy, extra)) = self.pending_restart.take() {
            self.execute(remedy, extra, now, ctx);
        }
    }

    fn execute(&mut self, remedy: Remedy, extra: Duration, now: Instant, ctx: &mut Context) {
        match remedy {
            Remedy::Retry { delay, .. } if (delay + extra).is_zero() => {
                self.spawn_primary(now, ctx);
            }
            Remedy::Retry { delay, .. } => {
                let until = now + delay + extra;
                self.phase = Phase::Retrying { until };
                self.set_timer(Timer::Start, until);
            }
            Remedy::Restart { delay, .. } => {
                self.phase = Phase::Restarting {
                    start_at: now + delay + extra,
                };
                if self.config.cleanup.is_some() && !ctx.shutting_down {
                    self.spawning[Role::Cleanup as usize] = true;
                    self.out.push(Action::Spawn(Role::Cleanup));
                } else {
                    self.start_after_cleanup(now, ctx);
                }
            }
            Remedy::Fallback { retry_primary_at } => {
                self.phase = Phase::Quarantined {
                    until: retry_primary_at,
                };
                self.set_timer(Timer::Start, retry_primary_at);
                if self.fallback == Fallback::Off {
                    self.spawn_fallback(ctx);
                }
            }
            Remedy::Quarantine { until } => {
                self.phase = Phase::Quarantined { until };
                self.set_timer(Timer::Start, until);
            }
        }
    }

    /// A restart starts the primary as a start does: once the tree allows
    /// (siblings of a group restart come back in order, each after what it
    /// depends on).
    pub(super) fn restart_when_allowed(&mut self, ctx: &Context) {
        if !ctx.shutting_down {
            self.phase = Phase::Waiting;
            self.wants_start = true;
        }
    }

    /// The restart's cleanup is over (or there is none): start at `start_at`.
    pub(super) fn start_after_cleanup(&mut self, now: Instant, ctx: &mut Context) {
        if let Phase::Restarting { start_at } = self.phase {
            if start_at <= now {
                self.restart_when_allowed(ctx);
            } else {
                self.set_timer(Timer::Start, start_at);
            }
        }
    }

    pub(super) fn cleanup_exited(
        &mut self,
        pid: Pid,
        status: ExitStatus,
        now: Instant,
        ctx: &mut Context,
    ) {
        if self.cleanup != Some(pid) {
            return;
        }
        self.cleanup = None;
        self.cancel(Timer::Cleanup);
        let msg = format!("cleanup finished ({})", describe_exit(status));
        self.record("cleanup", msg);
        self.start_after_cleanup(now, ctx);
    }

    pub(super) fn cleanup_timeout(&mut self) {
        if let Some(pid) = self.cleanup {
            self.signal(pid, libc::SIGKILL, Target::Group);
            let msg = format!("cleanup timed out: SIGKILL to process group {pid}");
            self.record("cleanup", msg);
        }
    }

    /// Put a down service on its fallback, or quarantine it.
    pub(super) fn quarantine_now(&mut self, now: Instant, ctx: &mut Context) {
        let retry = self.config.recovery.retry_primary;
        let until = self.ladder.breaker.trip(now, retry, retry);
        let remedy = if self.config.recovery.has_fallback {
            Remedy::Fallback {
                retry_primary_at: until,
            }
        } else {
            Remedy::Quarantine { until }
        };
        self.execute(remedy, Duration::ZERO, now, ctx);
    }

    /// The root gave up: off to the fallback or quarantine, unless the
    /// service is there already (tripping the breaker again would only
    /// double its cooldown) or at rest — stopped by request or ended for
    /// good: nothing would start it again, and a quarantine would, at its
    /// half-open trial.
    pub(super) fn root_gave_up(&mut self, now: Instant, ctx: &mut Context) {
        let restart_pending = self.pending_restart.take().is_some();
        let settled = match self.phase {
            Phase::Quarantined { .. } | Phase::Exited | Phase::Failed { .. } => true,
            Phase::Stopping { then, .. } => then == Then::Stay,
            Phase::Stopped => !restart_pending,
            _ => false,
        };
        // A service that is never restarted is stopped with the rest, and
        // stays stopped: no fallback, no half-open trial brings it back.
        let then = match self.config.restart {
            RestartPolicy::Never => Then::Stay,
            _ => Then::Quarantine,
        };
        if !settled && !ctx.shutting_down {
            self.stop(then, now, ctx);
        }
    }

    pub(super) fn sibling_restart(&mut self, message: String, now: Instant, ctx: &mut Context) {
        if matches!(self.phase, Phase::Running { .. }) {
            self.record("tree", message);
            self.stop(Then::Start, now, ctx);
        }
    }

    pub(super) fn spawn_fallback(&mut self, ctx: &Context) {
        let idle = matches!(self.fallback, Fallback::Off | Fallback::Respawn { .. });
        let asked = self.spawning[Role::Fallback as usize];
        if ctx.shutting_down || !idle || asked || !self.config.recovery.has_fallback {
            return;
        }
        self.cancel(Timer::Fallback);
        self.spawning[Role::Fallback as usize] = true;
        self.out.push(Action::Spawn(Role::Fallback));
    }

    /// Before the primary starts — a half-open trial, a start, restart or
    /// reset by hand: unless `overlap` is set, a fallback that runs is
    /// stopped first (it may hold what the primary needs, its port) and
    /// the primary starts once it is gone ([`Self::handed_over`]); a failed
    /// trial brings it back at once. True: the start waits.
    pub(super) fn fallback_in_the_way(&mut self, now: Instant) -> bool {
        if self.config.overlap {
            return false;
        }
        let runs = matches!(
            self.fallback,
            Fallback::Running { .. } | Fallback::Remnants { .. }
        ) || self.spawning[Role::Fallback as usize];
        if !runs {
            // A respawn that is only due: it is not wanted now.
            self.stop_fallback(now);
            return false;
        }
        if !std::mem::replace(&mut self.handover, true) {
            let msg = "stopping the fallback first: the primary starts once it is gone";
            self.record("trial", msg.to_string());
        }
        self.stop_fallback(now);
        true
    }

    /// The fallback is gone: a start that waited for it goes ahead. True:
    /// one did wait.
    fn handed_over(&mut self, now: Instant, ctx: &Context) -> bool {
        if !std::mem::take(&mut self.handover) {
            return false;
        }
        self.spawn_primary(now, ctx);
        true
    }

    pub(super) fn stop_fallback(&mut self, now: Instant) {
        self.cancel(Timer::Fallback);
        match self.fallback {
            Fallback::Respawn { .. } => self.fallback = Fallback::Off,
            Fallback::Running {
                pid,
                since,
                stopping: false,
            } => {
                self.fallback = Fallback::Running {
                    pid,
                    since,
                    stopping: true,
                };
                let (sig, timeout) = (self.config.stop_signal, self.config.stop_timeout);
                self.signal(pid, sig, Target::Group);
                self.signal(pid, libc::SIGCONT, Target::Group);
                self.set_timer(Timer::FallbackStop, now + timeout);
                let name = super::super::classify::signal_name(sig);
                let msg = format!("stopping the fallback (pid {pid}): {name}");
                self.record("fallback", msg);
            }
            _ => {}
        }
    }

    /// The fallback's leader was reaped: `how` is its status and whether
    /// other members of its group live on.
    pub(super) fn fallback_exited(
        &mut self,
        pid: Pid,
        how: (ExitStatus, bool),
        now: Instant,
        ctx: &mut Context,
    ) {
        let (status, group_alive) = how;
        let Fallback::Running {
            pid: p,
            since,
            stopping,
        } = self.fallback
        else {
            return;
        };
        if p != pid {
            return;
        }
        self.fallback = Fallback::Off;
        if stopping {
            let what = describe_exit(status);
            if group_alive {
                // The rest of its group has until the stop timeout.
                self.fallback = Fallback::Remnants { pgid: pid };
                let msg = format!("fallback {what}; waiting for the rest of group {pid}");
                return self.record("fallback", msg);
            }
            self.cancel(Timer::FallbackStop);
            self.record("fallback", format!("fallback stopped ({what})"));
            // Wanted again meanwhile (a failed trial): now it can start.
            if !self.handed_over(now, ctx) && matches!(self.phase, Phase::Quarantined { .. }) {
                self.spawn_fallback(ctx);
            }
            return;
        }
        let uptime = now.saturating_duration_since(since);
        let why = format!("{} after {}", describe_exit(status), fmt_duration(uptime));
        if self.handover {
            self.record("fallback", format!("fallback ended: {why}"));
            self.handed_over(now, ctx);
            return;
        }
        self.fallback_ended(why, uptime, now, ctx);
    }

    /// The fallback ended on its own: start it again while it is wanted.
    fn fallback_ended(&mut self, why: String, uptime: Duration, now: Instant, ctx: &mut Context) {
        let wanted = matches!(
            self.phase,
            Phase::Quarantined { .. } | Phase::Running { .. }
        );
        if !wanted || ctx.shutting_down {
            return self.record("fallback", format!("fallback ended: {why}"));
        }
        let min = self.config.min_uptime;
        let delay = PLAIN.after_run(&mut self.fallback_young, uptime, min, 0.0, 0.5);
        let msg = format!(
            "fallback ended: {why}; starting it again in {}",
            fmt_duration(delay)
        );
        self.record("fallback", msg);
        if delay.is_zero() {
            self.spawn_fallback(ctx);
        } else {
            self.fallback = Fallback::Respawn { until: now + delay };
            self.set_timer(Timer::Fallback, now + delay);
        }
    }

    pub(super) fn fallback_group_gone(&mut self, now: Instant, ctx: &Context) {
        if let Fallback::Remnants { pgid } = self.fallback {
            self.fallback = Fallback::Off;
            self.cancel(Timer::FallbackStop);
            self.record("fallback", format!("fallback stopped (group {pgid} gone)"));
            if self.handed_over(now, ctx) {
                return;
            }
            // Wanted again meanwhile (the primary failed while the old
            // one's members were going): now it can start.
            if matches!(self.phase, Phase::Quarantined { .. }) {
                self.spawn_fallback(ctx);
            }
        }
    }

    pub(super) fn fallback_stop_timeout(&mut self, now: Instant) {
        match self.fallback {
            Fallback::Running { pid, .. } => {
                self.signal(pid, libc::SIGKILL, Target::Group);
                let msg = format!("fallback stop timeout: SIGKILL to process group {pid}");
                self.record("stopping", msg);
            }
            Fallback::Remnants { pgid } => {
                // Its live members keep the group's number from reuse.
                self.signal(pgid, libc::SIGKILL, Target::GroupOnly);
                let msg = format!("fallback stop timeout: SIGKILL to process group {pgid}");
                self.record("stopping", msg);
                // Gone only when the group is empty; look again until then.
                self.set_timer(Timer::FallbackStop, now + REMNANT_CHECK);
            }
            _ => {}
        }
    }

    /// The primary has run `min_uptime`: a half-open trial passed; the
    /// fallback can stop.
    pub(super) fn settled(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Running { .. }) {
            return;
        }
        // A probed primary passes its trial only once a probe has passed
        // too: alive for min_uptime is not enough for one that hangs.
        let probed = self.probes[..2].iter().flatten().next().is_some();
        if !self.ladder.breaker.is_closed()
            && probed
            && !self.probe_passed
            && self.ready != Some(true)
        {
            self.set_timer(Timer::Settled, now + TRIAL_RECHECK);
            return;
        }
        if !self.ladder.breaker.is_closed() {
            self.ladder.trial_passed();
            let msg = "half-open trial passed, breaker closed".to_string();
            self.record("trial", msg);
        }
        self.stop_fallback(now);
    }

    /// Arm the recovery timer: after a failure, a run counts as a recovery
    /// once it has been up — and, with a readiness check, ready — for
    /// `reset_after`.
    pub(super) fn watch_recovery(&mut self, now: Instant) {
        let up = matches!(self.phase, Phase::Running { .. });
        if self.stats.episode.is_some() && up && self.ready != Some(false) {
            self.set_timer(Timer::Recovered, now + self.config.recovery.reset_after);
        }
    }

    /// Up (and ready) for `reset_after` since the failure: the recovery
    /// worked. MTTR counts from the first failure to the start of this run.
    pub(super) fn recovered(&mut self, _now: Instant) {
        let Phase::Running { since, .. } = self.phase else {
            return;
        };
        self.ladder.settled();
        let s = &mut self.stats;
        if std::mem::take(&mut s.attempt_pending) {
            s.successes += 1;
        }
        let Some(first) = s.episode.take() else {
            return;
        };
        let took = since.max(first).saturating_duration_since(first);
        s.recovered += 1;
        s.recovery_time += took;
        s.last_recovery = Some(took);
        self.summary = None;
        let up = fmt_duration(self.config.recovery.reset_after);
        let msg = format!(
            "healthy again: up {up} in the run that started {} after the first failure",
            fmt_duration(took)
        );
        self.record("recovered", msg);
    }
}
