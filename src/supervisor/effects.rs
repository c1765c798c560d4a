//! The effects executor: feeds an input to the core and carries out the
//! actions it returns — forks, signals, timers, probes, journal records,
//! hooks, replies. A spawn's result goes straight back to the core as an
//! event. Nothing here decides what follows what.

use std::collections::VecDeque;
use std::os::fd::OwnedFd;
use std::time::{Instant, SystemTime};

use super::cgroup::Cgroups;
use super::daemon::{Daemon, Owner};
use super::timers::Key;
use super::{logs, registry, spawn};
use crate::control::protocol::{ErrorKind, EventRecord, Response};
use crate::strategy::classify::{Cause, signal_name};
use crate::strategy::machine::{Action, Event, Fallback, Phase, Record, Reply, Role, Target};
use crate::strategy::orchestrator::Action as Remedy;
use crate::strategy::system::Input;
use crate::timefmt::format_time;

/// Signal the group led by `leader`, an unreaped child of ours. Right after
/// the fork the child may not have called setsid yet, and the group does not
/// exist; the leader itself is signalled then.
pub(super) fn signal_group(leader: i32, sig: libc::c_int) {
    if !kill(-leader, sig) {
        kill(leader, sig);
    }
}

pub(super) fn kill(target: i32, sig: libc::c_int) -> bool {
    // SAFETY: plain syscall; callers pass only pids/groups that are ours.
    unsafe { libc::kill(target, sig) == 0 }
}

/// `oom_kill` from our cgroup's memory.events (cgroup v2), when readable.
/// Services live in sentineld's cgroup, so a rise during a SIGKILL death
/// means the kernel's OOM killer chose one of them.
pub(super) fn read_oom_kills() -> Option<u64> {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroup.lines().find_map(|l| l.strip_prefix("0::"))?;
    let events =
        std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.events", path.trim())).ok()?;
    events
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

impl Daemon {
    /// Feed one input to the core and carry out everything that follows.
    pub(super) fn feed(&mut self, now: Instant, input: Input) {
        if let Input::Event(i, Event::GroupGone | Event::FallbackGroupGone) = input {
            self.registry.touch(i);
        }
        let out = self.system.handle(now, input);
        self.carry_out(now, out);
    }

    /// Carry out what the core decided, and what follows from it.
    pub(super) fn carry_out(&mut self, now: Instant, out: Vec<(usize, Action)>) {
        let mut work: VecDeque<(usize, Action)> = out.into();
        while let Some((i, action)) = work.pop_front() {
            if let Some(event) = self.execute(i, action, now) {
                work.extend(self.system.handle(now, Input::Event(i, event)));
            }
        }
    }

    fn execute(&mut self, i: usize, action: Action, now: Instant) -> Option<Event> {
        match action {
            Action::Spawn(role) => return Some(self.spawn(i, role)),
            Action::Signal {
                pid,
                signal,
                target,
            } => {
                match target {
                    Target::Group => signal_group(pid, signal),
                    Target::GroupOnly => {
                        kill(-pid, signal);
                    }
                }
                self.signal_cgroup(i, pid, signal);
            }
            Action::SetTimer(t, at) => self.timers.set(i, Key::Machine(t), at),
            Action::CancelTimer(t) => self.timers.cancel(i, Key::Machine(t)),
            Action::RunProbe {
                kind,
                generation,
                timeout,
            } => return self.run_probe(i, kind, generation, timeout, now),
            Action::CancelProbes => self.cancel_probes(i),
            Action::Record(record) => self.record(i, record, now),
            Action::Reply(ticket, reply) => {
                let response = match reply {
                    Reply::Done(message) => Response::done(message),
                    Reply::Conflict(message) => Response::error(ErrorKind::Conflict, message),
                };
                if let Some(tx) = self.tickets.remove(&ticket) {
                    let _ = tx.send(response.into());
                }
            }
            Action::Adopt => return Some(self.adopt(i)),
            Action::AskTree => unreachable!("the system answers AskTree itself"),
        }
        None
    }

    /// A write end of the service's log pipe for a process about to
    /// start. The pipe is made and handed to the log thread on first use:
    /// the early services of a start-up should not carry the descriptors of
    /// the later ones into their children.
    fn log_writer(&mut self, i: usize) -> Result<OwnedFd, nix::Error> {
        let hub = self.logs.as_mut().ok_or(nix::Error::EBADF)?;
        let io = |e: std::io::Error| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
        if !hub.has(i) {
            let (pipe, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            let svc = &self.rt[i];
            let file = self.state_dir.log_file(&svc.spec.name);
            // The pipe's own write end goes to its first process.
            return hub
                .add(logs::LogSink {
                    id: i,
                    path: file.path(),
                    file,
                    max_size: svc.spec.logs.max_size,
                    keep: svc.spec.logs.keep,
                    pipe,
                    writer,
                    keep_tail: if svc.needs_output {
                        logs::TAIL
                    } else {
                        logs::SHORT_TAIL
                    },
                })
                .map_err(io);
        }
        hub.writer(i).map_err(io)
    }

    /// Fork `image` (the service's own command if none) with the service's
    /// stdio, and register the pid.
    pub(super) fn fork(
        &mut self,
        i: usize,
        image: Option<&spawn::SpawnSpec>,
        owner: Owner,
    ) -> Result<spawn::Spawned, spawn::SpawnError> {
        let output = self.log_writer(i).map_err(spawn::SpawnError::Pipe)?;
        // The tail a failure quotes is of this run (or this pre-start) only.
        if let (Owner::Service(Role::Primary | Role::PreStart), Some(hub)) = (owner, &self.logs) {
            hub.mark_run(i);
        }
        let cgroup = self.cgroup_dir(i, owner);
        let svc = &self.rt[i];
        let stdio = spawn::Stdio {
            stdin: &self.stdin,
            stdout: &output,
            stderr: &output,
            cgroup: cgroup.as_ref().map(|(fd, born)| (fd, *born)),
        };
        let child = spawn::spawn(image.unwrap_or(&svc.image), &stdio)?;
        self.by_pid.insert(child.pid, (i, owner));
        Ok(child)
    }

    /// The cgroup of a service's primary, fallback or cleanup, where there
    /// are cgroups.
    pub(super) fn cgroup_of(&self, i: usize, role: Role) -> Option<std::path::PathBuf> {
        self.cgroup_for(i, Owner::Service(role))
    }

    /// The cgroup of whatever process of service `i` `owner` says: each
    /// part of a service has its own, so a hook's or a probe's escapees
    /// are found and stopped as a service's are.
    pub(super) fn cgroup_for(&self, i: usize, owner: Owner) -> Option<std::path::PathBuf> {
        let cg = self.cgroups.as_ref()?;
        let part = match owner {
            Owner::Service(Role::Primary) => "main",
            Owner::Service(Role::Fallback) => "fallback",
            Owner::Service(Role::Cleanup) => "cleanup",
            Owner::Service(Role::PreStart) => "pre-start",
            Owner::Hook => "hook",
            Owner::Probe(kind) => kind.name(),
        };
        Some(cg.path(&self.rt[i].spec.name, part))
    }

    /// [`Self::cgroup_for`]'s directory, made if missing, for a child to be
    /// started in.
    pub(super) fn cgroup_dir(&self, i: usize, owner: Owner) -> Option<(OwnedFd, bool)> {
        let path = self.cgroup_for(i, owner)?;
        self.cgroups.as_ref()?.dir(&path)
    }

    /// The cgroup of the primary or fallback whose group `pgid` leads.
    fn cgroup_led_by(&self, i: usize, pgid: i32) -> Option<std::path::PathBuf> {
        let svc = &self.system.services[i];
        let primary = match svc.phase {
            Phase::Running { pid, .. } => pid == pgid,
            Phase::Stopping { pgid: p, .. } => p == pgid,
            _ => false,
        };
        let fallback = match svc.fallback {
            Fallback::Running { pid, .. } => pid == pgid,
            Fallback::Remnants { pgid: p } => p == pgid,
            _ => false,
        };
        match (primary, fallback) {
            (true, _) => self.cgroup_of(i, Role::Primary),
            (_, true) => self.cgroup_of(i, Role::Fallback),
            _ => None,
        }
    }

    /// A signal to a primary's or fallback's process group reaches every
    /// process of its cgroup too — those that left the group by setsid().
    fn signal_cgroup(&self, i: usize, pgid: i32, sig: libc::c_int) {
        if let Some(path) = self.cgroup_led_by(i, pgid) {
            Cgroups::signal_outside(&path, sig, pgid);
        }
    }

    fn spawn(&mut self, i: usize, role: Role) -> Event {
        let image = match role {
            Role::Primary => None,
            Role::Fallback => self.rt[i]
                .spec
                .recovery
                .fallback
                .as_ref()
                .map(|f| &f.command),
            Role::Cleanup => self.rt[i].spec.recovery.restart.cleanup.as_ref(),
            Role::PreStart => self.rt[i].spec.pre_start.as_ref(),
        }
        .map(|cmd| {
            let env = self.context_env(i, None);
            spawn::SpawnSpec::for_command(cmd, &self.rt[i].spec, &self.base_env, &env)
        });
        match self.fork(i, image.as_ref(), Owner::Service(role)) {
            // It will not run the program: a failed start, said now. The
            // child, exiting 127, is reaped as nobody's.
            Ok(spawn::Spawned {
                pid,
                failed: Some((errno, message)),
            }) => {
                self.by_pid.remove(&pid);
                Event::SpawnFailed {
                    role,
                    errno,
                    message,
                }
            }
            Ok(child) => {
                if matches!(role, Role::Primary | Role::Fallback) {
                    self.registry.touch(i);
                }
                if role == Role::Primary {
                    self.rt[i].start_time = None;
                }
                Event::Spawned {
                    role,
                    pid: child.pid,
                }
            }
            Err(e) => Event::SpawnFailed {
                role,
                errno: match &e {
                    spawn::SpawnError::NotFound { .. } => libc::ENOENT,
                    spawn::SpawnError::Fork(e) | spawn::SpawnError::Pipe(e) => *e as i32,
                },
                message: e.to_string(),
            },
        }
    }

    /// An event of the runtime's own about service `i` (no hook runs).
    pub(super) fn note(&mut self, i: usize, kind: &'static str, message: String, now: Instant) {
        let r = Record {
            kind,
            message,
            severity: None,
            action: None,
            hook: false,
        };
        self.record(i, r, now);
    }

    fn record(&mut self, i: usize, r: Record, now: Instant) {
        let service = self.rt[i].spec.name.clone();
        // An event is one line, whatever output (a probe's body, a
        // service's last words) went into it.
        let message = if r.message.chars().any(|c| c.is_control() || c > '\u{2027}') {
            crate::strategy::text::one_line(&r.message)
        } else {
            r.message
        };
        tracing::info!("{service}: {message}");
        let record = EventRecord {
            // The journal numbers it.
            id: 0,
            at: format_time(SystemTime::now()),
            service,
            kind: r.kind.to_string(),
            message,
            severity: r.severity.map(|s| s.as_str().into()),
            action: r.action.map(Into::into),
        };
        self.metrics.event(r.kind);
        if r.kind == "recovered"
            && let Some(took) = self.system.services[i].stats.last_recovery
        {
            self.metrics.recovered(i, took);
        }
        if r.hook {
            self.run_hook(i, &record, now);
        }
        self.webhooks.notify(Some(i), &record);
        self.journal.push(record);
    }

    /// Run the service's `on_event` command for `record`, unless one is
    /// still running (hooks never pile up).
    fn run_hook(&mut self, i: usize, record: &EventRecord, now: Instant) {
        if self.system.shutting_down() {
            return;
        }
        let Some(cmd) = self.rt[i].spec.on_event.clone() else {
            return;
        };
        if self.rt[i].hook.is_some() {
            self.metrics.hook_dropped();
            return;
        }
        let env = self.context_env(i, Some(record));
        let image = spawn::SpawnSpec::for_command(&cmd, &self.rt[i].spec, &self.base_env, &env);
        match self.fork(i, Some(&image), Owner::Hook) {
            Ok(child) => {
                self.rt[i].hook = Some(child.pid);
                let limit = now + self.rt[i].spec.on_event_timeout;
                self.timers.set(i, Key::HookLimit, limit);
            }
            Err(e) => {
                self.metrics.hook_dropped();
                tracing::warn!("{}: on_event hook could not start: {e}", record.service);
            }
        }
    }

    /// `SENTINELD_*` for cleanup, fallback and hook commands: the last
    /// failure, and the event when there is one.
    fn context_env(&self, i: usize, event: Option<&EventRecord>) -> Vec<(String, String)> {
        let svc = &self.system.services[i];
        let mut env = Vec::new();
        let var = |k: &str, v: String| (format!("SENTINELD_{k}"), v);
        if let Some((d, _)) = &svc.last_failure {
            let (code, sig) = match d.cause {
                Cause::Exit(c) => (c.to_string(), String::new()),
                Cause::Signal(s) => (String::new(), signal_name(s)),
                _ => (String::new(), String::new()),
            };
            let attempt = match d.action {
                Remedy::Retry { attempt, .. } | Remedy::Restart { attempt, .. } => {
                    attempt.to_string()
                }
                _ => String::new(),
            };
            env.extend([
                var("SEVERITY", d.severity.as_str().to_string()),
                var("CAUSE", d.cause.describe()),
                var("EXIT_CODE", code),
                var("SIGNAL", sig),
                var("ATTEMPT", attempt),
                var("ACTION", d.action.name().to_string()),
                var("RISK", format!("{:.3}", d.risk)),
            ]);
        }
        if let Some(e) = event {
            env.push(var("EVENT", e.kind.clone()));
            env.push(var("MESSAGE", e.message.clone()));
        }
        env.push(var("STATE", svc.state_name().to_string()));
        env
    }

    /// The hook ran past `on_event_timeout`: kill its group.
    pub(super) fn hook_timed_out(&mut self, i: usize) {
        if let Some(pid) = self.rt[i].hook {
            signal_group(pid, libc::SIGKILL);
            let limit = crate::timefmt::fmt_duration(self.rt[i].spec.on_event_timeout);
            let message = format!("on_event hook ran past {limit}: SIGKILL to process group {pid}");
            let record = Record {
                kind: "hook",
                message,
                severity: None,
                action: None,
                hook: false,
            };
            self.record(i, record, Instant::now());
        }
    }

    /// Find a forking service's daemon: the pid in its `pid_file`, or the
    /// one process its launcher left in its cgroup. Only a child of ours
    /// (re-parented to us as subreaper) qualifies: a pid file can name any
    /// process, and we signal only our own.
    fn adopt(&mut self, i: usize) -> Event {
        let cgroup = self.cgroup_of(i, Role::Primary);
        let found = match &self.rt[i].spec.pid_file {
            Some(file) => {
                read_pid_file(file).and_then(|pid| self.belongs(i, pid, cgroup.as_deref()))
            }
            None => match &cgroup {
                None => Err(
                    "no pid_file, and no cgroup to find the daemon in: declare `pid_file`".into(),
                ),
                Some(path) => match Cgroups::pids(path)[..] {
                    [pid] => self.belongs(i, pid, cgroup.as_deref()),
                    [] => {
                        Err("the launcher exited 0 and left no process; declare `pid_file`".into())
                    }
                    ref many => Err(format!(
                        "the launcher left {} processes; declare `pid_file` to say which is the daemon",
                        many.len()
                    )),
                },
            },
        };
        match found {
            Ok(pid) => {
                self.by_pid.insert(pid, (i, Owner::Service(Role::Primary)));
                self.rt[i].start_time = None;
                self.registry.touch(i);
                Event::Adopted { pid }
            }
            Err(why) => {
                // What the launcher started goes: nothing runs unsupervised.
                if let Some(path) = &cgroup {
                    Cgroups::signal(path, libc::SIGKILL);
                }
                Event::AdoptFailed { why }
            }
        }
    }

    /// `pid` may be this service's daemon: a child of ours (re-parented to
    /// us as subreaper) that is no other role's process, and, where there
    /// are cgroups, in this service's cgroup — a pid file can name anyone.
    fn belongs(&self, i: usize, pid: i32, cgroup: Option<&std::path::Path>) -> Result<i32, String> {
        let me = std::process::id() as i32;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let child = registry::stat_field(&stat, 4).and_then(|p| p.parse().ok()) == Some(me);
        let taken = self.by_pid.contains_key(&pid);
        let inside = cgroup.is_none_or(|p| Cgroups::pids(p).contains(&pid));
        match pid > 1 && child && !taken && inside {
            true => Ok(pid),
            false => Err(format!(
                "pid {pid} is not a process of {}",
                self.rt[i].spec.name
            )),
        }
    }

    /// Whether the OOM killer struck since we last looked.
    pub(super) fn oom_kill_happened(&mut self) -> bool {
        let now = read_oom_kills();
        let happened = matches!((self.oom_kills, now), (Some(a), Some(b)) if b > a);
        self.oom_kills = now;
        happened
    }

    /// Record in the pgid registry the groups of the services whose
    /// leaders started or ended since the last flush: a line each.
    pub(super) fn flush_registry(&mut self) {
        let changed = self.registry.take_changed();
        if changed.is_empty() {
            return;
        }
        let mut want = Vec::with_capacity(2 * changed.len());
        for i in changed {
            let (svc, rt) = (&self.system.services[i], &mut self.rt[i]);
            let pgid = match svc.phase {
                Phase::Running { pid, .. } => pid,
                Phase::Stopping { pgid, .. } => pgid,
                _ => 0,
            };
            if pgid > 0 && rt.start_time.is_none() {
                rt.start_time = registry::start_time(pgid);
            }
            let primary = (pgid > 0).then_some(rt.start_time).flatten();
            let name = rt.spec.name.clone();
            want.push((
                name.clone(),
                primary.map(|start_time| registry::Record {
                    name: name.clone(),
                    pgid,
                    start_time,
                }),
            ));
            let fallback = format!("{name}@fallback");
            let record = svc.fallback_pid().and_then(|pid| {
                Some(registry::Record {
                    name: fallback.clone(),
                    pgid: pid,
                    start_time: registry::start_time(pid)?,
                })
            });
            want.push((fallback, record));
        }
        self.registry.apply(want);
    }
}

/// The pid in a forking service's pid file: opened without following a
/// symlink, at most 32 bytes read, and never echoed (it could be anything).
fn read_pid_file(path: &std::path::Path) -> Result<i32, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{shown} is not a regular file"));
    }
    let mut text = String::new();
    let _ = (&mut file).take(32).read_to_string(&mut text);
    text.trim()
        .parse()
        .map_err(|_| format!("{shown} holds no pid"))
}
