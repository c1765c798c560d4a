//! Resource samples: kept for status while the primary runs, and a limit
//! exceeded kills it; its exit is then that failure, classified like any
//! other.

use super::phases;
use super::*;
use crate::strategy::classify::Rule;
use crate::strategy::limits::{CpuLimit, Limits, Resource, Usage};
use crate::strategy::policy::Severity;

const MIB: u64 = 1 << 20;

fn usage(generation: u64, cpu: Option<f64>, rss: u64) -> Usage {
    Usage {
        generation,
        cpu_percent: cpu,
        interval: SEC,
        rss_bytes: rss,
        threads: 2,
        fds: 5,
        processes: 1,
    }
}

fn limited(rules: Vec<Rule>) -> Rt {
    let mut c = config();
    c.limits = Limits {
        memory: Some(512 * MIB),
        cpu: Some(CpuLimit {
            percent: 90.0,
            window: 3 * SEC,
        }),
    };
    c.rules = rules;
    phases::started(c)
}

fn records(rt: &Rt) -> Vec<String> {
    (rt.last.iter())
        .filter_map(|a| match a {
            Action::Record(r) => Some(format!("{}: {}", r.kind, r.message)),
            _ => None,
        })
        .collect()
}

#[test]
fn memory_over_its_limit_kills_and_the_exit_is_that_failure() {
    let mut rt = limited(Vec::new());
    let g = rt.svc.generation;
    for k in 0..4 {
        rt.advance(SEC);
        rt.feed(Event::Usage(usage(g, Some(5.0), (500 + k) * MIB)));
        assert!(records(&rt).is_empty());
    }
    assert_eq!(rt.svc.resources.last.map(|u| u.rss_bytes), Some(503 * MIB));
    rt.advance(SEC);
    rt.feed(Event::Usage(usage(g, Some(5.0), 540 * MIB)));
    let said = records(&rt);
    assert!(
        said[0].starts_with("limit: memory limit exceeded: 540 MiB > 512 MiB (+"),
        "{said:?}"
    );
    assert!(
        said[0].contains(" MiB/min); killing process group"),
        "{said:?}"
    );
    assert!(matches!(
        rt.last[..],
        [
            ..,
            Action::Signal {
                signal: libc::SIGKILL,
                ..
            }
        ]
    ));
    rt.exit_primary(ExitStatus::Signal(libc::SIGKILL), false);
    let failure = records(&rt).into_iter().find(|r| r.starts_with("failure"));
    let failure = failure.expect("a failure event");
    assert!(
        failure.starts_with("failure: memory limit exceeded: 540 MiB > 512 MiB (+"),
        "{failure}"
    );
    assert!(
        failure.contains("MiB/min): recoverable → restart 1/2"),
        "{failure}"
    );
    let summary = rt.svc.summary.clone().unwrap();
    assert!(
        summary.starts_with("memory limit exceeded: recoverable"),
        "{summary}"
    );
    // The new run starts with no figures.
    assert_eq!(rt.svc.resources.last, None);
}

#[test]
fn cpu_over_its_limit_for_the_window_and_a_classify_rule_decides() {
    let rule = Rule {
        exit_codes: Vec::new(),
        signals: Vec::new(),
        output_matches: None,
        limits: vec![Resource::Cpu],
        severity: Severity::Transient,
    };
    let mut rt = limited(vec![rule]);
    let g = rt.svc.generation;
    for _ in 0..2 {
        rt.advance(SEC);
        rt.feed(Event::Usage(usage(g, Some(97.0), MIB)));
        assert!(records(&rt).is_empty());
    }
    rt.advance(SEC);
    rt.feed(Event::Usage(usage(g, Some(97.0), MIB)));
    assert_eq!(
        records(&rt)[0],
        format!(
            "limit: cpu limit exceeded: 97% > 90% for 3s; killing process group {}",
            rt.pid(Role::Primary)
        )
    );
    rt.exit_primary(ExitStatus::Signal(libc::SIGKILL), false);
    let failure = records(&rt).into_iter().find(|r| r.starts_with("failure"));
    assert!(
        failure.as_deref().unwrap_or("").starts_with(
            "failure: cpu limit exceeded: 97% > 90% for 3s: transient (classify rule 1) → retry"
        ),
        "{failure:?}"
    );
}

#[test]
fn samples_of_another_run_or_a_stopped_primary_are_ignored() {
    let mut rt = limited(Vec::new());
    let g = rt.svc.generation;
    rt.feed(Event::Usage(usage(g - 1, None, 4096 * MIB)));
    assert!(rt.last.is_empty());
    assert_eq!(rt.svc.resources.last, None);
    rt.request(Verb::Stop);
    rt.feed(Event::Usage(usage(g, None, 4096 * MIB)));
    assert!(records(&rt).is_empty());
    assert_eq!(rt.svc.resources.last, None);
}
