use super::*;

fn service(name: &str) -> ServiceMetrics {
    ServiceMetrics {
        name: name.into(),
        up: true,
        health: Health::Healthy,
        risk: 0.0,
        restarts: [[0; 4]; 3],
        probe_durations: Vec::new(),
        recovery: None,
        availability: Some([1.0, 1.0, 0.5, 0.75]),
        sla: Some(0.999),
        recovery_success: None,
        resources: Some(Resources {
            cpu: Some(0.5),
            rss_bytes: 1 << 20,
            threads: 3,
            fds: 7,
            memory_trend: None,
        }),
    }
}

fn parse(text: &str) -> prometheus_parse::Scrape {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = (scrape.samples.iter())
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: not a plain value: {other:?}"),
    }
}

/// A snapshot with something in every family: a failing `web`, a quiet
/// `db`, two webhook endpoints.
fn snapshot() -> Snapshot {
    let mut web = service("web");
    web.up = false;
    web.health = Health::Critical;
    web.risk = 0.625;
    web.restarts[0][0] = 3;
    web.restarts[2][2] = 1;
    let h = probe_histogram();
    h.observe(0.003);
    web.probe_durations.push(("readiness", h));
    let r = recovery_histogram();
    r.observe(2.0);
    web.recovery = Some(r);
    Snapshot {
        process: ProcessCounters {
            events: vec![("failure", 4), ("started", 5)],
            hooks_dropped: 1,
            log_bytes: 1234,
            log_lines_lost: 0,
        },
        services: vec![web, service("db")],
        webhooks: vec![
            WebhookReport {
                sent: 7,
                ..WebhookReport::default()
            },
            WebhookReport {
                service: Some("web".into()),
                dropped: 2,
                ..WebhookReport::default()
            },
        ],
    }
}

#[test]
fn every_family_is_typed_named_and_parsed() {
    let text = render(snapshot());
    for line in [
        "# TYPE sentineld_service_restarts_total counter",
        "# TYPE sentineld_probe_duration_seconds histogram",
        "sentineld_log_lines_lost_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    let scrape = parse(&text);
    let web = [("service", "web")];
    assert_eq!(value(&scrape, "sentineld_services", &[]), 2.0);
    assert_eq!(value(&scrape, "sentineld_service_up", &web), 0.0);
    assert_eq!(value(&scrape, "sentineld_service_risk", &web), 0.625);
    let crit = [("service", "web"), ("level", "critical")];
    let healthy = [("service", "web"), ("level", "healthy")];
    assert_eq!(value(&scrape, "sentineld_service_health", &crit), 1.0);
    assert_eq!(value(&scrape, "sentineld_service_health", &healthy), 0.0);
    let retried = [
        ("service", "web"),
        ("severity", "transient"),
        ("action", "retry"),
    ];
    let fell_back = [
        ("service", "web"),
        ("severity", "critical"),
        ("action", "fallback"),
    ];
    let name = "sentineld_service_restarts_total";
    assert_eq!(value(&scrape, name, &retried), 3.0);
    assert_eq!(value(&scrape, name, &fell_back), 1.0);
    assert_eq!(
        (scrape.samples.iter()).filter(|s| s.metric == name).count(),
        2,
        "only what happened has a series"
    );
    assert_eq!(
        value(&scrape, "sentineld_events_total", &[("kind", "failure")]),
        4.0
    );
    assert_eq!(value(&scrape, "sentineld_log_bytes_total", &[]), 1234.0);
}

#[test]
fn availability_resources_webhooks_and_buckets_carry_their_values() {
    let scrape = parse(&render(snapshot()));
    let web = [("service", "web")];
    let ready_day = [("service", "web"), ("of", "ready"), ("window", "24h")];
    let name = "sentineld_service_availability_ratio";
    assert_eq!(value(&scrape, name, &ready_day), 0.75);
    let name = "sentineld_service_sla_availability_ratio";
    assert_eq!(value(&scrape, name, &web), 0.999);
    let name = "sentineld_service_resident_memory_bytes";
    assert_eq!(value(&scrape, name, &web), 1048576.0);
    assert_eq!(
        value(&scrape, "sentineld_service_cpu_usage_ratio", &web),
        0.5
    );
    let global = [("scope", "global")];
    let of_web = [("scope", "service"), ("service", "web")];
    assert_eq!(
        value(&scrape, "sentineld_webhooks_sent_total", &global),
        7.0
    );
    assert_eq!(
        value(&scrape, "sentineld_webhooks_dropped_total", &of_web),
        2.0
    );
    assert_eq!(
        value(&scrape, "sentineld_webhooks_failed_total", &of_web),
        0.0
    );
    let probe = (scrape.samples.iter())
        .find(|s| s.metric == "sentineld_probe_duration_seconds")
        .expect("the probe histogram");
    let prometheus_parse::Value::Histogram(buckets) = &probe.value else {
        panic!("{probe:?}");
    };
    assert_eq!(
        buckets.iter().find(|b| b.less_than == 0.001).unwrap().count,
        0.0
    );
    assert_eq!(
        buckets.iter().find(|b| b.less_than == 0.005).unwrap().count,
        1.0
    );
}

#[test]
fn label_values_are_escaped() {
    let text = render(Snapshot {
        services: vec![service("we\"b\\1\nx")],
        ..Snapshot::default()
    });
    assert!(
        text.contains(r#"sentineld_service_up{service="we\"b\\1\nx"} 1"#),
        "{text}"
    );
}
