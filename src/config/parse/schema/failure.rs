//! What a failure is and what follows it: classify rules, recovery,
//! escalation and the SLA.

use serde_json::{Value, json};

use super::values::{self, count, duration, expanded, fraction, patterned, text, word};
use super::{describe, key, mapping, optional_mapping, reference};
use crate::config::limits::RESOURCES;
use crate::config::units::words;
use crate::strategy::policy::Severity;

pub(super) fn definitions() -> Vec<(&'static str, Value)> {
    vec![
        ("classify_rule", classify_rule()),
        ("recovery", recovery()),
        ("retry", retry()),
        ("restart", restart()),
        ("fallback", fallback()),
        ("escalation", escalation()),
        ("sla", sla()),
    ]
}

/// The rule's conditions that pick one kind of failure; a rule has at
/// most one of them.
const KINDS: [&str; 3] = ["exit_codes", "signals", "limits"];

/// A list condition given and not empty.
fn listed(names: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = names
        .iter()
        .map(|n| (n.to_string(), json!({ "minItems": 1 })))
        .collect();
    json!({ "required": names, "properties": props })
}

fn classify_rule() -> Value {
    let severities = words(Severity::ALL, Severity::as_str).map(|(w, _)| w);
    let resources = RESOURCES.map(|(w, _)| w);
    let exit_code = expanded(json!({ "anyOf": [
        { "type": "integer", "minimum": 1, "maximum": 255 },
        { "type": "string", "pattern": r"^\+?[0-9]+$" },
    ]}));
    let mut rule = mapping(
        "{exit_codes | signals | limits, output_matches, severity}: every condition given must hold.",
        vec![
            (
                "exit_codes",
                key(
                    "Exit codes (1–255).",
                    None,
                    json!({ "type": "array", "items": exit_code }),
                ),
            ),
            (
                "signals",
                key(
                    "Killing signals.",
                    None,
                    json!({ "type": "array", "items": reference("signal") }),
                ),
            ),
            (
                "output_matches",
                key(
                    "A regular expression searched in the last 64 KiB of the service's output (stdout and stderr).",
                    None,
                    text(),
                ),
            ),
            (
                "limits",
                key(
                    "A memory limit exceeded or cpu limit exceeded failure on the resources named.",
                    None,
                    json!({ "type": "array", "items": word(&resources) }),
                ),
            ),
            (
                "severity",
                key(
                    "transient: retry; recoverable: restart (cleanup first); critical: fallback or quarantine.",
                    None,
                    word(&severities),
                ),
            ),
        ],
    );
    let one: Vec<Value> = KINDS.iter().map(|k| listed(&[k])).collect();
    let two: Vec<Value> = [(0, 1), (0, 2), (1, 2)]
        .iter()
        .map(|&(a, b)| listed(&[KINDS[a], KINDS[b]]))
        .collect();
    rule["required"] = json!(["severity"]);
    rule["anyOf"] = json!([one, vec![json!({ "required": ["output_matches"] })]].concat());
    rule["not"] = json!({ "anyOf": two });
    rule
}

fn recovery() -> Value {
    optional_mapping(
        "What follows a failure: retry (TRANSIENT), restart (RECOVERABLE), fallback (CRITICAL).",
        vec![
            ("retry", reference("retry")),
            ("restart", reference("restart")),
            ("fallback", reference("fallback")),
            (
                "reset_after",
                key(
                    "After a failure, a run that stays up (and ready) this long is a recovery: the budgets and the escalation window clear.",
                    Some(json!("60s")),
                    duration(),
                ),
            ),
        ],
    )
}

fn retry() -> Value {
    optional_mapping(
        "TRANSIENT failures are respawned this many times, after a backoff.",
        vec![
            (
                "attempts",
                key(
                    "Respawns before the failure is handled as RECOVERABLE.",
                    Some(json!(3)),
                    count(0, 1000),
                ),
            ),
            (
                "backoff",
                key(
                    "The delay before a respawn after a short run: backoff × 2^k for the k-th short run in a row.",
                    Some(json!("100ms")),
                    duration(),
                ),
            ),
            (
                "max_backoff",
                key(
                    "The delay is never above this; not shorter than backoff.",
                    Some(json!("30s")),
                    duration(),
                ),
            ),
            (
                "jitter",
                key(
                    "Each delay is multiplied by 1 ± jitter (0–0.9).",
                    Some(json!(0.1)),
                    fraction(0.0, 0.9),
                ),
            ),
        ],
    )
}

fn restart() -> Value {
    optional_mapping(
        "RECOVERABLE failures (and TRANSIENT ones past their retries): run cleanup, then start again.",
        vec![
            (
                "attempts",
                key(
                    "Restarts before the failure is handled as CRITICAL.",
                    Some(json!(3)),
                    count(0, 1000),
                ),
            ),
            (
                "cleanup",
                describe(
                    "A command (string or list) run before each restart.",
                    reference("command"),
                ),
            ),
            (
                "timeout",
                key(
                    "The cleanup command is killed (as a group) after this.",
                    Some(json!("30s")),
                    duration(),
                ),
            ),
        ],
    )
}

fn fallback() -> Value {
    let overlap_on = json!({ "enum": [true, "true"] });
    let mut fallback = optional_mapping(
        "When the chain gives up (CRITICAL): what runs in the service's place; without a command the service is quarantined.",
        vec![
            (
                "command",
                describe("Run in the service's place.", reference("command")),
            ),
            (
                "retry_primary",
                key(
                    "Cooldown before the primary is tried again (half-open); each failed trial doubles it, up to 1 h. Applies to quarantine too.",
                    Some(json!("60s")),
                    duration(),
                ),
            ),
            (
                "overlap",
                key(
                    "Start the primary's trial beside the running fallback; by default the fallback is stopped first.",
                    Some(json!(false)),
                    values::boolean(),
                ),
            ),
        ],
    );
    fallback["if"] = json!({ "type": "object", "required": ["overlap"], "properties": { "overlap": overlap_on } });
    fallback["then"] = json!({ "required": ["command"] });
    fallback
}

fn escalation() -> Value {
    optional_mapping(
        "That many failures within the window raise the severity one level.",
        vec![
            (
                "failures",
                key("Failures that escalate.", Some(json!(5)), count(1, 1000)),
            ),
            (
                "within",
                key(
                    "The window they are counted in.",
                    Some(json!("60s")),
                    duration(),
                ),
            ),
        ],
    )
}

fn sla() -> Value {
    optional_mapping(
        "Service-level objectives.",
        vec![(
            "availability",
            key(
                "A percentage (99.9%) of every hour the service should be up (and ready); below it, an sla event.",
                None,
                patterned(values::PERCENT),
            ),
        )],
    )
}
