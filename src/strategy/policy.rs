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
    pub const ALL: [Strategy; 3] = [
        Strategy::OneForOne,
        Strategy::OneForAll,
        Strategy::RestForOne,
    ];

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
    pub const ALL: [DependOn; 3] = [DependOn::Started, DependOn::Ready, DependOn::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            DependOn::Started => "started",
            DependOn::Ready => "ready",
            DependOn::Completed => "completed",
        }
    }
}

/// How a service's main process behaves at start (systemd's `Type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ServiceType {
    /// The process started is the service.
    #[default]
    Simple,
    /// The process started is a launcher: it forks the daemon and exits 0;
    /// the daemon (from `pid_file`, or the one process it left) is the
    /// service from then on.
    Forking,
}

impl ServiceType {
    pub const ALL: [ServiceType; 2] = [ServiceType::Simple, ServiceType::Forking];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Simple => "simple",
            ServiceType::Forking => "forking",
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
    pub const ALL: [RestartPolicy; 3] = [
        RestartPolicy::Always,
        RestartPolicy::OnFailure,
        RestartPolicy::Never,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The word a services file uses for a value is the word `check` prints.
    fn names_match_serde<T: Serialize + Copy>(all: &[T], as_str: fn(T) -> &'static str) {
        for &v in all {
            let printed = serde_json::to_value(v).unwrap();
            assert_eq!(printed.as_str(), Some(as_str(v)));
        }
    }

    #[test]
    fn every_value_is_named_as_it_is_printed() {
        names_match_serde(&Severity::ALL, Severity::as_str);
        names_match_serde(&Strategy::ALL, Strategy::as_str);
        names_match_serde(&DependOn::ALL, DependOn::as_str);
        names_match_serde(&RestartPolicy::ALL, RestartPolicy::as_str);
    }
}
