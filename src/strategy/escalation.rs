//! Pattern escalation: `failures` failures within `within` raise the
//! severity one level. Memory is bounded by `failures` timestamps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::classify::Severity;

#[derive(Debug, Clone)]
pub struct Escalation {
    failures: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

/// The severity after escalation, and why it changed (for the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalated {
    pub severity: Severity,
    pub reason: Option<String>,
}

impl Escalation {
    pub fn new(failures: u32, within: Duration) -> Escalation {
        Escalation {
            failures: failures.max(1),
            within,
            // Grows with the failures it holds: a plan of 10,000 services
            // allowing 1,000 failures each does not reserve 10 million
            // slots for services that never fail.
            recent: VecDeque::new(),
        }
    }

    /// New settings (a reload); the failures seen so far still count.
    pub fn retune(&mut self, failures: u32, within: Duration) {
        self.failures = failures.max(1);
        self.within = within;
    }

    /// Record a failure at `now` and return its possibly raised severity.
    pub fn record(&mut self, now: Instant, severity: Severity) -> Escalated {
        while let Some(&first) = self.recent.front() {
            if now.saturating_duration_since(first) > self.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() == self.failures as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        let count = self.recent.len() as u32;
        if count >= self.failures && severity < Severity::Critical {
            let span = now.saturating_duration_since(*self.recent.front().expect("non-empty"));
            let raised = severity.raised();
            Escalated {
                severity: raised,
                reason: Some(format!(
                    "escalated to {raised}: {count} failures in {}",
                    fmt_secs(span)
                )),
            }
        } else {
            Escalated {
                severity,
                reason: None,
            }
        }
    }

    /// Forget the history (a service that has been healthy long enough).
    pub fn clear(&mut self) {
        self.recent.clear();
    }
}

fn fmt_secs(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}s", d.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_in_the_window_escalates() {
        let t0 = Instant::now();
        let mut e = Escalation::new(5, Duration::from_secs(60));
        for i in 0..4 {
            let r = e.record(t0 + Duration::from_secs(i * 10), Severity::Transient);
            assert_eq!(r.severity, Severity::Transient);
            assert_eq!(r.reason, None);
        }
        let r = e.record(t0 + Duration::from_secs(42), Severity::Transient);
        assert_eq!(r.severity, Severity::Recoverable);
        assert_eq!(
            r.reason.as_deref(),
            Some("escalated to recoverable: 5 failures in 42s")
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let t0 = Instant::now();
        let mut e = Escalation::new(3, Duration::from_secs(10));
        e.record(t0, Severity::Transient);
        e.record(t0 + Duration::from_secs(1), Severity::Transient);
        let r = e.record(t0 + Duration::from_secs(20), Severity::Transient);
        assert_eq!(r.severity, Severity::Transient);
    }

    #[test]
    fn critical_stays_critical_and_never_lowers() {
        let t0 = Instant::now();
        let mut e = Escalation::new(1, Duration::from_secs(10));
        let r = e.record(t0, Severity::Critical);
        assert_eq!(r.severity, Severity::Critical);
        let r = e.record(t0, Severity::Recoverable);
        assert_eq!(r.severity, Severity::Critical);
    }
}
