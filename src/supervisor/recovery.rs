//! Carrying out recovery decisions: the failure path from an exit to an
//! [`Action`], the cleanup command, the fallback process, the half-open
//! trial, `reset`, and `on_event` hooks.
//!
//! What to do is decided in [`crate::strategy`]; this module only does it,
//! and records what happened for status and events.

use std::time::{Duration, Instant, SystemTime};

use crate::config::{RestartPolicy, ServiceSpec};
use crate::control::protocol::EventRecord;
use crate::strategy::backoff::BackoffSpec;
use crate::strategy::classify::{self, Cause, Rule};
use crate::strategy::escalation::Escalation;
use crate::strategy::orchestrator::{self, Action, Ladder, RecoveryPolicy};
use crate::strategy::restart::{self, ExitStatus, RestartHistory};
use crate::strategy::risk::Level;
use crate::timefmt::{describe_exit, fmt_duration};

use super::{Aux, Daemon, Phase, Role, Timer, signal_group, spawn, wall};

/// How long the supervisor loop waits for the log thread's copy of recent
/// output when a rule needs it.
const TAIL_WAIT: Duration = Duration::from_millis(200);

pub(super) fn ladder(spec: &ServiceSpec) -> Ladder {
    Ladder::new(Escalation::new(
        spec.escalation.failures,
        spec.escalation.within,
    ))
}

pub(super) fn policy(spec: &ServiceSpec) -> RecoveryPolicy {
    let r = &spec.recovery;
    RecoveryPolicy {
        retry_attempts: r.retry.attempts,
        backoff: BackoffSpec {
            base: r.retry.backoff,
            max: r.retry.max_backoff,
            jitter: r.retry.jitter,
        },
        restart_attempts: r.restart.attempts,
        has_fallback: r.fallback.is_some(),
        retry_primary: r.retry_primary,
        min_uptime: spec.min_uptime,
        reset_after: r.reset_after,
    }
}

pub(super) fn rules(spec: &ServiceSpec) -> Vec<Rule> {
    spec.classify
        .iter()
        .map(|r| Rule {
            exit_codes: r.exit_codes.clone(),
            signals: r.signals.iter().map(|s| *s as i32).collect(),
            output_matches: r
                .output_matches
                .as_ref()
                .map(|re| regex::bytes::Regex::new(re).expect("validated")),
            severity: r.severity,
        })
        .collect()
}

/// `oom_kill` from our cgroup's memory.events (cgroup v2), when readable.
/// Services live in sentineld's cgroup, so a rise during a SIGKILL death
/// means the kernel's OOM killer chose one of them.
pub(super) fn read_oom_kills() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let events =
        std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.events", path.trim())).ok()?;
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

fn action_text(action: &Action, now: Instant) -> String {
    match *action {
        Action::Retry { delay, attempt, of } if delay.is_zero() => {
            format!("retry {attempt}/{of} now")
        }
        Action::Retry { delay, attempt, of } => {
            format!("retry {attempt}/{of} in {}", fmt_duration(delay))
        }
        Action::Restart { delay, attempt, of } if delay.is_zero() => {
            format!("restart {attempt}/{of}")
        }
        Action::Restart { delay, attempt, of } => {
            format!("restart {attempt}/{of} in {}", fmt_duration(delay))
        }
        Action::Fallback { retry_primary_at } => format!(
            "fallback (primary retried in {})",
            fmt_duration(retry_primary_at.saturating_duration_since(now))
        ),
        Action::Quarantine { until } => format!(
            "quarantined (primary retried in {})",
            fmt_duration(until.saturating_duration_since(now))
        ),
    }
}

impl Daemon {
    /// The primary ended on its own after `uptime`.
    pub(super) fn on_ended(
        &mut self,
        i: usize,
        status: ExitStatus,
        uptime: Duration,
        now: Instant,
    ) {
        let svc = &mut self.services[i];
        let what = format!("{} after {}", describe_exit(status), fmt_duration(uptime));
        if status.success() {
            match svc
                .history
                .on_exit(svc.spec.restart, svc.spec.min_uptime, status, uptime)
            {
                restart::Decision::Respawn { delay } if !self.shutting_down => {
                    if delay.is_zero() {
                        self.event(i, "exited", format!("{what}; restarting now"));
                        self.spawn_primary(i, now);
                    } else {
                        svc.phase = Phase::Backoff { until: now + delay };
                        self.set_timer(i, Timer::Primary, Some(now + delay));
                        self.event(
                            i,
                            "exited",
                            format!(
                                "{what}; restarting in {} (ran less than min_uptime)",
                                fmt_duration(delay)
                            ),
                        );
                    }
                }
                _ => self.exited_for_good(i, &what),
            }
            return;
        }
        if svc.spec.restart == RestartPolicy::Never || self.shutting_down {
            self.exited_for_good(i, &what);
            return;
        }
        let cause = match status {
            ExitStatus::Code(c) => Cause::Exit(c),
            ExitStatus::Signal(libc::SIGKILL) if self.oom_kill_happened() => Cause::OomKill,
            ExitStatus::Signal(s) => Cause::Signal(s),
        };
        self.on_failure(
            i,
            cause,
            Some(format!("after {}", fmt_duration(uptime))),
            uptime,
            now,
        );
    }

    /// The exit ends the service: its restart policy does not restart it.
    fn exited_for_good(&mut self, i: usize, what: &str) {
        self.services[i].phase = Phase::Exited;
        let policy = self.services[i].spec.restart.as_str();
        self.event(
            i,
            "exited",
            format!("{what}; not restarted (restart: {policy})"),
        );
    }

    fn oom_kill_happened(&mut self) -> bool {
        let now = read_oom_kills();
        let happened = matches!((self.oom_kills, now), (Some(a), Some(b)) if b > a);
        self.oom_kills = now;
        happened
    }

    /// Classify, decide, record, announce and act.
    pub(super) fn on_failure(
        &mut self,
        i: usize,
        cause: Cause,
        detail: Option<String>,
        uptime: Duration,
        now: Instant,
    ) {
        if self.services[i].spec.restart == RestartPolicy::Never || self.shutting_down {
            let reason = detail.unwrap_or_else(|| cause.describe());
            self.services[i].phase = Phase::Failed {
                reason: reason.clone(),
            };
            self.event(
                i,
                "failure",
                format!("{}: {reason}; not restarted", cause.describe()),
            );
            return;
        }
        let needs_output = self.services[i]
            .rules
            .iter()
            .any(|r| r.output_matches.is_some());
        let output = match (&self.logs, needs_output) {
            (Some(hub), true) => hub.tail(i, TAIL_WAIT),
            _ => Vec::new(),
        };
        let (classified, rule) = classify::classify(&cause, &self.services[i].rules, &output);
        let draws = [self.lottery.next_f64(), self.rng.next_f64()];
        let svc = &mut self.services[i];
        let decision =
            svc.ladder
                .on_failure(&svc.policy, cause.clone(), classified, uptime, now, draws);

        while self
            .recent_failures
            .front()
            .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(1))
        {
            self.recent_failures.pop_front();
        }
        let mut others: Vec<usize> = self
            .recent_failures
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| *s != i)
            .collect();
        others.sort_unstable();
        others.dedup();
        self.recent_failures.push_back((now, i));
        let stagger = match decision.action {
            Action::Retry { .. } | Action::Restart { .. } => {
                orchestrator::stagger(others.len(), self.rng.next_f64())
            }
            _ => None,
        };

        let svc = &mut self.services[i];
        svc.failures[decision.severity.index()] += 1;
        svc.actions[decision.action.index()] += 1;
        svc.episode.get_or_insert(now);
        svc.attempt_pending = matches!(
            decision.action,
            Action::Retry { .. } | Action::Restart { .. }
        );
        if svc.attempt_pending {
            svc.attempts += 1;
        }

        let mut msg = cause.describe();
        if let Some(d) = &detail {
            msg.push_str(&format!(" {d}"));
        }
        msg.push_str(&format!(": {classified}"));
        if let Some(r) = rule {
            msg.push_str(&format!(" (classify rule {})", r + 1));
        }
        if let Some(e) = &decision.escalation {
            msg.push_str(&format!(", {e}"));
        }
        for n in &decision.notes {
            msg.push_str(&format!(", {n}"));
        }
        msg.push_str(&format!(" → {}", action_text(&decision.action, now)));
        if let Some(s) = stagger {
            msg.push_str(&format!(
                "; correlated: {} other services failed within 1s, start staggered by {}",
                others.len(),
                fmt_duration(s)
            ));
        }
        msg.push_str(&format!(" (risk {:.2})", decision.risk));
        svc.summary = Some(format!(
            "{}: {} → {}",
            cause.describe(),
            decision.severity,
            action_text(&decision.action, now)
        ));
        svc.last_failure = Some((decision.clone(), SystemTime::now()));
        self.event_full(
            i,
            "failure",
            msg,
            Some(decision.severity.as_str().into()),
            Some(decision.action.name().into()),
        );
        if matches!(decision.action, Action::Restart { .. }) && self.tree_restart(i, now) {
            return;
        }
        self.execute(i, decision.action, stagger.unwrap_or_default(), now);
    }

    pub(super) fn execute(&mut self, i: usize, action: Action, extra: Duration, now: Instant) {
        match action {
            Action::Retry { delay, .. } => {
                let delay = delay + extra;
                if delay.is_zero() {
                    self.spawn_primary(i, now);
                } else {
                    self.services[i].phase = Phase::Retrying { until: now + delay };
                    self.set_timer(i, Timer::Primary, Some(now + delay));
                }
            }
            Action::Restart { delay, .. } => {
                let start_at = now + delay + extra;
                let cleanup = self.services[i].spec.recovery.restart.cleanup.clone();
                let mut cleanup_pid = None;
                if let Some(cmd) = cleanup {
                    let env = self.context_env(i, None);
                    let spec = spawn::SpawnSpec::for_command(
                        &cmd,
                        &self.services[i].spec,
                        &self.base_env,
                        &env,
                    );
                    match self.fork(i, Some(&spec), Role::Cleanup) {
                        Ok(child) => {
                            cleanup_pid = Some(child.pid);
                            let timeout = self.services[i].spec.recovery.restart.timeout;
                            self.set_timer(i, Timer::Cleanup, Some(now + timeout));
                            self.event(
                                i,
                                "cleanup",
                                format!("cleanup started (pid {})", child.pid),
                            );
                        }
                        Err(e) => self.event(i, "cleanup", format!("cleanup could not start: {e}")),
                    }
                }
                self.services[i].phase = Phase::Restarting {
                    cleanup: cleanup_pid,
                    start_at,
                };
                if cleanup_pid.is_none() {
                    if start_at <= now {
                        self.spawn_primary(i, now);
                    } else {
                        self.set_timer(i, Timer::Primary, Some(start_at));
                    }
                }
            }
            Action::Fallback { retry_primary_at } => {
                self.services[i].phase = Phase::Quarantined {
                    until: retry_primary_at,
                };
                self.set_timer(i, Timer::Primary, Some(retry_primary_at));
                if self.services[i].fallback.is_none() {
                    self.spawn_fallback(i, now);
                }
            }
            Action::Quarantine { until } => {
                self.services[i].phase = Phase::Quarantined { until };
                self.set_timer(i, Timer::Primary, Some(until));
            }
        }
    }

    /// `SENTINELD_*` for cleanup, fallback and hook commands: the last
    /// failure, and the event when there is one.
    fn context_env(&self, i: usize, event: Option<&EventRecord>) -> Vec<(String, String)> {
        let svc = &self.services[i];
        let mut env = Vec::new();
        if let Some((d, _)) = &svc.last_failure {
            let (code, sig) = match d.cause {
                Cause::Exit(c) => (c.to_string(), String::new()),
                Cause::Signal(s) => (String::new(), classify::signal_name(s)),
                _ => (String::new(), String::new()),
            };
            let attempt = match d.action {
                Action::Retry { attempt, .. } | Action::Restart { attempt, .. } => {
                    attempt.to_string()
                }
                _ => String::new(),
            };
            env.extend([
                (
                    "SENTINELD_SEVERITY".to_string(),
                    d.severity.as_str().to_string(),
                ),
                ("SENTINELD_CAUSE".to_string(), d.cause.describe()),
                ("SENTINELD_EXIT_CODE".to_string(), code),
                ("SENTINELD_SIGNAL".to_string(), sig),
                ("SENTINELD_ATTEMPT".to_string(), attempt),
                ("SENTINELD_ACTION".to_string(), d.action.name().to_string()),
                ("SENTINELD_RISK".to_string(), format!("{:.3}", d.risk)),
            ]);
        }
        if let Some(e) = event {
            env.push(("SENTINELD_EVENT".to_string(), e.kind.clone()));
            env.push(("SENTINELD_MESSAGE".to_string(), e.message.clone()));
        }
        env.push((
            "SENTINELD_STATE".to_string(),
            svc.state().as_str().to_string(),
        ));
        env
    }

    pub(super) fn spawn_fallback(&mut self, i: usize, now: Instant) {
        if self.shutting_down || self.services[i].fallback.is_some() {
            return;
        }
        let Some(fb) = self.services[i].spec.recovery.fallback.clone() else {
            return;
        };
        let env = self.context_env(i, None);
        let spec = spawn::SpawnSpec::for_command(
            &fb.command,
            &self.services[i].spec,
            &self.base_env,
            &env,
        );
        match self.fork(i, Some(&spec), Role::Fallback) {
            Ok(child) => {
                self.services[i].fallback = Some(Aux {
                    pid: child.pid,
                    since: now,
                    exec_status: child.exec_status,
                    stopping: false,
                });
                self.registry_dirty = true;
                self.event(
                    i,
                    "fallback",
                    format!("fallback started (pid {})", child.pid),
                );
            }
            Err(e) => {
                self.event(
                    i,
                    "fallback",
                    format!("fallback could not start: {e}; trying again in 1s"),
                );
                self.set_timer(i, Timer::Fallback, Some(now + Duration::from_secs(1)));
            }
        }
    }

    pub(super) fn stop_fallback(&mut self, i: usize, now: Instant) {
        self.set_timer(i, Timer::Fallback, None);
        let svc = &mut self.services[i];
        let Some(f) = svc.fallback.as_mut().filter(|f| !f.stopping) else {
            return;
        };
        f.stopping = true;
        let pid = f.pid;
        let sig = svc.spec.stop.signal;
        let timeout = svc.spec.stop.timeout;
        signal_group(pid, sig as libc::c_int);
        signal_group(pid, libc::SIGCONT);
        self.set_timer(i, Timer::FallbackStop, Some(now + timeout));
        self.event(
            i,
            "fallback",
            format!("stopping the fallback (pid {pid}): {}", sig.as_str()),
        );
    }

    pub(super) fn on_fallback_exit(
        &mut self,
        i: usize,
        pid: i32,
        status: ExitStatus,
        now: Instant,
    ) {
        let Some(aux) = self.services[i].fallback.take() else {
            return;
        };
        debug_assert_eq!(aux.pid, pid);
        self.registry_dirty = true;
        if aux.stopping {
            self.set_timer(i, Timer::FallbackStop, None);
            self.event(
                i,
                "fallback",
                format!("fallback stopped ({})", describe_exit(status)),
            );
            self.advance_shutdown(now);
            return;
        }
        let uptime = now.saturating_duration_since(aux.since);
        let why = match spawn::exec_error(&aux.exec_status) {
            Some(e) => format!("could not be exec'd: {e}"),
            None => format!("{} after {}", describe_exit(status), fmt_duration(uptime)),
        };
        let svc = &mut self.services[i];
        let still_wanted = matches!(svc.phase, Phase::Quarantined { .. } | Phase::Running { .. });
        if !still_wanted || self.shutting_down {
            self.event(i, "fallback", format!("fallback ended: {why}"));
            return;
        }
        let delay = match svc.fallback_history.on_exit(
            RestartPolicy::Always,
            svc.spec.min_uptime,
            status,
            uptime,
        ) {
            restart::Decision::Respawn { delay } => delay,
            restart::Decision::Done => Duration::from_secs(1),
        };
        self.event(
            i,
            "fallback",
            format!(
                "fallback ended: {why}; starting it again in {}",
                fmt_duration(delay)
            ),
        );
        if delay.is_zero() {
            self.spawn_fallback(i, now);
        } else {
            self.set_timer(i, Timer::Fallback, Some(now + delay));
        }
    }

    pub(super) fn on_cleanup_exit(&mut self, i: usize, pid: i32, status: ExitStatus, now: Instant) {
        self.set_timer(i, Timer::Cleanup, None);
        self.event(
            i,
            "cleanup",
            format!("cleanup finished ({})", describe_exit(status)),
        );
        if let Phase::Restarting {
            cleanup: Some(p),
            start_at,
        } = self.services[i].phase
            && p == pid
        {
            self.services[i].phase = Phase::Restarting {
                cleanup: None,
                start_at,
            };
            if start_at <= now {
                self.spawn_primary(i, now);
            } else {
                self.set_timer(i, Timer::Primary, Some(start_at));
            }
        }
        self.advance_shutdown(now);
    }

    /// The primary has run `min_uptime` since its start: a half-open trial
    /// passed, a retry or restart worked, the fallback can stop.
    pub(super) fn on_settled(&mut self, i: usize, now: Instant) {
        let Phase::Running { since, .. } = self.services[i].phase else {
            return;
        };
        let svc = &mut self.services[i];
        let mut parts = Vec::new();
        if !svc.ladder.breaker.is_closed() {
            svc.ladder.trial_passed();
            parts.push("half-open trial passed, breaker closed".to_string());
        }
        if svc.attempt_pending {
            svc.attempt_pending = false;
            svc.successes += 1;
        }
        if let Some(start) = svc.episode.take() {
            let took = since.max(start).saturating_duration_since(start) + svc.spec.min_uptime;
            svc.recovered += 1;
            svc.recovery_time += took;
            parts.push(format!(
                "healthy again {} after the first failure",
                fmt_duration(took)
            ));
        }
        if !parts.is_empty() {
            svc.summary = None;
            self.event(i, "recovered", parts.join("; "));
        }
        if self.services[i].fallback.is_some() {
            self.stop_fallback(i, now);
        }
    }

    /// `sentineld reset NAME`.
    pub(super) fn reset(&mut self, i: usize, now: Instant) -> String {
        let svc = &mut self.services[i];
        svc.ladder.reset();
        svc.history = RestartHistory::default();
        svc.level = Level::Healthy;
        svc.episode = None;
        svc.attempt_pending = false;
        svc.summary = None;
        let name = svc.spec.name.clone();
        let waiting = matches!(
            svc.phase,
            Phase::Quarantined { .. }
                | Phase::Retrying { .. }
                | Phase::Restarting { cleanup: None, .. }
                | Phase::Backoff { .. }
                | Phase::Failed { .. }
        );
        self.event(
            i,
            "reset",
            "reset by request: breaker closed, failure history cleared".into(),
        );
        if waiting {
            self.spawn_primary(i, now);
            if let Phase::Running { pid, .. } = self.services[i].phase {
                let min_uptime = self.services[i].spec.min_uptime;
                self.set_timer(i, Timer::Settled, Some(now + min_uptime));
                return format!("{name} reset: breaker closed, primary started (pid {pid})");
            }
            return format!(
                "{name} reset, but the primary did not start: {}",
                self.services[i].state().as_str()
            );
        }
        format!("{name} reset: breaker closed, failure history cleared")
    }

    /// Run the service's `on_event` command for `record`, unless one is
    /// still running (hooks never pile up).
    pub(super) fn run_hook(&mut self, i: usize, record: &EventRecord) {
        if self.shutting_down || self.services[i].hook_running {
            return;
        }
        let Some(cmd) = self.services[i].spec.on_event.clone() else {
            return;
        };
        let env = self.context_env(i, Some(record));
        let spec =
            spawn::SpawnSpec::for_command(&cmd, &self.services[i].spec, &self.base_env, &env);
        match self.fork(i, Some(&spec), Role::Hook) {
            Ok(_) => self.services[i].hook_running = true,
            Err(e) => tracing::warn!(
                "{}: on_event hook could not start: {e}",
                self.services[i].spec.name
            ),
        }
    }

    /// The next planned step, for status.
    pub(super) fn next_step(&self, i: usize, now: Instant) -> Option<(String, String)> {
        let svc = &self.services[i];
        let (what, at) = match svc.phase {
            Phase::Backoff { until } => ("start", until),
            Phase::Retrying { until } => ("retry", until),
            Phase::Restarting {
                cleanup: Some(_), ..
            } => ("cleanup timeout", svc.timers[Timer::Cleanup as usize]?),
            Phase::Restarting { start_at, .. } => ("start", start_at),
            Phase::Quarantined { until } => ("half-open trial", until),
            _ => return None,
        };
        Some((what.to_string(), wall(at, now)))
    }
}
