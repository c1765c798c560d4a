//! The schema agrees with the parser: the same keys in every mapping, and
//! patterns that accept what the parser's readers accept.

use std::collections::BTreeSet;

use regex::Regex;
use serde_json::Value;

use super::super::Section;
use super::json_schema;
use super::values;
use crate::config::limits::{ResourcesSpec, parse_cpu};
use crate::config::units;
use crate::config::webhook::WebhookSpec;
use crate::config::*;
use crate::strategy::limits::Limits;

/// Each mapping of the file whose keys the parser checks: where its schema
/// is (a JSON pointer) and the parser's allowed-keys list.
fn mappings() -> Vec<(&'static str, &'static [&'static str])> {
    use super::super::{api, document, recovery, service};
    vec![
        ("", document::TOP_KEYS),
        ("/definitions/supervisor", SupervisorSpec::KEYS),
        ("/definitions/group", GroupSpec::KEYS),
        ("/definitions/api", api::KEYS),
        ("/definitions/resources", ResourcesSpec::KEYS),
        ("/definitions/webhook", WebhookSpec::KEYS),
        ("/definitions/service", service::SERVICE_KEYS),
        ("/definitions/stop", StopSpec::KEYS),
        ("/definitions/logs", LogSpec::KEYS),
        ("/definitions/limits", Limits::KEYS),
        ("/definitions/probe", ProbeSpec::KEYS),
        ("/definitions/http_check", HttpCheck::KEYS),
        ("/definitions/classify_rule", recovery::RULE_KEYS),
        ("/definitions/recovery", RecoverySpec::KEYS),
        ("/definitions/retry", RetrySpec::KEYS),
        ("/definitions/restart", RestartSpec::KEYS),
        ("/definitions/fallback", recovery::FALLBACK_KEYS),
        ("/definitions/escalation", EscalationSpec::KEYS),
        ("/definitions/sla", SlaSpec::KEYS),
    ]
}

/// The JSON pointers of every closed mapping in `schema`.
fn closed_mappings(schema: &Value, at: &str, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if map.get("additionalProperties") == Some(&Value::Bool(false)) {
                out.push(at.to_string());
            }
            for (k, v) in map {
                closed_mappings(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                closed_mappings(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_mapping_has_exactly_the_keys_the_parser_allows() {
    let schema = json_schema();
    for (at, keys) in mappings() {
        let props = schema
            .pointer(&format!("{at}/properties"))
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("no mapping at {at:?}"));
        let in_schema: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        let in_parser: BTreeSet<&str> = keys.iter().copied().collect();
        assert_eq!(in_schema, in_parser, "{at:?}: schema and parser disagree");
        for (k, v) in props {
            assert!(
                v.get("description").is_some() || v.get("$ref").is_some(),
                "{at}.{k}: no description"
            );
        }
    }
    let mut closed = Vec::new();
    closed_mappings(&schema, "", &mut closed);
    let known: BTreeSet<String> = mappings().iter().map(|(at, _)| at.to_string()).collect();
    assert_eq!(closed.iter().cloned().collect::<BTreeSet<_>>(), known);
}

/// A mapping added to the parser (a `Section`, or a keys list read with
/// `fields`) must be added to the schema and to `mappings` too.
#[test]
fn every_mapping_the_parser_reads_is_in_the_schema() {
    let sources = [
        include_str!("../api.rs"),
        include_str!("../document.rs"),
        include_str!("../limits.rs"),
        include_str!("../probe.rs"),
        include_str!("../recovery.rs"),
        include_str!("../service.rs"),
        include_str!("../webhook.rs"),
        include_str!("../graph.rs"),
        include_str!("../mod.rs"),
    ];
    let sections = sources
        .iter()
        .map(|s| s.matches("impl Section for ").count());
    let lists = Regex::new(r"(?m)^pub\(super\) const [A-Z_]*KEYS: &\[&str\]").unwrap();
    let lists = sources.iter().map(|s| lists.find_iter(s).count());
    let total: usize = sections.sum::<usize>() + lists.sum::<usize>();
    assert_eq!(total, mappings().len());
}

fn agree(pattern: &str, parser: impl Fn(&str) -> bool, samples: &[&str]) {
    let re = Regex::new(pattern).unwrap();
    for s in samples {
        assert_eq!(re.is_match(s), parser(s), "{s:?} against {pattern}");
    }
}

#[test]
fn value_patterns_accept_what_the_parser_reads() {
    let durations = [
        "500ms", "10s", "1m30s", " 2h ", "1.5s", "1m 30s", "3 days", "10", "", "fast", "1ms5",
        "-1s", "1.s", "5 µs", "2weeks", "1y",
    ];
    let duration = |s: &str| units::parse_duration(s).is_ok() && !s.trim().is_empty();
    agree(&values::duration_pattern(), duration, &durations);
    let sizes = [
        "10MiB", "4096", " 2 kB ", "1G", "ten", "10XB", "-1", "1.5M", "",
    ];
    agree(values::SIZE, |s| units::parse_size(s).is_ok(), &sizes);
    let cpu = [
        "90%",
        "90% for 1m",
        " 250 % ",
        "90",
        "90% for ever",
        "1.5%",
        "%",
    ];
    agree(&values::cpu_pattern(), |s| parse_cpu(s).is_ok(), &cpu);
    let tcp = [
        "127.0.0.1:80",
        "localhost",
        "h:0",
        "h:65536",
        ":80",
        "[::1]:5432",
    ];
    agree(
        &values::tcp_pattern(),
        |s| super::super::probe::parse_tcp(s).is_ok(),
        &tcp,
    );
    let status = ["200", "200-399", "600", "199 - 200", "2xx"];
    let range = |s: &str| super::super::probe::parse_status_range(s).is_ok();
    agree(values::STATUS, range, &status);
    let pct = ["99.9%", "100%", " 50 % ", "101%", "99.9", "100.0%"];
    agree(
        values::PERCENT,
        |s| super::super::recovery::percent(s).is_ok(),
        &pct,
    );
}

#[test]
fn url_signal_and_reference_patterns_accept_what_the_parser_reads() {
    let urls = [
        "http://127.0.0.1:8080/health",
        "http://h",
        "http://h:0/",
        "https://h/",
        "ftp://h",
        "http://a@h/",
        "http://h/x y",
        "http://[::1]:80/",
        "http://:80/",
        "http://h/#f",
    ];
    let url = |s: &str| super::super::probe::parse_http_url(s).is_ok();
    agree(&values::url_pattern(true), url, &urls);
    let webhook = |s: &str| url(s) && !s.contains('#');
    agree(&values::url_pattern(false), webhook, &urls);
    let signals = [
        "SIGTERM", "TERM", "term", "Sig_Hup", "9", " hup ", "SIGTREM", "99", "",
    ];
    let signal = Regex::new(&values::signal_pattern()).unwrap();
    for s in signals {
        assert_eq!(signal.is_match(s), units::parse_signal(s).is_ok(), "{s:?}");
    }
    let env = |_: &str| Some("x".to_string());
    let texts = [
        "plain",
        "$1 $$HOME",
        "${HOME}",
        "${A:-b c}",
        "${HOME",
        "${A-B}",
        "${}",
        "a$",
    ];
    agree(
        values::EXPANDABLE,
        |s| units::expand_env(s, &env).is_ok(),
        &texts,
    );
}
