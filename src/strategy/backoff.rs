//! Delay before a respawn: `backoff × 2^k`, capped at `max_backoff`, times
//! `1/(1 − risk)` (capped), times `1 ± jitter`, never above `max_backoff`;
//! `k` counts consecutive young deaths ([`YoungDeaths`]). The one formula for
//! every respawn: a failure's retry or restart, an exit 0 under
//! `restart: always` ([`PLAIN`]), a crashed fallback.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffSpec {
    pub base: Duration,
    pub max: Duration,
    /// 0 ≤ jitter < 1.
    pub jitter: f64,
}

/// How much a high risk may stretch a delay.
pub const RISK_FACTOR_CAP: f64 = 4.0;

impl BackoffSpec {
    /// `k`: consecutive young deaths before this one (0 for the first);
    /// `draw`: a uniform random number in [0, 1).
    pub fn delay(&self, k: u32, risk: f64, draw: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << k.min(30)).min(self.max);
        let risk_factor = (1.0 / (1.0 - risk.clamp(0.0, 0.999))).min(RISK_FACTOR_CAP);
        let jitter = 1.0 + self.jitter * (2.0 * draw.clamp(0.0, 1.0) - 1.0);
        let secs = exp.as_secs_f64() * risk_factor * jitter;
        Duration::from_secs_f64(secs.max(0.0)).min(self.max)
    }
}

/// Respawning after an exit that is not a failure (exit 0 under
/// `restart: always`, a fallback that ended): no risk, no jitter.
pub const PLAIN: BackoffSpec = BackoffSpec {
    base: Duration::from_millis(100),
    max: Duration::from_secs(30),
    jitter: 0.0,
};

/// Consecutive runs shorter than `min_uptime`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct YoungDeaths(u32);

impl YoungDeaths {
    /// Record a run of `uptime`: `Some(k)` for the k-th young death in a row
    /// (from 0), the exponent of the next delay; `None` for a run long enough
    /// to respawn at once.
    pub fn record(&mut self, uptime: Duration, min_uptime: Duration) -> Option<u32> {
        if uptime >= min_uptime {
            self.0 = 0;
            return None;
        }
        self.0 = self.0.saturating_add(1);
        Some(self.0 - 1)
    }

    pub fn clear(&mut self) {
        self.0 = 0;
    }

    /// Count at most `n` young deaths in a row: later delays start from
    /// `backoff × 2^n` again.
    pub fn cap(&mut self, n: u32) {
        self.0 = self.0.min(n);
    }

    pub fn count(self) -> u32 {
        self.0
    }
}

impl BackoffSpec {
    /// The delay after a run of `uptime`, recorded in `young`.
    pub fn after_run(
        &self,
        young: &mut YoungDeaths,
        uptime: Duration,
        min_uptime: Duration,
        risk: f64,
        draw: f64,
    ) -> Duration {
        match young.record(uptime, min_uptime) {
            None => Duration::ZERO,
            Some(k) => self.delay(k, risk, draw),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPEC: BackoffSpec = BackoffSpec {
        base: Duration::from_millis(100),
        max: Duration::from_secs(30),
        jitter: 0.0,
    };

    #[test]
    fn doubles_and_caps() {
        assert_eq!(SPEC.delay(0, 0.0, 0.5), Duration::from_millis(100));
        assert_eq!(SPEC.delay(1, 0.0, 0.5), Duration::from_millis(200));
        assert_eq!(SPEC.delay(3, 0.0, 0.5), Duration::from_millis(800));
        assert_eq!(SPEC.delay(20, 0.0, 0.5), Duration::from_secs(30));
    }

    #[test]
    fn risk_stretches_the_delay() {
        let d = SPEC.delay(0, 0.5, 0.5);
        assert_eq!(d, Duration::from_millis(200));
        assert_eq!(SPEC.delay(0, 0.99, 0.5), Duration::from_millis(400));
    }

    #[test]
    fn jitter_bounds() {
        let spec = BackoffSpec {
            jitter: 0.2,
            ..SPEC
        };
        assert_eq!(spec.delay(0, 0.0, 0.0), Duration::from_millis(80));
        assert!((spec.delay(0, 0.0, 0.999_999).as_secs_f64() - 0.12).abs() < 1e-6);
    }

    #[test]
    fn young_deaths_count_runs_below_min_uptime_and_a_long_run_clears_them() {
        let min = Duration::from_secs(1);
        let mut y = YoungDeaths::default();
        let young = Duration::from_millis(10);
        let delays: Vec<u128> = (0..12)
            .map(|_| PLAIN.after_run(&mut y, young, min, 0.0, 0.5).as_millis())
            .collect();
        assert_eq!(&delays[..4], &[100, 200, 400, 800]);
        assert_eq!(delays[8], 25_600);
        assert_eq!(delays[9], 30_000);
        assert_eq!(delays[11], 30_000);
        assert_eq!(y.count(), 12);
        assert_eq!(
            PLAIN.after_run(&mut y, Duration::from_secs(5), min, 0.0, 0.5),
            Duration::ZERO
        );
        assert_eq!(y.count(), 0);
    }

    proptest! {
        #[test]
        fn never_above_the_cap(k in 0u32..100, risk in 0.0f64..1.0, draw in 0.0f64..1.0, jitter in 0.0f64..0.99,
                               base_ms in 1u64..10_000, max_ms in 1u64..100_000) {
            let spec = BackoffSpec { base: Duration::from_millis(base_ms), max: Duration::from_millis(max_ms), jitter };
            prop_assert!(spec.delay(k, risk, draw) <= spec.max);
        }
    }
}
