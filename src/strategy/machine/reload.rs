//! A reload's new configuration for a running service: what applies in
//! place, to the process that runs, and what waits for its next start.
//!
//! Counters, history, the breaker and the ladder stay. A probe whose
//! settings did not change keeps its thresholds' progress; a changed one
//! starts over, on its new interval; a removed one stops, an added one
//! starts (a new readiness probe makes the service not ready until it
//! passes). A restart (its command or environment changed) stops the
//! primary and starts it again with the new configuration.

use std::time::Instant;

use super::super::probe::ProbeKind;
use super::{Action, Config, Context, Phase, ProbeTrack, Service, Then, Timer};
use crate::strategy::probe::Tracker;

impl Service {
    /// Take `config`; with `restart`, the reason the running primary is
    /// stopped and started again.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        config: Config,
        restart: Option<String>,
        ctx: &mut Context,
    ) -> Vec<Action> {
        let old = std::mem::replace(&mut self.config, config);
        let (failures, within) = self.config.escalation;
        self.ladder.escalation.retune(failures, within);
        let running = matches!(self.phase, Phase::Running { .. });
        for kind in ProbeKind::ALL {
            let k = kind as usize;
            if old.probes[k] == self.config.probes[k] {
                continue;
            }
            self.cancel(Timer::Probe(kind));
            let in_flight = self.probes[k].as_ref().is_some_and(|p| p.in_flight);
            self.probes[k] = self.config.probes[k].clone().map(|config| ProbeTrack {
                tracker: Tracker::new(config.success_threshold, config.failure_threshold),
                config,
                latency: Default::default(),
                in_flight,
            });
            if kind == ProbeKind::Readiness {
                self.ready = match (&self.probes[k], self.ready) {
                    (None, _) => None,
                    (Some(_), Some(r)) => Some(r),
                    (Some(_), None) => Some(false),
                };
            }
            let probed = self.probes[k].as_ref().is_some_and(|p| !p.config.notify);
            let startup_over = kind != ProbeKind::Startup && self.started_ok;
            let startup_due = kind == ProbeKind::Startup && !self.started_ok;
            if running && probed && (startup_over || startup_due) {
                let interval = self.probes[k]
                    .as_ref()
                    .map_or(Default::default(), |p| p.config.interval);
                self.set_timer(Timer::Probe(kind), now + interval);
            }
        }
        if running && old.watchdog != self.config.watchdog {
            self.cancel(Timer::Watchdog);
            if let Some(w) = self.config.watchdog {
                self.set_timer(Timer::Watchdog, now + w);
            }
        }
        if let Some(reason) = restart
            && running
        {
            self.record("reload", reason);
            self.stop(Then::Start, now, ctx);
        }
        self.update_level(now);
        self.track_availability(now);
        self.settle();
        std::mem::take(&mut self.out)
    }
}
