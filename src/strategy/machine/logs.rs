//! What the log writer's reports mean to a service: an event when its
//! output starts being held back and one when it is written again, and a
//! condition (health at least DEGRADED) while it lasts. The lifecycle does
//! not change: a service whose output is held back keeps running, blocked
//! in write(2) once its pipe is full.

use std::time::Instant;

use super::{LogReport, LogTrouble, Service};

/// A log trouble that has not cleared yet.
#[derive(Debug, Clone, PartialEq)]
pub struct LogCondition {
    pub trouble: LogTrouble,
    /// The event's message.
    pub message: String,
    pub since: Instant,
}

impl Service {
    pub(super) fn log_report(&mut self, report: LogReport, now: Instant) {
        let current = self.log_condition.as_ref().map(|c| c.trouble);
        if report.cleared {
            // A report about another trouble than the one shown is stale.
            if current == Some(report.trouble) {
                self.log_condition = None;
                self.record("logs", resumed(report.trouble).into());
            }
            return;
        }
        let message = held_back(&report);
        if self
            .log_condition
            .as_ref()
            .is_some_and(|c| c.message == message)
        {
            return;
        }
        self.record("logs", message.clone());
        self.log_condition = Some(LogCondition {
            trouble: report.trouble,
            message,
            since: now,
        });
    }
}

fn held_back(r: &LogReport) -> String {
    let d = &r.detail;
    match r.trouble {
        LogTrouble::DiskFull | LogTrouble::Failing => {
            format!("log writes failing: {d}; output held back")
        }
        LogTrouble::Removed => format!("log file removed ({d}); recreating it"),
        LogTrouble::Stalled => {
            format!("log writes stalled: a write has not returned for {d}; output held back")
        }
    }
}

fn resumed(t: LogTrouble) -> &'static str {
    match t {
        LogTrouble::Removed => "log file recreated; log writes resumed",
        LogTrouble::Stalled => "log writes resumed: the stalled write returned",
        LogTrouble::DiskFull | LogTrouble::Failing => {
            "log writes resumed; held-back output written"
        }
    }
}
