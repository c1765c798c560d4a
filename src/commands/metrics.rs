//! `metrics [--json]`: the Prometheus text as the daemon wrote it, or its
//! samples as JSON objects, read back from that text — so both forms are
//! one rendering and cannot disagree.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::CommandError;
use crate::control::client;
use crate::control::protocol::{Request, Response};

pub fn metrics(state_dir: &Path, json: bool) -> Result<i32, CommandError> {
    let text = match client::request(state_dir, &Request::Metrics, None)? {
        Response::Metrics { text } => text,
        other => return Err(CommandError::from_reply(other)),
    };
    if !json {
        super::out(text);
        return Ok(0);
    }
    let samples = samples(&text).map_err(|line| {
        CommandError::Failed(format!(
            "the daemon's metrics: cannot read the line {line:?}"
        ))
    })?;
    super::print_json(&serde_json::json!({ "samples": samples }))
}

/// One line of the exposition: `name{label="value",…} value`.
#[derive(Debug, PartialEq, Serialize)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// `None` (JSON null) for NaN and ±Inf, which JSON has no numbers for.
    pub value: Option<f64>,
}

/// Every sample of Prometheus text format 0.0.4 (comments skipped); the
/// line that is not one, if any.
pub fn samples(text: &str) -> Result<Vec<Sample>, String> {
    let lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    lines
        .map(|l| sample(l).ok_or_else(|| l.to_string()))
        .collect()
}

fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let (key, after) = rest.split_once("=\"")?;
            let (value, after) = label_value(after)?;
            labels.insert(key.trim_start_matches(',').to_string(), value);
            rest = after.strip_prefix(',').unwrap_or(after);
        }
        rest = &rest[1..];
    }
    // A timestamp may follow the value; sentineld writes none.
    let value = rest.split_whitespace().next()?;
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value: value.is_finite().then_some(value),
    })
}

/// A quoted label value up to its closing quote, unescaped (`\\`, `\"`,
/// `\n`), and what follows the quote.
fn label_value(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_with_escaped_labels_infinities_and_no_labels() {
        let text = "# HELP x_total X.\n# TYPE x_total counter\n\
            x_total{service=\"a\\\"b\",cause=\"exit\\n1\"} 3\n\
            up 1\n\
            lat_bucket{le=\"+Inf\"} 2.5\n\
            weird NaN\n";
        let s = samples(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "x_total");
        assert_eq!(s[0].labels["service"], "a\"b");
        assert_eq!(s[0].labels["cause"], "exit\n1");
        assert_eq!(s[0].value, Some(3.0));
        assert_eq!((s[1].name.as_str(), s[1].labels.len()), ("up", 0));
        assert_eq!(s[2].labels["le"], "+Inf");
        assert_eq!(s[2].value, Some(2.5));
        assert_eq!(s[3].value, None);
        assert_eq!(samples("broken{a=\"x} 1\n"), Err("broken{a=\"x} 1".into()));
    }
}
