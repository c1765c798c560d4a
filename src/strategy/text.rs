//! The words of events and status: durations, exits, one-line text. Shared
//! by the decisions (which write event messages) and the reports.

use std::time::Duration;

use super::classify::signal_name;
use super::restart::ExitStatus;

/// `1.5s` from a second up, else `400ms`.
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

/// Output taken into an event (a probe's answer, a notify `STATUS=`) kept to
/// one line: newlines and other control characters become spaces, runs of
/// blanks one space.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        // Line and paragraph separators end a line for many readers too.
        let c = if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ' '
        } else {
            c
        };
        if c == ' ' && (out.is_empty() || out.ends_with(' ')) {
            continue;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn one_line_removes_control_characters() {
        assert_eq!(
            one_line("HTTP 503: down\r\n\tfor\x1b[31m maint\n"),
            "HTTP 503: down for [31m maint"
        );
        assert_eq!(one_line(""), "");
        assert_eq!(one_line("a\u{2028}b\u{85}c\u{2029}"), "a b c");
    }
}
