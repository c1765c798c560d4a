//! The runtime: one event loop on the main thread owns every service's state.
//!
//! Inputs: SIGCHLD (→ the reaper), timers (backoff ends, stop deadlines),
//! control requests, and SIGTERM/SIGINT (→ stop everything). Outputs: forks,
//! signals to process groups, events. The loop never blocks on I/O other
//! than its own sockets; logs are written by the log thread ([`logs`]).
//!
//! Signals go only to processes that are provably ours: an unreaped child
//! (its pid cannot be reused until we reap it) or a process group whose
//! leader is an unreaped child. The one exception is a stop whose leader
//! exited while other members of its group still run; see [`Daemon::on_timer`].

pub mod logs;
pub mod reaper;
pub mod registry;
pub mod spawn;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};

use crate::config::{Plan, ServiceSpec, units::suggest};
use crate::control::protocol::{
    EventRecord, ExitInfo, Health, Request, Response, ServiceStatus, State, StatusReport, VERSION,
};
use crate::control::server::{self, ControlSocket, Incoming};
use crate::strategy::restart::{Decision, ExitStatus, RestartHistory};

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
    Start,
}

enum Phase {
    /// Declared, not yet started.
    Starting,
    Running {
        pid: i32,
        since: Instant,
        since_wall: SystemTime,
        exec_status: OwnedFd,
    },
    Backoff {
        until: Instant,
    },
    Stopping {
        /// The unreaped leader; `None` once it exited and only other members
        /// of its group are left.
        pid: Option<i32>,
        pgid: i32,
        since: Instant,
        since_wall: SystemTime,
        killed: bool,
        then: AfterStop,
    },
    Stopped,
    /// Ended and, by its restart policy, not restarted.
    Exited,
    Failed {
        reason: String,
    },
}

struct Service {
    spec: ServiceSpec,
    spawn: spawn::SpawnSpec,
    phase: Phase,
    history: RestartHistory,
    spawns: u64,
    last_exit: Option<(ExitStatus, SystemTime)>,
    timer: Option<Instant>,
    /// Write ends of the log pipes (stdout, stderr), kept for the life of
    /// the service so output survives restarts. Made at the first spawn: every
    /// fork copies the whole fd table, so at start-up the early services
    /// should not pay for the pipes of the later ones.
    log_pipes: Option<(OwnedFd, OwnedFd)>,
    /// Start time of the current leader, for the pgid registry.
    start_time: Option<u64>,
}

impl Service {
    fn state(&self) -> State {
        match self.phase {
            Phase::Starting => State::Starting,
            Phase::Running { .. } => State::Running,
            Phase::Backoff { .. } => State::Backoff,
            Phase::Stopping { .. } => State::Stopping,
            Phase::Stopped => State::Stopped,
            Phase::Exited => State::Exited,
            Phase::Failed { .. } => State::Failed,
        }
    }

    fn health(&self) -> Health {
        match &self.phase {
            Phase::Running { .. } | Phase::Stopped => Health::Healthy,
            Phase::Exited => match self.last_exit {
                Some((s, _)) if !s.success() => Health::Critical,
                _ => Health::Healthy,
            },
            Phase::Starting | Phase::Stopping { .. } => Health::Degraded,
            Phase::Backoff { .. } | Phase::Failed { .. } => Health::Critical,
        }
    }

    /// Down: no process of this service is left.
    fn is_down(&self) -> bool {
        !matches!(self.phase, Phase::Running { .. } | Phase::Stopping { .. })
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
    services: Vec<Service>,
    by_pid: HashMap<i32, usize>,
    timers: BTreeSet<(Instant, usize)>,
    events: VecDeque<EventRecord>,
    waiters: Vec<(usize, Want, oneshot::Sender<Response>)>,
    stdin: OwnedFd,
    logs: Option<logs::LogHub>,
    shutting_down: bool,
    down_waiters: Vec<oneshot::Sender<Response>>,
    /// Adopted orphans were sent SIGTERM at shutdown; SIGKILL after this.
    orphan_deadline: Option<Instant>,
    finished: bool,
    registry_dirty: bool,
}

pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn describe_exit(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => format!("killed by {}", signal_name(s)),
    }
}

pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
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

impl Daemon {
    fn new(plan: &Plan, logs: logs::LogHub) -> Result<Daemon, RunError> {
        let base_env: Vec<(Vec<u8>, Vec<u8>)> = std::env::vars_os()
            .filter(|(k, _)| k != "NOTIFY_SOCKET" && k != "SENTINELD_STATE_DIR")
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
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
        let mut services = Vec::with_capacity(plan.services.len());
        for spec in &plan.services {
            services.push(Service {
                spawn: spawn::SpawnSpec::new(spec, &base_env),
                spec: spec.clone(),
                phase: Phase::Starting,
                history: RestartHistory::default(),
                spawns: 0,
                last_exit: None,
                timer: None,
                log_pipes: None,
                start_time: None,
            });
        }
        Ok(Daemon {
            log_dir,
            plan_state_dir: plan.state_dir.clone(),
            services,
            by_pid: HashMap::new(),
            timers: BTreeSet::new(),
            events: VecDeque::with_capacity(64),
            waiters: Vec::new(),
            stdin,
            logs: Some(logs),
            shutting_down: false,
            down_waiters: Vec::new(),
            orphan_deadline: None,
            finished: false,
            registry_dirty: false,
        })
    }

    fn event(&mut self, i: usize, message: String) {
        let service = self.services[i].spec.name.clone();
        tracing::info!("{service}: {message}");
        if self.events.len() == EVENT_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(EventRecord {
            at: format_time(SystemTime::now()),
            service,
            message,
        });
    }

    fn set_timer(&mut self, i: usize, at: Option<Instant>) {
        if let Some(old) = self.services[i].timer.take() {
            self.timers.remove(&(old, i));
        }
        if let Some(at) = at {
            self.timers.insert((at, i));
            self.services[i].timer = Some(at);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let t = self.timers.first().map(|(t, _)| *t);
        match (t, self.orphan_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn start_all(&mut self, now: Instant) {
        for i in 0..self.services.len() {
            self.spawn(i, now);
        }
    }

    /// The service's log pipes, made and handed to the log thread on first use.
    fn log_pipes(&mut self, i: usize) -> Result<(), nix::Error> {
        if self.services[i].log_pipes.is_some() {
            return Ok(());
        }
        let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let spec = &self.services[i].spec;
        if let Some(hub) = &self.logs {
            hub.add(logs::LogSink {
                id: i,
                path: self.log_dir.join(format!("{}.log", spec.name)),
                max_size: spec.logs.max_size,
                keep: spec.logs.keep,
                stdout: out_r,
                stderr: err_r,
            });
        }
        self.services[i].log_pipes = Some((out_w, err_w));
        Ok(())
    }

    fn spawn(&mut self, i: usize, now: Instant) {
        self.set_timer(i, None);
        let result = match self.log_pipes(i) {
            Err(e) => Err(spawn::SpawnError::Pipe(e)),
            Ok(()) => {
                let svc = &self.services[i];
                let (stdout, stderr) = svc.log_pipes.as_ref().expect("made above");
                let stdio = spawn::Stdio {
                    stdin: &self.stdin,
                    stdout,
                    stderr,
                };
                spawn::spawn(&svc.spawn, &stdio)
            }
        };
        match result {
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
                self.by_pid.insert(child.pid, i);
                self.registry_dirty = true;
                self.event(i, format!("started (pid {})", child.pid));
            }
            Err(e) => {
                let reason = format!("spawn failed: {e}");
                self.services[i].phase = Phase::Failed {
                    reason: reason.clone(),
                };
                self.event(i, reason);
            }
        }
        self.settle(i);
    }

    /// Signal a service to stop; `then` says what follows once it is down.
    fn stop(&mut self, i: usize, then: AfterStop, now: Instant) {
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
                    killed: false,
                    then,
                };
                self.set_timer(i, Some(now + timeout));
                self.event(
                    i,
                    format!(
                        "stopping: {} to process group {pid}, SIGKILL in {}",
                        sig.as_str(),
                        fmt_duration(timeout)
                    ),
                );
            }
            Phase::Stopping { then: t, .. } => *t = then,
            Phase::Starting | Phase::Backoff { .. } => {
                self.set_timer(i, None);
                self.services[i].phase = Phase::Stopped;
                self.after_down(i, then, now);
            }
            Phase::Stopped | Phase::Exited | Phase::Failed { .. } => self.after_down(i, then, now),
        }
        self.settle(i);
    }

    fn after_down(&mut self, i: usize, then: AfterStop, now: Instant) {
        if then == AfterStop::Start && !self.shutting_down {
            self.spawn(i, now);
        } else {
            self.settle(i);
        }
    }

    /// A child of ours was reaped: `i` owns it if it is a service leader.
    fn on_exit(&mut self, i: usize, pid: i32, status: ExitStatus, now: Instant) {
        self.by_pid.remove(&pid);
        self.registry_dirty = true;
        let wall = SystemTime::now();
        let phase = std::mem::replace(&mut self.services[i].phase, Phase::Stopped);
        match phase {
            Phase::Running {
                since, exec_status, ..
            } => {
                let uptime = now.saturating_duration_since(since);
                if let Some(err) = spawn::exec_error(&exec_status) {
                    let reason = format!("spawn failed: {err}");
                    self.services[i].phase = Phase::Failed {
                        reason: reason.clone(),
                    };
                    self.event(i, reason);
                    self.settle(i);
                    return;
                }
                let svc = &mut self.services[i];
                svc.last_exit = Some((status, wall));
                let decision =
                    svc.history
                        .on_exit(svc.spec.restart, svc.spec.min_uptime, status, uptime);
                let what = format!("{} after {}", describe_exit(status), fmt_duration(uptime));
                match decision {
                    Decision::Respawn { delay } if delay.is_zero() && !self.shutting_down => {
                        self.event(i, format!("{what}; restarting now"));
                        self.spawn(i, now);
                    }
                    Decision::Respawn { delay } if !self.shutting_down => {
                        self.services[i].phase = Phase::Backoff { until: now + delay };
                        self.set_timer(i, Some(now + delay));
                        let young = self.services[i].history.young_deaths;
                        self.event(
                            i,
                            format!(
                                "{what}; restarting in {} ({young} short runs in a row)",
                                fmt_duration(delay)
                            ),
                        );
                    }
                    _ => {
                        self.services[i].phase = Phase::Exited;
                        let policy = self.services[i].spec.restart;
                        self.event(
                            i,
                            format!("{what}; not restarted (restart: {})", policy.as_str()),
                        );
                    }
                }
            }
            Phase::Stopping {
                pgid,
                since,
                since_wall,
                killed,
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
                        killed,
                        then,
                    };
                    self.event(
                        i,
                        format!(
                            "main process {}; waiting for the rest of group {pgid}",
                            describe_exit(status)
                        ),
                    );
                } else {
                    self.stopped(i, then, status, now);
                }
            }
            other => {
                self.services[i].phase = other;
            }
        }
    }

    fn stopped(&mut self, i: usize, then: AfterStop, status: ExitStatus, now: Instant) {
        self.set_timer(i, None);
        self.services[i].phase = Phase::Stopped;
        self.event(i, format!("stopped ({})", describe_exit(status)));
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
        while let Some(&(at, i)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, i));
            self.services[i].timer = None;
            match &mut self.services[i].phase {
                Phase::Backoff { .. } => self.spawn(i, now),
                Phase::Stopping {
                    pid,
                    pgid,
                    killed,
                    then,
                    ..
                } => {
                    let (pid, pgid, then) = (*pid, *pgid, *then);
                    *killed = true;
                    // With the leader unreaped the group is certainly ours.
                    // Without it, the group's surviving members keep its
                    // number from being reused, so a group that is still
                    // non-empty is still ours.
                    kill(-pgid, libc::SIGKILL);
                    self.event(i, format!("stop timeout: SIGKILL to process group {pgid}"));
                    if pid.is_none() {
                        let status = ExitStatus::Signal(libc::SIGKILL);
                        self.stopped(i, then, status, now);
                    }
                }
                _ => {}
            }
        }
        if self.orphan_deadline.is_some_and(|d| d <= now) {
            self.orphan_deadline = None;
            for pid in reaper::adopted_children(&self.by_pid) {
                kill(pid, libc::SIGKILL);
            }
        }
        self.advance_shutdown(now);
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
                Phase::Failed { .. } | Phase::Exited | Phase::Backoff { .. }
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
                let _ = tx.send(self.outcome(i, want));
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
            (Phase::Failed { reason }, _) => Response::Error {
                message: format!("{name}: {reason}"),
            },
            (_, Want::Down) => Response::Done {
                message: format!("{name} stopped"),
            },
            (_, Want::Up) => Response::Error {
                message: format!("{name} did not stay up: {}", svc.state().as_str()),
            },
        }
    }

    fn find(&self, name: &str) -> Result<usize, Response> {
        self.services
            .iter()
            .position(|s| s.spec.name == name)
            .ok_or_else(|| {
                let hint = suggest(name, self.services.iter().map(|s| s.spec.name.as_str()))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                Response::Error {
                    message: format!("unknown service {name:?}{hint}"),
                }
            })
    }

    fn handle(&mut self, incoming: Incoming, now: Instant) {
        let Incoming { request, reply } = incoming;
        let named = match &request {
            Request::Start { name } | Request::Stop { name } | Request::Restart { name } => {
                match self.find(name) {
                    Ok(i) => Some(i),
                    Err(e) => {
                        let _ = reply.send(e);
                        return;
                    }
                }
            }
            _ => None,
        };
        if self.shutting_down && named.is_some() {
            let _ = reply.send(Response::Error {
                message: "sentineld is shutting down".into(),
            });
            return;
        }
        match request {
            Request::Ping => {
                let _ = reply.send(Response::Pong {
                    pid: std::process::id(),
                    version: env!("CARGO_PKG_VERSION").into(),
                });
            }
            Request::Status { name } => {
                let _ = reply.send(self.status(name.as_deref(), now));
            }
            Request::Start { .. } => {
                let i = named.expect("named");
                match &mut self.services[i].phase {
                    Phase::Running { .. } => {
                        let _ = reply.send(self.outcome(i, Want::Up));
                    }
                    Phase::Stopping { then, .. } => {
                        *then = AfterStop::Start;
                        self.waiters.push((i, Want::Up, reply));
                    }
                    _ => {
                        self.services[i].history = RestartHistory::default();
                        self.waiters.push((i, Want::Up, reply));
                        self.spawn(i, now);
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
            Request::Down => {
                self.down_waiters.push(reply);
                self.begin_shutdown(now);
            }
        }
    }

    fn status(&self, name: Option<&str>, now: Instant) -> Response {
        let pick: Vec<usize> = match name {
            None => (0..self.services.len()).collect(),
            Some(n) => match self.find(n) {
                Ok(i) => vec![i],
                Err(e) => return e,
            },
        };
        let services = pick.iter().map(|&i| self.service_status(i, now)).collect();
        let events = match name {
            None => Vec::new(),
            Some(n) => {
                let mine: Vec<&EventRecord> =
                    self.events.iter().filter(|e| e.service == n).collect();
                mine[mine.len().saturating_sub(20)..]
                    .iter()
                    .map(|e| (*e).clone())
                    .collect()
            }
        };
        Response::Status(StatusReport {
            version: VERSION,
            pid: std::process::id(),
            services,
            events,
        })
    }

    fn service_status(&self, i: usize, now: Instant) -> ServiceStatus {
        let svc = &self.services[i];
        let (pid, started) = match &svc.phase {
            Phase::Running {
                pid,
                since,
                since_wall,
                ..
            } => (Some(*pid), Some((*since, *since_wall))),
            Phase::Stopping {
                pid,
                since,
                since_wall,
                ..
            } => (*pid, Some((*since, *since_wall))),
            _ => (None, None),
        };
        let reason = match &svc.phase {
            Phase::Failed { reason } => Some(reason.clone()),
            Phase::Backoff { until } => Some(format!(
                "restarting in {}",
                fmt_duration(until.saturating_duration_since(now))
            )),
            _ => None,
        };
        ServiceStatus {
            name: svc.spec.name.clone(),
            state: svc.state(),
            health: svc.health(),
            pid,
            started_at: started.map(|(_, w)| format_time(w)),
            uptime_s: started.map(|(s, _)| {
                (now.saturating_duration_since(s).as_secs_f64() * 1000.0).round() / 1000.0
            }),
            restarts: svc.spawns.saturating_sub(1),
            exit: svc.last_exit.map(|(status, at)| ExitInfo {
                code: match status {
                    ExitStatus::Code(c) => Some(c),
                    ExitStatus::Signal(_) => None,
                },
                signal: match status {
                    ExitStatus::Signal(s) => Some(signal_name(s)),
                    ExitStatus::Code(_) => None,
                },
                at: format_time(at),
            }),
            reason,
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        if !self.shutting_down {
            tracing::info!("stopping all services");
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
        for i in (0..self.services.len()).rev() {
            match self.services[i].phase {
                Phase::Running { .. } => {
                    self.stop(i, AfterStop::Stay, now);
                    return;
                }
                Phase::Stopping { ref mut then, .. } => {
                    *then = AfterStop::Stay;
                    return;
                }
                Phase::Starting | Phase::Backoff { .. } => {
                    self.set_timer(i, None);
                    self.services[i].phase = Phase::Stopped;
                }
                _ => {}
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
    let mut daemon = Daemon::new(&plan, hub)?;
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
        let server = tokio::spawn(server::serve(listener, tx));

        let now = Instant::now();
        daemon.start_all(now);
        daemon.flush_registry();
        tracing::info!(
            "supervising {} services; control socket {}",
            daemon.services.len(),
            control.path.display()
        );
        if let Some(mut f) = ready {
            let _ = writeln!(f, "ready {}", std::process::id());
        }
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
                _ = sigterm.recv() => daemon.begin_shutdown(Instant::now()),
                _ = sigint.recv() => daemon.begin_shutdown(Instant::now()),
                _ = sighup.recv() => tracing::info!("SIGHUP ignored: reload is not supported yet"),
            }
            daemon.flush_registry();
        }
        server.abort();
        let _ = std::fs::remove_file(&control.path);
        let _ = std::fs::remove_file(registry::path(&daemon.plan_state_dir));
        for tx in daemon.down_waiters.drain(..) {
            let _ = tx.send(Response::Done {
                message: "all services stopped".into(),
            });
        }
        // Let the connection tasks deliver the last replies.
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        Ok::<i32, RunError>(0)
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
