//! `sentineld metrics` against the real daemon: its output is read by a
//! Prometheus text parser, and what it says matches `status --json`.

mod common;

use std::time::Duration;

use common::*;
use prometheus_parse::{Sample, Scrape, Value};

/// A service that fails twice (exit 1 after 0.3 s: transient, retried at
/// once), then runs; recovered after 500 ms up. Its hook runs 2 s, so the
/// second failure's hook is dropped. And a service with two exec probes.
fn yaml() -> String {
    let runs = fixture("runs.sh");
    format!(
        "services:
  flaky:
    command: [{runs}, '1:0.3', '1:0.3', 'forever']
    min_uptime: 100ms
    recovery: {{ reset_after: 500ms }}
    on_event: ['sleep', '2']
  probed:
    command: ['sh', '-c', 'echo up; exec sleep 1000']
    liveness: {{ exec: ['true'], interval: 100ms }}
    readiness: {{ exec: ['true'], interval: 100ms }}
",
        runs = runs.display()
    )
}

fn scrape(inst: &Instance) -> Scrape {
    let out = inst.cli(&["metrics"]);
    assert!(out.status.success(), "metrics failed: {out:?}");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

fn samples<'a>(s: &'a Scrape, name: &'a str, labels: &'a [(&str, &str)]) -> Vec<&'a Sample> {
    let matches =
        |x: &&Sample| x.metric == name && (labels.iter()).all(|(k, v)| x.labels.get(k) == Some(*v));
    s.samples.iter().filter(matches).collect()
}

/// The one plain value of `name` with `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match samples(s, name, labels)[..] {
        [one] => match one.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{name}: not a plain value: {other:?}"),
        },
        ref found => panic!("{name} {labels:?}: {} samples", found.len()),
    }
}

/// The sum of `name` over every series with `labels`.
fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let plain = |x: &&Sample| match x.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        _ => panic!("{name}: not a plain value"),
    };
    samples(s, name, labels).iter().map(plain).sum()
}

/// (count, sum) of a histogram series.
fn histogram(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> (f64, f64) {
    match samples(s, name, labels)[..] {
        [one] => match &one.value {
            Value::Histogram(buckets) => {
                let inf = buckets.iter().find(|b| b.less_than.is_infinite());
                let count = inf.map(|b| b.count).expect("a +Inf bucket");
                let sum = value(s, &format!("{name}_sum"), labels);
                assert_eq!(value(s, &format!("{name}_count"), labels), count);
                (count, sum)
            }
            ref other => panic!("{name}: not a histogram: {other:?}"),
        },
        ref found => panic!("{name} {labels:?}: {} samples", found.len()),
    }
}

#[test]
fn metrics_parse_as_prometheus_text_and_match_status() {
    let inst = Instance::start(&yaml());
    wait_until(Duration::from_secs(15), "flaky recovered", || {
        let s = inst.service("flaky");
        s["state"] == "running" && !s["recovery"]["mttr_s"].is_null()
    });
    wait_until(Duration::from_secs(10), "probed ready", || {
        inst.service("probed")["ready"] == true
    });
    // Risk decays and health follows it: the metric lies between two
    // status readings taken around it.
    let before = inst.status();
    let m = scrape(&inst);
    let after = inst.status();
    for (i, name) in ["flaky", "probed"].into_iter().enumerate() {
        agrees_with_status(&m, name, &before["services"][i], &after["services"][i]);
    }
    let flaky = &before["services"][0];
    assert_eq!(flaky["restarts"], 2, "{flaky}");
    let retried = [
        ("service", "flaky"),
        ("severity", "transient"),
        ("action", "retry"),
    ];
    assert_eq!(value(&m, "sentineld_service_restarts_total", &retried), 2.0);
    // One recovery, of the time status' MTTR gives.
    let (count, secs) = histogram(&m, "sentineld_recovery_seconds", &[("service", "flaky")]);
    assert_eq!(count, 1.0);
    let mttr = flaky["recovery"]["mttr_s"].as_f64().unwrap();
    assert!(
        (secs - mttr).abs() < 0.001,
        "recovery {secs} s, MTTR {mttr} s"
    );
    // Both probes ran and were timed; flaky has none.
    for probe in ["liveness", "readiness"] {
        let labels = [("service", "probed"), ("probe", probe)];
        let (count, secs) = histogram(&m, "sentineld_probe_duration_seconds", &labels);
        assert!(
            count >= 1.0 && secs > 0.0,
            "{probe}: {count} runs, {secs} s"
        );
    }
    let flaky_probes = [("service", "flaky")];
    assert!(samples(&m, "sentineld_probe_duration_seconds", &flaky_probes).is_empty());
    // Process-wide counters.
    assert_eq!(value(&m, "sentineld_services", &[]), 2.0);
    let failures = inst
        .events("flaky")
        .iter()
        .filter(|e| e["kind"] == "failure")
        .count();
    let kind = [("kind", "failure")];
    assert_eq!(value(&m, "sentineld_events_total", &kind), failures as f64);
    assert!(value(&m, "sentineld_hooks_dropped_total", &[]) >= 1.0);
    assert_eq!(value(&m, "sentineld_log_lines_lost_total", &[]), 0.0);
    wait_until(Duration::from_secs(5), "log bytes = log files", || {
        let m = scrape(&inst);
        let files = inst.log("flaky").len() + inst.log("probed").len();
        value(&m, "sentineld_log_bytes_total", &[]) == files as f64
    });
}

/// One service's series against two status readings taken around the
/// scrape `m`: up, risk between them, one health level, restarts by
/// severity and by action adding up to status' counts.
fn agrees_with_status(m: &Scrape, name: &str, s0: &serde_json::Value, s1: &serde_json::Value) {
    assert_eq!(s0["name"], name);
    let svc = [("service", name)];
    let up = value(m, "sentineld_service_up", &svc);
    assert_eq!(up, f64::from(s0["state"] == "running"), "{name} up");
    let risk = value(m, "sentineld_service_risk", &svc);
    let (r0, r1) = (s0["risk"].as_f64().unwrap(), s1["risk"].as_f64().unwrap());
    assert!(
        r1 <= risk && risk <= r0,
        "{name}: risk {r0} ≥ {risk} ≥ {r1}"
    );
    let levels = ["healthy", "degraded", "critical", "quarantined"];
    let current: Vec<&str> = (levels.into_iter())
        .filter(|l| value(m, "sentineld_service_health", &[svc[0], ("level", l)]) == 1.0)
        .collect();
    assert_eq!(current.len(), 1, "{name}: one level at 1: {current:?}");
    assert!(
        s0["health"] == current[0] || s1["health"] == current[0],
        "{name}: health {current:?}, status {} then {}",
        s0["health"],
        s1["health"]
    );
    // Restarts by severity and by action add up to status' counts.
    let name_r = "sentineld_service_restarts_total";
    for severity in ["transient", "recoverable", "critical"] {
        let n = sum(m, name_r, &[svc[0], ("severity", severity)]);
        assert_eq!(
            n,
            s0["failures"][severity].as_f64().unwrap(),
            "{name} {severity}"
        );
    }
    for action in ["retry", "restart", "fallback", "quarantine"] {
        let n = sum(m, name_r, &[svc[0], ("action", action)]);
        assert_eq!(
            n,
            s0["actions"][action].as_f64().unwrap(),
            "{name} {action}"
        );
    }
    // Every failure here was retried or restarted, and each was a run.
    assert_eq!(sum(m, name_r, &svc), s0["restarts"].as_f64().unwrap());
}
