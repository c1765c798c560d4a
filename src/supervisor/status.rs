//! Building `status` answers from the runtime state.

use std::time::Instant;

use crate::control::protocol::{
    ActionCounts, BriefReport, BriefRow, DependInfo, EventRecord, ExitInfo, FailureInfo, GroupInfo,
    Health, ProbeReport, ProbeReports, RecoveryStats, Response, ServiceStatus, SeverityCounts,
    StatusReport, SystemInfo, VERSION,
};
use crate::strategy::breaker::Breaker;
use crate::strategy::restart::ExitStatus;
use crate::strategy::risk::{Conditions, Level, next_level};
use crate::timefmt::format_time;

use super::probes::ProbeState;
use super::tree::Child;
use super::{Daemon, Phase};
use crate::strategy::classify::signal_name;

fn report(p: &Option<ProbeState>) -> Option<ProbeReport> {
    let p = p.as_ref()?;
    let kind = match p.spec.check {
        crate::config::Check::Exec(_) => "exec",
        crate::config::Check::Http(_) => "http",
        crate::config::Check::Tcp(_) => "tcp",
        crate::config::Check::Notify => "notify",
    };
    let ms = |d: std::time::Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    Some(ProbeReport {
        kind: kind.into(),
        passing: p.tracker.passing,
        consecutive_failures: p.tracker.failures,
        last_ok: p.last.as_ref().map(|l| l.ok),
        last_at: p.last.as_ref().map(|l| format_time(l.at)),
        last_latency_ms: p.last.as_ref().map(|l| ms(l.latency)),
        last_output: p.last.as_ref().map(|l| l.output.clone()),
        latency_ewma_ms: p.latency.mean.get().map(|m| (m * 1e6).round() / 1e3),
    })
}

fn health(level: Level) -> Health {
    match level {
        Level::Healthy => Health::Healthy,
        Level::Degraded => Health::Degraded,
        Level::Critical => Health::Critical,
        Level::Quarantined => Health::Quarantined,
    }
}

impl Daemon {
    pub(super) fn status(&mut self, name: Option<&str>, brief: bool, now: Instant) -> Response {
        let pick: Vec<usize> = match name {
            None => (0..self.services.len()).collect(),
            Some(n) => match self.find(n) {
                Ok(i) => vec![i],
                Err(e) => return *e,
            },
        };
        if brief {
            let services = pick.iter().map(|&i| self.brief_row(i, now)).collect();
            return Response::Brief(BriefReport {
                version: VERSION,
                services,
            });
        }
        let services: Vec<ServiceStatus> =
            pick.iter().map(|&i| self.service_status(i, now)).collect();
        let events = match name {
            None => Vec::new(),
            Some(n) => {
                let mine: Vec<&EventRecord> =
                    self.events.iter().filter(|e| e.service == n).collect();
                mine[mine.len().saturating_sub(20)..]
                    .iter()
                    .map(|e| (*e).clone())
                    .collect()
            }
        };
        let groups = self
            .groups
            .iter()
            .map(|g| GroupInfo {
                name: g.name.clone(),
                parent: g.parent.map(|p| self.groups[p].name.clone()),
                strategy: g.strategy.as_str().into(),
                intensity: g.intensity,
                period_s: g.period.as_secs_f64(),
                restarts_in_period: g
                    .restarts
                    .iter()
                    .filter(|t| now.saturating_duration_since(**t) <= g.period)
                    .count() as u32,
                children: g
                    .children
                    .iter()
                    .map(|c| match c {
                        Child::Service(i) => self.services[*i].spec.name.clone(),
                        Child::Group(k) => self.groups[*k].name.clone(),
                    })
                    .collect(),
            })
            .collect();
        let system = match &self.system_critical {
            Some(reason) => SystemInfo {
                health: "critical".into(),
                reason: Some(reason.clone()),
            },
            None if self.services.iter().any(|s| s.level >= Level::Critical) => SystemInfo {
                health: "degraded".into(),
                reason: None,
            },
            None => SystemInfo::healthy(),
        };
        Response::Status(StatusReport {
            version: VERSION,
            pid: std::process::id(),
            services,
            events,
            groups,
            system,
        })
    }

    /// The health level now, with hysteresis against the last one reported.
    pub(super) fn level(&mut self, i: usize, risk: f64) -> Level {
        let svc = &self.services[i];
        let failed_exit = matches!(svc.last_exit, Some((s, _)) if !s.success());
        let c = Conditions {
            quarantined: matches!(svc.phase, Phase::Quarantined { .. }) && svc.fallback.is_none(),
            degraded: svc.fallback.is_some()
                || (svc.ready == Some(false) && matches!(svc.phase, Phase::Running { .. }))
                || matches!(
                    svc.phase,
                    Phase::Starting | Phase::Stopping { .. } | Phase::Backoff { .. }
                ),
            down_after_failure: matches!(
                svc.phase,
                Phase::Retrying { .. } | Phase::Restarting { .. } | Phase::Failed { .. }
            ) || (matches!(svc.phase, Phase::Exited) && failed_exit),
        };
        let level = next_level(svc.level, risk, c);
        self.services[i].level = level;
        level
    }

    /// What a not-yet-started service waits for (and whether that is a
    /// failed dependency, which the state shows as `blocked`).
    fn observe_waiting(&mut self, i: usize) -> Option<(bool, String)> {
        let waiting = match self.services[i].phase {
            Phase::Starting => self.waiting_for(i),
            _ => None,
        };
        self.services[i].blocked = waiting.as_ref().is_some_and(|(b, _)| *b);
        waiting
    }

    /// The service's group; none for the root.
    fn group_name(&self, i: usize) -> Option<String> {
        match self.service_group[i] {
            0 => None,
            g => Some(self.groups[g].name.clone()),
        }
    }

    /// Just the table's columns: none of the probe, recovery or tree
    /// details are computed (the same words as [`Self::service_status`]
    /// and `table::last` give).
    fn brief_row(&mut self, i: usize, now: Instant) -> BriefRow {
        let waiting = self.observe_waiting(i);
        let risk = self.services[i].ladder.risk.value(now);
        let level = self.level(i, risk);
        let svc = &self.services[i];
        let (pid, since) = match &svc.phase {
            Phase::Running { pid, since, .. } => (Some(*pid), Some(*since)),
            Phase::Stopping { pid, since, .. } => (*pid, Some(*since)),
            _ => (None, None),
        };
        let last = match (&svc.phase, waiting) {
            (Phase::Failed { reason }, _) => reason.clone(),
            (_, Some((_, why))) => why,
            _ => match (&svc.summary, svc.last_exit) {
                (Some(summary), _) => summary.clone(),
                (None, Some((status, at))) => {
                    let at = format_time(at);
                    let short = at.get(11..19).unwrap_or(&at).to_string();
                    match status {
                        ExitStatus::Code(c) => format!("exit {c} at {short}"),
                        ExitStatus::Signal(sig) => format!("{} at {short}", signal_name(sig)),
                    }
                }
                (None, None) => "-".into(),
            },
        };
        BriefRow {
            name: svc.spec.name.clone(),
            group: self.group_name(i),
            state: svc.state(),
            health: health(level),
            pid,
            uptime_s: since.map(|s| {
                (now.saturating_duration_since(s).as_secs_f64() * 1000.0).round() / 1000.0
            }),
            restarts: svc.spawns.saturating_sub(1),
            risk: (risk * 1000.0).round() / 1000.0,
            last,
        }
    }

    fn service_status(&mut self, i: usize, now: Instant) -> ServiceStatus {
        let waiting = self.observe_waiting(i);
        let depends_on = self.deps[i]
            .iter()
            .map(|&(j, cond)| DependInfo {
                name: self.services[j].spec.name.clone(),
                condition: cond.as_str().into(),
                satisfied: self.satisfies(j, cond),
            })
            .collect();
        let group = self.group_name(i);
        let risk = self.services[i].ladder.risk.value(now);
        let level = self.level(i, risk);
        let next = self.next_step(i, now);
        let svc = &self.services[i];
        let (pid, started) = match &svc.phase {
            Phase::Running {
                pid,
                since,
                since_wall,
                ..
            } => (Some(*pid), Some((*since, *since_wall))),
            Phase::Stopping {
                pid,
                since,
                since_wall,
                ..
            } => (*pid, Some((*since, *since_wall))),
            _ => (None, None),
        };
        let stage = match (&svc.phase, svc.ladder.breaker) {
            (Phase::Retrying { .. }, _) => Some(format!(
                "retry {}/{}",
                svc.ladder.retries, svc.policy.retry_attempts
            )),
            (Phase::Restarting { .. }, _) => Some(format!(
                "restart {}/{}",
                svc.ladder.restarts, svc.policy.restart_attempts
            )),
            (Phase::Running { .. }, Breaker::HalfOpen { .. }) => Some("half-open".into()),
            (Phase::Quarantined { .. }, _) if svc.fallback.is_some() => Some("fallback".into()),
            (Phase::Quarantined { .. }, _) => Some("quarantined".into()),
            _ => None,
        };
        let reason = match &svc.phase {
            Phase::Failed { reason } => Some(reason.clone()),
            Phase::Starting => waiting.map(|(_, why)| why),
            _ => None,
        };
        let last_failure = svc.last_failure.as_ref().map(|(d, at)| FailureInfo {
            at: format_time(*at),
            cause: d.cause.describe(),
            classified: d.classified.as_str().into(),
            severity: d.severity.as_str().into(),
            escalation: d.escalation.clone(),
            action: d.action.name().into(),
            notes: d.notes.clone(),
        });
        ServiceStatus {
            name: svc.spec.name.clone(),
            state: svc.state(),
            health: health(level),
            pid,
            started_at: started.map(|(_, w)| format_time(w)),
            uptime_s: started.map(|(s, _)| {
                (now.saturating_duration_since(s).as_secs_f64() * 1000.0).round() / 1000.0
            }),
            restarts: svc.spawns.saturating_sub(1),
            exit: svc.last_exit.map(|(status, at)| ExitInfo {
                code: match status {
                    ExitStatus::Code(c) => Some(c),
                    ExitStatus::Signal(_) => None,
                },
                signal: match status {
                    ExitStatus::Signal(s) => Some(signal_name(s)),
                    ExitStatus::Code(_) => None,
                },
                at: format_time(at),
            }),
            reason,
            last: svc.summary.clone(),
            risk: (risk * 1000.0).round() / 1000.0,
            stage,
            next_action: next.as_ref().map(|(w, _)| w.clone()),
            next_at: next.map(|(_, at)| at),
            last_failure,
            breaker: svc.ladder.breaker.as_str().into(),
            ready: svc.ready,
            probes: ProbeReports {
                liveness: report(&svc.probes[0]),
                readiness: report(&svc.probes[1]),
                startup: report(&svc.probes[2]),
            },
            probe_latency_ewma_ms: svc
                .probes
                .iter()
                .flatten()
                .find_map(|p| p.latency.mean.get())
                .map(|m| (m * 1e6).round() / 1e3),
            notify_status: svc.notify_status.clone(),
            group,
            depends_on,
            failure_rate_per_min: svc
                .ladder
                .risk
                .failure_rate
                .get()
                .map(|r| (r * 1000.0).round() / 1000.0),
            uptime_ewma_s: svc
                .ladder
                .risk
                .uptime
                .get()
                .map(|u| (u * 1000.0).round() / 1000.0),
            fallback_pid: svc.fallback.as_ref().filter(|f| !f.stopping).map(|f| f.pid),
            failures: SeverityCounts {
                transient: svc.failures[0],
                recoverable: svc.failures[1],
                critical: svc.failures[2],
            },
            actions: ActionCounts {
                retry: svc.actions[0],
                restart: svc.actions[1],
                fallback: svc.actions[2],
                quarantine: svc.actions[3],
            },
            recovery: RecoveryStats {
                attempts: svc.attempts,
                successes: svc.successes,
                success_rate: (svc.attempts > 0).then(|| {
                    ((svc.successes as f64 / svc.attempts as f64) * 1000.0).round() / 1000.0
                }),
                mttr_s: (svc.recovered > 0).then(|| {
                    ((svc.recovery_time.as_secs_f64() / svc.recovered as f64) * 1000.0).round()
                        / 1000.0
                }),
            },
        }
    }
}
