//! Prometheus text (exposition format 0.0.4) of the daemon's metrics.
//!
//! The daemon hands over a [`Snapshot`] — plain values read from its state
//! and the histograms it keeps — and [`render`] writes it through
//! `prometheus-client`, which names, types and escapes. Each family is one
//! function in [`FAMILIES`]: a new family (availability, resources) is a
//! field of the snapshot and a function here.
//!
//! Rendering reads only the snapshot: it never touches the daemon, so it
//! costs the event loop only the time to take the snapshot.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::control::protocol::{Health, WebhookReport};
use crate::strategy::policy::Severity;

/// What an HTTP `/metrics` answer says its body is.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The recovery actions, in the order of `strategy::orchestrator::Action::index`.
pub const ACTIONS: [&str; 4] = ["retry", "restart", "fallback", "quarantine"];

/// Every health level, for the state set: one series each, 1 for the current.
pub const LEVELS: [Health; 4] = [
    Health::Healthy,
    Health::Degraded,
    Health::Critical,
    Health::Quarantined,
];

/// Upper bounds (seconds) of probe duration buckets: a local TCP connect
/// takes well under a millisecond, an exec probe a few, a slow HTTP check
/// seconds. Few of them: with a probe on each of 1,000 services the
/// buckets are most of the text.
pub const PROBE_BUCKETS: [f64; 8] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

/// Upper bounds (seconds) of recovery time buckets: an immediate respawn
/// takes milliseconds, a breaker's half-open trial minutes to an hour.
pub const RECOVERY_BUCKETS: [f64; 10] = [
    0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// A probe duration histogram with sentineld's buckets.
pub fn probe_histogram() -> Histogram {
    Histogram::new(PROBE_BUCKETS)
}

/// A recovery time histogram with sentineld's buckets.
pub fn recovery_histogram() -> Histogram {
    Histogram::new(RECOVERY_BUCKETS)
}

/// Everything one rendering shows, read from the daemon at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub process: ProcessCounters,
    pub services: Vec<ServiceMetrics>,
    /// Each webhook endpoint's totals: the top-level one first.
    pub webhooks: Vec<WebhookReport>,
}

/// Counters of the whole daemon.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessCounters {
    /// Journal events recorded, by kind (`failure`, `started`, …).
    pub events: Vec<(&'static str, u64)>,
    /// `on_event` hooks not run: one was still running, or it could not start.
    pub hooks_dropped: u64,
    /// Bytes of services' output written to their log files.
    pub log_bytes: u64,
    /// Lines of output that never reached a log file.
    pub log_lines_lost: u64,
}

/// One service's series.
#[derive(Debug, Clone)]
pub struct ServiceMetrics {
    pub name: String,
    /// The primary process runs (state `running`).
    pub up: bool,
    pub health: Health,
    pub risk: f64,
    /// Failures handled, by severity ([`Severity::ALL`]'s order) and the
    /// action taken ([`ACTIONS`]' order).
    pub restarts: [[u64; 4]; 3],
    /// By probe (`liveness`, `readiness`, `startup`), those configured.
    pub probe_durations: Vec<(&'static str, Histogram)>,
    /// From a first failure to the start of the run that recovered; none
    /// until the service has a recovery to count.
    pub recovery: Option<Histogram>,
    /// Running over 1 h and 24 h, then running and ready over 1 h and
    /// 24 h, as ratios; none before the service was seen.
    pub availability: Option<[f64; 4]>,
    /// `sla.availability` as a ratio.
    pub sla: Option<f64>,
    /// Retries and restarts followed by `reset_after` up, of all taken.
    pub recovery_success: Option<f64>,
    /// The last resource sample of its processes, if any.
    pub resources: Option<Resources>,
}

/// A service's processes, summed, at the last sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resources {
    /// Cores busy (1.0: one core) over the last interval.
    pub cpu: Option<f64>,
    pub rss_bytes: u64,
    pub threads: u32,
    pub fds: u32,
    /// Resident memory's slope, bytes per second.
    pub memory_trend: Option<f64>,
}

type Family = fn(&Snapshot, &mut DescriptorEncoder) -> fmt::Result;

/// Every family, in the order they are written.
const FAMILIES: &[Family] = &[
    build_info,
    services,
    events,
    hooks_dropped,
    log_bytes,
    log_lines_lost,
    webhooks_sent,
    webhooks_failed,
    webhooks_dropped,
    up,
    health,
    risk,
    restarts,
    probe_durations,
    recovery,
    availability,
    sla,
    recovery_success,
    resources,
];

/// The snapshot in Prometheus text format.
pub fn render(snapshot: Snapshot) -> String {
    // About 60 bytes a series, some 10 series a service.
    let mut out = String::with_capacity(1024 + 600 * snapshot.services.len());
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        .expect("writing to a String cannot fail");
    out
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        FAMILIES.iter().try_for_each(|f| f(self, &mut encoder))
    }
}

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> fmt::Result {
    let c = ConstCounter::new(value);
    c.encode(enc.encode_descriptor(name, help, None, MetricType::Counter)?)
}

fn build_info(_: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "sentineld's version; always 1.";
    let mut m = enc.encode_descriptor("sentineld_build_info", help, None, MetricType::Gauge)?;
    let labels = [("version", env!("CARGO_PKG_VERSION"))];
    ConstGauge::new(1i64).encode(m.encode_family(&labels)?)
}

fn services(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Services supervised.";
    let m = enc.encode_descriptor("sentineld_services", help, None, MetricType::Gauge)?;
    ConstGauge::new(s.services.len() as i64).encode(m)
}

fn events(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Events recorded in the journal, by kind.";
    let mut m = enc.encode_descriptor("sentineld_events", help, None, MetricType::Counter)?;
    for &(kind, n) in &s.process.events {
        ConstCounter::new(n).encode(m.encode_family(&[("kind", kind)])?)?;
    }
    Ok(())
}

fn hooks_dropped(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "on_event hooks not run: the last one was still running, or it could not start.";
    counter(
        enc,
        "sentineld_hooks_dropped",
        help,
        s.process.hooks_dropped,
    )
}

/// One counter a webhook endpoint: `scope="global"`, or `scope="service"`
/// and the service's name. Never the URL: it may hold a token.
fn webhook_family(
    s: &Snapshot,
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    count: fn(&WebhookReport) -> u64,
) -> fmt::Result {
    if s.webhooks.is_empty() {
        return Ok(());
    }
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for w in &s.webhooks {
        let c = ConstCounter::new(count(w));
        match &w.service {
            None => c.encode(m.encode_family(&[("scope", "global")])?)?,
            Some(svc) => {
                let labels = [("scope", "service"), ("service", svc.as_str())];
                c.encode(m.encode_family(&labels)?)?
            }
        }
    }
    Ok(())
}

fn webhooks_sent(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Webhook notifications delivered (a 2xx or 3xx answer).";
    webhook_family(s, enc, "sentineld_webhooks_sent", help, |w| w.sent)
}

fn webhooks_failed(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Webhook notifications given up on: a 4xx answer, or every retry failed.";
    webhook_family(s, enc, "sentineld_webhooks_failed", help, |w| w.failed)
}

fn webhooks_dropped(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Webhook notifications dropped because the endpoint's queue was full.";
    webhook_family(s, enc, "sentineld_webhooks_dropped", help, |w| w.dropped)
}

fn log_bytes(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Bytes of services' output written to their log files.";
    counter(enc, "sentineld_log_bytes", help, s.process.log_bytes)
}

fn log_lines_lost(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Lines of services' output that never reached a log file (expected 0: \
                output is held back, never dropped).";
    counter(
        enc,
        "sentineld_log_lines_lost",
        help,
        s.process.log_lines_lost,
    )
}

fn up(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "1 when the service's primary process runs (state running), else 0.";
    let mut m = enc.encode_descriptor("sentineld_service_up", help, None, MetricType::Gauge)?;
    for svc in &s.services {
        let labels = [("service", svc.name.as_str())];
        ConstGauge::new(i64::from(svc.up)).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn health(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "The service's health level: 1 for the current level, 0 for the others.";
    let name = "sentineld_service_health";
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for svc in &s.services {
        for level in LEVELS {
            let labels = [("service", svc.name.as_str()), ("level", level.as_str())];
            let v = i64::from(svc.health == level);
            ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn availability(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Share of the window (or of the time since sentineld started, if shorter) the \
                service's primary ran (of=running), and ran and was ready (of=ready).";
    let name = "sentineld_service_availability_ratio";
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    const SERIES: [(&str, &str); 4] = [
        ("running", "1h"),
        ("running", "24h"),
        ("ready", "1h"),
        ("ready", "24h"),
    ];
    for svc in &s.services {
        let Some(ratios) = svc.availability else {
            continue;
        };
        for ((of, window), r) in SERIES.iter().zip(ratios) {
            let labels = [
                ("service", svc.name.as_str()),
                ("of", of),
                ("window", window),
            ];
            ConstGauge::new(r).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// A gauge with a `service` label, for the services `pick` has a value of.
fn service_gauge(
    s: &Snapshot,
    enc: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    pick: impl Fn(&ServiceMetrics) -> Option<f64>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for svc in &s.services {
        if let Some(v) = pick(svc) {
            let labels = [("service", svc.name.as_str())];
            ConstGauge::new(v).encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn risk(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Failure momentum turned into [0, 1): 1 - e^-m.";
    service_gauge(s, enc, ("sentineld_service_risk", help), |svc| {
        Some(svc.risk)
    })
}

fn sla(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help =
        "The service's sla.availability target: the share of the last hour to be up and ready.";
    let name = "sentineld_service_sla_availability_ratio";
    service_gauge(s, enc, (name, help), |svc| svc.sla)
}

fn recovery_success(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help =
        "Retries and restarts after which the service stayed up for reset_after, of all taken.";
    let name = "sentineld_service_recovery_success_ratio";
    service_gauge(s, enc, (name, help), |svc| svc.recovery_success)
}

/// One gauge family per resource figure.
fn resources(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    type Pick = fn(&Resources) -> Option<f64>;
    let families: [(&str, &str, Pick); 5] = [
        (
            "sentineld_service_cpu_usage_ratio",
            "Cores its processes kept busy over the last sample interval (1 = one core).",
            |r| r.cpu,
        ),
        (
            "sentineld_service_resident_memory_bytes",
            "Resident memory of its processes, summed.",
            |r| Some(r.rss_bytes as f64),
        ),
        (
            "sentineld_service_threads",
            "Threads of its processes, summed.",
            |r| Some(f64::from(r.threads)),
        ),
        (
            "sentineld_service_open_fds",
            "Open file descriptors of its processes, summed.",
            |r| Some(f64::from(r.fds)),
        ),
        (
            "sentineld_service_memory_trend_bytes_per_second",
            "Resident memory's slope over the last minutes.",
            |r| r.memory_trend,
        ),
    ];
    for (name, help, pick) in families {
        service_gauge(s, enc, (name, help), |svc| {
            svc.resources.as_ref().and_then(pick)
        })?;
    }
    Ok(())
}

fn restarts(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Failures handled, by severity (after escalation) and the recovery action taken.";
    let name = "sentineld_service_restarts";
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for svc in &s.services {
        for (severity, by_action) in Severity::ALL.iter().zip(&svc.restarts) {
            for (action, &n) in ACTIONS.iter().zip(by_action) {
                if n == 0 {
                    continue;
                }
                let labels = [
                    ("service", svc.name.as_str()),
                    ("severity", severity.as_str()),
                    ("action", action),
                ];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
    }
    Ok(())
}

fn probe_durations(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "How long each probe run took, to its result or its timeout.";
    let name = "sentineld_probe_duration_seconds";
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for svc in &s.services {
        for (probe, h) in &svc.probe_durations {
            let labels = [("service", svc.name.as_str()), ("probe", probe)];
            h.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn recovery(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let help = "Time from a first failure to the start of the run that recovered \
                (up, and ready, for reset_after).";
    let name = "sentineld_recovery_seconds";
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for svc in &s.services {
        if let Some(h) = &svc.recovery {
            let labels = [("service", svc.name.as_str())];
            h.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
