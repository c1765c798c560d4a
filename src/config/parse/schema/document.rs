//! The top of the file: state_dir, the root supervisor, groups, the HTTP
//! API, resource sampling and the top-level webhook.

use serde_json::{Value, json};

use super::values::{self, count, duration, expanded, patterned, text, word};
use super::{describe, key, mapping, names_to, optional_mapping, reference};
use crate::config::units::words;
use crate::config::{ApiSpec, Strategy};
use crate::strategy::webhook::{DEFAULT_EVENTS, EVENT_KINDS};

pub(super) fn root() -> Value {
    let mut root = mapping(
        "A sentineld services file: the services to run, watch and heal.",
        vec![
            (
                "state_dir",
                key(
                    "Control socket, logs, pgid records; relative to this file. `up --state-dir` and SENTINELD_STATE_DIR override it.",
                    Some(json!(".sentineld")),
                    text(),
                ),
            ),
            (
                "services",
                names_to(
                    "Map of name → service, in start order. Names: 1–64 of A-Za-z0-9_.-, starting with a letter or digit.",
                    values::NAME,
                    reference("service"),
                ),
            ),
            ("supervisor", reference("supervisor")),
            (
                "groups",
                names_to(
                    "Subtrees of the supervision tree; services in no group hang off the root.",
                    values::NAME,
                    reference("group"),
                ),
            ),
            (
                "exit_on_critical",
                key(
                    "When the root gives up: stop everything and exit 1 instead of running fallbacks and quarantines.",
                    Some(json!(false)),
                    values::boolean(),
                ),
            ),
            ("api", reference("api")),
            ("resources", reference("resources")),
            (
                "webhook",
                describe(
                    "POST every service's events, and system events such as reload, to an endpoint.",
                    reference("webhook"),
                ),
            ),
        ],
    );
    root["required"] = json!(["services"]);
    root["properties"]["services"]["minProperties"] = json!(1);
    root
}

pub(super) fn definitions() -> Vec<(&'static str, Value)> {
    vec![
        ("supervisor", supervisor()),
        ("group", group()),
        ("api", api()),
        ("resources", resources()),
        ("webhook", webhook()),
    ]
}

fn strategy() -> Value {
    key(
        "one_for_one: restart the failed child; one_for_all: all children; rest_for_one: it and the children after it.",
        Some(json!("one_for_one")),
        word(&words(Strategy::ALL, Strategy::as_str).map(|(w, _)| w)),
    )
}

fn period() -> Value {
    key(
        "The window the intensity counts restarts in.",
        Some(json!("60s")),
        duration(),
    )
}

fn supervisor() -> Value {
    optional_mapping(
        "The root of the tree: services in no group, and top-level groups.",
        vec![
            ("strategy", strategy()),
            (
                "intensity",
                key(
                    "At most this many restarts within period, else escalate (root default: no limit).",
                    None,
                    count(1, 100_000),
                ),
            ),
            ("period", period()),
        ],
    )
}

fn group() -> Value {
    let mut group = mapping(
        "A group: {strategy, intensity: 10, period: 60s, children: [...]}; nesting to any depth.",
        vec![
            ("strategy", strategy()),
            (
                "intensity",
                key(
                    "At most this many restarts within period, else escalate to the parent.",
                    Some(json!(10)),
                    count(1, 100_000),
                ),
            ),
            ("period", period()),
            (
                "children",
                json!({
                    "description": "Services or groups, each in at most one group; order = start order, stop is the reverse.",
                    "type": "array",
                    "minItems": 1,
                    "items": text(),
                }),
            ),
        ],
    );
    group["required"] = json!(["children"]);
    group
}

fn api() -> Value {
    let mut api = optional_mapping(
        "The HTTP API (/metrics, /healthz, /readyz, /api/v1/...); off without this key, `api: {}` listens on the default address.",
        vec![
            (
                "listen",
                key(
                    "IP:PORT ([::1]:9700 for IPv6), or a bare port on 127.0.0.1. Other than loopback needs a token.",
                    Some(json!(ApiSpec::DEFAULT_LISTEN)),
                    expanded(json!({ "anyOf": [
                        { "type": "integer", "minimum": 0, "maximum": 65535 },
                        { "type": "string", "pattern": values::LISTEN },
                    ]})),
                ),
            ),
            (
                "token",
                key(
                    "A bearer token (at least 16 characters) every request must send as `Authorization: Bearer TOKEN`.",
                    None,
                    // All digits, it is a YAML number; the parser takes it as text.
                    expanded(json!({ "anyOf": [
                        { "type": "string", "minLength": 16 },
                        { "type": "integer", "minimum": 1_000_000_000_000_000u64 },
                    ]})),
                ),
            ),
            (
                "token_file",
                key(
                    "Read the token from this file (relative to the services file) instead; not both.",
                    None,
                    text(),
                ),
            ),
            (
                "public_health",
                key(
                    "With a token: /healthz and /readyz also answer requests without it, with their status code and no service names (for Kubernetes probes, which cannot send a header from a Secret).",
                    Some(json!(false)),
                    values::boolean(),
                ),
            ),
        ],
    );
    let loopback = json!({ "anyOf": [
        { "type": "integer" },
        { "type": "string", "pattern": values::LOOPBACK },
        { "$ref": "#/definitions/env_reference" },
    ]});
    api["allOf"] = json!([
        { "not": { "type": "object", "required": ["token", "token_file"] } },
        {
            "if": { "type": "object", "required": ["listen"], "properties": { "listen": { "not": loopback } } },
            "then": { "anyOf": [{ "required": ["token"] }, { "required": ["token_file"] }] },
        },
    ]);
    api
}

fn resources() -> Value {
    optional_mapping(
        "How CPU and memory of every service's process tree are sampled.",
        vec![(
            "interval",
            key(
                "How often one pass samples every running service; at least 100ms; `off`: no sampling, and then no service may have limits.",
                Some(json!("5s")),
                json!({ "anyOf": [duration(), { "const": "off" }] }),
            ),
        )],
    )
}

fn webhook() -> Value {
    let reserved: Vec<String> = super::super::webhook::RESERVED
        .iter()
        .map(|h| values::caseless(h))
        .collect();
    let reserved = format!("^(?:{})$", reserved.join("|"));
    let mut webhook = mapping(
        "POST events as JSON to an http:// endpoint.",
        vec![
            (
                "url",
                key(
                    "http://host[:port]/path, POSTed each event as JSON. https:// is refused (no TLS stack: send to a local relay); no user:password (use headers).",
                    None,
                    patterned(&values::url_pattern(false)),
                ),
            ),
            (
                "events",
                key(
                    "The event kinds to send.",
                    Some(json!(DEFAULT_EVENTS)),
                    json!({ "type": "array", "minItems": 1, "items": word(EVENT_KINDS) }),
                ),
            ),
            (
                "timeout",
                key(
                    "One try — connect, send, and the answer's status line and headers — taking longer is a failed try.",
                    Some(json!("5s")),
                    duration(),
                ),
            ),
            (
                "headers",
                json!({
                    "description": "Name: value sent with every request (Authorization); printable ASCII, never shown nor logged. Host, Content-Type, Content-Length, Transfer-Encoding, Connection and User-Agent are sentineld's own.",
                    "type": "object",
                    "propertyNames": { "pattern": values::HEADER_NAME, "not": { "pattern": reserved } },
                    "additionalProperties": { "allOf": [text(), { "pattern": "^[\t -~]*$" }] },
                }),
            ),
            (
                "queue",
                key(
                    "Notifications waiting for the endpoint at most; past it, new ones are dropped and counted.",
                    Some(json!(1000)),
                    count(1, 100_000),
                ),
            ),
        ],
    );
    webhook["required"] = json!(["url"]);
    webhook
}
