//! The control protocol: one JSON object per line, both ways.
//!
//! Every request carries `version`; a daemon that speaks another version
//! says so instead of failing to parse. Lines are capped at
//! [`MAX_LINE`] bytes. The types are shared by the server and the client.
//!
//! An error reply carries an [`ErrorKind`] besides its message, so a client
//! picks an exit code or an HTTP status without reading the words.

use serde::{Deserialize, Serialize};

pub use super::parse::{RequestError, parse_request};
pub use brief::{BriefLine, BriefRow};
pub use webhooks::WebhookReport;

mod brief;
mod webhooks;

pub const VERSION: u32 = 1;
pub const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Who is there: answered with the daemon's pid.
    Ping,
    Status {
        name: Option<String>,
        /// Only what the `status` table shows (much less to send and parse
        /// than every field, for hundreds of services).
        #[serde(default)]
        brief: bool,
    },
    Start {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    /// Close a service's circuit breaker and clear its failure history.
    Reset {
        name: String,
    },
    /// Recent events (of one service or all); with `follow`, then every new
    /// event as it happens, one `event` line each, until the peer hangs up.
    Events {
        name: Option<String>,
        #[serde(default)]
        follow: bool,
        /// Only the events after the one with this id (a reader resuming
        /// where it stopped, as SSE's `Last-Event-ID`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<u64>,
    },
    /// The system's health and which services with a readiness check are
    /// not ready: what `/healthz` and `/readyz` answer, without the cost of
    /// a whole `status`.
    Health,
    /// Send a signal to a service's main process (nginx's HUP reload,
    /// redis' USR1 log reopen): a name (`HUP`, `SIGUSR1`) or a number.
    Signal {
        name: String,
        signal: String,
    },
    /// Read the services file again and apply what changed; with
    /// `dry_run`, only say what would change.
    Reload {
        #[serde(default)]
        dry_run: bool,
    },
    /// Every metric in Prometheus text format (exposition format 0.0.4).
    Metrics,
    /// Stop every service and exit.
    Down,
}

impl Request {
    pub fn to_line(&self) -> String {
        let mut v = serde_json::to_value(self).expect("requests serialize");
        v["version"] = VERSION.into();
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Pong {
        pid: u32,
        version: String,
    },
    Status(StatusReport),
    Events {
        events: Vec<EventRecord>,
        /// Events after `since` were dropped from the journal before they
        /// could be sent (or `since` is from an earlier run of the daemon).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        missed: bool,
    },
    Event(EventRecord),
    Health(HealthReport),
    Done {
        message: String,
        /// A reload's changes, for machines; the message says them for
        /// people. Absent in every other reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        changes: Option<ReloadChanges>,
    },
    /// The answer to `metrics`: the Prometheus text, as a scraper reads it.
    Metrics {
        text: String,
    },
    Error {
        /// Absent in replies of daemons that predate kinds: read as `internal`.
        #[serde(default)]
        kind: ErrorKind,
        message: String,
    },
}

impl Response {
    pub fn done(message: impl Into<String>) -> Response {
        Response::Done {
            message: message.into(),
            changes: None,
        }
    }

    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

/// What a reload changed (or, with `dry_run`, would change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadChanges {
    pub dry_run: bool,
    /// In the new file's order; removed services last.
    pub services: Vec<ServiceChange>,
    /// Top-level settings that changed: `supervisor`, `groups.NAME`, …
    pub tree: Vec<String>,
    /// `1 added, 1 restarted`, or `no changes`.
    pub summary: String,
    /// Settings that changed but take effect only at the next `up`.
    #[serde(default)]
    pub deferred: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceChange {
    pub name: String,
    /// `added`, `removed`, `restart` or `in_place`.
    pub change: String,
    /// The keys that changed: those that need a restart first.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// What went wrong, for machines; the message says it for people.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No service has the name the request gave.
    UnknownService,
    /// The request cannot be served as sent: not JSON, too large, an
    /// unknown type, a missing or mistyped field, or a peer that may not
    /// control this daemon.
    BadRequest,
    /// Well-formed, but the daemon's state stands in the way: it is shutting
    /// down, or the service did not stay up.
    Conflict,
    /// The peer speaks another protocol version.
    Version,
    /// A reload read a services file that is not valid: the message has
    /// every error, as `check` prints them; nothing changed.
    InvalidConfig,
    /// The daemon has no room for this connection now: every connection it
    /// allows is in use, or this one was closed to make room for a newer
    /// one. Trying again later may work.
    Busy,
    /// The daemon's own fault; also what a kind this client does not know
    /// yet is read as.
    #[default]
    #[serde(other)]
    Internal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub version: u32,
    pub pid: u32,
    pub services: Vec<ServiceStatus>,
    /// Recent events, filled when one service was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<EventRecord>,
    /// The supervision tree: the root first, then every group.
    #[serde(default)]
    pub groups: Vec<GroupInfo>,
    #[serde(default = "SystemInfo::healthy")]
    pub system: SystemInfo,
}

impl SystemInfo {
    pub fn healthy() -> SystemInfo {
        SystemInfo {
            health: "healthy".into(),
            reason: None,
            reload_error: None,
            webhooks: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Declared, not started yet: waiting for its dependencies.
    Starting,
    /// A dependency it waits for failed (`blocked: waiting for migrate (exited 1)`).
    Blocked,
    Running,
    /// Waiting to respawn after an exit that was not a failure (young).
    Backoff,
    /// Recovery: waiting to respawn the command.
    Retrying,
    /// Recovery: cleanup running, or waiting to start again.
    Restarting,
    /// The fallback command runs in the service's place.
    Fallback,
    /// Circuit breaker open: nothing runs until the next trial.
    Quarantined,
    Stopping,
    Stopped,
    Exited,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Blocked => "blocked",
            State::Running => "running",
            State::Backoff => "backoff",
            State::Retrying => "retrying",
            State::Restarting => "restarting",
            State::Fallback => "fallback",
            State::Quarantined => "quarantined",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Degraded,
    Critical,
    Quarantined,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Critical => "critical",
            Health::Quarantined => "quarantined",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub name: String,
    pub state: State,
    pub health: Health,
    pub pid: Option<i32>,
    /// RFC 3339, UTC.
    pub started_at: Option<String>,
    pub uptime_s: Option<f64>,
    pub restarts: u64,
    pub exit: Option<ExitInfo>,
    /// Why the service is in its state, when that is not obvious
    /// (`spawn failed: …`, `restarting in 400ms`).
    pub reason: Option<String>,
    /// The last failure in one line, while it matters:
    /// `exit 1: transient → retry 2/3 in 400ms`.
    #[serde(default)]
    pub last: Option<String>,
    /// Failure momentum turned into [0, 1).
    #[serde(default)]
    pub risk: f64,
    /// Where it is on the recovery ladder: `retry 2/3`, `restart 1/3`,
    /// `fallback`, `quarantined`, `half-open`; null when nothing is pending.
    #[serde(default)]
    pub stage: Option<String>,
    /// What happens next and when (RFC 3339).
    #[serde(default)]
    pub next_action: Option<String>,
    #[serde(default)]
    pub next_at: Option<String>,
    #[serde(default)]
    pub last_failure: Option<FailureInfo>,
    /// `closed`, `open` or `half-open`.
    #[serde(default)]
    pub breaker: String,
    #[serde(default)]
    pub fallback_pid: Option<i32>,
    /// EWMA (α = 0.2) of failures per minute, from the gaps between failures.
    #[serde(default)]
    pub failure_rate_per_min: Option<f64>,
    /// EWMA of how long the service's processes ran before they ended.
    #[serde(default)]
    pub uptime_ewma_s: Option<f64>,
    #[serde(default)]
    pub failures: SeverityCounts,
    #[serde(default)]
    pub actions: ActionCounts,
    #[serde(default)]
    pub recovery: RecoveryStats,
    /// Shares of the last hour and day it was up; null until it was seen.
    #[serde(default)]
    pub availability: Option<AvailabilityInfo>,
    /// Whether the readiness probe (or `READY=1`) passes; null without one.
    #[serde(default)]
    pub ready: Option<bool>,
    /// The last result of each configured probe.
    #[serde(default)]
    pub probes: ProbeReports,
    /// EWMA of probe latency (liveness, else readiness, else startup).
    #[serde(default)]
    pub probe_latency_ewma_ms: Option<f64>,
    /// The service's last sd_notify `STATUS=`.
    #[serde(default)]
    pub notify_status: Option<String>,
    /// The group it belongs to; null: the root.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub depends_on: Vec<DependInfo>,
    /// Its output cannot be written to its log file and is held back;
    /// null when all is well.
    #[serde(default)]
    pub log_condition: Option<LogConditionInfo>,
    /// The primary's whole process tree at the last resource sample; every
    /// figure is null until it was sampled (and while it does not run).
    /// CPU: percent of one core over the last sample interval.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// When the figures were measured (RFC 3339).
    #[serde(default)]
    pub sampled_at: Option<String>,
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    #[serde(default)]
    pub threads: Option<u32>,
    #[serde(default)]
    pub fds: Option<u32>,
    #[serde(default)]
    pub processes: Option<u32>,
    /// Resident memory's slope over the last few minutes.
    #[serde(default)]
    pub mem_trend_mib_per_min: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogConditionInfo {
    /// `disk_full`, `removed`, `stalled` or `failing`.
    pub kind: String,
    pub message: String,
    /// RFC 3339, UTC.
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DependInfo {
    pub name: String,
    /// `started`, `ready` or `completed`.
    pub condition: String,
    pub satisfied: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    /// Null for the root.
    pub parent: Option<String>,
    pub strategy: String,
    /// Null: no limit.
    pub intensity: Option<u32>,
    pub period_s: f64,
    pub restarts_in_period: u32,
    pub children: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub system: SystemInfo,
    /// Services with a readiness check that is not passing now, in
    /// declaration order.
    pub not_ready: Vec<String>,
}

impl HealthReport {
    /// `/healthz`: up unless the root gave up.
    pub fn alive(&self) -> bool {
        self.system.health != "critical"
    }

    /// `/readyz`: every readiness check passes.
    pub fn ready(&self) -> bool {
        self.not_ready.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// `healthy`, `degraded` or `critical`.
    pub health: String,
    /// Why it is critical (the root gave up).
    pub reason: Option<String>,
    /// The last reload that failed, until one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_error: Option<ReloadError>,
    /// Each webhook endpoint's totals: the top-level one first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub webhooks: Vec<WebhookReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadError {
    pub at: String,
    /// Every error, one per line, as `check` prints them.
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProbeReports {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<ProbeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<ProbeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup: Option<ProbeReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// `exec`, `http`, `tcp` or `notify`.
    pub kind: String,
    /// Passing by its thresholds; null until a threshold was reached.
    pub passing: Option<bool>,
    pub consecutive_failures: u32,
    pub last_ok: Option<bool>,
    pub last_at: Option<String>,
    pub last_latency_ms: Option<f64>,
    /// What the last run said (truncated): output, HTTP status, error.
    pub last_output: Option<String>,
    pub latency_ewma_ms: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureInfo {
    pub at: String,
    /// `exit 1`, `SIGSEGV`, `spawn failed: …`.
    pub cause: String,
    /// What the rules said, and the severity after escalation.
    pub classified: String,
    pub severity: String,
    pub escalation: Option<String>,
    pub action: String,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeverityCounts {
    pub transient: u64,
    pub recoverable: u64,
    pub critical: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionCounts {
    pub retry: u64,
    pub restart: u64,
    pub fallback: u64,
    pub quarantine: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RecoveryStats {
    /// Retries and restarts taken.
    pub attempts: u64,
    /// Of those, how many ran `min_uptime` without failing again.
    pub successes: u64,
    pub success_rate: Option<f64>,
    /// Mean time from a first failure to running healthy again.
    pub mttr_s: Option<f64>,
}

/// Availability in percent over the last hour and day (or since sentineld
/// started, when that is shorter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvailabilityInfo {
    /// Its primary ran.
    pub running_1h: f64,
    pub running_24h: f64,
    /// It ran and was ready (the same as running without a readiness
    /// check): what `sla` is about.
    pub ready_1h: f64,
    pub ready_24h: f64,
    /// `sla.availability` in percent, and whether the last hour meets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_met: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    /// Signal name (`SIGKILL`) when a signal ended the process.
    pub signal: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Counts up from 1 in each run of the daemon; 0 in records that are
    /// not from the journal (a `lagged` notice) and in old ones.
    #[serde(default)]
    pub id: u64,
    pub at: String,
    pub service: String,
    /// `started`, `exited`, `failure`, `cleanup`, `fallback`, `quarantine`,
    /// `trial`, `recovered`, `stopping`, `stopped`, `reset`, `hook`.
    pub kind: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

#[cfg(test)]
mod tests;
