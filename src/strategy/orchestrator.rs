//! The recovery ladder: a classified failure and the service's history →
//! one [`Action`].
//!
//! ```text
//! TRANSIENT   → retry (respawn, backoff)   → after retry.attempts: as RECOVERABLE
//! RECOVERABLE → restart (cleanup, start)   → after restart.attempts: as CRITICAL
//! CRITICAL    → fallback, or quarantine when there is none (circuit breaker)
//! ```
//!
//! A TRANSIENT failure is retried only with probability `(1 − risk)²`, risk
//! being what the service's history carried just before this failure (so a
//! first failure is always retried); otherwise it is handled as RECOVERABLE.
//! Staying up (and ready) for `reset_after` after a failure clears the stage
//! budgets ([`Ladder::settled`]); a passed half-open trial also closes the
//! breaker.

use std::time::{Duration, Instant};

use super::backoff::{BackoffSpec, YoungDeaths};
use super::breaker::Breaker;
use super::classify::{Cause, Severity};
use super::escalation::Escalation;
use super::risk::Risk;

#[derive(Debug, Clone, PartialEq)]
pub struct RecoveryPolicy {
    pub retry_attempts: u32,
    pub backoff: BackoffSpec,
    pub restart_attempts: u32,
    pub has_fallback: bool,
    pub retry_primary: Duration,
    pub min_uptime: Duration,
    pub reset_after: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Respawn the command after `delay`.
    Retry {
        delay: Duration,
        attempt: u32,
        of: u32,
    },
    /// Stop the group, run the cleanup command, start after `delay`.
    Restart {
        delay: Duration,
        attempt: u32,
        of: u32,
    },
    /// Run the fallback command in the service's place; the primary is tried
    /// again (half-open) at `retry_primary_at`.
    Fallback { retry_primary_at: Instant },
    /// Run nothing until `until`, then try the primary (half-open).
    Quarantine { until: Instant },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Retry { .. } => "retry",
            Action::Restart { .. } => "restart",
            Action::Fallback { .. } => "fallback",
            Action::Quarantine { .. } => "quarantine",
        }
    }

    pub fn index(&self) -> usize {
        match self {
            Action::Retry { .. } => 0,
            Action::Restart { .. } => 1,
            Action::Fallback { .. } => 2,
            Action::Quarantine { .. } => 3,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub cause: Cause,
    /// What the rules (or the default table) said.
    pub classified: Severity,
    /// After pattern escalation.
    pub severity: Severity,
    pub escalation: Option<String>,
    /// Why the action is not the one the severity first called for.
    pub notes: Vec<String>,
    pub action: Action,
    pub risk: f64,
}

/// One service's recovery history.
#[derive(Debug, Clone)]
pub struct Ladder {
    pub retries: u32,
    pub restarts: u32,
    /// Consecutive runs shorter than `min_uptime`: the primary's one count.
    pub young: YoungDeaths,
    pub escalation: Escalation,
    pub risk: Risk,
    pub breaker: Breaker,
}

impl Ladder {
    pub fn new(escalation: Escalation) -> Ladder {
        Ladder {
            retries: 0,
            restarts: 0,
            young: YoungDeaths::default(),
            escalation,
            risk: Risk::default(),
            breaker: Breaker::Closed,
        }
    }

    /// Decide what follows a failure after a run of `uptime`. `draws` are
    /// two uniform numbers in [0, 1): the retry lottery and the jitter.
    pub fn on_failure(
        &mut self,
        policy: &RecoveryPolicy,
        cause: Cause,
        classified: Severity,
        uptime: Duration,
        now: Instant,
        draws: [f64; 2],
    ) -> Decision {
        let k = self.young.record(uptime, policy.min_uptime);
        // The lottery and the backoff look at the risk the history carried
        // before this failure: a first failure is always retried.
        let prior = self.risk.value(now);
        let esc = self.escalation.record(now, classified);
        self.risk.on_failure(now, esc.severity);
        self.risk.on_exit(uptime);
        let risk = self.risk.value(now);
        let delay = match k {
            None => Duration::ZERO,
            Some(k) => policy.backoff.delay(k, prior, draws[1]),
        };
        let mut notes = Vec::new();
        let mut sev = esc.severity;
        let trial_failed = matches!(self.breaker, Breaker::HalfOpen { .. });
        if trial_failed {
            notes.push("half-open trial failed".to_string());
            sev = Severity::Critical;
        }
        let decision = |action, notes| Decision {
            cause: cause.clone(),
            classified,
            severity: esc.severity,
            escalation: esc.reason.clone(),
            notes,
            action,
            risk,
        };
        if sev == Severity::Transient {
            let p = (1.0 - prior).powi(2);
            if draws[0] >= p {
                notes.push(format!("risk {prior:.2}: retry skipped (p = {p:.2})"));
                sev = Severity::Recoverable;
            } else if self.retries >= policy.retry_attempts {
                notes.push(format!("{} retries used", policy.retry_attempts));
                sev = Severity::Recoverable;
            } else {
                self.retries += 1;
                let action = Action::Retry {
                    delay,
                    attempt: self.retries,
                    of: policy.retry_attempts,
                };
                return decision(action, notes);
            }
        }
        if sev == Severity::Recoverable {
            if self.restarts < policy.restart_attempts {
                self.restarts += 1;
                let action = Action::Restart {
                    delay,
                    attempt: self.restarts,
                    of: policy.restart_attempts,
                };
                return decision(action, notes);
            }
            notes.push(format!("{} restarts used", policy.restart_attempts));
        }
        let until = self.breaker.trip(now, policy.retry_primary);
        let action = if policy.has_fallback {
            Action::Fallback {
                retry_primary_at: until,
            }
        } else {
            Action::Quarantine { until }
        };
        decision(action, notes)
    }

    /// The service stayed up (and ready) for `reset_after` after a failure:
    /// the recovery worked, the stage budgets start over.
    pub fn settled(&mut self) {
        self.retries = 0;
        self.restarts = 0;
        self.young.clear();
        self.escalation.clear();
    }

    /// The primary passed its half-open trial: close the breaker, clear budgets.
    pub fn trial_passed(&mut self) {
        self.breaker.close();
        self.settled();
    }

    /// `sentineld reset NAME`: as if the service had never failed.
    pub fn reset(&mut self) {
        self.trial_passed();
        self.risk.reset();
    }
}

// supervisor/recovery.rs still calls it by this path; it lives with the
// correlation window now.

#[cfg(test)]
mod tests {
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
}
