//! How times, durations and exit statuses are written, the same way in
//! events, status reports and control replies, whichever layer writes them.
//!
//! Pure formatting: nothing here reads a clock. It imports only the strategy
//! layer's `ExitStatus` and signal names.

use std::time::{Duration, SystemTime};

use crate::strategy::classify::signal_name;
use crate::strategy::restart::ExitStatus;

/// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// `1.0s` from a second up, `400ms` below.
pub fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `exit 1`, `killed by SIGKILL`.
pub fn describe_exit(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => format!("killed by {}", signal_name(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_millis() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        assert_eq!(format_time(t), "2024-05-01T12:00:00.123Z");
    }

    #[test]
    fn durations_switch_to_seconds_at_one_second() {
        assert_eq!(fmt_duration(Duration::from_millis(400)), "400ms");
        assert_eq!(fmt_duration(Duration::from_millis(999)), "999ms");
        assert_eq!(fmt_duration(Duration::from_secs(1)), "1.0s");
        assert_eq!(fmt_duration(Duration::from_millis(2_340)), "2.3s");
    }

    #[test]
    fn exits_name_the_code_or_the_signal() {
        assert_eq!(describe_exit(ExitStatus::Code(1)), "exit 1");
        assert_eq!(
            describe_exit(ExitStatus::Signal(libc::SIGKILL)),
            "killed by SIGKILL"
        );
    }
}
