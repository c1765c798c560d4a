//! The control protocol: one JSON object per line, both ways.
//!
//! Every request carries `version`; a daemon that speaks another version
//! says so instead of failing to parse. Lines are capped at
//! [`MAX_LINE`] bytes. The types are shared by the server and the client.
//!
//! An error reply carries an [`ErrorKind`] besides its message, so a client
//! picks an exit code or an HTTP status without reading the words.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

pub use super::parse::{RequestError, parse_request};
pub use webhooks::WebhookReport;

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
    },
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
    },
    Event(EventRecord),
    Done {
        message: String,
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
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
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

/// One row of the `status` table. Its text borrows where it can: the
/// daemon writes 10,000 rows from its own names, the client reads them
/// from the reply line, neither copying each. On the wire a row is an
/// array, `[name, group, state, health, pid, uptime_s, restarts, risk,
/// last]`: half the bytes of an object, for a reply that is all rows.
#[derive(Debug, Clone, PartialEq)]
pub struct BriefRow<'a> {
    pub name: Cow<'a, str>,
    pub group: Option<Cow<'a, str>>,
    pub state: State,
    pub health: Health,
    pub pid: Option<i32>,
    pub uptime_s: Option<f64>,
    pub restarts: u64,
    pub risk: f64,
    /// The LAST column, already worded.
    pub last: Cow<'a, str>,
}

/// [`BriefRow`] as it travels.
#[derive(Serialize, Deserialize)]
struct BriefWire<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    State,
    Health,
    Option<i32>,
    Option<f64>,
    u64,
    f64,
    #[serde(borrow)] Cow<'a, str>,
);

impl Serialize for BriefRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BriefWire(
            Cow::Borrowed(&self.name),
            self.group.as_deref().map(Cow::Borrowed),
            self.state,
            self.health,
            self.pid,
            self.uptime_s,
            self.restarts,
            self.risk,
            Cow::Borrowed(&self.last),
        )
        .serialize(s)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for BriefRow<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let BriefWire(name, group, state, health, pid, uptime_s, restarts, risk, last) =
            BriefWire::deserialize(d)?;
        Ok(BriefRow {
            name,
            group,
            state,
            health,
            pid,
            uptime_s,
            restarts,
            risk,
            last,
        })
    }
}

/// The reply to a `brief` status request, `{"type":"brief", ...}`: the
/// daemon writes it and the client reads it without an owned copy of
/// every row.
#[derive(Debug, Serialize, Deserialize)]
pub struct BriefLine<'a> {
    /// Always "brief".
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    pub version: u32,
    #[serde(borrow)]
    pub services: Vec<BriefRow<'a>>,
    /// The last reload that failed, until one succeeds: its time and
    /// first error.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub reload_error: Option<Cow<'a, str>>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub code: Option<i32>,
    /// Signal name (`SIGKILL`) when a signal ended the process.
    pub signal: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
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
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_snake_case_on_the_wire() {
        let line =
            serde_json::to_string(&Response::error(ErrorKind::UnknownService, "no")).unwrap();
        assert_eq!(
            line,
            r#"{"type":"error","kind":"unknown_service","message":"no"}"#
        );
        for (kind, word) in [
            (ErrorKind::BadRequest, "bad_request"),
            (ErrorKind::Conflict, "conflict"),
            (ErrorKind::Version, "version"),
            (ErrorKind::Busy, "busy"),
            (ErrorKind::Internal, "internal"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), word);
        }
    }

    #[test]
    fn an_error_without_a_kind_or_with_a_newer_one_reads_as_internal() {
        for line in [
            r#"{"type":"error","message":"boom"}"#,
            r#"{"type":"error","kind":"from_the_future","message":"boom"}"#,
        ] {
            let r: Response = serde_json::from_str(line).unwrap();
            assert_eq!(r, Response::error(ErrorKind::Internal, "boom"));
        }
    }

    #[test]
    fn a_brief_row_is_an_array_read_back_borrowed() {
        let row = BriefRow {
            name: "web".into(),
            group: Some("front".into()),
            state: State::Running,
            health: Health::Healthy,
            pid: Some(42),
            uptime_s: Some(1.5),
            restarts: 2,
            risk: 0.25,
            last: "exit 1 at 10:00:00".into(),
        };
        let line = BriefLine {
            kind: "brief".into(),
            version: VERSION,
            services: vec![row.clone()],
            reload_error: None,
        };
        let text = serde_json::to_string(&line).unwrap();
        assert!(
            text.contains(
                r#"[["web","front","running","healthy",42,1.5,2,0.25,"exit 1 at 10:00:00"]]"#
            ),
            "{text}"
        );
        let back: BriefLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.services, vec![row]);
        assert!(matches!(back.services[0].name, Cow::Borrowed(_)));
        // A name with an escape is read too (owned).
        let text = text.replace(r#""web""#, r#""w\"eb""#);
        let back: BriefLine = serde_json::from_str(&text).unwrap();
        assert_eq!(back.services[0].name, "w\"eb");
    }
}
