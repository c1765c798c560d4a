//! How times, durations and exit statuses are written, the same way in
//! events, status reports and control replies, whichever layer writes them.
//!
//! Pure formatting: nothing here reads a clock. Durations and exits are
//! worded by the strategy layer (its decisions write event messages).

use std::time::SystemTime;

pub use crate::strategy::text::{describe_exit, fmt_duration};

/// RFC 3339 in UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc_with_millis() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        assert_eq!(format_time(t), "2024-05-01T12:00:00.123Z");
    }
}
