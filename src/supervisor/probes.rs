//! Health probes: startup, liveness and readiness (exec, HTTP, TCP), and
//! sd_notify (`READY=1`, `WATCHDOG=1`, `STATUS=`).
//!
//! Exec probes are children like any other (the one reaper, their own
//! process group, killed as a group at their timeout). HTTP and TCP probes
//! are tasks on the supervisor's own runtime — no thread per service — that
//! report back through a channel. A probe never overlaps with itself; every
//! result carries the generation (spawn count) it was started for, so a
//! result about a process that has since been replaced is dropped.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::sync::mpsc;

use crate::config::{Check, HttpCheck, ProbeSpec, ProbeTimeout};
use crate::strategy::classify::Cause;
use crate::strategy::probe::{Change, Latency, Tracker};
use crate::strategy::restart::ExitStatus;
use crate::timefmt::{describe_exit, fmt_duration};

use super::{Daemon, Phase, Role, Timer, signal_group, spawn};

/// Probe output kept for events and status.
const OUTPUT_MAX: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ProbeKind {
    Liveness = 0,
    Readiness = 1,
    Startup = 2,
}

impl ProbeKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
    }

    fn run_timer(self) -> Timer {
        match self {
            ProbeKind::Liveness => Timer::ProbeLiveness,
            ProbeKind::Readiness => Timer::ProbeReadiness,
            ProbeKind::Startup => Timer::ProbeStartup,
        }
    }

    fn timeout_timer(self) -> Timer {
        match self {
            ProbeKind::Liveness => Timer::TimeoutLiveness,
            ProbeKind::Readiness => Timer::TimeoutReadiness,
            ProbeKind::Startup => Timer::TimeoutStartup,
        }
    }
}

/// One run in flight.
pub(super) struct ProbeRun {
    started: Instant,
    /// Exec probes: the child and the read end of its output pipe.
    exec: Option<(i32, OwnedFd)>,
    timed_out: bool,
}

pub(super) struct LastResult {
    pub ok: bool,
    pub at: SystemTime,
    pub latency: Duration,
    pub output: String,
}

pub(super) struct ProbeState {
    pub spec: ProbeSpec,
    exec: Option<spawn::SpawnSpec>,
    pub tracker: Tracker,
    pub latency: Latency,
    pub running: Option<ProbeRun>,
    pub last: Option<LastResult>,
}

impl ProbeState {
    /// `service` and `base_env` build an exec probe's process image once,
    /// not at every run.
    pub(super) fn new(
        kind: ProbeKind,
        spec: &ProbeSpec,
        service: &crate::config::ServiceSpec,
        base_env: &[(Vec<u8>, Vec<u8>)],
    ) -> ProbeState {
        let exec = match &spec.check {
            Check::Exec(cmd) => Some(spawn::SpawnSpec::for_command(
                cmd,
                service,
                base_env,
                &[("SENTINELD_PROBE".into(), kind.name().into())],
            )),
            _ => None,
        };
        ProbeState {
            exec,
            tracker: Tracker::new(spec.success_threshold, spec.failure_threshold),
            spec: spec.clone(),
            latency: Latency::default(),
            running: None,
            last: None,
        }
    }

    fn timeout(&self) -> Duration {
        match self.spec.timeout {
            ProbeTimeout::Fixed(t) => t,
            ProbeTimeout::Adaptive => self.latency.adaptive_timeout(self.spec.interval),
        }
    }
}

/// An HTTP or TCP probe's result, sent back from its task.
pub struct AsyncResult {
    service: usize,
    kind: ProbeKind,
    generation: u64,
    ok: bool,
    latency: Duration,
    output: String,
}

fn truncate(mut s: String) -> String {
    if s.len() > OUTPUT_MAX {
        let mut cut = OUTPUT_MAX;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s.trim_end().to_string()
}

async fn tcp_probe(addr: String) -> Result<String, String> {
    tokio::net::TcpStream::connect(&addr)
        .await
        .map(|_| format!("connected to {addr}"))
        .map_err(|e| format!("connect {addr}: {e}"))
}

async fn http_probe(check: HttpCheck) -> Result<String, String> {
    let stream = tokio::net::TcpStream::connect(&check.authority)
        .await
        .map_err(|e| format!("connect {}: {e}", check.authority))?;
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("{}: {e}", check.url))?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(check.method.as_str())
        .uri(check.path.as_str())
        .header(hyper::header::HOST, check.authority.as_str())
        .header(hyper::header::USER_AGENT, "sentineld-probe");
    for (k, v) in &check.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{}: {e}", check.url))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("{}: {e}", check.url))?;
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut b = resp.into_body();
    while body.len() < OUTPUT_MAX {
        match b.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    body.extend_from_slice(d);
                }
            }
            _ => break,
        }
    }
    let text = format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
    if (check.expect.0..=check.expect.1).contains(&status) {
        Ok(text)
    } else {
        Err(format!(
            "{text} (expected {}-{})",
            check.expect.0, check.expect.1
        ))
    }
}

impl Daemon {
    /// A new primary process: start its probes from scratch.
    pub(super) fn start_probes(&mut self, i: usize, now: Instant) {
        let svc = &mut self.services[i];
        svc.pending_cause = None;
        svc.notify_status = None;
        let notify_ready = svc
            .spec
            .readiness
            .as_ref()
            .is_some_and(|r| r.check == Check::Notify);
        svc.ready = svc.spec.readiness.as_ref().map(|_| false);
        svc.started_ok = svc.spec.startup.is_none();
        for p in svc.probes.iter_mut().flatten() {
            p.tracker.reset();
            p.running = None;
        }
        let watchdog = svc.spec.watchdog;
        let start_timeout = svc.spec.start_timeout;
        if self.services[i].started_ok {
            self.schedule_after_startup(i, now);
        } else {
            let delay = self.services[i].probes[ProbeKind::Startup as usize]
                .as_ref()
                .map_or(Duration::ZERO, |p| p.spec.initial_delay);
            self.set_timer(i, Timer::ProbeStartup, Some(now + delay));
        }
        if let Some(w) = watchdog {
            self.set_timer(i, Timer::Watchdog, Some(now + w));
        }
        if let Some(t) = start_timeout
            && (self.services[i].ready.is_some() || notify_ready)
        {
            self.set_timer(i, Timer::StartTimeout, Some(now + t));
        }
    }

    fn schedule_after_startup(&mut self, i: usize, now: Instant) {
        for kind in [ProbeKind::Liveness, ProbeKind::Readiness] {
            let delay = match &self.services[i].probes[kind as usize] {
                Some(p) if p.spec.check != Check::Notify => p.spec.initial_delay,
                _ => continue,
            };
            self.set_timer(i, kind.run_timer(), Some(now + delay));
        }
    }

    /// The primary is gone or going: no more probes for it.
    pub(super) fn stop_probes(&mut self, i: usize) {
        self.clear_timers(
            i,
            &[
                Timer::ProbeLiveness,
                Timer::ProbeReadiness,
                Timer::ProbeStartup,
                Timer::TimeoutLiveness,
                Timer::TimeoutReadiness,
                Timer::TimeoutStartup,
                Timer::Watchdog,
                Timer::StartTimeout,
            ],
        );
        for p in self.services[i].probes.iter_mut().flatten() {
            if let Some(run) = p.running.take()
                && let Some((pid, _)) = run.exec
            {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    pub(super) fn run_probe(&mut self, i: usize, kind: ProbeKind, now: Instant) {
        if !matches!(self.services[i].phase, Phase::Running { .. }) {
            return;
        }
        let Some(p) = self.services[i].probes[kind as usize].as_ref() else {
            return;
        };
        let interval = p.spec.interval;
        if p.running.is_some() {
            // Never overlap with itself: try again after one more interval.
            self.set_timer(i, kind.run_timer(), Some(now + interval));
            return;
        }
        let timeout = p.timeout();
        let generation = self.services[i].spawns;
        match p.spec.check.clone() {
            Check::Notify => {}
            Check::Exec(_) => {
                let spec = self.services[i].probes[kind as usize]
                    .as_ref()
                    .and_then(|p| p.exec.as_ref())
                    .expect("exec probes have a process image");
                let started = nix::unistd::pipe2(
                    nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK,
                )
                .map_err(|e| format!("pipe: {e}"))
                .and_then(|(out_r, out_w)| {
                    let stdio = spawn::Stdio {
                        stdin: &self.stdin,
                        stdout: &out_w,
                        stderr: &out_w,
                    };
                    let child = spawn::spawn(spec, &stdio).map_err(|e| e.to_string())?;
                    Ok((child.pid, out_r))
                });
                match started {
                    Ok((pid, out_r)) => {
                        self.by_pid.insert(pid, (i, Role::Probe(kind)));
                        if let Some(p) = self.services[i].probes[kind as usize].as_mut() {
                            p.running = Some(ProbeRun {
                                started: now,
                                exec: Some((pid, out_r)),
                                timed_out: false,
                            });
                        }
                        self.set_timer(i, kind.timeout_timer(), Some(now + timeout));
                    }
                    Err(why) => {
                        self.probe_result(i, kind, generation, false, Duration::ZERO, why, now);
                    }
                }
            }
            check @ (Check::Tcp(_) | Check::Http(_)) => {
                if let Some(p) = self.services[i].probes[kind as usize].as_mut() {
                    p.running = Some(ProbeRun {
                        started: now,
                        exec: None,
                        timed_out: false,
                    });
                }
                let tx = self.probe_tx.clone();
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    let result = tokio::time::timeout(timeout, async move {
                        match check {
                            Check::Tcp(addr) => tcp_probe(addr).await,
                            Check::Http(h) => http_probe(h).await,
                            _ => unreachable!("exec and notify are not run here"),
                        }
                    })
                    .await;
                    let (ok, output) = match result {
                        Ok(Ok(out)) => (true, out),
                        Ok(Err(out)) => (false, out),
                        Err(_) => (false, format!("timed out after {}", fmt_duration(timeout))),
                    };
                    let _ = tx.send(AsyncResult {
                        service: i,
                        kind,
                        generation,
                        ok,
                        latency: t0.elapsed(),
                        output,
                    });
                });
            }
        }
    }

    pub(super) fn on_async_probe(&mut self, r: AsyncResult, now: Instant) {
        if let Some(p) = self.services[r.service].probes[r.kind as usize].as_mut() {
            p.running = None;
        }
        self.probe_result(
            r.service,
            r.kind,
            r.generation,
            r.ok,
            r.latency,
            r.output,
            now,
        );
    }

    /// An exec probe's timeout: kill its group; its exit reports the miss.
    pub(super) fn probe_timeout(&mut self, i: usize, kind: ProbeKind) {
        if let Some(p) = self.services[i].probes[kind as usize].as_mut()
            && let Some(run) = p.running.as_mut()
            && let Some((pid, _)) = run.exec
        {
            run.timed_out = true;
            signal_group(pid, libc::SIGKILL);
        }
    }

    /// An exec probe exited (reaped).
    pub(super) fn on_probe_exit(
        &mut self,
        i: usize,
        kind: ProbeKind,
        pid: i32,
        status: ExitStatus,
        now: Instant,
    ) {
        let generation = self.services[i].spawns;
        let Some(p) = self.services[i].probes[kind as usize].as_mut() else {
            return;
        };
        let Some(run) = p
            .running
            .take_if(|r| r.exec.as_ref().is_some_and(|(q, _)| *q == pid))
        else {
            return;
        };
        self.set_timer(i, kind.timeout_timer(), None);
        let (_, out) = run.exec.expect("exec run");
        let mut buf = vec![0u8; OUTPUT_MAX];
        let n = nix::unistd::read(&out, &mut buf).unwrap_or(0);
        let mut output = String::from_utf8_lossy(&buf[..n]).into_owned();
        let latency = now.saturating_duration_since(run.started);
        let ok = !run.timed_out && status.success();
        if run.timed_out {
            output = format!(
                "timed out after {}, process group killed",
                fmt_duration(latency)
            );
        } else if !ok {
            output = format!("{}: {output}", describe_exit(status));
        }
        self.probe_result(i, kind, generation, ok, latency, output, now);
    }

    #[allow(clippy::too_many_arguments)]
    fn probe_result(
        &mut self,
        i: usize,
        kind: ProbeKind,
        generation: u64,
        ok: bool,
        latency: Duration,
        output: String,
        now: Instant,
    ) {
        let svc = &mut self.services[i];
        if generation != svc.spawns
            || !matches!(svc.phase, Phase::Running { .. })
            || svc.pending_cause.is_some()
        {
            return;
        }
        let Some(p) = svc.probes[kind as usize].as_mut() else {
            return;
        };
        let output = truncate(output);
        p.latency.record(latency);
        let change = p.tracker.record(ok);
        let failures = p.tracker.failures;
        let interval = p.spec.interval;
        let started = now.checked_sub(latency).unwrap_or(now);
        p.last = Some(LastResult {
            ok,
            at: SystemTime::now(),
            latency,
            output: output.clone(),
        });
        let lat = format!("{:.1}ms", latency.as_secs_f64() * 1000.0);
        match (kind, change) {
            (ProbeKind::Startup, Change::Passed) => {
                self.services[i].started_ok = true;
                self.set_timer(i, Timer::ProbeStartup, None);
                self.event(
                    i,
                    "probe",
                    format!("startup probe passed ({lat}): {output}"),
                );
                self.schedule_after_startup(i, now);
                return;
            }
            (ProbeKind::Startup, Change::Failed) => {
                let msg = format!("startup probe failed {failures} times (last: {output})");
                self.kill_for(i, Cause::ReadinessTimeout, msg);
                return;
            }
            (ProbeKind::Liveness, Change::Failed) => {
                let msg = format!("liveness probe failed {failures} times (last: {output})");
                self.kill_for(i, Cause::Liveness, msg);
                return;
            }
            (ProbeKind::Readiness, Change::Passed) => {
                self.services[i].ready = Some(true);
                self.set_timer(i, Timer::StartTimeout, None);
                self.event(
                    i,
                    "ready",
                    format!("ready: readiness probe passed ({lat}): {output}"),
                );
            }
            (ProbeKind::Readiness, Change::Failed) => {
                self.services[i].ready = Some(false);
                self.event(
                    i,
                    "not ready",
                    format!("not ready: readiness probe failed {failures} times (last: {output})"),
                );
            }
            (_, _) if !ok => {
                self.event(
                    i,
                    "probe",
                    format!("{} probe missed ({lat}): {output}", kind.name()),
                );
            }
            _ => {}
        }
        let next = (started + interval).max(now);
        self.set_timer(i, kind.run_timer(), Some(next));
    }

    /// The process is alive but judged dead (liveness, watchdog, startup,
    /// start timeout): kill its group; the exit is then handled as `cause`.
    pub(super) fn kill_for(&mut self, i: usize, cause: Cause, message: String) {
        let Phase::Running { pid, .. } = self.services[i].phase else {
            return;
        };
        self.stop_probes(i);
        self.services[i].pending_cause = Some((cause, message.clone()));
        self.event(
            i,
            "probe",
            format!("{message}; killing process group {pid}"),
        );
        signal_group(pid, libc::SIGKILL);
    }

    pub(super) fn on_watchdog(&mut self, i: usize) {
        if let Some(w) = self.services[i].spec.watchdog {
            let msg = format!("watchdog: no WATCHDOG=1 within {}", fmt_duration(w));
            self.kill_for(i, Cause::Liveness, msg);
        }
    }

    pub(super) fn on_start_timeout(&mut self, i: usize) {
        if self.services[i].ready != Some(true)
            && let Some(t) = self.services[i].spec.start_timeout
        {
            let msg = format!("not ready within start_timeout ({})", fmt_duration(t));
            self.kill_for(i, Cause::ReadinessTimeout, msg);
        }
    }

    /// A datagram on the notify socket from `pid`.
    pub(super) fn on_notify(&mut self, pid: i32, text: &str, now: Instant) {
        let owner = self.by_pid.get(&pid).copied().or_else(|| {
            let pgid: i32 = super::registry::stat_field(
                &std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?,
                5,
            )?
            .parse()
            .ok()?;
            self.by_pid.get(&pgid).copied()
        });
        let Some((i, Role::Primary)) = owner else {
            tracing::debug!("notify message from pid {pid}, which is no service's: ignored");
            return;
        };
        if !matches!(self.services[i].phase, Phase::Running { .. }) {
            return;
        }
        for line in text.lines() {
            if line == "READY=1" {
                let notify = self.services[i]
                    .spec
                    .readiness
                    .as_ref()
                    .is_some_and(|r| r.check == Check::Notify);
                if notify && self.services[i].ready != Some(true) {
                    self.services[i].ready = Some(true);
                    self.set_timer(i, Timer::StartTimeout, None);
                    self.event(i, "ready", "ready: READY=1".into());
                }
            } else if line == "WATCHDOG=1" {
                if let Some(w) = self.services[i].spec.watchdog {
                    self.set_timer(i, Timer::Watchdog, Some(now + w));
                }
            } else if let Some(status) = line.strip_prefix("STATUS=") {
                self.services[i].notify_status = Some(truncate(status.to_string()));
            }
        }
    }
}

/// The notify socket: a datagram socket that passes credentials, so every
/// message says which pid sent it.
pub(super) fn bind_notify(
    path: &std::path::Path,
) -> std::io::Result<std::os::unix::net::UnixDatagram> {
    let _ = std::fs::remove_file(path);
    let sock = std::os::unix::net::UnixDatagram::bind(path)?;
    sock.set_nonblocking(true)?;
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)?;
    Ok(sock)
}

/// Read every pending datagram: (sender pid, text).
pub(super) fn read_notify(sock: &std::os::unix::net::UnixDatagram) -> Vec<(i32, String)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, UnixCredentials, recvmsg};
    let mut out = Vec::new();
    loop {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!(UnixCredentials);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let (pid, n) = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(msg) => {
                let pid = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                        _ => None,
                    })
                });
                (pid, msg.bytes)
            }
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
        };
        if let Some(pid) = pid {
            out.push((pid, String::from_utf8_lossy(&buf[..n]).into_owned()));
        }
    }
    out
}

/// Tell our own supervisor (systemd `Type=notify`) about us, if it asked.
pub(super) fn notify_self(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let result = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = result {
        tracing::warn!("cannot notify our own supervisor ({state}): {e}");
    }
}

pub(super) type AsyncResults = mpsc::UnboundedReceiver<AsyncResult>;
