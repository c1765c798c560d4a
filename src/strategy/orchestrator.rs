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
use super::breaker::{Breaker, FIRST_TRIAL};
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

/// How long young deaths of a plainly transient cause are waited out
/// (retried without escalation) before the ladder takes them as usual.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The young deaths in a row a wait leaves counted (100 ms × 2^3 is past
/// [`WAIT_STEP`]).
const WAIT_YOUNG: u32 = 3;

/// The longest delay between two retries while waiting such a cause out:
/// short, so a port freed is taken within half a second (a start costs
/// little next to a second of outage); bounded by [`PATIENCE`].
pub const WAIT_STEP: Duration = Duration::from_millis(500);

/// What classification said of a failure: its severity and, when its cause
/// is plainly transient (a well-known phrase such as "address already in
/// use" in its last output line), that phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub severity: Severity,
    pub waits_on: Option<&'static str>,
}

impl From<Severity> for Verdict {
    fn from(severity: Severity) -> Verdict {
        Verdict {
            severity,
            waits_on: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Respawn the command after `delay`; `of` 0: a retry that counts
    /// against no budget (a plainly transient cause waited out).
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
    /// Since when young deaths of a plainly transient cause are waited out.
    pub waiting_since: Option<Instant>,
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
            waiting_since: None,
        }
    }

    /// Decide what follows a failure after a run of `uptime`. `draws` are
    /// two uniform numbers in [0, 1): the retry lottery and the jitter.
    pub fn on_failure(
        &mut self,
        policy: &RecoveryPolicy,
        cause: Cause,
        classified: impl Into<Verdict>,
        uptime: Duration,
        now: Instant,
        draws: [f64; 2],
    ) -> Decision {
        let verdict = classified.into();
        let classified = verdict.severity;
        let k = self.young.record(uptime, policy.min_uptime);
        if let Some(d) = self.wait_out(policy, &cause, verdict, (k, uptime), now, draws[1]) {
            return d;
        }
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
        decision(self.give_up(policy, classified, now), notes)
    }

    /// CRITICAL: the breaker opens, the fallback (or nothing) runs. A cause
    /// that needs a person is tried again after retry_primary; one that
    /// became CRITICAL by repetition may clear soon.
    fn give_up(&mut self, policy: &RecoveryPolicy, classified: Severity, now: Instant) -> Action {
        let first = match classified {
            Severity::Critical => policy.retry_primary,
            _ => FIRST_TRIAL.min(policy.retry_primary),
        };
        let until = self.breaker.trip(now, first, policy.retry_primary);
        if policy.has_fallback {
            Action::Fallback {
                retry_primary_at: until,
            }
        } else {
            Action::Quarantine { until }
        }
    }

    /// A young death whose cause is plainly transient, within [`PATIENCE`]
    /// of the first of its streak and outside a half-open trial: retried
    /// after the young-death backoff capped at [`WAIT_STEP`], with no
    /// escalation and no budget used. `run`: the young deaths in a row
    /// before this one (None: it was not young) and the run's length.
    /// None: the ladder decides as usual.
    fn wait_out(
        &mut self,
        policy: &RecoveryPolicy,
        cause: &Cause,
        verdict: Verdict,
        run: (Option<u32>, Duration),
        now: Instant,
        draw: f64,
    ) -> Option<Decision> {
        let (k, uptime) = run;
        let (Some(phrase), Some(k)) = (verdict.waits_on, k) else {
            self.waiting_since = None;
            return None;
        };
        let since = *self.waiting_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= PATIENCE || !self.breaker.is_closed() {
            return None;
        }
        self.risk.on_failure(now, verdict.severity);
        self.risk.on_exit(uptime);
        let delay = policy.backoff.delay(k, 0.0, draw).min(WAIT_STEP);
        // The deaths waited out do not stretch the delays of the ladder
        // that follows the wait: it starts where WAIT_STEP was reached.
        self.young.cap(WAIT_YOUNG);
        // They count for escalation, so once the wait is over the ladder
        // escalates as for any run of failures.
        self.escalation.record(now, verdict.severity);
        let left = PATIENCE - now.saturating_duration_since(since);
        let note = format!(
            "\"{phrase}\" is plainly transient: waiting it out ({} more without escalation)",
            super::text::fmt_duration(left)
        );
        Some(Decision {
            cause: cause.clone(),
            classified: verdict.severity,
            severity: verdict.severity,
            escalation: None,
            notes: vec![note],
            action: Action::Retry {
                delay,
                attempt: 0,
                of: 0,
            },
            risk: self.risk.value(now),
        })
    }

    /// The service stayed up (and ready) for `reset_after` after a failure:
    /// the recovery worked, the stage budgets start over.
    pub fn settled(&mut self) {
        self.retries = 0;
        self.restarts = 0;
        self.young.clear();
        self.escalation.clear();
        self.waiting_since = None;
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

#[cfg(test)]
mod tests;
