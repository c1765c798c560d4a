//! The policy vocabulary that the configuration names and the decisions
//! use: severities, restart policies, tree strategies and dependency
//! conditions. Plain data; `config` parses into these, `strategy` acts on them.

use std::fmt;

use serde::Serialize;

/// How bad a failure is; the order is the escalation order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Retry in place.
    Transient,
    /// State is suspect: stop, clean up, start.
    Recoverable,
    /// Retrying cannot help: fallback or quarantine.
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 3] = [
        Severity::Transient,
        Severity::Recoverable,
        Severity::Critical,
    ];

    /// One level up; CRITICAL stays CRITICAL.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Transient => Severity::Recoverable,
            Severity::Recoverable | Severity::Critical => Severity::Critical,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Transient => "transient",
            Severity::Recoverable => "recoverable",
            Severity::Critical => "critical",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Erlang/OTP restart strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the failed child.
    OneForOne,
    /// Restart every child of the group.
    OneForAll,
    /// Restart the failed child and the children after it.
    RestForOne,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::OneForOne => "one_for_one",
            Strategy::OneForAll => "one_for_all",
            Strategy::RestForOne => "rest_for_one",
        }
    }
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DependOn {
    /// The dependency's process has been started.
    Started,
    /// Its readiness probe (or `READY=1`) passes.
    Ready,
    /// It exited 0 (a one-shot, such as a migration).
    Completed,
}

impl DependOn {
    pub fn as_str(self) -> &'static str {
        match self {
            DependOn::Started => "started",
            DependOn::Ready => "ready",
            DependOn::Completed => "completed",
        }
    }
}

/// OTP's permanent / transient / temporary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}
