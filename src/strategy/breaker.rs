//! The quarantine circuit breaker: CLOSED → OPEN (primary not run) →
//! HALF-OPEN (primary on trial) → CLOSED, or OPEN again with a longer
//! cooldown.
//!
//! The schedule fits the cause: the first cooldown is short when the
//! failure became CRITICAL by repetition (a condition that may clear in
//! seconds: a port still held, a backend not up yet) and `retry_primary`
//! when the cause itself needs a person (a bad configuration). Each failed
//! trial doubles it, up to `retry_primary` first, then past it up to one
//! hour: a condition that clears in seconds is back in seconds, a hard
//! failure costs few trials.

use std::time::{Duration, Instant};

pub const MAX_COOLDOWN: Duration = Duration::from_secs(3600);

/// The first cooldown after a failure that became CRITICAL by repetition:
/// on the order of the retry backoff (capped at `retry_primary`).
pub const FIRST_TRIAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Breaker {
    #[default]
    Closed,
    Open {
        until: Instant,
        cooldown: Duration,
    },
    HalfOpen {
        cooldown: Duration,
    },
}

impl Breaker {
    /// Open it: from CLOSED with `first`, from HALF-OPEN (the trial failed)
    /// with twice the last cooldown — capped at `retry_primary` while below
    /// it, at an hour past it. Returns when the primary is tried again.
    pub fn trip(&mut self, now: Instant, first: Duration, retry_primary: Duration) -> Instant {
        let cooldown = match *self {
            Breaker::Closed => first.min(MAX_COOLDOWN),
            Breaker::HalfOpen { cooldown } | Breaker::Open { cooldown, .. } => {
                let cap = if cooldown < retry_primary {
                    retry_primary
                } else {
                    MAX_COOLDOWN
                };
                cooldown.saturating_mul(2).min(cap).min(MAX_COOLDOWN)
            }
        };
        let until = now + cooldown;
        *self = Breaker::Open { until, cooldown };
        until
    }

    /// OPEN whose cooldown has passed becomes HALF-OPEN: true means "start
    /// the primary on trial now".
    pub fn poll(&mut self, now: Instant) -> bool {
        match *self {
            Breaker::Open { until, cooldown } if now >= until => {
                *self = Breaker::HalfOpen { cooldown };
                true
            }
            _ => false,
        }
    }

    /// The trial passed (or an operator reset it).
    pub fn close(&mut self) {
        *self = Breaker::Closed;
    }

    pub fn is_closed(&self) -> bool {
        *self == Breaker::Closed
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Breaker::Closed => "closed",
            Breaker::Open { .. } => "open",
            Breaker::HalfOpen { .. } => "half-open",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn open_half_open_closed() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let until = b.trip(t0, Duration::from_secs(60), Duration::from_secs(60));
        assert_eq!(until, t0 + Duration::from_secs(60));
        assert!(!b.poll(t0 + Duration::from_secs(59)));
        assert!(b.poll(t0 + Duration::from_secs(60)));
        assert_eq!(
            b,
            Breaker::HalfOpen {
                cooldown: Duration::from_secs(60)
            }
        );
        b.close();
        assert!(b.is_closed());
    }

    #[test]
    fn a_failed_trial_doubles_the_cooldown_up_to_an_hour() {
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let mut cooldowns = Vec::new();
        let mut now = t0;
        for _ in 0..10 {
            let until = b.trip(now, Duration::from_secs(60), Duration::from_secs(60));
            cooldowns.push(until - now);
            now = until;
            assert!(b.poll(now));
        }
        assert_eq!(cooldowns[0], Duration::from_secs(60));
        assert_eq!(cooldowns[1], Duration::from_secs(120));
        assert_eq!(cooldowns[5], Duration::from_secs(1920));
        assert_eq!(cooldowns[6], MAX_COOLDOWN);
        assert_eq!(cooldowns[9], MAX_COOLDOWN);
    }

    #[test]
    fn a_short_first_cooldown_grows_to_retry_primary_then_past_it() {
        let secs = Duration::from_secs;
        let t0 = Instant::now();
        let mut b = Breaker::default();
        let mut now = t0;
        let mut cooldowns = Vec::new();
        for _ in 0..8 {
            let until = b.trip(now, secs(1), secs(10));
            cooldowns.push((until - now).as_secs());
            now = until;
            assert!(b.poll(now));
        }
        assert_eq!(cooldowns, [1, 2, 4, 8, 10, 20, 40, 80]);
    }

    #[test]
    fn a_first_cooldown_of_retry_primary_doubles_from_there() {
        let secs = Duration::from_secs;
        let mut b = Breaker::default();
        let t0 = Instant::now();
        let first = b.trip(t0, secs(10), secs(10));
        assert_eq!(first - t0, secs(10));
        assert!(b.poll(first));
        assert_eq!(b.trip(first, secs(10), secs(10)) - first, secs(20));
    }

    proptest! {
        #[test]
        fn cooldown_doubles_and_caps(base_s in 1u64..10_000, trials in 1usize..30) {
            let t0 = Instant::now();
            let mut b = Breaker::default();
            let mut prev: Option<Duration> = None;
            let mut now = t0;
            for _ in 0..trials {
                let until = b.trip(now, Duration::from_secs(base_s), Duration::from_secs(base_s));
                let c = until - now;
                prop_assert!(c <= MAX_COOLDOWN);
                if let Some(p) = prev {
                    prop_assert_eq!(c, (p * 2).min(MAX_COOLDOWN));
                }
                prev = Some(c);
                now = until;
                b.poll(now);
            }
        }
    }
}
