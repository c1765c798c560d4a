//! `status`: a read-only projection of the core's state and the runtime's
//! records into the protocol's reports.

use std::borrow::Cow;
use std::time::Instant;

use super::daemon::Daemon;
use super::probes::ProbeRt;
use crate::control::protocol::{
    ActionCounts, AvailabilityInfo, BriefLine, BriefRow, DependInfo, ExitInfo, FailureInfo,
    GroupInfo, Health, HealthReport, LogConditionInfo, ProbeReport, ProbeReports, RecoveryStats,
    Response, ServiceStatus, SeverityCounts, State, StatusReport, SystemInfo, VERSION,
};
use crate::strategy::breaker::Breaker;
use crate::strategy::classify::signal_name;
use crate::strategy::machine::{Phase, ProbeTrack, Service};
use crate::strategy::restart::ExitStatus;
use crate::strategy::risk::{Level, next_level};
use crate::strategy::tree::{Child, satisfies};
use crate::timefmt::format_time;

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn report(rt: &Option<ProbeRt>, track: &Option<ProbeTrack>) -> Option<ProbeReport> {
    let (p, t) = (rt.as_ref()?, track.as_ref()?);
    let kind = match p.check {
        crate::config::Check::Exec(_) => "exec",
        crate::config::Check::Http(_) => "http",
        crate::config::Check::Tcp(_) => "tcp",
        crate::config::Check::Notify => "notify",
    };
    let last = p.last.as_ref();
    Some(ProbeReport {
        kind: kind.into(),
        passing: t.tracker.passing,
        consecutive_failures: t.tracker.failures,
        last_ok: last.map(|l| l.ok),
        last_at: last.map(|l| format_time(l.at)),
        last_latency_ms: last.map(|l| ms(l.latency)),
        last_output: last.map(|l| crate::strategy::text::one_line(&l.output)),
        latency_ewma_ms: t.latency.mean.get().map(|m| (m * 1e6).round() / 1e3),
    })
}

pub(super) fn health(level: Level) -> Health {
    match level {
        Level::Healthy => Health::Healthy,
        Level::Degraded => Health::Degraded,
        Level::Critical => Health::Critical,
        Level::Quarantined => Health::Quarantined,
    }
}

fn state(svc: &Service, blocked: bool) -> State {
    match svc.state_name() {
        _ if blocked => State::Blocked,
        "starting" => State::Starting,
        "running" => State::Running,
        "backoff" => State::Backoff,
        "retrying" => State::Retrying,
        "restarting" => State::Restarting,
        "fallback" => State::Fallback,
        "quarantined" => State::Quarantined,
        "stopping" => State::Stopping,
        "stopped" => State::Stopped,
        "exited" => State::Exited,
        _ => State::Failed,
    }
}

/// The health level now: the last one, moved by risk and conditions now.
pub(super) fn level(svc: &Service, now: Instant) -> (f64, Level) {
    let risk = svc.ladder.risk.value(now);
    (risk, next_level(svc.level, risk, svc.conditions()))
}

impl Daemon {
    /// The services a request names: one, or all when none is named.
    pub(super) fn picked(&self, name: Option<&str>) -> Result<Vec<usize>, Box<Response>> {
        match name {
            // A removed service still stopping is shown until it is down.
            None => Ok((0..self.rt.len())
                .filter(|&i| !self.system.is_gone(i))
                .collect()),
            Some(n) => match self.retiring_named(n) {
                Some(i) => Ok(vec![i]),
                None => self.named(n).map(|i| vec![i]),
            },
        }
    }

    pub(super) fn status(&self, name: Option<&str>, now: Instant) -> Response {
        let pick = match self.picked(name) {
            Ok(pick) => pick,
            Err(e) => return *e,
        };
        let services = pick.iter().map(|&i| self.service_status(i, now)).collect();
        let events = match name {
            None => Vec::new(),
            Some(n) => {
                let mine: Vec<_> = self.journal.of(Some(n)).collect();
                mine[mine.len().saturating_sub(20)..]
                    .iter()
                    .map(|e| (*e).clone())
                    .collect()
            }
        };
        Response::Status(StatusReport {
            version: VERSION,
            pid: std::process::id(),
            services,
            events,
            groups: self.groups(now),
            system: self.system_info(now),
        })
    }

    fn groups(&self, now: Instant) -> Vec<GroupInfo> {
        let names: Vec<&str> = self.system.tree.groups(now).map(|g| g.name).collect();
        self.system
            .tree
            .groups(now)
            .map(|g| GroupInfo {
                name: g.name.into(),
                parent: g.parent.map(Into::into),
                strategy: g.strategy.as_str().into(),
                intensity: g.intensity,
                period_s: g.period.as_secs_f64(),
                restarts_in_period: g.restarts_in_period,
                children: g
                    .children
                    .iter()
                    .map(|c| match c {
                        Child::Service(i) => self.rt[*i].spec.name.clone(),
                        Child::Group(k) => names[*k].to_string(),
                    })
                    .collect(),
            })
            .collect()
    }

    /// `health`: the system's health and the services not ready.
    pub(super) fn health(&self, now: Instant) -> HealthReport {
        let services = self.system.services.iter().zip(&self.rt);
        let not_ready = services
            .filter(|(s, _)| s.ready == Some(false))
            .map(|(_, rt)| rt.spec.name.clone())
            .collect();
        HealthReport {
            system: self.system_info(now),
            not_ready,
        }
    }

    fn system_info(&self, now: Instant) -> SystemInfo {
        let critical = (self.system.services.iter())
            .filter(|s| !self.system.is_retired(s.index))
            .any(|s| level(s, now).1 >= Level::Critical);
        let health = match (&self.system.critical, critical) {
            (Some(_), _) => "critical",
            (None, true) => "degraded",
            (None, false) => "healthy",
        };
        SystemInfo {
            health: health.into(),
            reason: self.system.critical.clone(),
            reload_error: self.reloads.error.clone(),
            webhooks: self.webhooks.reports(|i| &self.rt[i].spec.name),
        }
    }

    /// What a not-yet-started service waits for, and whether it is blocked.
    fn waiting(&self, i: usize) -> Option<(bool, String)> {
        if self.system.services[i].phase != Phase::Waiting {
            return None;
        }
        let w = self.system.waiting_for(i)?;
        let on = &self.rt[w.on].spec.name;
        Some((w.blocked.is_some(), w.describe(on)))
    }

    /// The service's group; none for the root.
    fn group_name(&self, i: usize) -> Option<String> {
        match self.system.tree.group_of(i) {
            0 => None,
            g => Some(self.system.tree.group_name(g).to_string()),
        }
    }

    /// Pid and start of the primary, while it runs or stops.
    fn running(&self, i: usize) -> (Option<i32>, Option<Instant>) {
        match self.system.services[i].phase {
            Phase::Running { pid, since } => (Some(pid), Some(since)),
            Phase::Stopping { pid, since, .. } => (pid, Some(since)),
            _ => (None, None),
        }
    }

    /// Just the table's columns: none of the probe, recovery or tree
    /// details are computed (the same words as [`Self::service_status`]
    /// and `table::last` give).
    /// Every service's row as the reply line, written straight from the
    /// daemon's own names and words: `status` of 10,000 services copies no
    /// string per row.
    pub(super) fn brief_line(&self, pick: &[usize], now: Instant) -> Vec<u8> {
        let line = BriefLine {
            kind: "brief".into(),
            version: VERSION,
            services: pick.iter().map(|&i| self.brief_row(i, now)).collect(),
            reload_error: self.reloads.error.as_ref().map(|e| {
                let first = e.message.lines().next().unwrap_or_default();
                format!("{}: {first}", e.at).into()
            }),
        };
        let mut out = Vec::with_capacity(160 * self.rt.len() + 64);
        serde_json::to_writer(&mut out, &line).expect("rows serialize");
        out.push(b'\n');
        out
    }

    fn brief_row(&self, i: usize, now: Instant) -> BriefRow<'_> {
        let waiting = self.waiting(i);
        let svc = &self.system.services[i];
        let (risk, level) = level(svc, now);
        // The table's PID and UPTIME: the fallback's while it stands in.
        let (pid, since) = match (self.running(i), svc.fallback) {
            ((None, _), crate::strategy::machine::Fallback::Running { pid, since, .. }) => {
                (Some(pid), Some(since))
            }
            (running, _) => running,
        };
        let blocked = waiting.as_ref().is_some_and(|(b, _)| *b);
        let last: Cow<'_, str> = match (&svc.phase, waiting) {
            (Phase::Failed { reason }, _) => reason.as_str().into(),
            (_, Some((_, why))) => why.into(),
            _ => match (&svc.summary, svc.last_exit) {
                (Some(summary), _) => summary.as_str().into(),
                (None, Some((status, at))) => {
                    let at = format_time(self.wall(at));
                    let short = at.get(11..19).unwrap_or(&at).to_string();
                    match status {
                        ExitStatus::Code(c) => format!("exit {c} at {short}").into(),
                        ExitStatus::Signal(sig) => {
                            format!("{} at {short}", signal_name(sig)).into()
                        }
                    }
                }
                (None, None) => "-".into(),
            },
        };
        BriefRow {
            name: self.rt[i].spec.name.as_str().into(),
            group: self.group_name(i).map(Cow::Owned),
            state: state(svc, blocked),
            health: health(level),
            pid,
            uptime_s: since.map(|s| round3(now.saturating_duration_since(s).as_secs_f64())),
            restarts: svc.generation.saturating_sub(1),
            risk: round3(risk),
            last,
            cpu_percent: svc.resources.last.and_then(|u| u.cpu_percent).map(round1),
            rss_bytes: svc.resources.last.map(|u| u.rss_bytes),
        }
    }

    fn service_status(&self, i: usize, now: Instant) -> ServiceStatus {
        let waiting = self.waiting(i);
        let svc = &self.system.services[i];
        let (risk, level) = level(svc, now);
        let (pid, since) = self.running(i);
        let blocked = waiting.as_ref().is_some_and(|(b, _)| *b);
        let next = svc.next_step();
        let rt = &self.rt[i];
        let usage = svc.resources.last;
        ServiceStatus {
            name: rt.spec.name.clone(),
            state: state(svc, blocked),
            health: health(level),
            pid,
            started_at: since.map(|s| format_time(self.wall(s))),
            uptime_s: since.map(|s| round3(now.saturating_duration_since(s).as_secs_f64())),
            restarts: svc.generation.saturating_sub(1),
            exit: svc
                .last_exit
                .map(|(status, at)| exit_info(status, self.wall(at))),
            reason: match &svc.phase {
                Phase::Failed { reason } => Some(reason.clone()),
                _ => waiting.map(|(_, why)| why),
            },
            last: svc.summary.clone(),
            risk: round3(risk),
            stage: stage(svc),
            next_action: next.map(|(what, _)| what.to_string()),
            next_at: next.map(|(_, at)| format_time(self.wall(at))),
            last_failure: self.failure_info(svc),
            breaker: svc.ladder.breaker.as_str().into(),
            ready: svc.ready,
            probes: ProbeReports {
                liveness: report(&rt.probes[0], &svc.probes[0]),
                readiness: report(&rt.probes[1], &svc.probes[1]),
                startup: report(&rt.probes[2], &svc.probes[2]),
            },
            probe_latency_ewma_ms: (svc.probes.iter().flatten())
                .find_map(|p| p.latency.mean.get())
                .map(|m| (m * 1e6).round() / 1e3),
            notify_status: svc.notify_status.clone(),
            group: self.group_name(i),
            depends_on: self.depends_on(i),
            log_condition: svc.log_condition.as_ref().map(|c| LogConditionInfo {
                kind: c.trouble.as_str().into(),
                message: c.message.clone(),
                since: format_time(self.wall(c.since)),
            }),
            cpu_percent: usage.and_then(|u| u.cpu_percent).map(round1),
            sampled_at: (svc.resources.last_at).map(|at| format_time(self.wall(at))),
            rss_bytes: usage.map(|u| u.rss_bytes),
            threads: usage.map(|u| u.threads),
            fds: usage.map(|u| u.fds),
            processes: usage.map(|u| u.processes),
            mem_trend_mib_per_min: svc.resources.trend().map(round3),
            failure_rate_per_min: svc.ladder.risk.failure_rate.get().map(round3),
            uptime_ewma_s: svc.ladder.risk.uptime.get().map(round3),
            // While it is being stopped too (a hand-over): it still runs.
            fallback_pid: match svc.fallback {
                crate::strategy::machine::Fallback::Running { pid, .. } => Some(pid),
                _ => None,
            },
            failures: counts(&svc.stats.failures),
            actions: ActionCounts {
                retry: svc.stats.actions[0],
                restart: svc.stats.actions[1],
                fallback: svc.stats.actions[2],
                quarantine: svc.stats.actions[3],
            },
            recovery: recovery(svc),
            availability: availability(svc, now),
        }
    }

    /// The last failure: when, its cause, how it was classified and what
    /// was done.
    fn failure_info(&self, svc: &Service) -> Option<FailureInfo> {
        let (d, at) = svc.last_failure.as_ref()?;
        Some(FailureInfo {
            at: format_time(self.wall(*at)),
            cause: d.cause.describe(),
            classified: d.classified.as_str().into(),
            severity: d.severity.as_str().into(),
            escalation: d.escalation.clone(),
            action: d.action.name().into(),
            notes: d.notes.clone(),
        })
    }

    fn depends_on(&self, i: usize) -> Vec<DependInfo> {
        (self.system.tree.deps(i).iter())
            .map(|&(j, cond)| DependInfo {
                name: self.rt[j].spec.name.clone(),
                condition: cond.as_str().into(),
                satisfied: satisfies(&self.system.view(j), cond),
            })
            .collect()
    }
}

fn exit_info(status: ExitStatus, at: std::time::SystemTime) -> ExitInfo {
    let (code, signal) = match status {
        ExitStatus::Code(c) => (Some(c), None),
        ExitStatus::Signal(s) => (None, Some(signal_name(s))),
    };
    ExitInfo {
        code,
        signal,
        at: format_time(at),
    }
}

fn counts(f: &[u64; 3]) -> SeverityCounts {
    SeverityCounts {
        transient: f[0],
        recoverable: f[1],
        critical: f[2],
    }
}

/// Where the service stands on the ladder, for status.
fn stage(svc: &Service) -> Option<String> {
    let fallback = matches!(
        svc.fallback,
        crate::strategy::machine::Fallback::Running { .. }
    );
    let p = &svc.config.recovery;
    match (&svc.phase, svc.ladder.breaker) {
        (Phase::Retrying { .. }, _) => {
            Some(format!("retry {}/{}", svc.ladder.retries, p.retry_attempts))
        }
        (Phase::Restarting { .. }, _) => Some(format!(
            "restart {}/{}",
            svc.ladder.restarts, p.restart_attempts
        )),
        (Phase::Running { .. }, Breaker::HalfOpen { .. }) => Some("half-open".into()),
        (Phase::Quarantined { .. }, _) if fallback => Some("fallback".into()),
        (Phase::Quarantined { .. }, _) => Some("quarantined".into()),
        _ => None,
    }
}

/// Percentages, to 0.001 %.
fn availability(svc: &Service, now: Instant) -> Option<AvailabilityInfo> {
    use crate::strategy::availability::{DAY, HOUR};
    let pct = |r: f64| (r * 100_000.0).round() / 1000.0;
    let ready_1h = svc.availability.ratio(now, HOUR)?;
    Some(AvailabilityInfo {
        running_1h: pct(svc.running.ratio(now, HOUR)?),
        running_24h: pct(svc.running.ratio(now, DAY)?),
        ready_1h: pct(ready_1h),
        ready_24h: pct(svc.availability.ratio(now, DAY)?),
        sla: svc.config.sla.map(pct),
        sla_met: svc
            .config
            .sla
            .map(|t| !svc.availability.over_budget(now, t)),
    })
}

/// Recovery accounting: a retry or restart succeeded once the service then
/// stayed up (and ready) for `reset_after`; MTTR is the mean time from a
/// first failure to the start of the run that recovered.
fn recovery(svc: &Service) -> RecoveryStats {
    let s = &svc.stats;
    RecoveryStats {
        attempts: s.attempts,
        successes: s.successes,
        success_rate: (s.attempts > 0).then(|| round3(s.successes as f64 / s.attempts as f64)),
        mttr_s: (s.recovered > 0)
            .then(|| round3(s.recovery_time.as_secs_f64() / s.recovered as f64)),
    }
}
