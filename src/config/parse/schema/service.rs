//! A service's own keys, its probes and its limits.

use serde_json::{Value, json};

use super::values::{self, count, duration, patterned, size, text, word};
use super::{describe, key, mapping, names_to, optional_mapping, reference};
use crate::config::units::words;
use crate::config::{DependOn, RestartPolicy, ServiceType};

pub(super) fn definitions() -> Vec<(&'static str, Value)> {
    vec![
        ("command", command()),
        ("service", service()),
        ("stop", stop()),
        ("logs", logs()),
        ("limits", limits()),
        ("probe", probe()),
        ("http_check", http_check()),
    ]
}

/// A string for /bin/sh -c, or a list exec'd as is; neither empty.
fn command() -> Value {
    let nonblank = json!({ "allOf": [text(), { "pattern": r"\S" }] });
    json!({
        "description": "A list is exec'd directly, argv[0] looked up in PATH. A string is run by /bin/sh -c (or, with no shell syntax at all, split on blanks and exec'd).",
        "anyOf": [
            { "type": ["string", "number", "boolean"], "allOf": [nonblank] },
            { "type": "array", "minItems": 1, "items": [nonblank], "additionalItems": text() },
        ],
    })
}

fn service() -> Value {
    let mut service = mapping(
        "A service: a command that sentineld starts, watches and heals.",
        [
            service_process(),
            service_hooks(),
            service_failures(),
            service_checks(),
        ]
        .concat(),
    );
    service["required"] = json!(["command"]);
    let forking = json!({ "anyOf": [{ "const": "forking" }, reference("env_reference")] });
    service["if"] = json!({ "required": ["pid_file"] });
    service["then"] = json!({ "required": ["type"], "properties": { "type": forking } });
    service
}

/// What runs, where, as whom, and how it stops.
fn service_process() -> Vec<(&'static str, Value)> {
    let kinds = words(ServiceType::ALL, ServiceType::as_str).map(|(w, _)| w);
    let restart = words(RestartPolicy::ALL, RestartPolicy::as_str).map(|(w, _)| w);
    vec![
        ("command", reference("command")),
        (
            "cwd",
            key(
                "Working directory, relative to the file; must exist (default: the file's directory).",
                None,
                text(),
            ),
        ),
        (
            "env",
            names_to(
                "Variables set on top of sentineld's environment. Values may be numbers; ~ is the empty string.",
                values::ENV_NAME,
                json!({ "type": ["string", "number", "boolean", "null"], "pattern": values::EXPANDABLE }),
            ),
        ),
        (
            "env_file",
            key(
                "A .env file (KEY=VALUE, # comments, optional export, optional quotes), relative to the file; env overrides it.",
                None,
                text(),
            ),
        ),
        (
            "user",
            key(
                "User name or uid to run as; its primary and supplementary groups are set too. Requires sentineld to run as root.",
                None,
                text(),
            ),
        ),
        (
            "type",
            key(
                "forking: the command is a launcher that daemonizes; the daemon (pid_file, or the one process left in its cgroup) is the main process.",
                Some(json!("simple")),
                word(&kinds),
            ),
        ),
        (
            "pid_file",
            key(
                "With type: forking: where the daemon writes its pid, relative to cwd.",
                None,
                text(),
            ),
        ),
        (
            "restart",
            key(
                "always: after any exit (OTP permanent); on-failure: after a non-zero exit or a signal (transient); never (temporary).",
                Some(json!("always")),
                word(&restart),
            ),
        ),
        (
            "min_uptime",
            key(
                "A run at least this long is respawned at once; shorter runs back off.",
                Some(json!("1s")),
                duration(),
            ),
        ),
        ("stop", reference("stop")),
        ("logs", reference("logs")),
    ]
}

/// What runs around the service: its pre-start check and its hooks.
fn service_hooks() -> Vec<(&'static str, Value)> {
    vec![
        (
            "pre_start",
            describe(
                "A command run before every start of the primary (nginx -t); anything but exit 0 is a CRITICAL failure and the primary does not start.",
                reference("command"),
            ),
        ),
        (
            "pre_start_timeout",
            key(
                "A pre_start still running after this is killed with its process group.",
                Some(json!("30s")),
                duration(),
            ),
        ),
        (
            "on_event",
            describe(
                "A command run on each failure, recovery and reset of the service, with SENTINELD_* set.",
                reference("command"),
            ),
        ),
        (
            "on_event_timeout",
            key(
                "A hook still running after this is killed with its process group.",
                Some(json!("30s")),
                duration(),
            ),
        ),
        (
            "webhook",
            describe(
                "POST this service's events to an endpoint, as the top-level webhook does.",
                reference("webhook"),
            ),
        ),
    ]
}

/// How failures are judged and healed.
fn service_failures() -> Vec<(&'static str, Value)> {
    vec![
        (
            "classify",
            json!({
                "description": "Rules that give a failure its severity; the first that matches decides, else the default table.",
                "type": "array",
                "items": reference("classify_rule"),
                "default": [],
            }),
        ),
        ("recovery", reference("recovery")),
        ("escalation", reference("escalation")),
        ("sla", reference("sla")),
        ("limits", reference("limits")),
    ]
}

/// Probes, the watchdog and dependencies.
fn service_checks() -> Vec<(&'static str, Value)> {
    let conditions = words(DependOn::ALL, DependOn::as_str).map(|(w, _)| w);
    let notify = json!({ "const": "notify", "description": "Ready when the service sends sd_notify READY=1." });
    vec![
        (
            "liveness",
            describe(
                "A probe; failure_threshold misses in a row are a failure.",
                reference("probe"),
            ),
        ),
        (
            "readiness",
            json!({
                "description": "A probe that says when the service is ready (for depends_on: ready, /readyz), or `notify`.",
                "anyOf": [reference("probe"), notify],
            }),
        ),
        (
            "startup",
            describe(
                "A probe that holds liveness off until it passes.",
                reference("probe"),
            ),
        ),
        (
            "watchdog",
            key(
                "With sd_notify: a WATCHDOG=1 is expected at least this often, else the service is killed as not alive.",
                None,
                duration(),
            ),
        ),
        (
            "start_timeout",
            key(
                "A service with a readiness check that is not ready this long after its start is killed: a readiness timeout failure.",
                None,
                duration(),
            ),
        ),
        (
            "forward_signals",
            json!({
                "description": "Signals sent to sentineld that it passes on to this service's main process (SIGUSR1, SIGUSR2, SIGWINCH); the others mean something to sentineld itself.",
                "type": "array",
                "items": values::forwardable_signal(),
                "default": [],
            }),
        ),
        (
            "depends_on",
            names_to(
                "NAME: started (its process runs), ready (its readiness passes), completed (it exited 0). The service starts only then.",
                values::NAME,
                word(&conditions),
            ),
        ),
    ]
}

fn stop() -> Value {
    optional_mapping(
        "How the service is stopped.",
        vec![
            (
                "signal",
                key(
                    "Sent to the service's process group (with SIGCONT).",
                    Some(json!("SIGTERM")),
                    reference("signal"),
                ),
            ),
            (
                "timeout",
                key(
                    "Then SIGKILL to the whole group.",
                    Some(json!("10s")),
                    duration(),
                ),
            ),
        ],
    )
}

fn logs() -> Value {
    optional_mapping(
        "The service's captured stdout and stderr, in files under state_dir/logs/.",
        vec![
            (
                "max_size",
                key(
                    "The log file is rotated before it would grow past this (at least 4KiB).",
                    Some(json!("10MiB")),
                    size(4096),
                ),
            ),
            (
                "keep",
                key(
                    "Rotated files kept: NAME.log.1 (newest) … NAME.log.KEEP; 0: none.",
                    Some(json!(5)),
                    count(0, 1000),
                ),
            ),
        ],
    )
}

fn limits() -> Value {
    optional_mapping(
        "Exceeding one is a failure (memory limit exceeded, cpu limit exceeded).",
        vec![
            (
                "memory",
                key(
                    "A size (512MiB): resident memory of the service's whole process tree; one sample over it is a failure.",
                    None,
                    size(1),
                ),
            ),
            (
                "cpu",
                key(
                    "90% or 90% for 1m: percent of one core (250% is two and a half); with `for WINDOW`, every sample over a whole window.",
                    None,
                    patterned(&values::cpu_pattern()),
                ),
            ),
        ],
    )
}

fn probe() -> Value {
    let kinds: Vec<Value> = (super::super::probe::PROBE_KINDS.iter())
        .map(|k| json!({ "required": [k] }))
        .collect();
    let mut probe = mapping(
        "A probe with exactly one of exec, http, tcp.",
        vec![
            (
                "exec",
                describe("A command; exit 0 passes.", reference("command")),
            ),
            (
                "http",
                json!({
                    "description": "A URL (http://host[:port]/path), or {url, method, expect, headers}; a status in expect passes.",
                    "anyOf": [patterned(&values::url_pattern(true)), reference("http_check")],
                }),
            ),
            (
                "tcp",
                key(
                    "host:port; a completed connect passes.",
                    None,
                    patterned(&values::tcp_pattern()),
                ),
            ),
            (
                "interval",
                key(
                    "Time between the starts of two runs (at least 10ms).",
                    Some(json!("5s")),
                    duration(),
                ),
            ),
            (
                "timeout",
                key(
                    "A run that takes longer is a miss; `adaptive`: clamp(3 × p99 of recent latency, 100ms, interval). Not longer than interval.",
                    Some(json!("1s")),
                    json!({ "anyOf": [{ "const": "adaptive" }, duration()] }),
                ),
            ),
            (
                "initial_delay",
                key(
                    "After the start (or after the startup probe passed).",
                    Some(json!("0s")),
                    duration(),
                ),
            ),
            (
                "failure_threshold",
                key(
                    "Consecutive misses that make the probe fail.",
                    Some(json!(3)),
                    count(1, 1000),
                ),
            ),
            (
                "success_threshold",
                key(
                    "Consecutive passes that make the probe pass.",
                    Some(json!(1)),
                    count(1, 1000),
                ),
            ),
        ],
    );
    probe["oneOf"] = json!(kinds);
    probe
}

fn http_check() -> Value {
    let methods: Vec<String> = (super::super::probe::HTTP_METHODS.iter())
        .map(|(m, _)| values::caseless(m))
        .collect();
    let mut check = mapping(
        "An HTTP probe.",
        vec![
            (
                "url",
                key(
                    "http://host[:port]/path (https is not supported: use http:// or a tcp probe).",
                    None,
                    patterned(&values::url_pattern(true)),
                ),
            ),
            (
                "method",
                key(
                    "GET or HEAD, in any case.",
                    Some(json!("GET")),
                    patterned(&format!("^(?:{})$", methods.join("|"))),
                ),
            ),
            (
                "expect",
                key(
                    "A status code or an inclusive range of them that passes.",
                    Some(json!("200-399")),
                    values::expanded(json!({ "anyOf": [
                        { "type": "integer", "minimum": 100, "maximum": 599 },
                        { "type": "string", "pattern": values::STATUS },
                    ]})),
                ),
            ),
            (
                "headers",
                names_to(
                    "Name: value sent with every request.",
                    values::HEADER_NAME,
                    json!({ "allOf": [text(), { "pattern": "^[^\r\n]*$" }] }),
                ),
            ),
        ],
    );
    check["required"] = json!(["url"]);
    check
}
