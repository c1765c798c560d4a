//! The runtime's state: the pure core ([`System`]) and, beside it, every
//! OS handle and process record the core does not hold — log pipes, exec
//! status pipes, process images, the pid → owner map, the timer queue, the
//! journal, the tickets of control requests waiting for an answer.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::journal::Journal;
use super::probes::{self, ProbeRt};
use super::timers::Timers;
use super::{RunError, logs, registry, spawn};
use crate::config::{Plan, ServiceSpec};
use crate::control::server::Reply;
use crate::state_dir::Trusted;
use crate::strategy::machine::{self, Ticket};
use crate::strategy::probe::ProbeKind;
use crate::strategy::system::System;

/// Who a child process of ours belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Owner {
    Service(machine::Role),
    Hook,
    Probe(ProbeKind),
}

/// What the daemon's entry needs besides the plan: read by the caller
/// (`main`/`commands`), so tests can pass their own.
#[derive(Debug)]
pub struct Options {
    /// Seeds the random source (jitter, retry lottery, staggering).
    pub seed: u64,
    /// The environment every service starts from.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
    /// Gets one line (`ready PID`) once every service has been started
    /// (`up -d` waits for it).
    pub ready: Option<File>,
    /// The HTTP API's listener (`api.listen`), bound by the caller.
    pub http: Option<crate::control::http::Listener>,
}

impl Options {
    /// From sentineld's own environment: `SENTINELD_SEED` fixes the seed for
    /// reproducible runs; the clock seeds it otherwise.
    pub fn from_env() -> Options {
        let seed = std::env::var("SENTINELD_SEED")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id())
            });
        let env = std::env::vars_os()
            .filter(|(k, _)| {
                let ours = k == "SENTINELD_STATE_DIR" || k == "SENTINELD_SEED";
                !ours && !super::selfnotify::MANAGER_VARS.iter().any(|v| k == v)
            })
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        Options {
            seed,
            env,
            ready: None,
            http: None,
        }
    }
}

/// A service's OS-side state.
pub(super) struct ServiceRt {
    pub spec: ServiceSpec,
    pub image: spawn::SpawnSpec,
    /// The `on_event` hook's process while it runs (one at a time).
    pub hook: Option<i32>,
    /// Start time of the current leader, for the pgid registry.
    pub start_time: Option<u64>,
    pub probes: [Option<ProbeRt>; 3],
    /// A `classify` rule looks at output: failures fetch the log tail.
    pub needs_output: bool,
}

pub(super) struct Daemon {
    pub system: System,
    pub rt: Vec<ServiceRt>,
    pub by_pid: HashMap<i32, (usize, Owner)>,
    pub timers: Timers,
    pub journal: Journal,
    pub tickets: HashMap<Ticket, oneshot::Sender<Reply>>,
    pub next_ticket: Ticket,
    pub down_waiters: Vec<oneshot::Sender<Reply>>,
    pub base_env: spawn::BaseEnv,
    pub state_dir: Trusted,
    pub stdin: OwnedFd,
    pub logs: Option<logs::LogHub>,
    pub probe_tx: mpsc::UnboundedSender<probes::AsyncResult>,
    pub notify: Option<std::os::unix::net::UnixDatagram>,
    /// The kernel's OOM-kill count for our cgroup, when it can be read.
    pub oom_kills: Option<u64>,
    /// Adopted orphans were sent SIGTERM at shutdown; SIGKILL after this.
    pub orphan_deadline: Option<Instant>,
    /// That grace is spent: orphans adopted since are killed at once.
    pub orphan_grace_over: bool,
    pub finished: bool,
    /// The pgid registry, a line per change.
    pub registry: registry::Recorder,
    /// Children were reaped by pid: look through all of them after the
    /// turn, for exits a coalesced SIGCHLD did not name.
    pub sweep_due: bool,
    /// A monotonic instant and the wall clock at the same moment: turns the
    /// core's instants into times for people.
    pub epoch: (Instant, SystemTime),
    /// A cgroup per service, where cgroup v2 is writable.
    pub cgroups: Option<super::cgroup::Cgroups>,
    /// Processes the leader being reaped left in its cgroup.
    pub left_behind: u32,
    /// Where the configuration came from, for `reload`.
    pub reloads: super::reload::Reloads,
    /// Histograms and counters for metrics.
    pub metrics: super::metrics::Recorder,
    /// Where events are POSTed.
    pub webhooks: super::webhooks::Webhooks,
    /// Why the daemon stops, for its exit status.
    pub ending: crate::strategy::signals::Ending,
}

impl Daemon {
    pub(super) fn new(
        plan: &Plan,
        state_dir: Trusted,
        hub: logs::LogHub,
        options: Options,
    ) -> Result<(Daemon, probes::AsyncResults, super::reload::LoadedRx), RunError> {
        let mut base_env = options.env;
        // The API's token, when it came from sentineld's environment, is
        // not every service's to read (`/proc/PID/environ`, a crash dump).
        if let Some(api) = &plan.api {
            base_env.retain(|(k, _)| !api.token_vars.iter().any(|v| v.as_bytes() == k.as_slice()));
        }
        let notify = probes::bind_notify(state_dir.root()).map(|(sock, name)| {
            base_env.push((b"NOTIFY_SOCKET".to_vec(), name.into_bytes()));
            sock
        });
        let base_env = spawn::BaseEnv::new(base_env);
        let stdin: OwnedFd = File::open("/dev/null")
            .map_err(|source| RunError::StateDir {
                path: "/dev/null".into(),
                source,
            })?
            .into();
        let machines = (plan.services.iter().enumerate())
            .map(|(i, spec)| machine::Service::new(i, super::plan::machine_config(spec)))
            .collect();
        let system = System::new(
            machines,
            super::plan::tree(plan),
            options.seed,
            plan.exit_on_critical,
        );
        let rt: Vec<ServiceRt> = (plan.services.iter())
            .map(|spec| ServiceRt::new(spec, &base_env))
            .collect();
        let (reloads, loaded) = super::reload::Reloads::new(plan);
        let metrics = super::metrics::Recorder::new(&rt);
        let services = plan.services.iter().map(|s| s.webhook.as_ref());
        let webhooks = super::webhooks::Webhooks::new(plan.webhook.as_ref(), services);
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let registry = registry::Recorder::new(state_dir.clone());
        let daemon = Daemon {
            system,
            rt,
            by_pid: HashMap::new(),
            timers: Timers::default(),
            journal: Journal::new(),
            tickets: HashMap::new(),
            next_ticket: 0,
            down_waiters: Vec::new(),
            base_env,
            state_dir,
            stdin,
            logs: Some(hub),
            probe_tx,
            notify,
            oom_kills: super::effects::read_oom_kills(),
            orphan_deadline: None,
            orphan_grace_over: false,
            finished: false,
            registry,
            sweep_due: false,
            epoch: (Instant::now(), SystemTime::now()),
            cgroups: super::cgroup::Cgroups::open(&plan.state_dir),
            left_behind: 0,
            reloads,
            metrics,
            webhooks,
            ending: Default::default(),
        };
        if let Some(cg) = &daemon.cgroups {
            for name in cg.kill_leftovers() {
                let (service, part) = name.split_once('@').unwrap_or((&name, "?"));
                tracing::warn!(
                    "{service}: killed the processes a previous sentineld left in its cgroup ({part})"
                );
            }
        }
        Ok((daemon, probe_rx, loaded))
    }

    /// The wall-clock time of a core instant.
    pub(super) fn wall(&self, at: Instant) -> SystemTime {
        let (i0, w0) = self.epoch;
        match at.checked_duration_since(i0) {
            Some(d) => w0 + d,
            None => w0 - i0.duration_since(at),
        }
    }

    /// Every running primary, for the resource sampler.
    pub(super) fn resource_targets(&self) -> Vec<super::resources::Target> {
        let running = self.system.services.iter().enumerate();
        running
            .filter_map(|(i, svc)| match svc.phase {
                machine::Phase::Running { pid, .. } => Some(super::resources::Target {
                    service: i,
                    generation: svc.generation,
                    leader: pid,
                    cgroup: self.cgroup_of(i, machine::Role::Primary),
                }),
                _ => None,
            })
            .collect()
    }

    /// A service by name; a reload's removed services are no one's.
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        (0..self.rt.len()).find(|&i| self.rt[i].spec.name == name && !self.system.is_retired(i))
    }
}

impl ServiceRt {
    /// A service's OS-side state, before anything has run.
    pub(super) fn new(spec: &ServiceSpec, base_env: &spawn::BaseEnv) -> ServiceRt {
        ServiceRt {
            image: spawn::SpawnSpec::new(spec, base_env),
            hook: None,
            start_time: None,
            probes: ProbeRt::for_service(spec, base_env),
            needs_output: spec.classify.iter().any(|r| r.output_matches.is_some()),
            spec: spec.clone(),
        }
    }
}
