//! The machine's inputs and outputs: the events the runtime feeds in, the
//! actions it carries out, and the names both use (roles, timers).

use std::time::{Duration, Instant};

use super::super::policy::Severity;
use super::super::probe::ProbeKind;
use super::super::restart::ExitStatus;
use super::{Pid, Ticket};

/// The processes a service runs, besides probes and hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Primary,
    Fallback,
    Cleanup,
    /// The `pre_start` command, before each start of the primary.
    PreStart,
}

/// The timers a service can have pending, at most one of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Backoff, retry, restart delay or quarantine cooldown ends.
    Start,
    /// The primary's stop timeout: SIGKILL its group.
    Stop,
    /// Respawn a fallback that ended.
    Fallback,
    /// The fallback's stop timeout.
    FallbackStop,
    /// The cleanup command's time limit.
    Cleanup,
    /// The primary has run `min_uptime`: a half-open trial passed.
    Settled,
    /// Up (and ready) for `reset_after` after a failure: recovered.
    Recovered,
    Probe(ProbeKind),
    /// No `WATCHDOG=1` in time.
    Watchdog,
    /// Not ready within `start_timeout`.
    StartTimeout,
    /// The `pre_start` command's time limit.
    PreStart,
    /// The last hour's availability may fall below the SLA by now.
    Sla,
}

impl Timer {
    pub const COUNT: usize = 14;

    pub fn index(self) -> usize {
        match self {
            Timer::Start => 0,
            Timer::Stop => 1,
            Timer::Fallback => 2,
            Timer::FallbackStop => 3,
            Timer::Cleanup => 4,
            Timer::Settled => 5,
            Timer::Recovered => 6,
            Timer::Probe(k) => 7 + k as usize,
            Timer::Watchdog => 10,
            Timer::StartTimeout => 11,
            Timer::PreStart => 12,
            Timer::Sla => 13,
        }
    }
}

/// How the primary ended, as the runtime saw it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exit {
    pub status: Option<ExitStatus>,
    /// The kernel's OOM killer chose it.
    pub oom: bool,
    /// Other members of its process group are still alive (after the reap).
    pub group_alive: bool,
    /// Recent output, when a `classify` rule looks at it.
    pub output: Vec<u8>,
    /// Processes the leader left in its cgroup (which go with it).
    pub left_behind: u32,
}

/// What keeps a service's output from reaching its log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogTrouble {
    /// No space (or no quota) left where the logs are.
    DiskFull,
    /// The log file or the log directory was removed.
    Removed,
    /// A write has not returned for a long time (a hung disk, NFS).
    Stalled,
    /// Any other write error.
    Failing,
}

impl LogTrouble {
    pub fn as_str(self) -> &'static str {
        match self {
            LogTrouble::DiskFull => "disk_full",
            LogTrouble::Removed => "removed",
            LogTrouble::Stalled => "stalled",
            LogTrouble::Failing => "failing",
        }
    }
}

/// The log writer's word on one service's log: a trouble began (with the
/// error or how long a write has hung), or it is over.
#[derive(Debug, Clone, PartialEq)]
pub struct LogReport {
    pub trouble: LogTrouble,
    pub detail: String,
    pub cleared: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub kind: ProbeKind,
    /// The primary's spawn count the probe ran for.
    pub generation: u64,
    pub ok: bool,
    pub latency: Duration,
    pub output: String,
}

/// sd_notify messages from the primary.
#[derive(Debug, Clone, PartialEq)]
pub enum Notify {
    Ready,
    Watchdog,
    Status(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    Stop,
    Restart,
    Reset,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The tree lets a waiting service start now.
    Go,
    /// The tree holds a waiting service: why, and whether it can ever start
    /// (blocked: a dependency failed for good).
    Held {
        why: String,
        blocked: bool,
    },
    Spawned {
        role: Role,
        pid: Pid,
    },
    SpawnFailed {
        role: Role,
        errno: i32,
        message: String,
    },
    /// The primary's leader was reaped.
    Exited {
        pid: Pid,
        exit: Exit,
    },
    /// The stopping primary's group has no member left.
    GroupGone,
    /// A forking service's daemon, found after its launcher exited 0.
    Adopted {
        pid: Pid,
    },
    AdoptFailed {
        why: String,
    },
    FallbackExited {
        pid: Pid,
        status: ExitStatus,
        /// Other members of its group are still alive (after the reap).
        group_alive: bool,
    },
    /// The stopped fallback's group has no member left.
    FallbackGroupGone,
    CleanupExited {
        pid: Pid,
        status: ExitStatus,
    },
    PreStartExited {
        pid: Pid,
        status: ExitStatus,
        /// The tail of its output: the failure event quotes the last line.
        output: Vec<u8>,
    },
    Probe(ProbeResult),
    Notify(Notify),
    Timer(Timer),
    Request(Ticket, Verb),
    /// The tree accounted the restart this machine asked about: go on.
    Proceed,
    /// A sibling's restart takes this service with it.
    SiblingRestart {
        message: String,
    },
    /// The root's intensity was exceeded: fallback or quarantine.
    RootGaveUp,
    /// Stop for good: sentineld is shutting down.
    Shutdown,
    /// Its output cannot be written, or can again.
    Logs(LogReport),
    /// The sampler measured the primary's process tree.
    Usage(super::super::limits::Usage),
}

/// How to signal: the group led by `pid` (the leader alone if the group
/// does not exist yet), or only the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Group,
    GroupOnly,
}

/// An entry for the event journal.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: &'static str,
    pub message: String,
    pub severity: Option<Severity>,
    pub action: Option<&'static str>,
    /// Run the service's `on_event` hook for it.
    pub hook: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Done(String),
    /// Refused or not achieved: the request conflicts with the state.
    Conflict(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Fork the role's command; answer with `Spawned` or `SpawnFailed`.
    Spawn(Role),
    Signal {
        pid: Pid,
        signal: i32,
        target: Target,
    },
    SetTimer(Timer, Instant),
    CancelTimer(Timer),
    /// Run a probe; answer with `Probe` (always, even on a timeout).
    RunProbe {
        kind: ProbeKind,
        generation: u64,
        timeout: Duration,
    },
    /// Kill every probe in flight; their results are not wanted.
    CancelProbes,
    Record(Record),
    Reply(Ticket, Reply),
    /// A restart was decided: the tree accounts it and answers with
    /// `Proceed` or `RootGaveUp`.
    AskTree,
    /// A forking service's launcher exited 0: find its daemon (its
    /// `pid_file`, or the one process it left in the cgroup) and answer
    /// with `Adopted` or `AdoptFailed`.
    Adopt,
}
