//! The transition matrix and the machine's invariants.
//!
//! [`Rt`] is a fake runtime: it answers `Spawn` with `Spawned` (a fresh
//! pid) and `AskTree` with `Proceed` at once, answers a service that wants
//! to start with what its [`Gate`] says, records every action and reply,
//! and keeps the processes it spawned alive until a test makes them exit.
//! No processes, no clock: `now` only moves when a test moves it.
//!
//! - `tests/phases.rs`: one builder per phase and a one-line summary of an
//!   outcome;
//! - `tests/matrix.rs`: every phase × every event;
//! - `tests/requests.rs`: control requests that make no sense in the
//!   current state, spawn failures, probes;
//! - `tests/logs.rs`: what the log writer's reports do;
//! - `tests/props.rs`: random event sequences against the invariants.

mod limits;
mod logs;
mod matrix;
mod phases;
mod prestart;
mod props;
mod requests;
mod sla;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::super::backoff::BackoffSpec;
use super::super::orchestrator::RecoveryPolicy;
use super::super::policy::RestartPolicy;
use super::super::probe::ProbeKind;
use super::super::restart::ExitStatus;
use super::{
    Action, Config, Context, Event, Exit, Phase, Pid, ProbeConfig, ProbeResult, Reply, Role,
    Service, Ticket, Timer, Verb,
};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);

/// No probes, no fallback, no cleanup; `restart: always`, min_uptime 1s,
/// stop timeout 10s, 2 retries from 100ms (no jitter), 2 restarts, the
/// primary retried after 60s, escalation out of reach.
pub(in crate::strategy) fn config() -> Config {
    Config {
        name: "api".into(),
        restart: RestartPolicy::Always,
        min_uptime: SEC,
        stop_signal: libc::SIGTERM,
        stop_timeout: 10 * SEC,
        recovery: RecoveryPolicy {
            retry_attempts: 2,
            backoff: BackoffSpec {
                base: 100 * MS,
                max: 30 * SEC,
                jitter: 0.0,
            },
            restart_attempts: 2,
            has_fallback: false,
            retry_primary: 60 * SEC,
            min_uptime: SEC,
            reset_after: 60 * SEC,
        },
        escalation: (100, 60 * SEC),
        rules: Vec::new(),
        cleanup: None,
        pre_start: None,
        sla: None,
        hooks: false,
        forking: false,
        probes: [None, None, None],
        watchdog: None,
        start_timeout: None,
        overlap: false,
        limits: Default::default(),
    }
}

fn with_fallback(mut c: Config) -> Config {
    c.recovery.has_fallback = true;
    c
}

/// A cleanup command with a 5s limit.
fn with_cleanup(mut c: Config) -> Config {
    c.cleanup = Some(5 * SEC);
    c
}

/// Liveness every 5s after 2s, one miss kills; readiness by `READY=1`.
pub(in crate::strategy) fn with_probes(mut c: Config) -> Config {
    let probe = |notify| ProbeConfig {
        interval: 5 * SEC,
        initial_delay: 2 * SEC,
        timeout: Some(SEC),
        success_threshold: 1,
        failure_threshold: 1,
        notify,
    };
    c.probes[ProbeKind::Liveness as usize] = Some(probe(false));
    c.probes[ProbeKind::Readiness as usize] = Some(probe(true));
    c
}

fn with_restart(mut c: Config, policy: RestartPolicy) -> Config {
    c.restart = policy;
    c
}

/// Fallback, cleanup and probes.
fn full() -> Config {
    with_probes(with_cleanup(with_fallback(config())))
}

/// What the tree answers a service that wants to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Go,
    /// Waiting for a dependency that may still come.
    Held,
    /// Its dependency failed for good.
    Blocked,
}

/// The fake runtime around one machine.
struct Rt {
    svc: Service,
    ctx: Context,
    now: Instant,
    gate: Gate,
    /// Answer `AskTree` with `RootGaveUp` instead of `Proceed`.
    give_up: bool,
    /// The next spawn of this role fails with `fail_errno` (ENOENT unless
    /// a test says otherwise).
    fail_next: Option<Role>,
    fail_errno: i32,
    next_pid: Pid,
    /// Every process spawned, by pid.
    roles: BTreeMap<Pid, Role>,
    /// The processes spawned and not yet exited.
    alive: BTreeMap<Pid, Role>,
    /// Probes run and not yet answered: (kind, generation).
    probes: Vec<(ProbeKind, u64)>,
    /// The actions of the last [`Rt::feed`], follow-ups included.
    last: Vec<Action>,
    /// Every action so far.
    log: Vec<Action>,
    next_ticket: Ticket,
    replies: BTreeMap<Ticket, Reply>,
}

impl Rt {
    fn new(config: Config) -> Rt {
        Rt {
            svc: Service::new(0, config),
            ctx: Context::new(7),
            now: Instant::now(),
            gate: Gate::Go,
            give_up: false,
            fail_next: None,
            fail_errno: libc::ENOENT,
            next_pid: 100,
            roles: BTreeMap::new(),
            alive: BTreeMap::new(),
            probes: Vec::new(),
            last: Vec::new(),
            log: Vec::new(),
            next_ticket: 1,
            replies: BTreeMap::new(),
        }
    }

    /// Ask the tree, as the system does for a new service.
    fn begin(&mut self) {
        let event = self.gate_event();
        self.feed(event);
    }

    fn gate_event(&self) -> Event {
        let why = "waiting for db (started)".to_string();
        match self.gate {
            Gate::Go => Event::Go,
            Gate::Held => Event::Held {
                why,
                blocked: false,
            },
            Gate::Blocked => Event::Held {
                why: "blocked: waiting for db (exit 1)".into(),
                blocked: true,
            },
        }
    }

    /// Feed `event` and everything the runtime answers at once.
    fn feed(&mut self, event: Event) {
        self.last.clear();
        let mut queue = VecDeque::from([event]);
        while let Some(e) = queue.pop_front() {
            for action in self.svc.on_event(self.now, e, &mut self.ctx) {
                self.carry_out(&action, &mut queue);
                self.last.push(action);
            }
            if self.svc.wants_start() {
                queue.push_back(self.gate_event());
            }
        }
        self.log.extend(self.last.iter().cloned());
    }

    fn carry_out(&mut self, action: &Action, queue: &mut VecDeque<Event>) {
        match *action {
            Action::Spawn(role) if self.fail_next == Some(role) => {
                self.fail_next = None;
                queue.push_back(Event::SpawnFailed {
                    role,
                    errno: self.fail_errno,
                    message: std::io::Error::from_raw_os_error(self.fail_errno).to_string(),
                });
            }
            Action::Spawn(role) => {
                let pid = self.next_pid;
                self.next_pid += 1;
                self.roles.insert(pid, role);
                self.alive.insert(pid, role);
                queue.push_back(Event::Spawned { role, pid });
            }
            Action::AskTree if self.give_up => queue.push_back(Event::RootGaveUp),
            Action::AskTree => queue.push_back(Event::Proceed),
            Action::Reply(ticket, ref reply) => {
                assert!(
                    ticket < self.next_ticket,
                    "reply to unknown ticket {ticket}"
                );
                let before = self.replies.insert(ticket, reply.clone());
                assert!(
                    before.is_none(),
                    "ticket {ticket} answered twice: {reply:?}"
                );
            }
            Action::RunProbe {
                kind, generation, ..
            } => self.probes.push((kind, generation)),
            Action::CancelProbes => self.probes.clear(),
            _ => {}
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    /// The armed timer due first.
    fn next_timer(&self) -> Option<(Instant, Timer)> {
        let armed = TIMERS
            .into_iter()
            .filter_map(|t| Some((self.svc.timer_at(t)?, t)));
        armed.min()
    }

    /// Let time pass as the runtime does: every timer due by `until`
    /// fires, in order.
    fn run_until(&mut self, until: Instant) {
        while let Some((at, timer)) = self.next_timer()
            && at <= until
        {
            self.now = self.now.max(at);
            self.feed(Event::Timer(timer));
        }
        self.now = self.now.max(until);
    }

    /// Fire `timer` at its time (moving the clock there), or, when it is
    /// not armed, now: a stale timer.
    fn fire(&mut self, timer: Timer) {
        if let Some(at) = self.svc.timer_at(timer) {
            self.now = self.now.max(at);
        }
        self.feed(Event::Timer(timer));
    }

    fn request(&mut self, verb: Verb) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.feed(Event::Request(ticket, verb));
        ticket
    }

    fn reply(&self, ticket: Ticket) -> Option<&Reply> {
        self.replies.get(&ticket)
    }

    /// Every ticket issued so far has its answer.
    fn all_answered(&self) -> bool {
        self.replies.len() as u64 == self.next_ticket - 1
    }

    fn shutdown(&mut self) {
        self.ctx.shutting_down = true;
        self.feed(Event::Shutdown);
    }

    /// The live process of `role`, else the last one there was (a stale
    /// pid), else one never used.
    fn pid(&self, role: Role) -> Pid {
        let of_role =
            |m: &BTreeMap<Pid, Role>| m.iter().rev().find(|(_, r)| **r == role).map(|(p, _)| *p);
        of_role(&self.alive)
            .or_else(|| of_role(&self.roles))
            .unwrap_or(1)
    }

    fn count_alive(&self, role: Role) -> usize {
        self.alive.values().filter(|r| **r == role).count()
    }

    /// The primary's leader ends with `status`.
    fn exit_primary(&mut self, status: ExitStatus, group_alive: bool) {
        let pid = self.pid(Role::Primary);
        self.alive.remove(&pid);
        let exit = Exit {
            status: Some(status),
            group_alive,
            ..Exit::default()
        };
        self.feed(Event::Exited { pid, exit });
    }

    fn exit_fallback(&mut self, status: ExitStatus) {
        self.exit_fallback_leader(status, false);
    }

    /// The fallback's leader ends; `group_alive`: other members live on.
    fn exit_fallback_leader(&mut self, status: ExitStatus, group_alive: bool) -> Pid {
        let pid = self.pid(Role::Fallback);
        self.alive.remove(&pid);
        self.feed(Event::FallbackExited {
            pid,
            status,
            group_alive,
        });
        pid
    }

    fn exit_pre_start(&mut self, status: ExitStatus, output: &str) {
        let pid = self.pid(Role::PreStart);
        self.alive.remove(&pid);
        let output = output.as_bytes().to_vec();
        self.feed(Event::PreStartExited {
            pid,
            status,
            output,
        });
    }

    fn exit_cleanup(&mut self, status: ExitStatus) {
        let pid = self.pid(Role::Cleanup);
        self.alive.remove(&pid);
        self.feed(Event::CleanupExited { pid, status });
    }

    /// Answer the oldest probe in flight, or send a result nobody asked
    /// for (the liveness probe of the current generation).
    fn probe(&mut self, ok: bool) {
        let (kind, generation) = match self.probes.is_empty() {
            true => (ProbeKind::Liveness, self.svc.generation),
            false => self.probes.remove(0),
        };
        self.feed(Event::Probe(ProbeResult {
            kind,
            generation,
            ok,
            latency: 5 * MS,
            output: if ok { "ok".into() } else { "refused".into() },
        }));
    }

    /// The spawns of the last feed.
    fn spawned(&self) -> Vec<Role> {
        let spawns = self.last.iter().filter_map(|a| match a {
            Action::Spawn(role) => Some(*role),
            _ => None,
        });
        spawns.collect()
    }

    /// The pid the primary runs as, when it runs.
    fn running_pid(&self) -> Option<Pid> {
        match self.svc.phase {
            Phase::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

const TIMERS: [Timer; Timer::COUNT] = [
    Timer::Start,
    Timer::Stop,
    Timer::Fallback,
    Timer::FallbackStop,
    Timer::Cleanup,
    Timer::Settled,
    Timer::Recovered,
    Timer::Probe(ProbeKind::Liveness),
    Timer::Probe(ProbeKind::Readiness),
    Timer::Probe(ProbeKind::Startup),
    Timer::Watchdog,
    Timer::StartTimeout,
    Timer::PreStart,
    Timer::Sla,
];

const EXIT_0: ExitStatus = ExitStatus::Code(0);
const EXIT_1: ExitStatus = ExitStatus::Code(1);
/// Critical by the default table (sysexits EX_CONFIG).
const EXIT_78: ExitStatus = ExitStatus::Code(78);
const SEGV: ExitStatus = ExitStatus::Signal(libc::SIGSEGV);

#[test]
fn stats_count_each_remedy_by_severity_and_keep_the_last_recovery_time() {
    let mut rt = Rt::new(config());
    rt.begin();
    rt.advance(5 * SEC);
    rt.exit_primary(EXIT_1, false);
    rt.advance(5 * SEC);
    rt.exit_primary(SEGV, false);
    let s = &rt.svc.stats;
    assert_eq!(s.remedies, [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]);
    assert_eq!((s.failures, s.actions), ([1, 1, 0], [1, 1, 0, 0]));
    assert_eq!(s.last_recovery, None);
    let until = rt.now + 120 * SEC;
    rt.run_until(until);
    let s = &rt.svc.stats;
    assert_eq!(s.recovered, 1);
    assert_eq!(s.last_recovery, Some(s.recovery_time));
    assert!(s.recovery_time >= 5 * SEC, "{:?}", s.recovery_time);
}
