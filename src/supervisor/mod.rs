//! The runtime: one event loop on the main thread owns every service's state.
//!
//! Inputs: SIGCHLD (→ the reaper), timers (backoff ends, stop deadlines,
//! cooldowns), control requests, and SIGTERM/SIGINT (→ stop everything).
//! Outputs: forks, signals to process groups, events. The loop never blocks
//! on I/O other than its own sockets; logs are written by the log thread
//! ([`logs`]). What to do about a failure is decided by [`crate::strategy`];
//! [`recovery`] carries the decision out.
//!
//! Signals go only to processes that are provably ours: an unreaped child
//! (its pid cannot be reused until we reap it) or a process group whose
//! leader is an unreaped child. The one exception is a stop whose leader
//! exited while other members of its group still run; see [`Daemon::on_timer`].

pub mod logs;
mod probes;
pub mod reaper;
mod recovery;
pub mod registry;
pub mod spawn;
mod status;
mod tree;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::config::{Plan, ServiceSpec, units::suggest};
use crate::control::protocol::{ErrorKind, EventRecord, Request, Response, State};
use crate::control::server::{self, ControlSocket, Incoming, Reply};
use crate::strategy::classify::Rule;
use crate::strategy::orchestrator::{Decision, Ladder, RecoveryPolicy};
use crate::strategy::restart::{ExitStatus, RestartHistory};
use crate::strategy::risk::Level;
use crate::strategy::rng::Rng;
use crate::timefmt::{describe_exit, fmt_duration, format_time};

const EVENT_CAPACITY: usize = 1000;
/// How long adopted orphans get after SIGTERM at shutdown before SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the log thread: {0}")]
    Logs(std::io::Error),
    #[error("cannot create {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
}

/// What to do once a stopping service's processes are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    Stay,
    /// Start again once its dependencies allow.
    Start,
    /// The root gave up: fallback or quarantine.
    Quarantine,
}

/// The primary process's lifecycle. The fallback and the cleanup command
/// run beside it ([`Service::fallback`], [`Phase::Restarting`]).
enum Phase {
    /// Declared, not yet started.
    Starting,
    Running {
        pid: i32,
        since: Instant,
        since_wall: SystemTime,
        exec_status: OwnedFd,
    },
    /// Waiting to respawn after an exit that was not a failure.
    Backoff {
        until: Instant,
    },
    /// Recovery: waiting to respawn the command.
    Retrying {
        until: Instant,
    },
    /// Recovery: the cleanup command runs (`cleanup`), then start at `start_at`.
    Restarting {
        cleanup: Option<i32>,
        start_at: Instant,
    },
    /// The breaker is open until `until`; the fallback may run meanwhile.
    Quarantined {
        until: Instant,
    },
    Stopping {
        /// The unreaped leader; `None` once it exited and only other members
        /// of its group are left.
        pid: Option<i32>,
        pgid: i32,
        since: Instant,
        since_wall: SystemTime,
        then: AfterStop,
    },
    Stopped,
    /// Ended and, by its restart policy, not restarted.
    Exited,
    /// Could not run and nothing will retry it (restart: never).
    Failed {
        reason: String,
    },
}

/// A process that runs beside the primary: the fallback.
struct Aux {
    pid: i32,
    since: Instant,
    exec_status: OwnedFd,
    stopping: bool,
}

/// Timers a service can have pending, one of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    /// Backoff, retry, restart or cooldown ends: start the primary.
    Primary,
    /// Stop timeout of the primary: SIGKILL its group.
    Stop,
    /// Respawn a crashed fallback.
    Fallback,
    /// Stop timeout of the fallback.
    FallbackStop,
    /// The cleanup command's timeout.
    Cleanup,
    /// The primary has run `min_uptime`: a trial passed, a recovery succeeded.
    Settled,
    ProbeLiveness,
    ProbeReadiness,
    ProbeStartup,
    TimeoutLiveness,
    TimeoutReadiness,
    TimeoutStartup,
    /// No `WATCHDOG=1` in time.
    Watchdog,
    /// Not ready within `start_timeout`.
    StartTimeout,
}

const TIMER_KINDS: usize = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Primary,
    Fallback,
    Cleanup,
    Hook,
    Probe(probes::ProbeKind),
}

struct Service {
    spec: ServiceSpec,
    spawn: spawn::SpawnSpec,
    phase: Phase,
    /// Young-death backoff for exits that are not failures (exit 0 under
    /// `restart: always`), and for a crashing fallback.
    history: RestartHistory,
    fallback_history: RestartHistory,
    ladder: Ladder,
    policy: RecoveryPolicy,
    rules: Vec<Rule>,
    fallback: Option<Aux>,
    hook_running: bool,
    spawns: u64,
    last_exit: Option<(ExitStatus, SystemTime)>,
    last_failure: Option<(Decision, SystemTime)>,
    /// The LAST column: `exit 1: transient → retry 2/3 in 400ms`.
    summary: Option<String>,
    failures: [u64; 3],
    actions: [u64; 4],
    /// Since the first failure that is not yet recovered from.
    episode: Option<Instant>,
    recovered: u64,
    recovery_time: Duration,
    attempts: u64,
    successes: u64,
    /// A retry or restart whose outcome is not known yet.
    attempt_pending: bool,
    level: Level,
    timers: [Option<Instant>; TIMER_KINDS],
    log_pipes: Option<(OwnedFd, OwnedFd)>,
    /// Start time of the current leader, for the pgid registry.
    start_time: Option<u64>,
    /// Liveness, readiness, startup (by `ProbeKind`).
    probes: [Option<probes::ProbeState>; 3],
    /// `None` without a readiness probe; else whether it passes now.
    ready: Option<bool>,
    /// The startup probe passed (or there is none).
    started_ok: bool,
    /// The primary was killed by us because a probe judged it dead: its
    /// exit is this failure, not whatever status the kill produced.
    pending_cause: Option<(crate::strategy::classify::Cause, String)>,
    /// The last sd_notify `STATUS=`.
    notify_status: Option<String>,
    /// Waiting on a dependency that failed (kept current by status).
    blocked: bool,
}

impl Service {
    fn state(&self) -> State {
        match self.phase {
            Phase::Starting if self.blocked => State::Blocked,
            _ if self.fallback.as_ref().is_some_and(|f| !f.stopping)
                && !matches!(self.phase, Phase::Stopping { .. }) =>
            {
                State::Fallback
            }
            Phase::Starting => State::Starting,
            Phase::Running { .. } => State::Running,
            Phase::Backoff { .. } => State::Backoff,
            Phase::Retrying { .. } => State::Retrying,
            Phase::Restarting { .. } => State::Restarting,
            Phase::Quarantined { .. } => State::Quarantined,
            Phase::Stopping { .. } => State::Stopping,
            Phase::Stopped => State::Stopped,
            Phase::Exited => State::Exited,
            Phase::Failed { .. } => State::Failed,
        }
    }

    fn primary_pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } => Some(pid),
            Phase::Stopping { pid, .. } => pid,
            _ => None,
        }
    }

    /// Down: no process of this service is left.
    fn is_down(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Running { .. }
                | Phase::Stopping { .. }
                | Phase::Restarting {
                    cleanup: Some(_),
                    ..
                }
        ) && self.fallback.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Down,
    Up,
}

struct Daemon {
    log_dir: std::path::PathBuf,
    plan_state_dir: std::path::PathBuf,
    base_env: Vec<(Vec<u8>, Vec<u8>)>,
    services: Vec<Service>,
    by_pid: HashMap<i32, (usize, Role)>,
    timers: BTreeSet<(Instant, usize, Timer)>,
    events: VecDeque<EventRecord>,
    event_tx: broadcast::Sender<EventRecord>,
    waiters: Vec<(usize, Want, oneshot::Sender<Reply>)>,
    stdin: OwnedFd,
    logs: Option<logs::LogHub>,
    /// Draws for the retry lottery, apart from those for jitter and
    /// staggering, so the lottery's sequence does not depend on which
    /// actions came before.
    lottery: Rng,
    rng: Rng,
    /// Failures of the last second, for correlated-failure staggering.
    recent_failures: VecDeque<(Instant, usize)>,
    /// The kernel's OOM-kill count for our cgroup, when it can be read.
    oom_kills: Option<u64>,
    probe_tx: mpsc::UnboundedSender<probes::AsyncResult>,
    notify: Option<std::os::unix::net::UnixDatagram>,
    /// The supervision tree; index 0 is the root.
    groups: Vec<tree::GroupRt>,
    /// Each service's group.
    service_group: Vec<usize>,
    /// What each service waits for before it starts (explicit and group order).
    deps: Vec<Vec<(usize, crate::config::DependOn)>>,
    /// The reverse of `deps`.
    dependents: Vec<Vec<usize>>,
    /// Start order; stop order is its reverse.
    order: Vec<usize>,
    /// Set when the root's intensity was exceeded.
    system_critical: Option<String>,
    exit_on_critical: bool,
    exit_code: i32,
    shutting_down: bool,
    down_waiters: Vec<oneshot::Sender<Reply>>,
    /// Adopted orphans were sent SIGTERM at shutdown; SIGKILL after this.
    orphan_deadline: Option<Instant>,
    finished: bool,
    registry_dirty: bool,
}

/// `Instant` in the future → wall-clock RFC 3339.
fn wall(at: Instant, now: Instant) -> String {
    let ahead = at.saturating_duration_since(now);
    format_time(SystemTime::now() + ahead)
}

/// Signal the group led by `leader`, an unreaped child of ours. Right after
/// the fork the child may not have called setsid yet, and the group does not
/// exist; the leader itself is signalled then.
fn signal_group(leader: i32, sig: libc::c_int) {
    if !kill(-leader, sig) {
        kill(leader, sig);
    }
}

fn kill(target: i32, sig: libc::c_int) -> bool {
    // SAFETY: plain syscall; callers pass only pids/groups that are ours.
    unsafe { libc::kill(target, sig) == 0 }
}

/// The event kinds that run a service's `on_event` hook.
const HOOKED: &[&str] = &["failure", "fallback", "quarantine", "recovered", "reset"];

impl Daemon {
    fn new(
        plan: &Plan,
        logs: logs::LogHub,
        seed: u64,
    ) -> Result<(Daemon, probes::AsyncResults), RunError> {
        let notify_path = plan.state_dir.join("notify.sock");
        let notify = match probes::bind_notify(&notify_path) {
            // sun_path holds 108 bytes with the NUL.
            Ok(sock) if notify_path.as_os_str().len() < 108 => Some(sock),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("no sd_notify socket at {}: {e}", notify_path.display());
                None
            }
        };
        let mut base_env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
            .filter(|(k, _)| {
                k != "NOTIFY_SOCKET" && k != "SENTINELD_STATE_DIR" && k != "SENTINELD_SEED"
            })
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        if notify.is_some() {
            base_env.push((
                b"NOTIFY_SOCKET".to_vec(),
                notify_path.as_os_str().as_bytes().to_vec(),
            ));
        }
        let log_dir = plan.state_dir.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|source| RunError::StateDir {
            path: log_dir.display().to_string(),
            source,
        })?;
        let stdin: OwnedFd = File::open("/dev/null")
            .map_err(|source| RunError::StateDir {
                path: "/dev/null".into(),
                source,
            })?
            .into();
        let services = plan
            .services
            .iter()
            .map(|spec| Service {
                spawn: spawn::SpawnSpec::new(spec, &base_env),
                ladder: recovery::ladder(spec),
                policy: recovery::policy(spec),
                rules: recovery::rules(spec),
                spec: spec.clone(),
                phase: Phase::Starting,
                history: RestartHistory::default(),
                fallback_history: RestartHistory::default(),
                fallback: None,
                hook_running: false,
                spawns: 0,
                last_exit: None,
                last_failure: None,
                summary: None,
                failures: [0; 3],
                actions: [0; 4],
                episode: None,
                recovered: 0,
                recovery_time: Duration::ZERO,
                attempts: 0,
                successes: 0,
                attempt_pending: false,
                level: Level::Healthy,
                timers: [None; TIMER_KINDS],
                log_pipes: None,
                start_time: None,
                probes: [
                    (probes::ProbeKind::Liveness, &spec.liveness),
                    (probes::ProbeKind::Readiness, &spec.readiness),
                    (probes::ProbeKind::Startup, &spec.startup),
                ]
                .map(|(kind, p)| {
                    p.as_ref()
                        .map(|p| probes::ProbeState::new(kind, p, spec, &base_env))
                }),
                ready: None,
                started_ok: true,
                pending_cause: None,
                notify_status: None,
                blocked: false,
            })
            .collect();
        let (event_tx, _) = broadcast::channel(1024);
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let (groups, service_group) = tree::build_groups(plan);
        let deps = tree::dependencies(plan);
        let mut dependents = vec![Vec::new(); plan.services.len()];
        for (i, d) in deps.iter().enumerate() {
            for (j, _) in d {
                dependents[*j].push(i);
            }
        }
        let order = if plan.start_order.len() == plan.services.len() {
            plan.start_order.clone()
        } else {
            (0..plan.services.len()).collect()
        };
        let daemon = Daemon {
            groups,
            service_group,
            deps,
            dependents,
            order,
            system_critical: None,
            exit_on_critical: plan.exit_on_critical,
            exit_code: 0,
            log_dir,
            plan_state_dir: plan.state_dir.clone(),
            base_env,
            services,
            by_pid: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::with_capacity(64),
            event_tx,
            waiters: Vec::new(),
            stdin,
            logs: Some(logs),
            lottery: Rng::new(seed),
            rng: Rng::new(seed ^ 0x5DEE_CE66_D1CE_5EED),
            recent_failures: VecDeque::new(),
            oom_kills: recovery::read_oom_kills(),
            probe_tx,
            notify,
            shutting_down: false,
            down_waiters: Vec::new(),
            orphan_deadline: None,
            finished: false,
            registry_dirty: false,
        };
        Ok((daemon, probe_rx))
    }

    fn event(&mut self, i: usize, kind: &str, message: String) {
        self.event_full(i, kind, message, None, None);
    }

    fn event_full(
        &mut self,
        i: usize,
        kind: &str,
        message: String,
        severity: Option<String>,
        action: Option<String>,
    ) {
        let service = self.services[i].spec.name.clone();
        tracing::info!("{service}: {message}");
        if self.events.len() == EVENT_CAPACITY {
            self.events.pop_front();
        }
        let record = EventRecord {
            at: format_time(SystemTime::now()),
            service,
            kind: kind.to_string(),
            message,
            severity,
            action,
        };
        let _ = self.event_tx.send(record.clone());
        // Keep the health level current between status queries, so its
        // hysteresis compares against what it was at the last event.
        let risk = self.services[i].ladder.risk.value(Instant::now());
        self.level(i, risk);
        if HOOKED.contains(&kind) {
            self.run_hook(i, &record);
        }
        self.events.push_back(record);
        if matches!(kind, "started" | "ready" | "exited") {
            self.advance_dependents(i, Instant::now());
        }
    }

    fn set_timer(&mut self, i: usize, kind: Timer, at: Option<Instant>) {
        let slot = kind as usize;
        if let Some(old) = self.services[i].timers[slot].take() {
            self.timers.remove(&(old, i, kind));
        }
        if let Some(at) = at {
            self.timers.insert((at, i, kind));
            self.services[i].timers[slot] = Some(at);
        }
    }

    fn clear_timers(&mut self, i: usize, kinds: &[Timer]) {
        for k in kinds {
            self.set_timer(i, *k, None);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _, _)| *t);
        match (t, self.orphan_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The service's log pipes, made and handed to the log thread on first
    /// use: every fork copies the whole fd table, so at start-up the early
    /// services should not pay for the pipes of the later ones.
    fn log_pipes(&mut self, i: usize) -> Result<(), nix::Error> {
        if self.services[i].log_pipes.is_some() {
            return Ok(());
        }
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let svc = &self.services[i];
        if let Some(hub) = &self.logs {
            hub.add(logs::LogSink {
                id: i,
                path: self.log_dir.join(format!("{}.log", svc.spec.name)),
                max_size: svc.spec.logs.max_size,
                keep: svc.spec.logs.keep,
                stdout: out_r,
                stderr: err_r,
                keep_tail: svc.rules.iter().any(|r| r.output_matches.is_some()),
            });
        }
        self.services[i].log_pipes = Some((out_w, err_w));
        Ok(())
    }

    /// Fork `spec` with the service's stdio; registers the pid under `role`.
    fn fork(
        &mut self,
        i: usize,
        spec: Option<&spawn::SpawnSpec>,
        role: Role,
    ) -> Result<spawn::Spawned, spawn::SpawnError> {
        self.log_pipes(i).map_err(spawn::SpawnError::Pipe)?;
        let svc = &self.services[i];
        let (stdout, stderr) = svc.log_pipes.as_ref().expect("made above");
        let stdio = spawn::Stdio {
            stdin: &self.stdin,
            stdout,
            stderr,
        };
        let child = spawn::spawn(spec.unwrap_or(&svc.spawn), &stdio)?;
        self.by_pid.insert(child.pid, (i, role));
        Ok(child)
    }

    fn spawn_primary(&mut self, i: usize, now: Instant) {
        self.clear_timers(i, &[Timer::Primary, Timer::Stop]);
        match self.fork(i, None, Role::Primary) {
            Ok(child) => {
                let svc = &mut self.services[i];
                svc.spawns += 1;
                svc.start_time = None;
                svc.phase = Phase::Running {
                    pid: child.pid,
                    since: now,
                    since_wall: SystemTime::now(),
                    exec_status: child.exec_status,
                };
                self.registry_dirty = true;
                let min_uptime = svc.spec.min_uptime;
                let watch = svc.episode.is_some()
                    || svc.attempt_pending
                    || svc.fallback.is_some()
                    || !svc.ladder.breaker.is_closed();
                if watch {
                    self.set_timer(i, Timer::Settled, Some(now + min_uptime));
                }
                self.event(i, "started", format!("started (pid {})", child.pid));
                self.start_probes(i, now);
            }
            Err(e) => {
                let errno = match &e {
                    spawn::SpawnError::NotFound { .. } => libc::ENOENT,
                    spawn::SpawnError::Fork(e) | spawn::SpawnError::Pipe(e) => *e as i32,
                };
                self.services[i].phase = Phase::Stopped;
                self.on_failure(
                    i,
                    crate::strategy::classify::Cause::Spawn(errno),
                    Some(e.to_string()),
                    Duration::ZERO,
                    now,
                );
            }
        }
        self.settle(i);
    }

    /// Signal a service to stop; `then` says what follows once it is down.
    fn stop(&mut self, i: usize, then: AfterStop, now: Instant) {
        self.stop_probes(i);
        self.services[i].pending_cause = None;
        self.clear_timers(
            i,
            &[
                Timer::Primary,
                Timer::Settled,
                Timer::Fallback,
                Timer::Cleanup,
            ],
        );
        self.stop_fallback(i, now);
        if let Phase::Restarting {
            cleanup: Some(pid), ..
        } = self.services[i].phase
        {
            signal_group(pid, libc::SIGKILL);
        }
        let svc = &mut self.services[i];
        match &mut svc.phase {
            Phase::Running {
                pid,
                since,
                since_wall,
                ..
            } => {
                let (pid, since, since_wall) = (*pid, *since, *since_wall);
                let sig = svc.spec.stop.signal;
                let timeout = svc.spec.stop.timeout;
                signal_group(pid, sig as libc::c_int);
                signal_group(pid, libc::SIGCONT);
                svc.phase = Phase::Stopping {
                    pid: Some(pid),
                    pgid: pid,
                    since,
                    since_wall,
                    then,
                };
                self.set_timer(i, Timer::Stop, Some(now + timeout));
                self.event(
                    i,
                    "stopping",
                    format!(
                        "stopping: {} to process group {pid}, SIGKILL in {}",
                        sig.as_str(),
                        fmt_duration(timeout)
                    ),
                );
            }
            Phase::Stopping { then: t, .. } => *t = then,
            Phase::Restarting {
                cleanup: Some(_), ..
            } => {
                // The cleanup was just killed; its exit finishes the stop.
                svc.phase = Phase::Stopped;
            }
            _ => {
                svc.phase = Phase::Stopped;
                self.after_down(i, then, now);
            }
        }
        self.settle(i);
    }

    fn after_down(&mut self, i: usize, then: AfterStop, now: Instant) {
        match then {
            AfterStop::Start if !self.shutting_down => {
                self.services[i].phase = Phase::Starting;
                self.try_start(i, now);
                if matches!(self.services[i].phase, Phase::Starting) {
                    self.settle(i);
                }
            }
            AfterStop::Quarantine if !self.shutting_down => self.quarantine_now(i, now),
            _ => self.settle(i),
        }
    }

    /// A child of ours was reaped.
    fn on_exit(&mut self, pid: i32, status: ExitStatus, now: Instant) {
        let Some((i, role)) = self.by_pid.remove(&pid) else {
            return;
        };
        match role {
            Role::Primary => self.on_primary_exit(i, status, now),
            Role::Fallback => self.on_fallback_exit(i, pid, status, now),
            Role::Cleanup => self.on_cleanup_exit(i, pid, status, now),
            Role::Hook => self.services[i].hook_running = false,
            Role::Probe(kind) => self.on_probe_exit(i, kind, pid, status, now),
        }
        self.settle(i);
    }

    fn on_primary_exit(&mut self, i: usize, status: ExitStatus, now: Instant) {
        self.registry_dirty = true;
        let wall = SystemTime::now();
        let phase = std::mem::replace(&mut self.services[i].phase, Phase::Stopped);
        match phase {
            Phase::Running {
                since, exec_status, ..
            } => {
                self.set_timer(i, Timer::Settled, None);
                self.stop_probes(i);
                let uptime = now.saturating_duration_since(since);
                if let Some(err) = spawn::exec_error(&exec_status) {
                    let errno = err.raw_os_error().unwrap_or(libc::ENOEXEC);
                    self.on_failure(
                        i,
                        crate::strategy::classify::Cause::Spawn(errno),
                        Some(format!("exec failed: {err}")),
                        uptime,
                        now,
                    );
                    return;
                }
                self.services[i].last_exit = Some((status, wall));
                if let Some((cause, why)) = self.services[i].pending_cause.take() {
                    self.on_failure(i, cause, Some(format!("({why})")), uptime, now);
                    return;
                }
                self.on_ended(i, status, uptime, now);
            }
            Phase::Stopping {
                pgid,
                since,
                since_wall,
                then,
                ..
            } => {
                self.services[i].last_exit = Some((status, wall));
                if kill(-pgid, 0) {
                    // Other members of the group are still shutting down.
                    self.services[i].phase = Phase::Stopping {
                        pid: None,
                        pgid,
                        since,
                        since_wall,
                        then,
                    };
                    self.event(
                        i,
                        "stopping",
                        format!(
                            "main process {}; waiting for the rest of group {pgid}",
                            describe_exit(status)
                        ),
                    );
                } else {
                    self.stopped(i, then, status, now);
                }
            }
            other => self.services[i].phase = other,
        }
    }

    fn stopped(&mut self, i: usize, then: AfterStop, status: ExitStatus, now: Instant) {
        self.set_timer(i, Timer::Stop, None);
        self.services[i].phase = Phase::Stopped;
        self.event(i, "stopped", format!("stopped ({})", describe_exit(status)));
        self.after_down(i, then, now);
    }

    /// An adopted orphan was reaped: groups waiting on remnants may be empty now.
    fn recheck_remnants(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            if let Phase::Stopping {
                pid: None,
                pgid,
                then,
                ..
            } = self.services[i].phase
                && !kill(-pgid, 0)
            {
                let status = self.services[i]
                    .last_exit
                    .map_or(ExitStatus::Code(0), |(s, _)| s);
                self.stopped(i, then, status, now);
            }
        }
    }

    fn on_timer(&mut self, now: Instant) {
        while let Some(&(at, i, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, i, kind));
            self.services[i].timers[kind as usize] = None;
            match kind {
                Timer::Primary => self.on_primary_timer(i, now),
                Timer::Stop => self.on_stop_timeout(i, now),
                Timer::Fallback => self.spawn_fallback(i, now),
                Timer::FallbackStop => {
                    if let Some(f) = &self.services[i].fallback {
                        let pid = f.pid;
                        signal_group(pid, libc::SIGKILL);
                        self.event(
                            i,
                            "stopping",
                            format!("fallback stop timeout: SIGKILL to process group {pid}"),
                        );
                    }
                }
                Timer::Cleanup => {
                    if let Phase::Restarting {
                        cleanup: Some(pid), ..
                    } = self.services[i].phase
                    {
                        signal_group(pid, libc::SIGKILL);
                        self.event(
                            i,
                            "cleanup",
                            format!("cleanup timed out: SIGKILL to process group {pid}"),
                        );
                    }
                }
                Timer::Settled => self.on_settled(i, now),
                Timer::ProbeLiveness => self.run_probe(i, probes::ProbeKind::Liveness, now),
                Timer::ProbeReadiness => self.run_probe(i, probes::ProbeKind::Readiness, now),
                Timer::ProbeStartup => self.run_probe(i, probes::ProbeKind::Startup, now),
                Timer::TimeoutLiveness => self.probe_timeout(i, probes::ProbeKind::Liveness),
                Timer::TimeoutReadiness => self.probe_timeout(i, probes::ProbeKind::Readiness),
                Timer::TimeoutStartup => self.probe_timeout(i, probes::ProbeKind::Startup),
                Timer::Watchdog => self.on_watchdog(i),
                Timer::StartTimeout => self.on_start_timeout(i),
            }
            self.settle(i);
        }
        if self.orphan_deadline.is_some_and(|d| d <= now) {
            self.orphan_deadline = None;
            for pid in reaper::adopted_children(&self.by_pid) {
                kill(pid, libc::SIGKILL);
            }
        }
        self.advance_shutdown(now);
    }

    fn on_primary_timer(&mut self, i: usize, now: Instant) {
        match self.services[i].phase {
            Phase::Backoff { .. }
            | Phase::Retrying { .. }
            | Phase::Restarting { cleanup: None, .. } => self.spawn_primary(i, now),
            Phase::Quarantined { .. } => {
                if self.services[i].ladder.breaker.poll(now) {
                    self.event(i, "trial", "half-open: trying the primary again".into());
                }
                self.spawn_primary(i, now);
            }
            _ => {}
        }
    }

    fn on_stop_timeout(&mut self, i: usize, now: Instant) {
        if let Phase::Stopping {
            pid, pgid, then, ..
        } = self.services[i].phase
        {
            // With the leader unreaped the group is certainly ours. Without
            // it, the group's surviving members keep its number from being
            // reused, so a group that is still non-empty is still ours.
            kill(-pgid, libc::SIGKILL);
            self.event(
                i,
                "stopping",
                format!("stop timeout: SIGKILL to process group {pgid}"),
            );
            if pid.is_none() {
                self.stopped(i, then, ExitStatus::Signal(libc::SIGKILL), now);
            }
        }
    }

    fn settle(&mut self, i: usize) {
        if self.waiters.is_empty() {
            return;
        }
        let svc = &self.services[i];
        let up = matches!(svc.phase, Phase::Running { .. });
        let down_done = svc.is_down();
        let settled_up = up
            || matches!(
                svc.phase,
                Phase::Failed { .. }
                    | Phase::Exited
                    | Phase::Backoff { .. }
                    | Phase::Retrying { .. }
                    | Phase::Quarantined { .. }
            );
        let mut k = 0;
        while k < self.waiters.len() {
            let (w, want, _) = &self.waiters[k];
            let done = *w == i
                && match want {
                    Want::Down => down_done,
                    Want::Up => settled_up,
                };
            if done {
                let (_, want, tx) = self.waiters.swap_remove(k);
                let _ = tx.send(Reply::from(self.outcome(i, want)));
            } else {
                k += 1;
            }
        }
    }

    fn outcome(&self, i: usize, want: Want) -> Response {
        let svc = &self.services[i];
        let name = &svc.spec.name;
        match (&svc.phase, want) {
            (Phase::Running { pid, .. }, _) => Response::Done {
                message: format!("{name} running (pid {pid})"),
            },
            (Phase::Failed { reason }, _) => {
                Response::error(ErrorKind::Conflict, format!("{name}: {reason}"))
            }
            (_, Want::Down) => Response::Done {
                message: format!("{name} stopped"),
            },
            (_, Want::Up) => Response::error(
                ErrorKind::Conflict,
                format!(
                    "{name} did not stay up: {}{}",
                    svc.state().as_str(),
                    svc.summary
                        .as_ref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
            ),
        }
    }

    fn find(&self, name: &str) -> Result<usize, Box<Response>> {
        self.services
            .iter()
            .position(|s| s.spec.name == name)
            .ok_or_else(|| Box::new(self.unknown(name)))
    }

    #[cold]
    fn unknown(&self, name: &str) -> Response {
        let hint = suggest(name, self.services.iter().map(|s| s.spec.name.as_str()))
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        Response::error(
            ErrorKind::UnknownService,
            format!("unknown service {name:?}{hint}"),
        )
    }

    fn handle(&mut self, incoming: Incoming, now: Instant) {
        let Incoming { request, reply } = incoming;
        let named = match &request {
            Request::Start { name }
            | Request::Stop { name }
            | Request::Restart { name }
            | Request::Reset { name } => match self.find(name) {
                Ok(i) => Some(i),
                Err(e) => {
                    let _ = reply.send((*e).into());
                    return;
                }
            },
            _ => None,
        };
        if self.shutting_down && named.is_some() {
            let _ = reply
                .send(Response::error(ErrorKind::Conflict, "sentineld is shutting down").into());
            return;
        }
        match request {
            Request::Ping => {
                let _ = reply.send(
                    Response::Pong {
                        pid: std::process::id(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }
                    .into(),
                );
            }
            Request::Status { name, brief } => {
                let _ = reply.send(self.status(name.as_deref(), brief, now).into());
            }
            Request::Events { name, follow } => {
                if let Some(n) = &name
                    && let Err(e) = self.find(n)
                {
                    let _ = reply.send((*e).into());
                    return;
                }
                let events = self
                    .events
                    .iter()
                    .filter(|e| name.as_ref().is_none_or(|n| &e.service == n))
                    .cloned()
                    .collect();
                let _ = reply.send(Reply {
                    response: Response::Events { events },
                    stream: follow.then(|| (self.event_tx.subscribe(), name)),
                });
            }
            Request::Start { .. } => {
                let i = named.expect("named");
                match &mut self.services[i].phase {
                    Phase::Running { .. } => {
                        let _ = reply.send(self.outcome(i, Want::Up).into());
                    }
                    Phase::Stopping { then, .. } => {
                        *then = AfterStop::Start;
                        self.waiters.push((i, Want::Up, reply));
                    }
                    _ => {
                        self.services[i].history = RestartHistory::default();
                        self.waiters.push((i, Want::Up, reply));
                        self.spawn_primary(i, now);
                    }
                }
            }
            Request::Stop { .. } => {
                let i = named.expect("named");
                self.waiters.push((i, Want::Down, reply));
                self.stop(i, AfterStop::Stay, now);
            }
            Request::Restart { .. } => {
                let i = named.expect("named");
                self.services[i].history = RestartHistory::default();
                self.waiters.push((i, Want::Up, reply));
                self.stop(i, AfterStop::Start, now);
            }
            Request::Reset { .. } => {
                let i = named.expect("named");
                let message = self.reset(i, now);
                let _ = reply.send(Response::Done { message }.into());
            }
            Request::Down => {
                self.down_waiters.push(reply);
                self.begin_shutdown(now);
            }
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if !self.shutting_down {
            tracing::info!("stopping all services");
            probes::notify_self("STOPPING=1");
            self.shutting_down = true;
        }
        self.advance_shutdown(now);
    }

    /// Stop services one at a time in reverse declaration order, then the
    /// orphans we adopted as subreaper.
    fn advance_shutdown(&mut self, now: Instant) {
        if !self.shutting_down || self.finished {
            return;
        }
        for i in self.order.clone().into_iter().rev() {
            let svc = &mut self.services[i];
            if let Phase::Stopping { then, .. } = &mut svc.phase {
                *then = AfterStop::Stay;
                return;
            }
            if !svc.is_down() {
                if svc.fallback.as_ref().is_some_and(|f| f.stopping) && svc.primary_pid().is_none()
                {
                    return;
                }
                self.stop(i, AfterStop::Stay, now);
                if !self.services[i].is_down() {
                    return;
                }
            } else if matches!(
                svc.phase,
                Phase::Starting
                    | Phase::Backoff { .. }
                    | Phase::Retrying { .. }
                    | Phase::Restarting { .. }
                    | Phase::Quarantined { .. }
            ) {
                self.clear_timers(i, &[Timer::Primary, Timer::Settled]);
                self.services[i].phase = Phase::Stopped;
            }
        }
        let orphans = reaper::adopted_children(&self.by_pid);
        if orphans.is_empty() {
            self.finished = true;
            return;
        }
        if self.orphan_deadline.is_none() {
            tracing::info!("stopping {} adopted orphan process(es)", orphans.len());
            for pid in orphans {
                kill(pid, libc::SIGTERM);
                kill(pid, libc::SIGCONT);
            }
            self.orphan_deadline = Some(now + ORPHAN_GRACE);
        }
    }

    fn flush_registry(&mut self) {
        if !self.registry_dirty {
            return;
        }
        self.registry_dirty = false;
        let mut records = Vec::new();
        for svc in &mut self.services {
            let pgid = match svc.phase {
                Phase::Running { pid, .. } => pid,
                Phase::Stopping { pgid, .. } => pgid,
                _ => continue,
            };
            if svc.start_time.is_none() {
                svc.start_time = registry::start_time(pgid);
            }
            if let Some(start_time) = svc.start_time {
                records.push(registry::Record {
                    name: svc.spec.name.clone(),
                    pgid,
                    start_time,
                });
            }
            if let Some(f) = &svc.fallback
                && let Some(start_time) = registry::start_time(f.pid)
            {
                records.push(registry::Record {
                    name: format!("{}.fallback", svc.spec.name),
                    pgid: f.pid,
                    start_time,
                });
            }
        }
        if let Err(e) = registry::write(&self.plan_state_dir, &records) {
            tracing::warn!(
                "cannot write {}: {e}",
                registry::path(&self.plan_state_dir).display()
            );
        }
    }
}

/// Run the daemon until it is told to stop. Returns the process exit code.
///
/// `ready` (from `up -d`) gets one line once every service has been started.
pub fn run(plan: Plan, control: ControlSocket, ready: Option<File>) -> Result<i32, RunError> {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    cloexec_inherited_fds();
    raise_fd_limit();
    for r in registry::kill_leftovers(&plan.state_dir) {
        tracing::warn!(
            "{}: killed process group {} left by a previous sentineld",
            r.name,
            r.pgid
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(RunError::Runtime)?;
    let hub = logs::LogHub::start().map_err(RunError::Logs)?;
    // SENTINELD_SEED fixes the random source (jitter, retry lottery,
    // staggering) for reproducible runs and tests.
    let seed = std::env::var("SENTINELD_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id())
        });
    let (mut daemon, mut probe_rx) = Daemon::new(&plan, hub, seed)?;
    let code = runtime.block_on(async {
        let mut sigchld = signal(SignalKind::child()).map_err(RunError::Runtime)?;
        let mut sigterm = signal(SignalKind::terminate()).map_err(RunError::Runtime)?;
        let mut sigint = signal(SignalKind::interrupt()).map_err(RunError::Runtime)?;
        let mut sighup = signal(SignalKind::hangup()).map_err(RunError::Runtime)?;
        control
            .listener
            .set_nonblocking(true)
            .map_err(RunError::Runtime)?;
        let listener = tokio::net::UnixListener::from_std(
            control.listener.try_clone().map_err(RunError::Runtime)?,
        )
        .map_err(RunError::Runtime)?;
        let (tx, mut rx) = mpsc::channel::<Incoming>(1024);
        let notify = match daemon.notify.as_ref().map(|s| s.try_clone()) {
            // SAFETY: the AsyncFd owns the socket, so the fd stays valid
            // for as long as it is registered.
            Some(Ok(sock)) => Some(
                unsafe { tokio::io::unix::AsyncFd::register(sock) }
                    .map_err(|e| RunError::Runtime(std::io::Error::other(e.to_string())))?,
            ),
            _ => None,
        };
        let server = tokio::spawn(server::serve(listener, tx));

        let now = Instant::now();
        daemon.start_all_in_order(now);
        daemon.flush_registry();
        tracing::info!(
            "supervising {} services; control socket {}",
            daemon.services.len(),
            control.path.display()
        );
        if let Some(mut f) = ready {
            let _ = writeln!(f, "ready {}", std::process::id());
        }
        probes::notify_self("READY=1");
        while !daemon.finished {
            let deadline = daemon.next_deadline();
            tokio::select! {
                biased;
                _ = sigchld.recv() => {
                    reaper::reap_all(&mut daemon, Instant::now());
                }
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => daemon.on_timer(Instant::now()),
                Some(incoming) = rx.recv() => daemon.handle(incoming, Instant::now()),
                Some(result) = probe_rx.recv() => daemon.on_async_probe(result, Instant::now()),
                guard = async {
                    match &notify {
                        Some(n) => n.readable().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Ok(mut guard) = guard {
                        let msgs = probes::read_notify(guard.get_inner());
                        guard.clear_ready();
                        let now = Instant::now();
                        for (pid, text) in msgs {
                            daemon.on_notify(pid, &text, now);
                        }
                    }
                }
                _ = sigterm.recv() => daemon.begin_shutdown(Instant::now()),
                _ = sigint.recv() => daemon.begin_shutdown(Instant::now()),
                _ = sighup.recv() => tracing::info!("SIGHUP ignored: reload is not supported yet"),
            }
            daemon.flush_registry();
        }
        server.abort();
        let _ = std::fs::remove_file(&control.path);
        let _ = std::fs::remove_file(daemon.plan_state_dir.join("notify.sock"));
        let _ = std::fs::remove_file(registry::path(&daemon.plan_state_dir));
        for tx in daemon.down_waiters.drain(..) {
            let _ = tx.send(
                Response::Done {
                    message: "all services stopped".into(),
                }
                .into(),
            );
        }
        // Let the connection tasks deliver the last replies.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        Ok::<i32, RunError>(daemon.exit_code)
    })?;
    // Every service's write ends close here; the log thread then drains the
    // pipes to EOF.
    let hub = daemon.logs.take();
    drop(daemon);
    if let Some(hub) = hub {
        hub.shutdown(Duration::from_secs(5));
    }
    tracing::info!("all services stopped");
    // Release the state dir's lock before the last connections close, so a
    // `down` that returns leaves the state dir free for the next `up`.
    drop(control);
    drop(runtime);
    Ok(code)
}

/// Descriptors inherited from whoever started sentineld (a jobserver pipe,
/// a shell's stray fd) must not reach the services.
fn cloexec_inherited_fds() {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return;
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: setting FD_CLOEXEC on a descriptor number; a closed one fails harmlessly.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard);
    }
}
