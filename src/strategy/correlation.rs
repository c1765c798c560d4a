//! Correlated failures: how many other services failed within a short window
//! (1 s) before this one, and how far to stagger its restart so that an
//! upstream outage does not bring every dependent back at the same instant.
//!
//! Owns only the recent failures. Never reads the clock (`now` comes in) and
//! never draws a random number (the stagger's draw comes in). The cost per
//! failure is O(1) amortized however many services fail at once: a burst of
//! 10,000 must not turn every failure into a scan of the others.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Failures this close together count as one incident.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct Correlation {
    window: Duration,
    /// Failures within the window, oldest first.
    recent: VecDeque<(Instant, usize)>,
    /// How many entries of `recent` each service has; its keys are the
    /// distinct services that failed within the window.
    per_service: HashMap<usize, u32>,
}

impl Default for Correlation {
    fn default() -> Self {
        Correlation::new(DEFAULT_WINDOW)
    }
}

impl Correlation {
    pub fn new(window: Duration) -> Correlation {
        Correlation {
            window,
            recent: VecDeque::new(),
            per_service: HashMap::new(),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Record a failure of `service` at `now`. Returns how many other
    /// distinct services failed within the window before it; a failure
    /// exactly `window` old still counts.
    pub fn on_failure(&mut self, now: Instant, service: usize) -> usize {
        self.forget_older_than_window(now);
        let others = self.per_service.len() - usize::from(self.per_service.contains_key(&service));
        self.recent.push_back((now, service));
        *self.per_service.entry(service).or_insert(0) += 1;
        others
    }

    fn forget_older_than_window(&mut self, now: Instant) {
        while let Some(&(at, service)) = self.recent.front()
            && now.saturating_duration_since(at) > self.window
        {
            self.recent.pop_front();
            if let Some(n) = self.per_service.get_mut(&service) {
                *n -= 1;
                if *n == 0 {
                    self.per_service.remove(&service);
                }
            }
        }
    }
}

/// Correlated failures: when `others` other services failed within the last
/// second (an upstream outage, say), spread this service's start uniformly
/// over up to `others × 100ms`, at most 2 s, instead of restarting them all
/// at once. Below two others there is nothing to spread.
pub fn stagger(others: usize, draw: f64) -> Option<Duration> {
    if others < 2 {
        return None;
    }
    let window = (others as f64 * 0.1).min(2.0);
    Some(Duration::from_secs_f64(window * draw.clamp(0.0, 1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn counts_distinct_other_services_within_the_window() {
        let t0 = Instant::now();
        let mut c = Correlation::default();
        assert_eq!(c.on_failure(t0, 7), 0);
        assert_eq!(c.on_failure(t0 + MS, 8), 1);
        assert_eq!(c.on_failure(t0 + 2 * MS, 9), 2);
    }

    #[test]
    fn the_service_itself_and_repeats_do_not_count() {
        let t0 = Instant::now();
        let mut c = Correlation::default();
        assert_eq!(c.on_failure(t0, 1), 0);
        assert_eq!(c.on_failure(t0 + MS, 1), 0);
        assert_eq!(c.on_failure(t0 + 2 * MS, 2), 1);
        assert_eq!(c.on_failure(t0 + 3 * MS, 2), 1);
        assert_eq!(c.on_failure(t0 + 4 * MS, 1), 1);
        assert_eq!(c.on_failure(t0 + 5 * MS, 3), 2);
    }

    #[test]
    fn failures_older_than_the_window_are_forgotten() {
        let t0 = Instant::now();
        let mut c = Correlation::default();
        c.on_failure(t0, 1);
        c.on_failure(t0 + 500 * MS, 2);
        // Exactly one window old still counts.
        assert_eq!(c.on_failure(t0 + 1000 * MS, 3), 2);
        // Service 1 has gone out of the window; 2 and 3 have not.
        assert_eq!(c.on_failure(t0 + 1001 * MS, 4), 2);
        assert_eq!(c.on_failure(t0 + 3000 * MS, 5), 0);
        assert_eq!(c.recent.len(), 1);
        assert_eq!(c.per_service.len(), 1);
    }

    #[test]
    fn a_repeat_keeps_a_service_in_the_window_until_its_last_failure_ages_out() {
        let t0 = Instant::now();
        let mut c = Correlation::new(Duration::from_secs(1));
        c.on_failure(t0, 1);
        c.on_failure(t0 + 800 * MS, 1);
        assert_eq!(c.on_failure(t0 + 1500 * MS, 2), 1);
        assert_eq!(c.on_failure(t0 + 1900 * MS, 3), 1);
    }

    #[test]
    fn a_burst_of_ten_thousand_services_is_counted_exactly() {
        let t0 = Instant::now();
        let mut c = Correlation::default();
        let n = 10_000;
        for s in 0..n {
            let at = t0 + Duration::from_micros(s as u64);
            assert_eq!(c.on_failure(at, s), s);
        }
        // The same services fail again: each sees all the others.
        for s in 0..n {
            let at = t0 + Duration::from_micros((n + s) as u64);
            assert_eq!(c.on_failure(at, s), n - 1);
        }
        assert_eq!(c.on_failure(t0 + Duration::from_secs(5), 0), 0);
        assert_eq!(c.recent.len(), 1);
    }

    #[test]
    fn correlated_failures_are_staggered() {
        assert_eq!(stagger(0, 0.5), None);
        assert_eq!(stagger(1, 0.5), None);
        assert_eq!(stagger(4, 0.5), Some(Duration::from_millis(200)));
        assert_eq!(stagger(100, 0.999_999_9).map(|d| d.as_millis()), Some(1999));
        assert!(stagger(100, 1.0).unwrap() <= Duration::from_secs(2));
    }
}
