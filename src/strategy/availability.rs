//! Availability: the share of the last hour and day a service was up.
//!
//! Pure: the machine tells it, at each event, whether the service is up
//! now; it keeps the down spells of the last day. A service that never went
//! down holds nothing. A flapping one holds at most [`MAX_SPELLS`] entries:
//! past that, the two oldest neighbours merge into one entry that spans both
//! and carries their summed downtime — exact inside the window, prorated
//! only for an entry that straddles its start.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub const HOUR: Duration = Duration::from_secs(3600);
pub const DAY: Duration = Duration::from_secs(24 * 3600);
/// Entries kept per service, at most.
pub const MAX_SPELLS: usize = 64;

/// Downtime `down` within [`from`, `to`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Spell {
    from: Instant,
    to: Instant,
    down: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct Availability {
    /// Since when the service is tracked (its first observation): the
    /// figures cover no more.
    since: Option<Instant>,
    /// Down now, since then.
    down_since: Option<Instant>,
    spells: VecDeque<Spell>,
}

impl Availability {
    /// Tracking starts at `now`, down (not started yet).
    pub fn new(now: Instant) -> Availability {
        Availability {
            since: Some(now),
            down_since: Some(now),
            spells: VecDeque::new(),
        }
    }

    /// Whether the service is up at `now`.
    pub fn observe(&mut self, now: Instant, up: bool) {
        if self.since.is_none() {
            self.since = Some(now);
            self.down_since = (!up).then_some(now);
            return;
        }
        match (self.down_since, up) {
            (Some(from), true) => {
                self.down_since = None;
                if now > from {
                    self.push(Spell {
                        from,
                        to: now,
                        down: now - from,
                    });
                }
            }
            (None, false) => self.down_since = Some(now),
            _ => {}
        }
        self.prune(now);
    }

    fn push(&mut self, spell: Spell) {
        self.spells.push_back(spell);
        if self.spells.len() > MAX_SPELLS {
            let a = self.spells.pop_front().expect("full");
            let b = self.spells.front_mut().expect("full");
            *b = Spell {
                from: a.from,
                to: b.to,
                down: a.down + b.down,
            };
        }
    }

    fn prune(&mut self, now: Instant) {
        while self
            .spells
            .front()
            .is_some_and(|s| now.saturating_duration_since(s.to) > DAY)
        {
            self.spells.pop_front();
        }
    }

    /// The share (0–1) of the last `window` the service was up; of the
    /// time since tracking began when that is shorter. None for no time.
    pub fn ratio(&self, now: Instant, window: Duration) -> Option<f64> {
        let since = self.since?;
        let start = now.checked_sub(window).unwrap_or(since).max(since);
        let span = now.saturating_duration_since(start);
        if span.is_zero() {
            return None;
        }
        let down = self.downtime(now, window);
        Some(1.0 - down.as_secs_f64() / span.as_secs_f64())
    }
}

/// The part of `s`'s downtime inside [`start`, `end`]: all of it when the
/// entry lies inside, a prorated share when it straddles `start`.
fn within(s: &Spell, start: Instant, end: Instant) -> Duration {
    if s.to <= start || s.from >= end {
        return Duration::ZERO;
    }
    if s.from >= start {
        return s.down;
    }
    let length = s.to.saturating_duration_since(s.from);
    let inside = s.to.saturating_duration_since(start);
    if length.is_zero() {
        return Duration::ZERO;
    }
    s.down.mul_f64(inside.as_secs_f64() / length.as_secs_f64())
}

impl Availability {
    /// Downtime within the last `window` (since tracking began, if later).
    pub fn downtime(&self, now: Instant, window: Duration) -> Duration {
        let Some(since) = self.since else {
            return Duration::ZERO;
        };
        let start = now.checked_sub(window).unwrap_or(since).max(since);
        let mut down = Duration::ZERO;
        for s in &self.spells {
            down += within(s, start, now);
        }
        if let Some(from) = self.down_since {
            down += now.saturating_duration_since(from.max(start));
        }
        down.min(now.saturating_duration_since(start))
    }

    /// An SLA of `target` (0–1) allows `(1 − target) × 1 h` down in any
    /// hour — its error budget (3.6 s at 99.9 %). Whether the last hour
    /// spent more: judged against the budget, not the share of a shorter
    /// time since start, so a service is not in breach for the moments
    /// before it first became ready.
    pub fn over_budget(&self, now: Instant, target: f64) -> bool {
        self.downtime(now, HOUR) > budget(target)
    }

    /// Downtime the last hour can still take at `now` before it is over
    /// budget, if it stays down: the earliest moment worth looking again
    /// (downtime leaving the window only adds to it).
    pub fn slack(&self, now: Instant, target: f64) -> Duration {
        budget(target).saturating_sub(self.downtime(now, HOUR))
    }
}

fn budget(target: f64) -> Duration {
    HOUR.mul_f64((1.0 - target).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_service_up_all_along_is_available_and_holds_nothing() {
        let t0 = Instant::now();
        let mut a = Availability::new(t0);
        a.observe(t0, true);
        assert_eq!(a.ratio(t0 + 10 * SEC, HOUR), Some(1.0));
        assert!(a.spells.is_empty());
        assert_eq!(a.ratio(t0, HOUR), None);
    }

    #[test]
    fn downtime_counts_in_the_windows_it_falls_in() {
        let t0 = Instant::now();
        let mut a = Availability::new(t0);
        a.observe(t0, true);
        // Down 36 s, 2 h into the day.
        let down = t0 + 2 * HOUR;
        a.observe(down, false);
        a.observe(down + 36 * SEC, true);
        let now = down + 600 * SEC;
        assert_eq!(a.ratio(now, HOUR), Some(0.99));
        let day = a.ratio(now, DAY).unwrap();
        let span = (2 * HOUR + 600 * SEC).as_secs_f64();
        assert!((day - (1.0 - 36.0 / span)).abs() < 1e-9, "{day}");
        // An hour later, the last hour was all up; the day still has it.
        assert_eq!(a.ratio(now + HOUR, HOUR), Some(1.0));
        assert!(a.ratio(now + HOUR, DAY).unwrap() < 1.0);
        // A day later it is gone, and so is its entry.
        a.observe(now + DAY, true);
        assert_eq!(a.ratio(now + DAY, DAY), Some(1.0));
        assert!(a.spells.is_empty());
    }

    #[test]
    fn down_now_counts_up_to_now() {
        let t0 = Instant::now();
        let mut a = Availability::new(t0);
        a.observe(t0, true);
        a.observe(t0 + 50 * SEC, false);
        assert_eq!(a.ratio(t0 + 100 * SEC, HOUR), Some(0.5));
        // Never started: down since tracking began.
        let b = Availability::new(t0);
        assert_eq!(b.ratio(t0 + 100 * SEC, HOUR), Some(0.0));
    }

    #[test]
    fn a_flapping_service_holds_a_bounded_record_and_the_same_total() {
        let t0 = Instant::now();
        let mut a = Availability::new(t0);
        let mut t = t0;
        // 1,000 cycles of 1 s down, 9 s up: 10 % down.
        for _ in 0..1000 {
            t += SEC;
            a.observe(t, true);
            t += 9 * SEC;
            a.observe(t, false);
        }
        assert!(a.spells.len() <= MAX_SPELLS);
        let day = a.ratio(t, DAY).unwrap();
        // 1,000 s down in 10,000 s, plus the second down now (0 s long).
        assert!((day - 0.9).abs() < 1e-6, "{day}");
        // The hour: prorated at its start only, so close to 90 %.
        let hour = a.ratio(t, HOUR).unwrap();
        assert!((hour - 0.9).abs() < 0.01, "{hour}");
    }

    #[test]
    fn the_sla_is_judged_against_the_hours_error_budget() {
        let t0 = Instant::now();
        let mut a = Availability::new(t0);
        // Down 2 s before it first comes up: 0 % of those 2 s, but well
        // within the 36 s an hour that 99 % allows.
        a.observe(t0 + 2 * SEC, true);
        assert!(!a.over_budget(t0 + 2 * SEC, 0.99));
        assert_eq!(a.slack(t0 + 2 * SEC, 0.99), 34 * SEC);
        a.observe(t0 + 600 * SEC, false);
        let now = t0 + 600 * SEC;
        assert_eq!(a.slack(now, 0.99), 34 * SEC);
        assert!(!a.over_budget(now + 34 * SEC, 0.99));
        assert!(a.over_budget(now + 35 * SEC, 0.99));
        assert_eq!(a.downtime(now + 35 * SEC, HOUR), 37 * SEC);
    }
}
