//! Schemas of single values: the grammars of the parser's readers
//! (durations, sizes, signals, counts, URLs) as JSON Schema patterns.
//!
//! Every pattern is in the subset that ECMA-262 (editors) and the `regex`
//! crate (the tests) read alike: no lookaround, no inline flags. A value
//! the parser reads through `${VAR}` expansion may instead be a reference,
//! which only the environment at `up` can judge: [`expanded`] allows it.

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::describe;

/// A string whose `${…}` references are well-formed, as
/// `units::expand_env` reads them: `$$` is a `$`, a lone `$` stays.
pub(super) const EXPANDABLE: &str = r"^(?:[^$]|\$\$|\$[^{$]|\$$|\$\{[A-Za-z0-9_]+(?::-[^}]*)?\})*$";
/// A `${VAR}` or `${VAR:-default}` somewhere in a string.
pub(super) const ENV_REFERENCE: &str = r"\$\{[A-Za-z0-9_]+(?::-[^}]*)?\}";
/// `humantime`'s units, longest first.
const UNITS: &str = "nanos|nsec|ns|usec|us|µs|millis|msec|ms|seconds|second|secs|sec|s|minutes|minute|mins|min|m|hours|hour|hrs|hr|h|days|day|d|weeks|week|wks|wk|w|months|month|M|years|year|yrs|yr|y";
/// A port from 1 to 65535.
const PORT: &str =
    "0*(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})";
/// What `check_name` accepts for services and groups.
pub(super) const NAME: &str = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";
/// What `units::valid_env_name` accepts.
pub(super) const ENV_NAME: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// A header name as `Parser::headers` accepts it.
pub(super) const HEADER_NAME: &str = r"^[A-Za-z0-9_-]+$";
/// A whole number as Rust's `str::parse` reads it, quoted in the file.
const DIGITS: &str = r"^\+?[0-9]+$";
const DECIMAL: &str = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$";

pub(super) fn duration_pattern() -> String {
    format!(r"^\s*{}\s*$", duration_body())
}

/// One or more `<number><unit>` spans, as `humantime::parse_duration`.
fn duration_body() -> String {
    format!(r"(?:[0-9]+(?:\.[0-9]+)?\s*(?:{UNITS})\s*)+")
}

/// `10MiB`, `512KiB`, `4096`, as `units::parse_size`.
pub(super) const SIZE: &str = r"^\s*[0-9]+\s*(?:B|b|k|kB|KB|MB|GB|K|KiB|Ki|M|MiB|Mi|G|GiB|Gi)?\s*$";
/// `200` or `200-399`.
pub(super) const STATUS: &str = r"^\s*[1-5][0-9]{2}\s*(?:-\s*[1-5][0-9]{2}\s*)?$";
/// A percentage up to 100, as `sla.availability`.
pub(super) const PERCENT: &str = r"^\s*(?:100(?:\.0*)?|[0-9]{1,2}(?:\.[0-9]*)?|\.[0-9]+)\s*%\s*$";

/// `90%` or `90% for 1m`, as `limits::parse_cpu`.
pub(super) fn cpu_pattern() -> String {
    let body = duration_body();
    format!(r"^\s*(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*%(?: for \s*{body})?\s*$")
}

/// `host:port`, as a tcp probe's `parse_tcp`.
pub(super) fn tcp_pattern() -> String {
    format!("^.+:{PORT}$")
}

/// `http://host[:port][/path]`, as `probe::parse_http_url`; a webhook's
/// URL has no `#fragment` either.
pub(super) fn url_pattern(fragment: bool) -> String {
    let target = if fragment { "[^ ]*" } else { "[^ #]*" };
    format!("^http://(?:[^/@ ?#]+:{PORT}|[^/@ ?#:]+)(?:/{target})?$")
}

/// `IP:PORT`, `[IPv6]:PORT` or a bare port, as `api.listen`.
pub(super) const LISTEN: &str = r"^(?:[0-9]+|[0-9.]+:[0-9]+|\[[0-9A-Fa-f:.]+\]:[0-9]+)$";
/// The loopback forms of [`LISTEN`], which need no token.
pub(super) const LOOPBACK: &str = r"^(?:[0-9]+|127\.[0-9.]+:[0-9]+|\[::1\]:[0-9]+)$";

/// `inner`, or a string with a `${VAR}` reference in it.
pub(super) fn expanded(inner: Value) -> Value {
    json!({ "anyOf": [inner, { "$ref": "#/definitions/env_reference" }] })
}

/// A scalar the parser reads as text: a string (references well-formed),
/// or a number or boolean, which it reads as written.
pub(super) fn text() -> Value {
    json!({ "$ref": "#/definitions/text" })
}

pub(super) fn duration() -> Value {
    json!({ "$ref": "#/definitions/duration" })
}

/// A size in bytes: a number, or a string with a unit; at least `min`.
pub(super) fn size(min: u64) -> Value {
    expanded(json!({ "anyOf": [
        { "type": "integer", "minimum": min },
        { "type": "string", "pattern": SIZE },
    ]}))
}

/// A whole number from `min` to `max`, as `Parser::count`.
pub(super) fn count(min: u32, max: u32) -> Value {
    expanded(json!({ "anyOf": [
        { "type": "integer", "minimum": min, "maximum": max },
        { "type": "string", "pattern": DIGITS },
    ]}))
}

/// A fraction from `min` to `max`, as `Parser::number::<f64>`.
pub(super) fn fraction(min: f64, max: f64) -> Value {
    expanded(json!({ "anyOf": [
        { "type": "number", "minimum": min, "maximum": max },
        { "type": "string", "pattern": DECIMAL },
    ]}))
}

/// One of a fixed set of words, as `Parser::choice`.
pub(super) fn word(words: &[&str]) -> Value {
    expanded(json!({ "enum": words }))
}

/// `true` or `false`: the parser's `BOOLEAN` words.
pub(super) fn boolean() -> Value {
    let words: Vec<&str> = super::super::document::BOOLEAN
        .iter()
        .map(|(w, _)| *w)
        .collect();
    expanded(json!({ "anyOf": [{ "type": "boolean" }, { "enum": words }] }))
}

/// A string matching `pattern`, or a reference.
pub(super) fn patterned(pattern: &str) -> Value {
    expanded(json!({ "type": "string", "pattern": pattern }))
}

/// The definitions every other schema refers to.
pub(super) fn definitions() -> Value {
    json!({
        "text": {
            "type": ["string", "number", "boolean"],
            "pattern": EXPANDABLE,
        },
        "env_reference": {
            "description": "A value with `${VAR}` or `${VAR:-default}` in it, expanded from sentineld's environment when the file is read.",
            "type": "string",
            "allOf": [{ "pattern": ENV_REFERENCE }, { "pattern": EXPANDABLE }],
        },
        "duration": describe(
            "A duration with a unit: 500ms, 10s, 1m30s (a bare number is an error).",
            patterned(&duration_pattern()),
        ),
        "signal": describe(
            "A signal: its name with or without SIG, in any case (SIGTERM, TERM, term), or its number.",
            expanded(json!({ "anyOf": [
                { "enum": signal_names() },
                { "enum": Signal::iterator().map(|s| s as i32).collect::<Vec<_>>() },
                { "type": "string", "pattern": signal_pattern() },
            ]})),
        ),
    })
}

/// `SIGTERM` and `TERM` for every signal `units::parse_signal` knows.
fn signal_names() -> Vec<String> {
    let full: Vec<&str> = Signal::iterator().map(|s| s.as_str()).collect();
    let short = full.iter().map(|s| s.trim_start_matches("SIG").to_string());
    full.iter().map(|s| s.to_string()).chain(short).collect()
}

/// The signals `forward_signals` takes (`strategy::signals::FORWARDABLE`),
/// as the parser reads them: any case, optional `SIG`, or the number.
pub(super) fn forwardable_signal() -> Value {
    let sigs =
        crate::strategy::signals::FORWARDABLE.map(|n| Signal::try_from(n).expect("a signal"));
    let names: Vec<String> = sigs
        .iter()
        .map(|s| caseless(s.as_str().trim_start_matches("SIG")))
        .collect();
    let numbers: Vec<String> = sigs.iter().map(|&s| (s as i32).to_string()).collect();
    let pattern = format!(
        r"^\s*(?:(?:{})?(?:{})|{})\s*$",
        caseless("SIG"),
        names.join("|"),
        numbers.join("|")
    );
    let listed: Vec<&str> = sigs.iter().map(|s| s.as_str()).collect();
    describe(
        &format!(
            "One of {}, with or without SIG, or its number.",
            listed.join(", ")
        ),
        expanded(json!({ "anyOf": [
            { "type": "string", "pattern": pattern },
            { "enum": numbers.iter().map(|n| n.parse::<i32>().unwrap()).collect::<Vec<_>>() },
        ]})),
    )
}

/// Any case, optional `SIG`, blanks around, or a signal's number.
pub(super) fn signal_pattern() -> String {
    let names: Vec<String> = Signal::iterator()
        .map(|s| caseless(s.as_str().trim_start_matches("SIG")))
        .collect();
    let numbers: Vec<String> = Signal::iterator().map(|s| (s as i32).to_string()).collect();
    format!(
        r"^\s*(?:(?:{})?(?:{})|{})\s*$",
        caseless("SIG"),
        names.join("|"),
        numbers.join("|")
    )
}

/// A pattern matching `word` in any case, without inline flags.
pub(super) fn caseless(word: &str) -> String {
    word.chars()
        .map(|c| match (c.to_ascii_lowercase(), c.to_ascii_uppercase()) {
            (l, u) if l != u => format!("[{u}{l}]"),
            _ => regex_escape(c),
        })
        .collect()
}

fn regex_escape(c: char) -> String {
    if c.is_ascii_alphanumeric() || matches!(c, '_' | ' ' | '-') {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}
