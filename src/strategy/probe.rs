//! Probe bookkeeping: thresholds (Kubernetes semantics) and the adaptive
//! timeout. Pure: results and latencies come in, transitions go out.

use std::time::Duration;

use super::risk::Ewma;

/// Which of a service's three probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Liveness = 0,
    Readiness = 1,
    Startup = 2,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Liveness,
        ProbeKind::Readiness,
        ProbeKind::Startup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
    }
}

/// Consecutive results against `success_threshold` / `failure_threshold`.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub successes: u32,
    pub failures: u32,
    /// `None` until a threshold has been reached once.
    pub passing: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The probe now passes (it did not before).
    Passed,
    /// The probe now fails (`failure_threshold` misses in a row).
    Failed,
    None,
}

impl Tracker {
    pub fn new(success_threshold: u32, failure_threshold: u32) -> Tracker {
        Tracker {
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            ..Tracker::default()
        }
    }

    pub fn record(&mut self, ok: bool) -> Change {
        if ok {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes >= self.success_threshold && self.passing != Some(true) {
                self.passing = Some(true);
                return Change::Passed;
            }
        } else {
            self.successes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= self.failure_threshold && self.passing != Some(false) {
                self.passing = Some(false);
                return Change::Failed;
            }
        }
        Change::None
    }

    /// A new process: start over.
    pub fn reset(&mut self) {
        self.successes = 0;
        self.failures = 0;
        self.passing = None;
    }
}

/// EWMA of probe latency and of its absolute deviation.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub mean: Ewma,
    pub deviation: Ewma,
}

pub const MIN_ADAPTIVE: Duration = Duration::from_millis(100);

impl Latency {
    pub fn record(&mut self, latency: Duration) {
        let x = latency.as_secs_f64();
        let dev = self.mean.get().map_or(0.0, |m| (x - m).abs());
        self.mean.update(x);
        self.deviation.update(dev);
    }

    /// Mean + 2.33 deviations: the 99th percentile of a normal distribution.
    pub fn p99(&self) -> Option<Duration> {
        let m = self.mean.get()?;
        let d = self.deviation.get().unwrap_or(0.0);
        Some(Duration::from_secs_f64(m + 2.33 * d))
    }

    /// `timeout: adaptive`: clamp(3 × p99, 100ms, interval); the interval
    /// itself until there is a sample.
    pub fn adaptive_timeout(&self, interval: Duration) -> Duration {
        match self.p99() {
            None => interval,
            Some(p) => p
                .saturating_mul(3)
                .clamp(MIN_ADAPTIVE.min(interval), interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.record(true), Change::None);
        assert_eq!(t.record(true), Change::Passed);
        assert_eq!(t.record(true), Change::None);
        assert_eq!(t.record(false), Change::None);
        assert_eq!(t.record(false), Change::None);
        assert_eq!(
            t.record(true),
            Change::None,
            "a success breaks the run of misses"
        );
        for _ in 0..2 {
            assert_eq!(t.record(false), Change::None);
        }
        assert_eq!(t.record(false), Change::Failed);
        assert_eq!(t.record(false), Change::None, "reported once");
        assert_eq!(t.record(true), Change::None);
        assert_eq!(t.record(true), Change::Passed);
    }

    #[test]
    fn failing_from_the_start() {
        let mut t = Tracker::new(1, 2);
        assert_eq!(t.record(false), Change::None);
        assert_eq!(t.record(false), Change::Failed);
    }

    #[test]
    fn adaptive_timeout_is_clamped() {
        let interval = Duration::from_secs(1);
        let mut l = Latency::default();
        assert_eq!(l.adaptive_timeout(interval), interval);
        l.record(Duration::from_millis(2));
        assert_eq!(l.adaptive_timeout(interval), MIN_ADAPTIVE);
        for _ in 0..50 {
            l.record(Duration::from_millis(200));
        }
        let t = l.adaptive_timeout(interval);
        assert!(t >= Duration::from_millis(600) && t <= interval, "{t:?}");
        for _ in 0..50 {
            l.record(Duration::from_secs(2));
        }
        assert_eq!(l.adaptive_timeout(interval), interval);
    }
}
