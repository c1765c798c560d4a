//! Webhook decisions: which events an endpoint wants, what an answer means
//! and how long to wait before the next try. The runtime
//! (`supervisor::webhooks`) sends; it decides nothing of this.

use std::time::Duration;

/// The kinds of event a webhook may ask for: every kind the journal
/// records. `quarantine` is a failure whose action is to quarantine.
pub const EVENT_KINDS: &[&str] = &[
    "failure",
    "recovered",
    "fallback",
    "quarantine",
    "reset",
    "started",
    "ready",
    "not ready",
    "exited",
    "stopping",
    "stopped",
    "cleanup",
    "trial",
    "probe",
    "hook",
    "logs",
    "tree",
    "reload",
];

/// What an endpoint gets when its `events` are not given: the events that
/// run an `on_event` hook.
pub const DEFAULT_EVENTS: &[&str] = &["failure", "fallback", "quarantine", "recovered", "reset"];

/// Tries after the first one fails.
pub const RETRIES: u32 = 3;

/// The wait before the first retry; each next one doubles.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

/// Each wait is stretched or shrunk by up to this fraction.
pub const JITTER: f64 = 0.2;

/// Whether an endpoint that asked for `events` wants an event of `kind`
/// whose action (if a failure) is `action`.
pub fn wants(events: &[String], kind: &str, action: Option<&str>) -> bool {
    events
        .iter()
        .any(|e| e == kind || (e == "quarantine" && kind == "failure" && action == Some(e)))
}

/// The wait before retry number `retry` (0 for the first):
/// `FIRST_RETRY × 2^retry × (1 ± JITTER)`; `draw` is uniform in [0, 1).
pub fn retry_delay(retry: u32, draw: f64) -> Duration {
    let base = FIRST_RETRY.saturating_mul(1u32 << retry.min(16));
    let jitter = 1.0 + JITTER * (2.0 * draw.clamp(0.0, 1.0) - 1.0);
    Duration::from_secs_f64(base.as_secs_f64() * jitter)
}

/// What became of one try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx or 3xx: delivered.
    Sent,
    /// 4xx: the endpoint refuses this request; sending it again would not help.
    Refused,
    /// 5xx, a connection error or a timeout: worth another try.
    Retry,
}

impl Outcome {
    /// What an HTTP answer's status means; none (no answer) is a retry.
    pub fn of(status: Option<u16>) -> Outcome {
        match status {
            Some(200..=399) => Outcome::Sent,
            Some(400..=499) => Outcome::Refused,
            _ => Outcome::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(kinds: &[&str]) -> Vec<String> {
        kinds.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_the_listed_kinds_are_wanted() {
        let events = list(&["failure", "recovered"]);
        assert!(wants(&events, "failure", Some("retry")));
        assert!(wants(&events, "recovered", None));
        assert!(!wants(&events, "started", None));
        assert!(!wants(&events, "reload", None));
    }

    #[test]
    fn quarantine_is_a_failure_that_quarantines() {
        let events = list(&["quarantine"]);
        assert!(wants(&events, "failure", Some("quarantine")));
        assert!(!wants(&events, "failure", Some("restart")));
        assert!(wants(&events, "quarantine", None));
    }

    #[test]
    fn the_defaults_are_known_kinds() {
        for k in DEFAULT_EVENTS {
            assert!(EVENT_KINDS.contains(k), "{k}");
        }
    }

    #[test]
    fn retries_wait_one_two_four_seconds_within_the_jitter() {
        let mid: Vec<f64> = (0..RETRIES)
            .map(|r| retry_delay(r, 0.5).as_secs_f64())
            .collect();
        assert_eq!(mid, [1.0, 2.0, 4.0]);
        assert!((retry_delay(0, 0.0).as_secs_f64() - 0.8).abs() < 1e-9);
        assert!((retry_delay(2, 0.999_999).as_secs_f64() - 4.8).abs() < 1e-4);
        assert!(retry_delay(99, 0.5) <= Duration::from_secs(1 << 16));
    }

    #[test]
    fn answers_decide_whether_to_try_again() {
        assert_eq!(Outcome::of(Some(200)), Outcome::Sent);
        assert_eq!(Outcome::of(Some(302)), Outcome::Sent);
        assert_eq!(Outcome::of(Some(404)), Outcome::Refused);
        assert_eq!(Outcome::of(Some(429)), Outcome::Refused);
        assert_eq!(Outcome::of(Some(500)), Outcome::Retry);
        assert_eq!(Outcome::of(Some(503)), Outcome::Retry);
        assert_eq!(Outcome::of(None), Outcome::Retry);
    }
}
