//! One service's lifecycle as a sans-IO state machine: the primary process,
//! its fallback and its cleanup command.
//!
//! [`Service::on_event`] takes the time, one [`Event`] (a process spawned or
//! exited, a probe result, a timer, a control request, a word from the tree)
//! and the shared [`Context`] (random draws, the correlation window), and
//! returns the [`Action`]s the runtime carries out: spawn, signal, timers,
//! probes, records for the event journal, replies. Every transition of the
//! primary, the fallback and the cleanup happens here and nowhere else. The
//! machine never reads a clock, touches a process or draws a random number
//! of its own; pids are plain numbers, and OS handles stay in the runtime.
//!
//! A request that makes no sense in the current state gets a defined answer:
//! it is applied after the current step (`start` during a cleanup starts the
//! primary once the cleanup ends; `start` while stopping starts it once it
//! is down), answered at once, or answered with why it waits (a dependency).
//! Never a second primary, never a client left waiting.

mod io;
mod lifecycle;
mod logs;
mod prestart;
mod probes;
use prestart::PreStartEnd;
mod recovery;
mod reload;
mod requests;
mod sla;
#[cfg(test)]
pub(super) mod tests;

use std::time::{Duration, Instant};

use super::classify::{Cause, Rule};
use super::correlation::Correlation;
use super::limits::{Limits, Watch};
use super::orchestrator::{Decision, Ladder, RecoveryPolicy};
use super::policy::{RestartPolicy, Severity};
use super::probe::{Latency, Tracker};
use super::restart::ExitStatus;
use super::risk::{Conditions, Level, next_level};
use super::rng::Rng;

pub use io::{
    Action, Event, Exit, LogReport, LogTrouble, Notify, ProbeResult, Record, Reply, Role, Target,
    Timer, Verb,
};
pub use logs::LogCondition;

pub type Pid = i32;
/// Identifies a control request waiting for its answer.
pub type Ticket = u64;

/// One probe's timing and thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub interval: Duration,
    pub initial_delay: Duration,
    /// None: adaptive.
    pub timeout: Option<Duration>,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// Readiness by sd_notify `READY=1` rather than a check.
    pub notify: bool,
}

/// What the machine needs of a service's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub restart: RestartPolicy,
    pub min_uptime: Duration,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub recovery: RecoveryPolicy,
    pub escalation: (u32, Duration),
    pub rules: Vec<Rule>,
    /// The cleanup command's time limit, when there is one.
    pub cleanup: Option<Duration>,
    /// The `pre_start` command's time limit, when there is one.
    pub pre_start: Option<Duration>,
    /// `sla.availability`: the share (0–1) of the last hour to be up.
    pub sla: Option<f64>,
    /// An `on_event` hook is configured.
    pub hooks: bool,
    /// `type: forking`: the process started is a launcher.
    pub forking: bool,
    /// Liveness, readiness, startup (by [`ProbeKind`]).
    pub probes: [Option<ProbeConfig>; 3],
    pub watchdog: Option<Duration>,
    pub start_timeout: Option<Duration>,
    /// `recovery.fallback.overlap`: a primary on trial starts beside the
    /// fallback instead of after it.
    pub overlap: bool,
    /// `limits:`: exceeding one is a failure.
    pub limits: Limits,
}

/// The primary's lifecycle; data lives in the variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Not started yet: waiting for the tree (dependencies) to let it go.
    Waiting,
    Running {
        pid: Pid,
        since: Instant,
    },
    /// Waiting to respawn after an exit that was not a failure.
    Backoff {
        until: Instant,
    },
    /// Recovery: waiting to respawn the command.
    Retrying {
        until: Instant,
    },
    /// Recovery: the cleanup command runs (see [`Service::cleanup`]), then
    /// the primary starts at `start_at`.
    Restarting {
        start_at: Instant,
    },
    /// The breaker is open until `until`; the fallback may run meanwhile.
    Quarantined {
        until: Instant,
    },
    Stopping {
        /// The unreaped leader; `None` once it exited and only other members
        /// of its group are left.
        pid: Option<Pid>,
        pgid: Pid,
        since: Instant,
        then: Then,
        /// The stop timeout passed and the group was SIGKILLed.
        killed: bool,
    },
    Stopped,
    /// Ended and, by its restart policy, not restarted.
    Exited,
    /// Could not run and nothing will retry it.
    Failed {
        reason: String,
    },
}

/// What follows once a stopping service is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    Stay,
    /// Start again once the tree allows.
    Start,
    /// The root gave up: fallback or quarantine.
    Quarantine,
}

/// The fallback command's lifecycle, beside the primary's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fallback {
    Off,
    Running {
        pid: Pid,
        since: Instant,
        stopping: bool,
    },
    /// It ended; started again at `until`.
    Respawn {
        until: Instant,
    },
    /// Stopped: its leader exited, other members of its group live on.
    Remnants {
        pgid: Pid,
    },
}

/// What all machines share: random draws (two sources, so the retry
/// lottery's sequence does not depend on how many jitter draws came
/// before), the correlated-failure window and whether sentineld is
/// shutting down.
#[derive(Debug)]
pub struct Context {
    pub lottery: Rng,
    pub jitter: Rng,
    pub correlation: Correlation,
    pub shutting_down: bool,
}

impl Context {
    pub fn new(seed: u64) -> Context {
        Context {
            lottery: Rng::new(seed),
            jitter: Rng::new(seed ^ 0x5DEE_CE66_D1CE_5EED),
            correlation: Correlation::new(Duration::from_secs(1)),
            shutting_down: false,
        }
    }
}

/// A probe's bookkeeping.
#[derive(Debug, Clone)]
pub struct ProbeTrack {
    pub config: ProbeConfig,
    pub tracker: Tracker,
    pub latency: Latency,
    in_flight: bool,
}

/// Counters for status and metrics.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// By severity.
    pub failures: [u64; 3],
    /// By action (retry, restart, fallback, quarantine).
    pub actions: [u64; 4],
    /// By severity, then action: which remedy each kind of failure got.
    pub remedies: [[u64; 4]; 3],
    /// Retries and restarts taken.
    pub attempts: u64,
    /// Of those, how many were followed by `reset_after` up (and ready).
    pub successes: u64,
    /// Episodes from a first failure to a recovery.
    pub recovered: u64,
    /// Summed time from first failure to the start of the run that recovered.
    pub recovery_time: Duration,
    /// That time of the last recovery.
    pub last_recovery: Option<Duration>,
    /// The first failure not yet recovered from.
    pub episode: Option<Instant>,
    attempt_pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Up,
    Down,
    Reset,
}

/// One service's machine.
#[derive(Debug)]
pub struct Service {
    pub index: usize,
    pub config: Config,
    pub phase: Phase,
    pub fallback: Fallback,
    /// The cleanup command's process, while it runs.
    pub cleanup: Option<Pid>,
    pub ladder: Ladder,
    pub probes: [Option<ProbeTrack>; 3],
    /// `None` without a readiness check; else whether it passes now.
    pub ready: Option<bool>,
    /// The startup probe passed (or there is none).
    pub started_ok: bool,
    /// Primary spawns so far.
    pub generation: u64,
    pub last_exit: Option<(ExitStatus, Instant)>,
    pub last_failure: Option<(Decision, Instant)>,
    /// The LAST column: `exit 1: transient → retry 2/3 in 400ms`.
    pub summary: Option<String>,
    pub stats: Stats,
    /// Running, over the last hour and day.
    pub running: super::availability::Availability,
    /// Running and ready (where there is a readiness check): what the SLA
    /// is about.
    pub availability: super::availability::Availability,
    /// The last hour's availability is below the SLA (said once).
    sla_missed: bool,
    pub level: Level,
    /// Why the tree holds it (while `Waiting`), and whether it is blocked.
    pub held: Option<(String, bool)>,
    pub notify_status: Option<String>,
    /// Its output is held back: the log file cannot be written.
    pub log_condition: Option<LogCondition>,
    /// The primary's resource samples in its current run (status, limits).
    pub resources: Watch,
    fallback_young: super::backoff::YoungDeaths,
    /// The primary was killed because a probe judged it dead: its exit is
    /// this failure, not whatever status the kill produced.
    pending_cause: Option<(Cause, String)>,
    /// A restart waiting for the tree's word, with its extra delay.
    pending_restart: Option<(super::orchestrator::Action, Duration)>,
    /// Spawns asked for and not yet answered, by role.
    spawning: [bool; 4],
    /// The `pre_start` command's process, while it runs; whether it timed
    /// out or was called off (a stop), so its exit starts nothing.
    pre_start: Option<(Pid, PreStartEnd)>,
    /// The `pre_start` command passed: the next spawn is the primary's.
    pre_started: bool,
    /// A start came while a called-off `pre_start` was still running.
    pre_start_again: bool,
    /// A liveness or readiness probe passed in the primary's current run.
    probe_passed: bool,
    /// A half-open trial waits for the fallback to be gone (it holds what
    /// the primary needs, its port say): see [`Service::fallback_in_the_way`].
    handover: bool,
    /// Ask the tree whether it may start.
    wants_start: bool,
    /// The running primary is a forking service's launcher.
    launching: bool,
    /// Its launcher exited 0: the runtime is finding the daemon.
    adopting: bool,
    timers: [Option<Instant>; Timer::COUNT],
    waiters: Vec<(Ticket, Want)>,
    out: Vec<Action>,
}

/// The kinds of record that run a service's `on_event` hook.
const HOOKED: &[&str] = &[
    "failure",
    "fallback",
    "quarantine",
    "recovered",
    "reset",
    "sla",
];

impl Service {
    pub fn new(index: usize, config: Config) -> Service {
        let probes = config.probes.clone().map(|p| {
            p.map(|config| ProbeTrack {
                tracker: Tracker::new(config.success_threshold, config.failure_threshold),
                config,
                latency: Latency::default(),
                in_flight: false,
            })
        });
        let ladder = Ladder::new(super::escalation::Escalation::new(
            config.escalation.0,
            config.escalation.1,
        ));
        Service {
            index,
            config,
            phase: Phase::Waiting,
            fallback: Fallback::Off,
            cleanup: None,
            ladder,
            probes,
            ready: None,
            started_ok: true,
            generation: 0,
            last_exit: None,
            last_failure: None,
            summary: None,
            stats: Stats::default(),
            running: Default::default(),
            availability: Default::default(),
            sla_missed: false,
            level: Level::Healthy,
            held: None,
            notify_status: None,
            log_condition: None,
            resources: Watch::default(),
            fallback_young: Default::default(),
            pending_cause: None,
            pending_restart: None,
            spawning: [false; 4],
            pre_start: None,
            pre_started: false,
            pre_start_again: false,
            probe_passed: false,
            handover: false,
            wants_start: true,
            launching: false,
            adopting: false,
            timers: [None; Timer::COUNT],
            waiters: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Feed one event; returns what to do.
    pub fn on_event(&mut self, now: Instant, event: Event, ctx: &mut Context) -> Vec<Action> {
        match event {
            Event::Go => self.go(now, ctx),
            Event::Held { why, blocked } => self.hold(why, blocked),
            Event::Spawned { role, pid } => self.spawned(role, pid, now),
            Event::SpawnFailed {
                role,
                errno,
                message,
            } => self.spawn_failed(role, errno, message, now, ctx),
            Event::Exited { pid, exit } => self.primary_exited(pid, exit, now, ctx),
            Event::Adopted { pid } => self.adopted(pid, now),
            Event::AdoptFailed { why } => self.adopt_failed(why, now, ctx),
            Event::GroupGone => self.group_gone(now, ctx),
            Event::FallbackExited {
                pid,
                status,
                group_alive,
            } => {
                let how = (status, group_alive);
                self.fallback_exited(pid, how, now, ctx)
            }
            Event::FallbackGroupGone => self.fallback_group_gone(now, ctx),
            Event::CleanupExited { pid, status } => self.cleanup_exited(pid, status, now, ctx),
            Event::PreStartExited {
                pid,
                status,
                output,
            } => self.pre_start_exited(pid, status, &output, now, ctx),
            Event::Probe(result) => self.probe_result(result, now),
            Event::Notify(n) => self.notify(n, now),
            Event::Timer(t) => self.timer(t, now, ctx),
            Event::Request(ticket, verb) => self.request(ticket, verb, now, ctx),
            Event::Proceed => self.proceed(now, ctx),
            Event::SiblingRestart { message } => self.sibling_restart(message, now, ctx),
            Event::RootGaveUp => self.root_gave_up(now, ctx),
            Event::Shutdown => self.shutdown(now, ctx),
            Event::Logs(report) => self.log_report(report, now),
            Event::Usage(usage) => self.usage(usage, now),
        }
        self.update_level(now);
        self.track_availability(now);
        self.settle();
        std::mem::take(&mut self.out)
    }

    /// No process of this service is left.
    pub fn is_down(&self) -> bool {
        !matches!(self.phase, Phase::Running { .. } | Phase::Stopping { .. })
            && self.cleanup.is_none()
            && self.pre_start.is_none()
            && !matches!(
                self.fallback,
                Fallback::Running { .. } | Fallback::Remnants { .. }
            )
    }

    /// The primary's pid while it runs or stops.
    pub fn primary_pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            Phase::Stopping { pid, .. } => pid,
            _ => None,
        }
    }

    pub fn fallback_pid(&self) -> Option<Pid> {
        match self.fallback {
            Fallback::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Whether the group led by `pid`, which just exited, is killed with
    /// it: a process of ours that ended on its own takes its group along
    /// (a primary or fallback being stopped leaves the rest their stop time).
    pub fn kills_group_on_exit(&self, pid: Pid, status: ExitStatus) -> bool {
        match (self.phase.clone(), self.fallback) {
            // A forking service's launcher leaves its daemon behind when it
            // succeeds; when it fails, what it started goes with it.
            (Phase::Running { pid: p, .. }, _) if p == pid => !self.launching || !status.success(),
            (
                _,
                Fallback::Running {
                    pid: p, stopping, ..
                },
            ) if p == pid => !stopping,
            _ => self.cleanup == Some(pid),
        }
    }

    /// The tree should be asked whether this service may start; cleared by
    /// the answer ([`Event::Go`] or [`Event::Held`]).
    pub fn wants_start(&self) -> bool {
        self.wants_start && self.phase == Phase::Waiting
    }

    /// When `timer` is due, if it is armed.
    pub fn timer_at(&self, timer: Timer) -> Option<Instant> {
        self.timers[timer.index()]
    }

    /// The next planned step, for status: what and when.
    pub fn next_step(&self) -> Option<(&'static str, Instant)> {
        match self.phase {
            Phase::Backoff { until } => Some(("start", until)),
            Phase::Retrying { until } => Some(("retry", until)),
            Phase::Restarting { .. } if self.cleanup.is_some() => {
                Some(("cleanup timeout", self.timer_at(Timer::Cleanup)?))
            }
            Phase::Restarting { start_at } => Some(("start", start_at)),
            Phase::Quarantined { until } => Some(("half-open trial", until)),
            _ => None,
        }
    }

    /// What the health level would be now, given the risk then.
    pub fn conditions(&self) -> Conditions {
        let failed_exit = matches!(self.last_exit, Some((s, _)) if !s.success());
        let fallback = matches!(self.fallback, Fallback::Running { .. });
        Conditions {
            quarantined: matches!(self.phase, Phase::Quarantined { .. }) && !fallback,
            degraded: fallback
                || (self.ready == Some(false) && matches!(self.phase, Phase::Running { .. }))
                || matches!(
                    self.phase,
                    Phase::Waiting | Phase::Stopping { .. } | Phase::Backoff { .. }
                ),
            down_after_failure: matches!(
                self.phase,
                Phase::Retrying { .. } | Phase::Restarting { .. } | Phase::Failed { .. }
            ) || (self.phase == Phase::Exited && failed_exit),
            logs_failing: self.log_condition.is_some(),
        }
    }

    fn update_level(&mut self, now: Instant) {
        self.level = next_level(self.level, self.ladder.risk.value(now), self.conditions());
    }

    fn set_timer(&mut self, timer: Timer, at: Instant) {
        self.timers[timer.index()] = Some(at);
        self.out.push(Action::SetTimer(timer, at));
    }

    fn cancel(&mut self, timer: Timer) {
        if self.timers[timer.index()].take().is_some() {
            self.out.push(Action::CancelTimer(timer));
        }
    }

    fn signal(&mut self, pid: Pid, signal: i32, target: Target) {
        self.out.push(Action::Signal {
            pid,
            signal,
            target,
        });
    }

    fn record(&mut self, kind: &'static str, message: String) {
        self.record_full(kind, message, None, None);
    }

    fn record_full(
        &mut self,
        kind: &'static str,
        message: String,
        severity: Option<Severity>,
        action: Option<&'static str>,
    ) {
        let hook = self.config.hooks && HOOKED.contains(&kind);
        self.out.push(Action::Record(Record {
            kind,
            message,
            severity,
            action,
            hook,
        }));
    }

    /// A timer fired: act on it if it is armed and due, else it is stale.
    fn timer(&mut self, timer: Timer, now: Instant, ctx: &mut Context) {
        match self.timers[timer.index()] {
            Some(at) if at <= now => self.timers[timer.index()] = None,
            _ => return,
        }
        match timer {
            Timer::Start => self.start_timer(now, ctx),
            Timer::Stop => self.stop_timeout(now),
            Timer::Fallback => self.spawn_fallback(ctx),
            Timer::FallbackStop => self.fallback_stop_timeout(now),
            Timer::Cleanup => self.cleanup_timeout(),
            Timer::Settled => self.settled(now),
            Timer::Recovered => self.recovered(now),
            Timer::Probe(kind) => self.run_probe(kind, now),
            Timer::Watchdog => self.watchdog_missed(),
            Timer::StartTimeout => self.start_timed_out(),
            Timer::PreStart => self.pre_start_timed_out(),
            Timer::Sla => self.check_sla(now),
        }
    }
}
