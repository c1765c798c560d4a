use super::*;
use crate::strategy::rng::Rng;
use proptest::prelude::*;

fn policy(has_fallback: bool) -> RecoveryPolicy {
    RecoveryPolicy {
        retry_attempts: 3,
        backoff: BackoffSpec {
            base: Duration::from_millis(100),
            max: Duration::from_secs(30),
            jitter: 0.0,
        },
        restart_attempts: 2,
        has_fallback,
        retry_primary: Duration::from_secs(60),
        min_uptime: Duration::from_secs(1),
        reset_after: Duration::from_secs(60),
    }
}

fn ladder() -> Ladder {
    Ladder::new(Escalation::new(100, Duration::from_secs(60)))
}

const YOUNG: Duration = Duration::from_millis(10);

/// An `exit 1` classified TRANSIENT after a run of `uptime`.
fn transient(
    l: &mut Ladder,
    p: &RecoveryPolicy,
    uptime: Duration,
    now: Instant,
    draws: [f64; 2],
) -> Decision {
    l.on_failure(p, Cause::Exit(1), Severity::Transient, uptime, now, draws)
}
const OLD: Duration = Duration::from_secs(5);
/// The lottery always lets a retry through.
const LUCKY: [f64; 2] = [0.0, 0.5];

#[test]
fn transient_retries_then_restarts_then_quarantines() {
    let p = policy(false);
    let mut l = ladder();
    let t0 = Instant::now();
    let mut actions = Vec::new();
    for i in 0..7 {
        let d = transient(&mut l, &p, YOUNG, t0 + Duration::from_millis(i), LUCKY);
        actions.push(d.action);
    }
    assert!(
        matches!(actions[0], Action::Retry { attempt: 1, of: 3, delay } if delay >= Duration::from_millis(100))
    );
    assert!(matches!(actions[2], Action::Retry { attempt: 3, .. }));
    assert!(matches!(
        actions[3],
        Action::Restart {
            attempt: 1,
            of: 2,
            ..
        }
    ));
    assert!(matches!(actions[4], Action::Restart { attempt: 2, .. }));
    assert!(matches!(actions[5], Action::Quarantine { .. }));
}

#[test]
fn a_long_run_is_retried_at_once() {
    let p = policy(false);
    let mut l = ladder();
    let d = transient(&mut l, &p, OLD, Instant::now(), LUCKY);
    assert_eq!(
        d.action,
        Action::Retry {
            delay: Duration::ZERO,
            attempt: 1,
            of: 3
        }
    );
}

#[test]
fn young_deaths_back_off_exponentially() {
    let p = RecoveryPolicy {
        retry_attempts: 10,
        ..policy(false)
    };
    let mut l = ladder();
    let t0 = Instant::now();
    let mut delays = Vec::new();
    for i in 0..4 {
        // Far apart in time, so risk has decayed to ~0 by each failure.
        let now = t0 + Duration::from_secs(1000 * i);
        match l
            .on_failure(&p, Cause::Exit(1), Severity::Transient, YOUNG, now, LUCKY)
            .action
        {
            Action::Retry { delay, .. } => delays.push(delay.as_millis()),
            other => panic!("{other:?}"),
        }
    }
    // Failures 1000 s apart: the prior risk has decayed to ~0.
    assert_eq!(delays, vec![100, 200, 400, 800]);
}

#[test]
fn a_first_failure_is_always_retried() {
    let p = policy(false);
    let mut l = ladder();
    let d = transient(&mut l, &p, OLD, Instant::now(), [0.999, 0.5]);
    assert!(
        matches!(d.action, Action::Retry { attempt: 1, .. }),
        "{d:?}"
    );
}

#[test]
fn recoverable_goes_straight_to_restart() {
    let p = policy(true);
    let mut l = ladder();
    let d = l.on_failure(
        &p,
        Cause::Signal(libc::SIGABRT),
        Severity::Recoverable,
        OLD,
        Instant::now(),
        LUCKY,
    );
    assert_eq!(
        d.action,
        Action::Restart {
            delay: Duration::ZERO,
            attempt: 1,
            of: 2
        }
    );
    assert_eq!(l.retries, 0);
}

#[test]
fn critical_goes_to_fallback_or_quarantine() {
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(60);
    let cases = [
        (
            true,
            Action::Fallback {
                retry_primary_at: until,
            },
        ),
        (false, Action::Quarantine { until }),
    ];
    for (has_fallback, want) in cases {
        let p = policy(has_fallback);
        let d = ladder().on_failure(&p, Cause::Exit(78), Severity::Critical, OLD, t0, LUCKY);
        assert_eq!(d.action, want);
    }
}

#[test]
fn a_failed_trial_reopens_with_double_cooldown_and_a_passed_one_clears() {
    let t0 = Instant::now();
    let p = policy(false);
    let mut l = ladder();
    l.on_failure(&p, Cause::Exit(78), Severity::Critical, OLD, t0, LUCKY);
    let t1 = t0 + Duration::from_secs(60);
    assert!(l.breaker.poll(t1));
    let d = transient(&mut l, &p, YOUNG, t1, LUCKY);
    assert_eq!(
        d.action,
        Action::Quarantine {
            until: t1 + Duration::from_secs(120)
        }
    );
    assert!(d.notes.contains(&"half-open trial failed".to_string()));
    assert!(l.breaker.poll(t1 + Duration::from_secs(120)));
    l.trial_passed();
    assert!(l.breaker.is_closed());
    let d = transient(&mut l, &p, OLD, t1 + Duration::from_secs(500), LUCKY);
    assert!(matches!(d.action, Action::Retry { attempt: 1, .. }));
}

#[test]
fn escalation_turns_repeated_transients_into_a_restart() {
    let p = RecoveryPolicy {
        retry_attempts: 100,
        ..policy(true)
    };
    let mut l = Ladder::new(Escalation::new(5, Duration::from_secs(60)));
    let t0 = Instant::now();
    let mut last = None;
    for i in 0..5 {
        last = Some(transient(
            &mut l,
            &p,
            OLD,
            t0 + Duration::from_secs(i * 5),
            LUCKY,
        ));
    }
    let d = last.unwrap();
    assert_eq!(d.severity, Severity::Recoverable);
    assert_eq!(
        d.escalation.as_deref(),
        Some("escalated to recoverable: 5 failures in 20s")
    );
    assert!(matches!(d.action, Action::Restart { attempt: 1, .. }));
}

#[test]
fn high_risk_skips_the_retry() {
    let p = policy(false);
    let mut l = ladder();
    let t0 = Instant::now();
    for _ in 0..3 {
        l.risk.on_failure(t0, Severity::Critical);
    }
    // Prior risk ≈ 0.95: p = (1 − risk)² is tiny; a draw of 0.5 loses.
    let d = transient(&mut l, &p, OLD, t0, [0.5, 0.5]);
    assert!(matches!(d.action, Action::Restart { .. }), "{d:?}");
    assert!(d.notes[0].starts_with("risk 0.9"), "{:?}", d.notes);
}

#[test]
fn settling_restores_the_budgets() {
    let p = policy(false);
    let mut l = ladder();
    let t0 = Instant::now();
    for i in 0..3 {
        transient(&mut l, &p, YOUNG, t0 + Duration::from_millis(i), LUCKY);
    }
    assert_eq!(l.retries, 3);
    l.settled();
    assert_eq!((l.retries, l.young.count()), (0, 0));
    let d = transient(
        &mut l,
        &p,
        Duration::from_secs(61),
        t0 + Duration::from_secs(100),
        LUCKY,
    );
    assert!(
        matches!(d.action, Action::Retry { attempt: 1, .. }),
        "{d:?}"
    );
}

proptest! {
    #[test]
    fn same_seed_same_decisions(seed in any::<u64>(), causes in proptest::collection::vec((0usize..3, 0u64..5000, 0u64..3000), 1..60)) {
        let t0 = Instant::now();
        let run = || {
            let p = policy(seed % 2 == 0);
            let mut l = ladder();
            let mut rng = Rng::new(seed);
            let mut t = t0;
            let mut out = Vec::new();
            for (sev, gap, up) in &causes {
                t += Duration::from_millis(*gap);
                let d = l.on_failure(&p, Cause::Exit(1), Severity::ALL[*sev], Duration::from_millis(*up), t, [rng.next_f64(), rng.next_f64()]);
                out.push((d.action, d.severity, d.notes));
            }
            out
        };
        prop_assert_eq!(run(), run());
    }

    #[test]
    fn escalation_never_lowers_severity(sevs in proptest::collection::vec(0usize..3, 1..50)) {
        let p = policy(true);
        let mut l = Ladder::new(Escalation::new(3, Duration::from_secs(60)));
        let t0 = Instant::now();
        for (i, s) in sevs.iter().enumerate() {
            let classified = Severity::ALL[*s];
            let d = l.on_failure(&p, Cause::Exit(1), classified, OLD, t0 + Duration::from_millis(i as u64), LUCKY);
            prop_assert!(d.severity >= classified);
        }
    }

    #[test]
    fn delays_never_exceed_the_cap(ups in proptest::collection::vec(0u64..2000, 1..80), draw in 0.0f64..1.0) {
        let p = RecoveryPolicy { retry_attempts: 1000, restart_attempts: 1000, ..policy(false) };
        let mut l = ladder();
        let t0 = Instant::now();
        for (i, up) in ups.iter().enumerate() {
            let d = transient(&mut l, &p, Duration::from_millis(*up), t0 + Duration::from_millis(i as u64), [draw, draw]);
            match d.action {
                Action::Retry { delay, .. } | Action::Restart { delay, .. } => prop_assert!(delay <= p.backoff.max),
                _ => {}
            }
        }
    }
}

/// The ladder's first retry, counted against its budget.
fn assert_first_counted_retry(d: &Decision) {
    let first = matches!(
        d.action,
        Action::Retry {
            attempt: 1,
            of: 3,
            ..
        }
    );
    assert!(first, "{d:?}");
}

/// An `exit 1` whose last line says "address already in use".
fn port_held(l: &mut Ladder, p: &RecoveryPolicy, uptime: Duration, now: Instant) -> Decision {
    let verdict = Verdict {
        severity: Severity::Transient,
        waits_on: Some("address already in use"),
    };
    l.on_failure(p, Cause::Exit(1), verdict, uptime, now, LUCKY)
}

#[test]
fn plainly_transient_young_deaths_are_waited_out_without_escalation() {
    let p = policy(true);
    let mut l = Ladder::new(Escalation::new(5, Duration::from_secs(60)));
    let t0 = Instant::now();
    let mut now = t0;
    let mut delays = Vec::new();
    // Eight seconds of a port still held: every death retried, no budget
    // used, no escalation, at most half a second apart.
    while now < t0 + Duration::from_secs(8) {
        let d = port_held(&mut l, &p, YOUNG, now);
        let Action::Retry { delay, of: 0, .. } = d.action else {
            panic!("{:?} at {:?}", d.action, now - t0);
        };
        assert_eq!(d.severity, Severity::Transient);
        assert!(d.escalation.is_none());
        assert!(d.notes[0].contains("plainly transient"), "{:?}", d.notes);
        delays.push(delay.as_millis());
        now += delay + YOUNG;
    }
    assert_eq!(&delays[..4], [100, 200, 400, 500]);
    assert!(delays[4..].iter().all(|d| *d == 500), "{delays:?}");
    assert_eq!((l.retries, l.restarts), (0, 0));
    assert!(l.breaker.is_closed());
}

#[test]
fn a_wait_longer_than_the_patience_goes_up_the_ladder() {
    let p = policy(true);
    let mut l = ladder();
    let t0 = Instant::now();
    assert!(matches!(
        port_held(&mut l, &p, YOUNG, t0).action,
        Action::Retry { of: 0, .. }
    ));
    let late = t0 + PATIENCE;
    let d = port_held(&mut l, &p, YOUNG, late);
    assert_first_counted_retry(&d);
}

#[test]
fn a_run_that_lived_ends_the_wait() {
    let p = policy(true);
    let mut l = ladder();
    let t0 = Instant::now();
    port_held(&mut l, &p, YOUNG, t0);
    assert_eq!(l.waiting_since, Some(t0));
    // Not young: an ordinary failure, and the next wait starts afresh.
    let d = port_held(&mut l, &p, OLD, t0 + Duration::from_secs(29));
    assert_first_counted_retry(&d);
    assert_eq!(l.waiting_since, None);
    let later = t0 + Duration::from_secs(40);
    assert!(matches!(
        port_held(&mut l, &p, YOUNG, later).action,
        Action::Retry { of: 0, .. }
    ));
}

#[test]
fn a_failing_trial_is_not_waited_out() {
    let p = policy(true);
    let mut l = ladder();
    let t0 = Instant::now();
    l.breaker
        .trip(t0, Duration::from_secs(1), Duration::from_secs(60));
    assert!(l.breaker.poll(t0 + Duration::from_secs(1)));
    let d = port_held(&mut l, &p, YOUNG, t0 + Duration::from_secs(2));
    assert!(matches!(d.action, Action::Fallback { .. }), "{d:?}");
}

#[test]
fn the_first_trial_comes_soon_unless_the_cause_needs_a_person() {
    let p = RecoveryPolicy {
        retry_primary: Duration::from_secs(10),
        ..policy(true)
    };
    let t0 = Instant::now();
    // exit 78 (EX_CONFIG): CRITICAL as it is, tried again after retry_primary.
    let d = ladder().on_failure(&p, Cause::Exit(78), Severity::Critical, OLD, t0, LUCKY);
    assert_eq!(
        d.action,
        Action::Fallback {
            retry_primary_at: t0 + Duration::from_secs(10)
        }
    );
    // exit 1 escalated to CRITICAL by repetition: tried again in a second.
    let mut l = ladder();
    let mut last = None;
    for i in 0..6 {
        let now = t0 + Duration::from_millis(i);
        last = Some(transient(&mut l, &p, YOUNG, now, LUCKY));
    }
    let d = last.unwrap();
    let at = t0 + Duration::from_millis(5) + FIRST_TRIAL;
    assert_eq!(
        d.action,
        Action::Fallback {
            retry_primary_at: at
        },
        "{d:?}"
    );
}

#[test]
fn after_a_long_wait_the_ladder_reaches_the_fallback_in_a_few_failures() {
    let p = policy(true);
    let mut l = Ladder::new(Escalation::new(5, Duration::from_secs(60)));
    let t0 = Instant::now();
    let mut now = t0;
    while now < t0 + PATIENCE {
        port_held(&mut l, &p, YOUNG, now);
        now += Duration::from_millis(500);
    }
    // The wait is over: the deaths it saw escalate the next ones, and the
    // delays start from the wait's, not from max_backoff (30 s).
    let end = now;
    let mut actions = Vec::new();
    for _ in 0..6 {
        let d = port_held(&mut l, &p, YOUNG, now);
        actions.push(d.action);
        if let Action::Restart { delay, .. } | Action::Retry { delay, .. } = d.action {
            now += delay;
        }
        if matches!(d.action, Action::Fallback { .. }) {
            break;
        }
        now += YOUNG;
    }
    assert!(
        matches!(actions.last(), Some(Action::Fallback { .. })),
        "{actions:?}"
    );
    assert!(now - end < Duration::from_secs(15), "{actions:?}");
}
