//! Availability and the SLA: after every event the machine notes whether
//! the service is up (its primary running, and ready where it has a
//! readiness check); a service with `sla.availability` gets a `sla` event
//! (and its hook) when the last hour's figure falls below the target, and
//! another once it is met again. While it stays down, a timer looks again
//! when the figure would cross the target.

use std::time::{Duration, Instant};

use super::super::availability::HOUR;
use super::super::text::fmt_duration;
use super::{Phase, Service, Timer};

/// How often a service back up after a breach looks whether the SLA is met.
const RECHECK: Duration = Duration::from_secs(60);

impl Service {
    /// Up for availability: running, and ready if it has a readiness check.
    pub fn is_up(&self) -> bool {
        matches!(self.phase, Phase::Running { .. }) && self.ready != Some(false)
    }

    pub(super) fn track_availability(&mut self, now: Instant) {
        let up = self.is_up();
        self.availability.observe(now, up);
        let running = matches!(self.phase, Phase::Running { .. });
        self.running.observe(now, running);
        self.check_sla(now);
    }

    pub(super) fn check_sla(&mut self, now: Instant) {
        let Some(target) = self.config.sla else {
            return;
        };
        let Some(ratio) = self.availability.ratio(now, HOUR) else {
            return;
        };
        let percent = |x: f64| format!("{:.3}%", x * 100.0);
        match (self.availability.over_budget(now, target), self.sla_missed) {
            (true, false) => {
                self.sla_missed = true;
                let down = self.availability.downtime(now, HOUR);
                let text = format!(
                    "availability {} over the last hour, below the SLA of {}: down {}, more than the {} an hour it allows",
                    percent(ratio),
                    percent(target),
                    fmt_duration(down),
                    fmt_duration(HOUR.mul_f64(1.0 - target)),
                );
                self.record("sla", text);
            }
            (false, true) => {
                self.sla_missed = false;
                let text = format!(
                    "availability {} over the last hour, the SLA of {} is met again",
                    percent(ratio),
                    percent(target)
                );
                self.record("sla", text);
            }
            _ => {}
        }
        self.cancel(Timer::Sla);
        match (self.is_up(), self.sla_missed) {
            (false, false) => {
                let slack = self.availability.slack(now, target);
                let at = now + slack.max(Duration::from_secs(1)) + Duration::from_millis(1);
                self.set_timer(Timer::Sla, at);
            }
            // Back up after a breach: the figure climbs; look each minute.
            (true, true) => self.set_timer(Timer::Sla, now + RECHECK),
            _ => {}
        }
    }
}
