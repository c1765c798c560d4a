//! A service's failure handling as configured: `classify` rules,
//! `recovery` (retry, restart, fallback), `escalation` and `sla`.

use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

use super::{Command, limits, ser_duration};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassifyRule {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exit_codes: Vec<i32>,
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "ser_signals")]
    pub signals: Vec<Signal>,
    /// A regular expression, matched against the last 64 KiB of output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_matches: Option<String>,
    /// `memory`, `cpu`: a limit exceeded on one of these.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        serialize_with = "limits::ser_resources"
    )]
    pub limits: Vec<crate::strategy::limits::Resource>,
    pub severity: crate::strategy::policy::Severity,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverySpec {
    pub retry: RetrySpec,
    pub restart: RestartSpec,
    pub fallback: Option<FallbackSpec>,
    /// Cooldown before a quarantined (or on-fallback) primary is tried again;
    /// doubles after each failed trial, up to 1h.
    #[serde(serialize_with = "ser_duration")]
    pub retry_primary: Duration,
    /// A primary on trial runs beside the fallback (they can share the
    /// port with SO_REUSEPORT, or use different ones); by default the
    /// fallback is stopped first and brought back if the trial fails.
    pub overlap: bool,
    /// A run this long clears the retry and restart budgets.
    #[serde(serialize_with = "ser_duration")]
    pub reset_after: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetrySpec {
    pub attempts: u32,
    #[serde(serialize_with = "ser_duration")]
    pub backoff: Duration,
    #[serde(serialize_with = "ser_duration")]
    pub max_backoff: Duration,
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestartSpec {
    pub attempts: u32,
    pub cleanup: Option<Command>,
    /// The cleanup command is killed (as a group) after this.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FallbackSpec {
    pub command: Command,
}

/// `sla:`: service-level objectives.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaSpec {
    /// The share (0–1) of the last hour the service should be up (and
    /// ready, with a readiness probe).
    pub availability: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EscalationSpec {
    pub failures: u32,
    #[serde(serialize_with = "ser_duration")]
    pub within: Duration,
}

impl Default for RecoverySpec {
    fn default() -> Self {
        RecoverySpec {
            retry: RetrySpec::default(),
            restart: RestartSpec::default(),
            fallback: None,
            retry_primary: Duration::from_secs(60),
            overlap: false,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            jitter: 0.1,
        }
    }
}

impl Default for RestartSpec {
    fn default() -> Self {
        RestartSpec {
            attempts: 3,
            cleanup: None,
            timeout: Duration::from_secs(30),
        }
    }
}

impl Default for EscalationSpec {
    fn default() -> Self {
        EscalationSpec {
            failures: 5,
            within: Duration::from_secs(60),
        }
    }
}

pub(super) fn ser_signals<S: serde::Serializer>(sigs: &[Signal], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(sigs.iter().map(|x| x.as_str()))
}
