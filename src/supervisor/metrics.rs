//! What the daemon keeps for metrics besides the core's own counters: the
//! histograms of probe durations and recovery times, the events recorded
//! by kind, and the hooks dropped. The runtime records what happened here
//! as it happens — an increment or one histogram observation, O(1) — and
//! decides nothing from it.
//!
//! A `metrics` request takes a [`Snapshot`] of this, the core's state and
//! the log thread's totals, and [`crate::report::metrics`] renders it.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use prometheus_client::metrics::histogram::Histogram;

use super::daemon::{Daemon, ServiceRt};
use super::probes::ProbeRt;
use crate::config::Check;
use crate::report::metrics::{
    ProcessCounters, ServiceMetrics, Snapshot, probe_histogram, recovery_histogram,
};
use crate::strategy::probe::ProbeKind;

/// The daemon's own records for metrics.
pub(super) struct Recorder {
    /// Journal events by kind; a few dozen kinds at most.
    events: BTreeMap<&'static str, u64>,
    hooks_dropped: u64,
    services: Vec<ServiceRecords>,
}

struct ServiceRecords {
    /// By [`ProbeKind`]: those the service has.
    probes: [Option<Histogram>; 3],
    /// Made at the first recovery.
    recovery: Option<Histogram>,
}

impl Recorder {
    /// A histogram for each probe that runs (`READY=1` readiness does
    /// not: it has no duration).
    pub(super) fn new(services: &[ServiceRt]) -> Recorder {
        let timed = |p: &Option<ProbeRt>| {
            let runs = p.as_ref().is_some_and(|p| p.check != Check::Notify);
            runs.then(probe_histogram)
        };
        let services = services
            .iter()
            .map(|rt| ServiceRecords {
                probes: std::array::from_fn(|k| timed(&rt.probes[k])),
                recovery: None,
            })
            .collect();
        Recorder {
            events: BTreeMap::new(),
            hooks_dropped: 0,
            services,
        }
    }

    /// After a reload: a record for each added service, and probe
    /// histograms for the probes each service has now (those it kept keep
    /// their counts).
    pub(super) fn follow(&mut self, services: &[ServiceRt]) {
        for (i, rt) in services.iter().enumerate() {
            if i == self.services.len() {
                self.services.push(ServiceRecords {
                    probes: Default::default(),
                    recovery: None,
                });
            }
            for (k, h) in self.services[i].probes.iter_mut().enumerate() {
                let runs = rt.probes[k]
                    .as_ref()
                    .is_some_and(|p| p.check != Check::Notify);
                match (runs, h.is_some()) {
                    (true, false) => *h = Some(probe_histogram()),
                    (false, true) => *h = None,
                    _ => {}
                }
            }
        }
    }

    pub(super) fn event(&mut self, kind: &'static str) {
        *self.events.entry(kind).or_default() += 1;
    }

    pub(super) fn hook_dropped(&mut self) {
        self.hooks_dropped += 1;
    }

    pub(super) fn probe(&mut self, i: usize, kind: ProbeKind, took: Duration) {
        if let Some(h) = &self.services[i].probes[kind as usize] {
            h.observe(took.as_secs_f64());
        }
    }

    pub(super) fn recovered(&mut self, i: usize, took: Duration) {
        let h = self.services[i]
            .recovery
            .get_or_insert_with(recovery_histogram);
        h.observe(took.as_secs_f64());
    }
}

impl Daemon {
    /// Every metric as of `now`.
    pub(super) fn metrics_snapshot(&self, now: Instant) -> Snapshot {
        let rec = &self.metrics;
        let (log_bytes, log_lines_lost) = match &self.logs {
            Some(hub) => {
                let t = hub.totals();
                (t.bytes.load(Relaxed), t.lines_lost.load(Relaxed))
            }
            None => (0, 0),
        };
        let process = ProcessCounters {
            events: rec.events.iter().map(|(k, n)| (*k, *n)).collect(),
            hooks_dropped: rec.hooks_dropped,
            log_bytes,
            log_lines_lost,
        };
        let services = (self.system.services.iter().zip(&self.rt))
            .zip(&rec.services)
            .filter(|((svc, _), _)| !self.system.is_gone(svc.index))
            .map(|((svc, rt), records)| {
                let (risk, level) = super::status::level(svc, now);
                ServiceMetrics {
                    name: rt.spec.name.clone(),
                    // As status says `running`: not while a fallback stands in.
                    up: svc.state_name() == "running",
                    health: super::status::health(level),
                    risk: super::status::round3(risk),
                    restarts: svc.stats.remedies,
                    probe_durations: (ProbeKind::ALL.iter().zip(&records.probes))
                        .filter_map(|(k, h)| Some((k.name(), h.clone()?)))
                        .collect(),
                    recovery: records.recovery.clone(),
                    availability: ratios(svc, now),
                    sla: svc.config.sla,
                    resources: svc
                        .resources
                        .last
                        .map(|u| crate::report::metrics::Resources {
                            cpu: u.cpu_percent.map(|p| p / 100.0),
                            rss_bytes: u.rss_bytes,
                            threads: u.threads,
                            fds: u.fds,
                            memory_trend: svc.resources.trend().map(|mib| mib * 1048576.0 / 60.0),
                        }),
                    recovery_success: (svc.stats.attempts > 0)
                        .then(|| svc.stats.successes as f64 / svc.stats.attempts as f64),
                }
            })
            .collect();
        let webhooks = self.webhooks.reports(|i| &self.rt[i].spec.name);
        Snapshot {
            process,
            services,
            webhooks,
        }
    }
}

/// Running 1 h, 24 h, running and ready 1 h, 24 h.
fn ratios(svc: &crate::strategy::machine::Service, now: std::time::Instant) -> Option<[f64; 4]> {
    use crate::strategy::availability::{DAY, HOUR};
    Some([
        svc.running.ratio(now, HOUR)?,
        svc.running.ratio(now, DAY)?,
        svc.availability.ratio(now, HOUR)?,
        svc.availability.ratio(now, DAY)?,
    ])
}
