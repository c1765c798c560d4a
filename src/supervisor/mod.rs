//! The runtime: it feeds events to the pure core and carries out what the
//! core decides; it decides nothing itself.
//!
//! One event loop on the main thread: SIGCHLD (→ the [`reaper`]), timers
//! ([`timers`]), control requests ([`handlers`]), probe results and sd_notify
//! datagrams ([`probes`]), log troubles ([`logs`]), SIGTERM/SIGINT
//! (→ shutdown). Each becomes an input to
//! [`crate::strategy::system::System`], and the actions it returns are
//! carried out by the effects executor ([`effects`]): forks ([`spawn`]),
//! signals, timers, probes, journal records ([`journal`]), hooks, replies.
//! The loop never blocks on I/O other than its own sockets; logs are written
//! by the log thread ([`logs`]), which it never waits on.
//!
//! Signals go only to processes that are provably ours: an unreaped child
//! (its pid cannot be reused until we reap it) or a process group whose
//! leader is an unreaped child. The one exception is a stop whose leader
//! exited while other members of its group still run: the surviving members
//! keep the group's number from being reused.

pub mod budget;
mod cgroup;
mod daemon;
mod effects;
mod handlers;
mod journal;
pub mod logs;
mod metrics;
mod plan;
mod probes;
mod procstat;
pub mod reaper;
pub mod registry;
mod reload;
mod resources;
mod selfnotify;
mod shutdown;
mod signals;
pub mod spawn;
mod status;
mod timers;
mod webhooks;

use std::fs::File;
use std::io::Write;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use daemon::Daemon;
pub use daemon::Options;
pub use signals::{hold as hold_signals, release as release_signals};
use timers::Key;

use crate::config::Plan;
use crate::control::http;
use crate::control::protocol::Response;
use crate::control::server::{self, ControlSocket, Incoming};
use crate::state_dir::{Socket, StateDirError, Trusted};
use crate::strategy::admission::{Limits, MIN_CONNECTIONS};
use crate::strategy::machine::{Event, Timer};
use crate::strategy::system::Input;

/// How long the socket's removal is waited for at shutdown.
const UNLINK_WAIT: Duration = Duration::from_secs(1);
/// How long the log thread gets at shutdown to write what is left (less
/// if a write of its is stalled).
const LOG_FLUSH_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
    #[error("cannot start the log thread: {0}")]
    Logs(std::io::Error),
    #[error("cannot start the resource sampler: {0}")]
    Sampler(std::io::Error),
    #[error("{0}")]
    Untrusted(#[from] StateDirError),
    #[error("cannot create {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
}

impl Daemon {
    fn on_timers(&mut self, now: Instant) {
        while let Some((i, key)) = self.timers.pop_due(now) {
            match key {
                Key::Machine(Timer::Stop) if reaper::remnants_gone(self, i) => {
                    self.feed(now, Input::Event(i, Event::GroupGone));
                }
                Key::Machine(Timer::FallbackStop) if reaper::fallback_remnants_gone(self, i) => {
                    self.feed(now, Input::Event(i, Event::FallbackGroupGone));
                }
                Key::Machine(t) => self.feed(now, Input::Event(i, Event::Timer(t))),
                Key::ProbeTimeout(kind) => self.probe_timeout(i, kind),
                Key::HookLimit => self.hook_timed_out(i),
            }
        }
        self.orphan_grace_due(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        match (self.timers.next(), self.orphan_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Where the daemon's requests come from.
pub enum Inbox {
    /// The control socket: its server runs on the daemon's loop.
    Socket(ControlSocket),
    /// Requests from within the process (tests, a program that embeds
    /// sentineld); the daemon shuts down once every sender is gone.
    Channel(mpsc::Receiver<Incoming>),
}

/// Open and check the plan's state dir, and the log of each of its
/// services, before anything starts.
pub fn open_state_dir(plan: &Plan) -> Result<Trusted, StateDirError> {
    let dir = Trusted::open(&plan.state_dir)?;
    dir.check_logs(plan.services.iter().map(|s| s.name.as_str()))?;
    Ok(dir)
}

/// Run the daemon until it is told to stop (`down`, SIGTERM, SIGINT, or a
/// closed inbox). Returns the process exit code.
pub fn run(plan: Plan, inbox: Inbox, mut options: Options) -> Result<i32, RunError> {
    // SAFETY: prctl with constant arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    cloexec_inherited_fds();
    // SIGCHLD stays pending for the signalfd, with the pid it names: in
    // this thread and every thread started from here on (the runtime's,
    // the log thread). Children unblock every signal before exec.
    let chld_blocked = block_sigchld();
    // The spawn slots at low numbers, before the services' pipes.
    drop(spawn::slots::lock());
    let limits = Limits::for_plan(raise_fd_limit(), budget::reserve(&plan));
    if limits.shortfall > 0 {
        tracing::warn!(
            "the descriptor limit (RLIMIT_NOFILE) is {} short of what {} services and \
             {MIN_CONNECTIONS} control connections need; raise it (ulimit -n)",
            limits.shortfall,
            plan.services.len()
        );
    }
    let state_dir = match &inbox {
        Inbox::Socket(control) => control.state_dir.clone(),
        Inbox::Channel(_) => open_state_dir(&plan)?,
    };
    let services: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
    registry::kill_leftovers(&state_dir, &services);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(RunError::Runtime)?;
    let (hub, log_conditions) = logs::LogHub::start().map_err(RunError::Logs)?;
    let ready = options.ready.take();
    let http = options.http.take();
    let (mut daemon, probe_rx, reloads) = Daemon::new(&plan, state_dir, hub, options)?;
    let sampling = (plan.resources.interval)
        .map(|every| Ok((every, resources::Sampler::start()?)))
        .transpose()
        .map_err(RunError::Sampler)?;
    let (control, mut channel) = match inbox {
        Inbox::Socket(control) => (Some(control), None),
        Inbox::Channel(rx) => (None, Some(rx)),
    };
    let code = runtime.block_on(async {
        let control_socket = control.as_ref().map(|c| (c, limits));
        let mut inputs = Inputs::open(
            &daemon,
            &mut channel,
            control_socket,
            http,
            probe_rx,
            log_conditions,
        )?;
        inputs.reloads = Some(reloads);
        if let Some((every, (sampler, samples))) = sampling {
            inputs.sample_every(every, sampler, samples);
        }
        event_loop(&mut daemon, &mut inputs, control.as_ref(), ready).await
    })?;
    // Every service's write ends close here; the log thread then drains the
    // pipes to EOF — given a bounded time, so a hung disk cannot keep the
    // state dir locked.
    let hub = daemon.logs.take();
    if let Some(cg) = &daemon.cgroups {
        cg.remove();
    }
    drop(daemon);
    if let Some(hub) = hub {
        hub.shutdown(LOG_FLUSH_WAIT);
    }
    tracing::info!("all services stopped");
    // Release the state dir's lock before the last connections close, so a
    // `down` that returns leaves the state dir free for the next `up`.
    drop(control);
    drop(runtime);
    if let Some(old) = chld_blocked {
        let _ = old.thread_set_mask();
    }
    Ok(code)
}

/// Block SIGCHLD in this thread; the mask before, to restore.
fn block_sigchld() -> Option<nix::sys::signal::SigSet> {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&chld), Some(&mut old)).ok()?;
    Some(old)
}

/// The loop's inputs besides the daemon itself.
struct Inputs {
    /// SIGCHLD with its signal information (the pid), where SIGCHLD is
    /// blocked in every thread of ours.
    chld: Option<tokio::io::unix::AsyncFd<nix::sys::signalfd::SignalFd>>,
    /// Every other signal sent to sentineld, and SIGCHLD where it reached
    /// a thread that does not block it (a test harness's).
    signals: signals::Signals,
    requests: mpsc::Receiver<Incoming>,
    /// The inbox is a channel and every sender is gone.
    closed: bool,
    probes: probes::AsyncResults,
    /// Services files read for a reload.
    reloads: Option<reload::LoadedRx>,
    /// Troubles writing services' logs, and their ends.
    logs: logs::Conditions,
    notify: Option<tokio::io::unix::AsyncFd<std::os::unix::net::UnixDatagram>>,
    /// The control socket's server and the HTTP API's.
    servers: Vec<tokio::task::JoinHandle<()>>,
    /// The resource sampler's timer, its thread and what it sends back;
    /// none with `resources.interval: off`.
    sample_ticks: Option<tokio::time::Interval>,
    /// WATCHDOG=1 to our own manager, when it asked for it.
    watchdog: Option<tokio::time::Interval>,
    sampler: Option<resources::Sampler>,
    samples: Option<resources::Samples>,
}

impl Inputs {
    /// Sample resources every `every`, the first pass one interval in.
    fn sample_every(
        &mut self,
        every: Duration,
        sampler: resources::Sampler,
        samples: resources::Samples,
    ) {
        let first = Instant::now() + every;
        let mut ticks = tokio::time::interval_at(first.into(), every);
        // A late tick is not made up for: the next pass measures it.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.sample_ticks = Some(ticks);
        self.sampler = Some(sampler);
        self.samples = Some(samples);
    }
}

/// The next sampling tick; never, with sampling off.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The sampler's next batch; never, with sampling off.
async fn batch(samples: &mut Option<resources::Samples>) -> Option<resources::Batch> {
    match samples {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl Inputs {
    fn open(
        daemon: &Daemon,
        inbox: &mut Option<mpsc::Receiver<Incoming>>,
        control: Option<(&ControlSocket, Limits)>,
        http: Option<http::Listener>,
        probes: probes::AsyncResults,
        logs: logs::Conditions,
    ) -> Result<Inputs, RunError> {
        let (requests, servers) = match (inbox.take(), control) {
            (Some(rx), _) => (rx, Vec::new()),
            (None, Some((control, limits))) => {
                let listener = control.listener.try_clone().map_err(RunError::Runtime)?;
                listener.set_nonblocking(true).map_err(RunError::Runtime)?;
                let listener =
                    tokio::net::UnixListener::from_std(listener).map_err(RunError::Runtime)?;
                let (tx, rx) = mpsc::channel::<Incoming>(1024);
                let mut servers = vec![];
                if let Some(http) = http {
                    tracing::info!("HTTP API on http://{}", http.addr);
                    servers.push(tokio::spawn(http::serve(http, tx.clone())));
                }
                servers.push(tokio::spawn(server::serve(listener, tx, limits)));
                (rx, servers)
            }
            (None, None) => unreachable!("an inbox is a socket or a channel"),
        };
        let notify = match daemon.notify.as_ref().map(|s| s.try_clone()) {
            // SAFETY: the AsyncFd owns the socket, so the fd stays valid
            // for as long as it is registered.
            Some(Ok(sock)) => Some(
                unsafe { tokio::io::unix::AsyncFd::register(sock) }
                    .map_err(|e| RunError::Runtime(std::io::Error::other(e.to_string())))?,
            ),
            _ => None,
        };
        let mut chld_mask = nix::sys::signal::SigSet::empty();
        chld_mask.add(nix::sys::signal::Signal::SIGCHLD);
        let flags =
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC;
        let chld = nix::sys::signalfd::SignalFd::with_flags(&chld_mask, flags)
            .ok()
            // SAFETY: the AsyncFd owns the signalfd, so the fd stays valid
            // for as long as it is registered.
            .and_then(|fd| unsafe { tokio::io::unix::AsyncFd::register(fd) }.ok());
        Ok(Inputs {
            chld,
            signals: signals::Signals::catch().map_err(RunError::Runtime)?,
            requests,
            closed: false,
            probes,
            reloads: None,
            logs,
            notify,
            servers,
            sample_ticks: None,
            watchdog: selfnotify::watchdog_every().map(tokio::time::interval),
            sampler: None,
            samples: None,
        })
    }
}

async fn event_loop(
    daemon: &mut Daemon,
    inputs: &mut Inputs,
    control: Option<&ControlSocket>,
    ready: Option<File>,
) -> Result<i32, RunError> {
    daemon.feed(Instant::now(), Input::StartAll);
    daemon.flush_registry();
    let n = daemon.rt.len();
    match control {
        Some(c) => tracing::info!(
            "supervising {n} services; control socket {}",
            c.path.display()
        ),
        None => tracing::info!("supervising {n} services"),
    }
    if let Some(mut f) = ready {
        let _ = writeln!(f, "ready {}", std::process::id());
    }
    selfnotify::ready(&format!("supervising {n} services"));
    let mut stopping = false;
    while !daemon.finished {
        turn(daemon, inputs).await;
        // However the shutdown began: `down`, a signal, exit_on_critical.
        if !stopping && daemon.system.shutting_down() {
            stopping = true;
            selfnotify::notify_self("STOPPING=1");
        }
        if std::mem::take(&mut daemon.sweep_due) {
            reaper::reap_all(daemon, Instant::now());
        }
        daemon.advance_shutdown(Instant::now());
        daemon.flush_registry();
    }
    for server in &inputs.servers {
        server.abort();
    }
    // Off the loop, as every write to the state dir: on a disk that hangs
    // the socket stays behind (the next `up` replaces a stale one) and
    // `down` still returns.
    if control.is_some() {
        let dir = daemon.state_dir.clone();
        let (done, gone) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("unlink".into())
            .stack_size(64 << 10)
            .spawn(move || {
                dir.remove_socket(Socket::Control);
                let _ = done.send(());
            });
        // Gone before `down` hears that all is stopped — unless the disk
        // hangs: then not waited for long.
        if spawned.is_ok() {
            let _ = gone.recv_timeout(UNLINK_WAIT);
        }
    }
    daemon.registry.remove();
    for tx in daemon.down_waiters.drain(..) {
        let message = "all services stopped";
        let _ = tx.send(Response::done(message).into());
    }
    // Let the connection tasks deliver the last replies.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    Ok(daemon.exit_status())
}

/// `fd` readable; never, if there is none.
async fn readable<T: std::os::fd::AsRawFd>(
    fd: &Option<tokio::io::unix::AsyncFd<T>>,
) -> std::io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, T>> {
    match fd {
        Some(fd) => fd.readable().await,
        None => std::future::pending().await,
    }
}

/// Wait for the next input and handle it.
async fn turn(daemon: &mut Daemon, inputs: &mut Inputs) {
    let deadline = daemon.next_deadline();
    tokio::select! {
        biased;
        guard = readable(&inputs.chld) => {
            if let Ok(mut guard) = guard {
                let mut pids = Vec::new();
                while let Ok(Some(info)) = guard.get_inner().read_signal() {
                    pids.push(info.ssi_pid as i32);
                }
                guard.clear_ready();
                reaper::reap_reported(daemon, &pids, Instant::now());
            }
        }
        _ = tick(&mut inputs.watchdog) => selfnotify::watchdog(),
        _ = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        } => daemon.on_timers(Instant::now()),
        incoming = inputs.requests.recv(), if !inputs.closed => match incoming {
            Some(incoming) => daemon.handle(incoming, Instant::now()),
            None => {
                inputs.closed = true;
                daemon.begin_shutdown(Instant::now());
            }
        },
        Some(result) = inputs.probes.recv() => daemon.on_async_probe(result, Instant::now()),
        Some(loaded) = async {
            match inputs.reloads.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        } => daemon.on_loaded(loaded, Instant::now()),
        _ = tick(&mut inputs.sample_ticks) => {
            // Nothing running: the sampler thread is not woken.
            let targets = daemon.resource_targets();
            if let (Some(s), false) = (&inputs.sampler, targets.is_empty()) {
                s.sample(targets);
            }
        }
        Some(batch) = batch(&mut inputs.samples) => {
            let now = Instant::now();
            for (i, usage) in batch {
                daemon.feed(now, Input::Event(i, Event::Usage(usage)));
            }
        }
        Some(c) = inputs.logs.recv() => {
            daemon.feed(Instant::now(), Input::Event(c.service, Event::Logs(c.report)));
        }
        guard = readable(&inputs.notify) => {
            if let Ok(mut guard) = guard {
                let msgs = probes::read_notify(guard.get_inner());
                guard.clear_ready();
                let now = Instant::now();
                for (pid, text) in msgs {
                    daemon.on_notify(pid, &text, now);
                }
            }
        }
        Some(origin) = inputs.signals.next() => daemon.on_signal(origin, Instant::now()),
    }
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

/// Up to the hard limit for sentineld itself; its children get back the
/// limit it was started with (see [`spawn::keep_nofile_for_children`]).
/// Returns the soft limit in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    spawn::keep_nofile_for_children(soft, hard);
    match setrlimit(Resource::RLIMIT_NOFILE, hard.min(1 << 20), hard) {
        Ok(()) => hard.min(1 << 20),
        Err(_) => soft,
    }
}
