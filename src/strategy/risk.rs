//! Continuous risk and health, per service, O(1) memory and time per event.
//!
//! Failure momentum: `m ← m · decay^(Δt / 1s) + w(severity)` with w = 0.2 /
//! 0.4 / 1.0 and decay 0.95; `risk = 1 − e^(−m)`, in [0, 1). EWMAs (α = 0.2)
//! of the failure rate, of uptimes and of probe latency are kept beside it.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::classify::Severity;

pub const DECAY_PER_SEC: f64 = 0.95;
pub const ALPHA: f64 = 0.2;

pub fn weight(severity: Severity) -> f64 {
    match severity {
        Severity::Transient => 0.2,
        Severity::Recoverable => 0.4,
        Severity::Critical => 1.0,
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Ewma {
    value: Option<f64>,
}

impl Ewma {
    pub fn update(&mut self, sample: f64) {
        self.value = Some(match self.value {
            None => sample,
            Some(v) => ALPHA * sample + (1.0 - ALPHA) * v,
        });
    }

    pub fn get(&self) -> Option<f64> {
        self.value
    }
}

#[derive(Debug, Clone, Default)]
pub struct Risk {
    momentum: f64,
    at: Option<Instant>,
    last_failure: Option<Instant>,
    /// Failures per minute.
    pub failure_rate: Ewma,
    /// Seconds a process lived before it ended.
    pub uptime: Ewma,
}

impl Risk {
    pub fn on_failure(&mut self, now: Instant, severity: Severity) {
        self.momentum = self.momentum_at(now) + weight(severity);
        self.at = Some(now);
        if let Some(prev) = self.last_failure {
            let gap = now.saturating_duration_since(prev).as_secs_f64().max(0.001);
            self.failure_rate.update(60.0 / gap);
        }
        self.last_failure = Some(now);
    }

    pub fn on_exit(&mut self, uptime: Duration) {
        self.uptime.update(uptime.as_secs_f64());
    }

    fn momentum_at(&self, now: Instant) -> f64 {
        match self.at {
            None => 0.0,
            Some(at) => {
                let dt = now.saturating_duration_since(at).as_secs_f64();
                self.momentum * DECAY_PER_SEC.powf(dt)
            }
        }
    }

    /// Risk in [0, 1) at `now`.
    pub fn value(&self, now: Instant) -> f64 {
        1.0 - (-self.momentum_at(now)).exp()
    }

    pub fn reset(&mut self) {
        *self = Risk::default();
    }
}

/// Health levels, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Healthy,
    Degraded,
    Critical,
    Quarantined,
}

pub const DEGRADED_AT: f64 = 0.3;
pub const CRITICAL_AT: f64 = 0.7;
pub const HYSTERESIS: f64 = 0.1;

/// What the runtime knows besides risk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conditions {
    pub quarantined: bool,
    /// The fallback runs, or readiness fails.
    pub degraded: bool,
    /// Not running because of failures (waiting to retry, failed).
    pub down_after_failure: bool,
    /// Its output is held back: the log file cannot be written.
    pub logs_failing: bool,
}

/// The next health level. A risk-driven level is left only once risk is
/// `HYSTERESIS` below the level's threshold, so health does not flap.
pub fn next_level(prev: Level, risk: f64, c: Conditions) -> Level {
    if c.quarantined {
        return Level::Quarantined;
    }
    let mut by_risk = if risk >= CRITICAL_AT {
        Level::Critical
    } else if risk >= DEGRADED_AT {
        Level::Degraded
    } else {
        Level::Healthy
    };
    if prev == Level::Critical && risk >= CRITICAL_AT - HYSTERESIS {
        by_risk = Level::Critical;
    }
    if prev >= Level::Degraded && by_risk < Level::Degraded && risk >= DEGRADED_AT - HYSTERESIS {
        by_risk = Level::Degraded;
    }
    let floor = if c.down_after_failure {
        Level::Critical
    } else if c.degraded || c.logs_failing {
        Level::Degraded
    } else {
        Level::Healthy
    };
    by_risk.max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn momentum_decays_and_accumulates() {
        let t0 = Instant::now();
        let mut r = Risk::default();
        assert_eq!(r.value(t0), 0.0);
        r.on_failure(t0, Severity::Critical);
        let v0 = r.value(t0);
        assert!((v0 - (1.0 - (-1.0f64).exp())).abs() < 1e-9);
        let later = t0 + Duration::from_secs(10);
        let expected = 1.0 - (-(0.95f64.powi(10))).exp();
        assert!((r.value(later) - expected).abs() < 1e-9);
        r.on_failure(later, Severity::Transient);
        assert!(r.value(later) > expected);
    }

    #[test]
    fn failure_rate_ewma() {
        let t0 = Instant::now();
        let mut r = Risk::default();
        r.on_failure(t0, Severity::Transient);
        r.on_failure(t0 + Duration::from_secs(30), Severity::Transient);
        assert_eq!(r.failure_rate.get(), Some(2.0));
        r.on_failure(t0 + Duration::from_secs(40), Severity::Transient);
        assert!((r.failure_rate.get().unwrap() - (0.2 * 6.0 + 0.8 * 2.0)).abs() < 1e-9);
    }

    #[test]
    fn levels_with_hysteresis() {
        let c = Conditions::default();
        assert_eq!(next_level(Level::Healthy, 0.29, c), Level::Healthy);
        assert_eq!(next_level(Level::Healthy, 0.3, c), Level::Degraded);
        assert_eq!(next_level(Level::Degraded, 0.25, c), Level::Degraded);
        assert_eq!(next_level(Level::Degraded, 0.19, c), Level::Healthy);
        assert_eq!(next_level(Level::Degraded, 0.7, c), Level::Critical);
        assert_eq!(next_level(Level::Critical, 0.65, c), Level::Critical);
        assert_eq!(next_level(Level::Critical, 0.59, c), Level::Degraded);
        assert_eq!(next_level(Level::Critical, 0.1, c), Level::Healthy);
    }

    #[test]
    fn conditions_set_a_floor() {
        let q = Conditions {
            quarantined: true,
            ..Default::default()
        };
        assert_eq!(next_level(Level::Healthy, 0.0, q), Level::Quarantined);
        let d = Conditions {
            degraded: true,
            ..Default::default()
        };
        assert_eq!(next_level(Level::Healthy, 0.0, d), Level::Degraded);
        let down = Conditions {
            down_after_failure: true,
            ..Default::default()
        };
        assert_eq!(next_level(Level::Healthy, 0.0, down), Level::Critical);
    }

    #[test]
    fn output_held_back_is_at_least_degraded() {
        let logs = Conditions {
            logs_failing: true,
            ..Default::default()
        };
        let cases = [
            (Level::Healthy, 0.0, logs, Level::Degraded),
            (Level::Critical, 0.8, logs, Level::Critical),
            (
                Level::Healthy,
                0.0,
                Conditions {
                    quarantined: true,
                    ..logs
                },
                Level::Quarantined,
            ),
            // Over: healthy again at once when no risk is behind it.
            (Level::Degraded, 0.0, Conditions::default(), Level::Healthy),
        ];
        for (prev, risk, c, want) in cases {
            assert_eq!(next_level(prev, risk, c), want, "{prev:?} {risk} {c:?}");
        }
    }

    proptest! {
        #[test]
        fn risk_stays_in_unit_interval(events in proptest::collection::vec((0u64..100_000, 0usize..3), 0..200)) {
            let t0 = Instant::now();
            let mut r = Risk::default();
            let mut t = t0;
            for (gap_ms, sev) in events {
                t += Duration::from_millis(gap_ms);
                r.on_failure(t, Severity::ALL[sev]);
                let v = r.value(t);
                prop_assert!((0.0..1.0).contains(&v), "{v}");
            }
        }
    }
}
