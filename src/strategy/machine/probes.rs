//! When probes run and what their results mean: startup first, then
//! liveness and readiness; thresholds decide; a failed liveness or startup
//! probe, a missed watchdog or a start timeout kills the primary and its
//! exit is then that failure. sd_notify messages land here too.

use std::time::{Duration, Instant};

use super::super::classify::Cause;
use super::super::limits::Usage;
use super::super::probe::{Change, ProbeKind};
use super::super::text::{fmt_duration, one_line};
use super::{Action, Fallback, Notify, Phase, ProbeResult, Service, Target, Timer};

impl Service {
    /// A new primary process: its probes start from scratch.
    pub(super) fn start_probes(&mut self, now: Instant) {
        self.pending_cause = None;
        self.notify_status = None;
        self.resources.reset();
        self.ready = self.config.probes[ProbeKind::Readiness as usize]
            .as_ref()
            .map(|_| false);
        self.started_ok = self.config.probes[ProbeKind::Startup as usize].is_none();
        for p in self.probes.iter_mut().flatten() {
            p.tracker.reset();
            p.in_flight = false;
        }
        if self.started_ok {
            self.schedule_after_startup(now);
        } else {
            let delay = self.probe_config_delay(ProbeKind::Startup);
            self.set_timer(Timer::Probe(ProbeKind::Startup), now + delay);
        }
        if let Some(w) = self.config.watchdog {
            self.set_timer(Timer::Watchdog, now + w);
        }
        if let Some(t) = self.config.start_timeout
            && self.ready.is_some()
        {
            self.set_timer(Timer::StartTimeout, now + t);
        }
    }

    fn probe_config_delay(&self, kind: ProbeKind) -> Duration {
        self.probes[kind as usize]
            .as_ref()
            .map_or(Duration::ZERO, |p| p.config.initial_delay)
    }

    fn schedule_after_startup(&mut self, now: Instant) {
        for kind in [ProbeKind::Liveness, ProbeKind::Readiness] {
            if self.probes[kind as usize]
                .as_ref()
                .is_some_and(|p| !p.config.notify)
            {
                let delay = self.probe_config_delay(kind);
                self.set_timer(Timer::Probe(kind), now + delay);
            }
        }
    }

    /// The primary is gone or going: no more probes for it.
    pub(super) fn stop_probes(&mut self) {
        for kind in ProbeKind::ALL {
            self.cancel(Timer::Probe(kind));
        }
        self.cancel(Timer::Watchdog);
        self.cancel(Timer::StartTimeout);
        self.resources.reset();
        let mut in_flight = false;
        for p in self.probes.iter_mut().flatten() {
            in_flight |= std::mem::take(&mut p.in_flight);
        }
        if in_flight {
            self.out.push(Action::CancelProbes);
        }
    }

    pub(super) fn run_probe(&mut self, kind: ProbeKind, now: Instant) {
        if !matches!(self.phase, Phase::Running { .. }) {
            return;
        }
        let generation = self.generation;
        let Some(p) = self.probes[kind as usize].as_mut() else {
            return;
        };
        let interval = p.config.interval;
        if p.in_flight {
            // Never overlap with itself: try again after one more interval.
            self.set_timer(Timer::Probe(kind), now + interval);
            return;
        }
        p.in_flight = true;
        let timeout = p
            .config
            .timeout
            .unwrap_or_else(|| p.latency.adaptive_timeout(interval));
        self.out.push(Action::RunProbe {
            kind,
            generation,
            timeout,
        });
    }

    pub(super) fn probe_result(&mut self, r: ProbeResult, now: Instant) {
        let current = r.generation == self.generation;
        let running = matches!(self.phase, Phase::Running { .. });
        // A primary on trial beside its fallback (`overlap`) may share its
        // port: an answer may be the fallback's, so it judges nothing.
        let beside = self.config.overlap
            && !self.ladder.breaker.is_closed()
            && matches!(self.fallback, Fallback::Running { .. })
            && r.kind != ProbeKind::Startup;
        let Some(p) = self.probes[r.kind as usize].as_mut() else {
            return;
        };
        if !current || !p.in_flight || !running || self.pending_cause.is_some() {
            return;
        }
        p.in_flight = false;
        p.latency.record(r.latency);
        self.probe_passed |= r.ok && r.kind != ProbeKind::Startup;
        if beside {
            // A pass lets the trial end (the fallback then goes); a miss
            // may be the fallback's answer and judges nothing.
            let next = now.checked_sub(r.latency).unwrap_or(now) + p.config.interval;
            return self.set_timer(Timer::Probe(r.kind), next.max(now));
        }
        let change = p.tracker.record(r.ok);
        let failures = p.tracker.failures;
        let interval = p.config.interval;
        let output = one_line(&r.output);
        let lat = format!("{:.1}ms", r.latency.as_secs_f64() * 1000.0);
        let kind = r.kind;
        match (kind, change) {
            (ProbeKind::Startup, Change::Passed) => {
                self.started_ok = true;
                self.record("probe", format!("startup probe passed ({lat}): {output}"));
                return self.schedule_after_startup(now);
            }
            (ProbeKind::Startup, Change::Failed) => {
                let msg = format!("startup probe failed {failures} times (last: {output})");
                return self.kill_for(Cause::ReadinessTimeout, msg);
            }
            (ProbeKind::Liveness, Change::Failed) => {
                let msg = format!("liveness probe failed {failures} times (last: {output})");
                return self.kill_for(Cause::Liveness, msg);
            }
            (ProbeKind::Readiness, Change::Passed) => {
                let msg = format!("ready: readiness probe passed ({lat}): {output}");
                self.became_ready(msg, now);
            }
            (ProbeKind::Readiness, Change::Failed) => {
                self.ready = Some(false);
                self.cancel(Timer::Recovered);
                let msg =
                    format!("not ready: readiness probe failed {failures} times (last: {output})");
                self.record("not ready", msg);
            }
            _ if !r.ok => {
                let msg = format!("{} probe missed ({lat}): {output}", kind.name());
                self.record("probe", msg);
            }
            _ => {}
        }
        let started = now.checked_sub(r.latency).unwrap_or(now);
        self.set_timer(Timer::Probe(kind), (started + interval).max(now));
    }

    fn became_ready(&mut self, message: String, now: Instant) {
        self.ready = Some(true);
        self.cancel(Timer::StartTimeout);
        self.record("ready", message);
        self.watch_recovery(now);
    }

    /// The process is alive but judged dead: kill its group; the exit is
    /// then handled as `cause`.
    fn kill_for(&mut self, cause: Cause, message: String) {
        self.kill_recorded("probe", cause, message.clone(), message);
    }

    /// [`Service::kill_for`], recorded as `kind` with `said` (the failure
    /// that follows names `message`).
    fn kill_recorded(&mut self, kind: &'static str, cause: Cause, said: String, message: String) {
        let Phase::Running { pid, .. } = self.phase else {
            return;
        };
        self.stop_probes();
        self.cancel(Timer::Recovered);
        self.cancel(Timer::Settled);
        self.record(kind, format!("{said}; killing process group {pid}"));
        self.pending_cause = Some((cause, message));
        self.signal(pid, libc::SIGKILL, Target::Group);
    }

    /// A sample of the primary's process tree: kept for status, and a
    /// limit it breaches kills the primary; the exit is then that failure.
    pub(super) fn usage(&mut self, usage: Usage, now: Instant) {
        let running = matches!(self.phase, Phase::Running { .. });
        if !running || usage.generation != self.generation || self.pending_cause.is_some() {
            return;
        }
        let limits = self.config.limits;
        if let Some(breach) = self.resources.observe(&limits, now, usage) {
            let cause = Cause::Limit(breach.resource());
            let said = format!("{}: {}", cause.describe(), breach.detail());
            self.kill_recorded("limit", cause, said, breach.detail());
        }
    }

    pub(super) fn watchdog_missed(&mut self) {
        if let Some(w) = self.config.watchdog {
            let msg = format!("watchdog: no WATCHDOG=1 within {}", fmt_duration(w));
            self.kill_for(Cause::Liveness, msg);
        }
    }

    pub(super) fn start_timed_out(&mut self) {
        if self.ready != Some(true)
            && let Some(t) = self.config.start_timeout
        {
            let msg = format!("not ready within start_timeout ({})", fmt_duration(t));
            self.kill_for(Cause::ReadinessTimeout, msg);
        }
    }

    pub(super) fn notify(&mut self, n: Notify, now: Instant) {
        if !matches!(self.phase, Phase::Running { .. }) || self.pending_cause.is_some() {
            return;
        }
        match n {
            Notify::Ready => {
                let by_notify = self.probes[ProbeKind::Readiness as usize]
                    .as_ref()
                    .is_some_and(|p| p.config.notify);
                if by_notify && self.ready != Some(true) {
                    self.became_ready("ready: READY=1".into(), now);
                }
            }
            Notify::Watchdog => {
                if let Some(w) = self.config.watchdog {
                    self.set_timer(Timer::Watchdog, now + w);
                }
            }
            Notify::Status(text) => self.notify_status = Some(one_line(&text)),
        }
    }
}
