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

/// The last non-empty line of a process's output, made one line and cut
/// to [`LAST_LINE`] characters: what a failure event quotes.
pub fn last_line(output: &[u8]) -> Option<String> {
    let line = output
        .split(|b| *b == b'\n')
        .rev()
        .find(|l| l.iter().any(|b| !b.is_ascii_whitespace()))?;
    let line = one_line(&String::from_utf8_lossy(
        &line[line.len().saturating_sub(4 * LAST_LINE)..],
    ));
    let n = line.chars().count();
    Some(match n > LAST_LINE {
        true => format!("…{}", line.chars().skip(n - LAST_LINE).collect::<String>()),
        false => line,
    })
}

/// How much of a last output line an event quotes.
pub const LAST_LINE: usize = 200;

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
    fn last_line_is_the_last_with_something_on_it() {
        let out = b"starting\n[emerg] unexpected \"}\" in /etc/nginx.conf:12\n\n  \n";
        let want = "[emerg] unexpected \"}\" in /etc/nginx.conf:12";
        assert_eq!(last_line(out).as_deref(), Some(want));
        assert_eq!(last_line(b"\n \n"), None);
        let long = "x".repeat(500);
        let cut = last_line(long.as_bytes()).unwrap();
        assert_eq!(cut.chars().count(), LAST_LINE + 1);
        assert!(cut.starts_with('…'));
        assert_eq!(last_line(b"a\x1b[31mb\r").as_deref(), Some("a [31mb"));
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
