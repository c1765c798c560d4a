//! Running probes and reading sd_notify: the runtime's side.
//!
//! When a probe runs and what its result means is the machine's business
//! ([`crate::strategy::machine`]); this module runs it. Exec probes are
//! children like any other (the one reaper, their own process group, killed
//! as a group at their time limit). HTTP and TCP probes are tasks on the
//! supervisor's own runtime — no thread per service — that report back
//! through a channel. Every run answers the machine with a result, and
//! every result carries the generation (spawn count) it ran for.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::sync::mpsc;

use super::daemon::{Daemon, Owner};
use super::effects::signal_group;
use super::spawn;
use super::timers::Key;
use crate::config::{Check, HttpCheck, ServiceSpec};
use crate::strategy::machine::{Event, Notify, ProbeResult};
use crate::strategy::probe::ProbeKind;
use crate::strategy::restart::ExitStatus;
use crate::timefmt::{describe_exit, fmt_duration};

/// Probe output kept for events and status.
const OUTPUT_MAX: usize = 512;

pub(super) type AsyncResults = mpsc::UnboundedReceiver<AsyncResult>;

/// One run in flight.
pub(super) struct Run {
    started: Instant,
    /// Exec probes: the child and its output.
    exec: Option<(i32, Drain)>,
    timed_out: bool,
    generation: u64,
}

/// The last result, for status.
pub(super) struct LastResult {
    pub ok: bool,
    pub at: SystemTime,
    pub latency: Duration,
    pub output: String,
}

/// One probe of one service: its check, a process image built once for
/// exec checks, the run in flight and the last result.
pub(super) struct ProbeRt {
    pub check: Check,
    exec: Option<spawn::SpawnSpec>,
    run: Option<Run>,
    pub last: Option<LastResult>,
}

impl ProbeRt {
    /// A reload replaced `old` with this one: a check in flight finishes
    /// and reports here, and the last result stays on show.
    pub(super) fn carry_over(&mut self, old: &mut ProbeRt) {
        self.run = old.run.take();
        self.last = old.last.take();
    }

    /// Liveness, readiness, startup (by [`ProbeKind`]).
    pub(super) fn for_service(
        spec: &ServiceSpec,
        base_env: &spawn::BaseEnv,
    ) -> [Option<ProbeRt>; 3] {
        let probes = [&spec.liveness, &spec.readiness, &spec.startup];
        std::array::from_fn(|k| {
            let p = probes[k].as_ref()?;
            let kind = ProbeKind::ALL[k];
            let exec = match &p.check {
                Check::Exec(cmd) => Some(spawn::SpawnSpec::for_command(
                    cmd,
                    spec,
                    base_env,
                    &[("SENTINELD_PROBE".into(), kind.name().into())],
                )),
                _ => None,
            };
            Some(ProbeRt {
                check: p.check.clone(),
                exec,
                run: None,
                last: None,
            })
        })
    }
}

/// An exec probe's output pipe, drained by a task on the loop as the probe
/// writes: the first `OUTPUT_MAX` bytes are kept, the rest read and
/// dropped, so a probe that writes more than a pipe holds never blocks on
/// it (and never fails with EAGAIN: its end is an ordinary blocking one).
pub(super) struct Drain {
    kept: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    /// Our own handle on the read end, for what is left at the exit.
    fd: OwnedFd,
    task: tokio::task::JoinHandle<()>,
}

/// Append what fits of `data` to `kept`.
fn keep(kept: &std::sync::Mutex<Vec<u8>>, data: &[u8]) {
    let mut k = kept.lock().unwrap_or_else(|e| e.into_inner());
    let room = OUTPUT_MAX.saturating_sub(k.len());
    k.extend_from_slice(&data[..data.len().min(room)]);
}

impl Drain {
    fn start(read_end: OwnedFd) -> std::io::Result<Drain> {
        let fd = read_end.try_clone()?;
        nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )?;
        // SAFETY: the AsyncFd owns the read end, so the fd stays valid for
        // as long as it is registered.
        let afd = unsafe { tokio::io::unix::AsyncFd::register(read_end) }?;
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = kept.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            loop {
                let Ok(mut ready) = afd.readable().await else {
                    return;
                };
                match ready.try_io(|f| Ok(nix::unistd::read(f.get_ref(), &mut buf)?)) {
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(n)) => keep(&sink, &buf[..n]),
                    Err(_would_block) => {}
                }
            }
        });
        Ok(Drain { kept, fd, task })
    }

    /// The probe exited: read what is still in the pipe (without waiting
    /// for a grandchild that may hold it open) and stop draining.
    fn finish(self) -> Vec<u8> {
        self.task.abort();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = nix::unistd::read(&self.fd, &mut buf) {
            keep(&self.kept, &buf[..n]);
        }
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|e| e.into_inner()))
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
    fn probe_rt(&mut self, i: usize, kind: ProbeKind) -> Option<&mut ProbeRt> {
        self.rt[i].probes[kind as usize].as_mut()
    }

    /// Run a probe; a result that is known at once is returned.
    pub(super) fn run_probe(
        &mut self,
        i: usize,
        kind: ProbeKind,
        generation: u64,
        timeout: Duration,
        now: Instant,
    ) -> Option<Event> {
        let p = self.rt[i].probes[kind as usize].as_ref()?;
        let run = Run {
            started: now,
            exec: None,
            timed_out: false,
            generation,
        };
        match p.check.clone() {
            Check::Notify => None,
            Check::Exec(_) => match self.fork_probe(i, kind) {
                Ok((pid, out)) => {
                    let exec = Some((pid, out));
                    self.probe_rt(i, kind)?.run = Some(Run { exec, ..run });
                    self.timers.set(i, Key::ProbeTimeout(kind), now + timeout);
                    None
                }
                Err(why) => Some(self.probe_done(i, kind, generation, false, Duration::ZERO, why)),
            },
            check @ (Check::Tcp(_) | Check::Http(_)) => {
                self.probe_rt(i, kind)?.run = Some(run);
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
                    let latency = t0.elapsed();
                    let r = AsyncResult {
                        service: i,
                        kind,
                        generation,
                        ok,
                        latency,
                        output,
                    };
                    let _ = tx.send(r);
                });
                None
            }
        }
    }

    fn fork_probe(&mut self, i: usize, kind: ProbeKind) -> Result<(i32, Drain), String> {
        // The probe's end blocks as any program's stdout does; ours does
        // not, and is drained as output comes (see Drain).
        let flags = nix::fcntl::OFlag::O_CLOEXEC;
        let (out_r, out_w) = nix::unistd::pipe2(flags).map_err(|e| format!("pipe: {e}"))?;
        let drain = Drain::start(out_r).map_err(|e| format!("pipe: {e}"))?;
        let image = self.rt[i].probes[kind as usize]
            .as_ref()
            .and_then(|p| p.exec.as_ref())
            .expect("exec probes have a process image");
        let cgroup = self.cgroup_dir(i, Owner::Probe(kind));
        let stdio = spawn::Stdio {
            stdin: &self.stdin,
            stdout: &out_w,
            stderr: &out_w,
            cgroup: cgroup.as_ref().map(|(fd, born)| (fd, *born)),
        };
        let child = spawn::spawn(image, &stdio).map_err(|e| e.to_string())?;
        self.by_pid.insert(child.pid, (i, Owner::Probe(kind)));
        Ok((child.pid, drain))
    }

    /// Record the last result and hand it to the machine.
    fn probe_done(
        &mut self,
        i: usize,
        kind: ProbeKind,
        generation: u64,
        ok: bool,
        latency: Duration,
        output: String,
    ) -> Event {
        let output = truncate(output);
        self.metrics.probe(i, kind, latency);
        if let Some(p) = self.probe_rt(i, kind) {
            p.run = None;
            let at = SystemTime::now();
            let output = output.clone();
            p.last = Some(LastResult {
                ok,
                at,
                latency,
                output,
            });
        }
        Event::Probe(ProbeResult {
            kind,
            generation,
            ok,
            latency,
            output,
        })
    }

    /// The machine no longer wants the probes in flight.
    pub(super) fn cancel_probes(&mut self, i: usize) {
        for kind in ProbeKind::ALL {
            self.timers.cancel(i, Key::ProbeTimeout(kind));
            if let Some(run) = self.probe_rt(i, kind).and_then(|p| p.run.take())
                && let Some((pid, _)) = run.exec
            {
                signal_group(pid, libc::SIGKILL);
            }
        }
    }

    pub(super) fn on_async_probe(&mut self, r: AsyncResult, now: Instant) {
        let current = self
            .probe_rt(r.service, r.kind)
            .and_then(|p| p.run.as_ref())
            .is_some_and(|run| run.exec.is_none() && run.generation == r.generation);
        if current {
            let event = self.probe_done(r.service, r.kind, r.generation, r.ok, r.latency, r.output);
            self.feed(now, crate::strategy::system::Input::Event(r.service, event));
        }
    }

    /// An exec probe's time limit: kill its group; its exit reports the miss.
    pub(super) fn probe_timeout(&mut self, i: usize, kind: ProbeKind) {
        if let Some(run) = self.probe_rt(i, kind).and_then(|p| p.run.as_mut())
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
        let Some(run) = self.probe_rt(i, kind).and_then(|p| {
            p.run
                .take_if(|r| r.exec.as_ref().is_some_and(|(q, _)| *q == pid))
        }) else {
            return;
        };
        self.timers.cancel(i, Key::ProbeTimeout(kind));
        let (_, out) = run.exec.expect("exec run");
        let mut output = String::from_utf8_lossy(&out.finish()).into_owned();
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
        let event = self.probe_done(i, kind, run.generation, ok, latency, output);
        self.feed(now, crate::strategy::system::Input::Event(i, event));
    }

    /// A datagram on the notify socket from `pid`: the primary's (or a
    /// member of its group's) words go to its machine.
    pub(super) fn on_notify(&mut self, pid: i32, text: &str, now: Instant) {
        let owner = self.by_pid.get(&pid).copied().or_else(|| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let pgid: i32 = super::registry::stat_field(&stat, 5)?.parse().ok()?;
            self.by_pid.get(&pgid).copied()
        });
        let Some((i, Owner::Service(crate::strategy::machine::Role::Primary))) = owner else {
            tracing::debug!("notify message from pid {pid}, which is no service's: ignored");
            return;
        };
        for line in text.lines() {
            let n = match line {
                "READY=1" => Notify::Ready,
                "WATCHDOG=1" => Notify::Watchdog,
                _ => match line.strip_prefix("STATUS=") {
                    Some(s) => Notify::Status(truncate(s.to_string())),
                    None => continue,
                },
            };
            self.feed(
                now,
                crate::strategy::system::Input::Event(i, Event::Notify(n)),
            );
        }
    }
}

/// The notify socket: a datagram socket that passes credentials, so every
/// message says which pid sent it, and its `NOTIFY_SOCKET` value.
///
/// It lives in the abstract namespace, not in the state dir: a service
/// running as another user reaches it without a way into the state dir
/// (which only its owner may enter), and there is no file to plant a
/// symlink at, nor a path length limit. Anyone may send to it: only the
/// messages of a service's own processes count ([`Daemon::on_notify`]).
/// Random bits in the name keep another user from binding it first.
pub(super) fn bind_notify(
    state_dir: &std::path::Path,
) -> Option<(std::os::unix::net::UnixDatagram, String)> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher, RandomState};
    use std::os::linux::net::SocketAddrExt;
    // Which state dir, for people reading `ss -xl`; then a hash keyed by
    // the OS's random source, which nobody can compute beforehand.
    let dir = BuildHasherDefault::<DefaultHasher>::default().hash_one(state_dir);
    let secret = RandomState::new().hash_one(state_dir);
    let name = format!("sentineld-{dir:016x}-{secret:016x}");
    let bind = || {
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        let sock = std::os::unix::net::UnixDatagram::bind_addr(&addr)?;
        sock.set_nonblocking(true)?;
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::PassCred, &true)?;
        Ok::<_, std::io::Error>(sock)
    };
    bind()
        .inspect_err(|e| tracing::warn!("no sd_notify socket @{name}: {e}"))
        .ok()
        .map(|sock| (sock, format!("@{name}")))
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
