//! Validation as a whole: a services file in, a plan or every error out.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::plan_from_str;
use crate::config::*;

fn check(yaml: &str) -> Result<Plan, Vec<ConfigError>> {
    let env = |k: &str| match k {
        "PORT" => Some("8080".to_string()),
        _ => None,
    };
    let ctx = Context {
        env: &env,
        euid: 1000,
    };
    plan_from_str(yaml, Path::new("/tmp/services.yaml"), &ctx)
}

fn messages(yaml: &str) -> Vec<String> {
    check(yaml)
        .unwrap_err()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn minimal_service_gets_defaults() {
    let plan = check("services:\n  web:\n    command: ./web --port ${PORT}\n").unwrap();
    let web = &plan.services[0];
    assert_eq!(web.command, Command::Shell("./web --port 8080".into()));
    assert_eq!(web.restart, RestartPolicy::Always);
    assert_eq!(web.min_uptime, Duration::from_secs(1));
    assert_eq!(web.stop.signal, Signal::SIGTERM);
    assert_eq!(plan.state_dir, Path::new("/tmp/.sentineld"));
    assert_eq!(web.cwd, Path::new("/tmp"));
}

#[test]
fn list_command_and_every_key() {
    let plan = check(
        "state_dir: st\nservices:\n  a:\n    command: [sleep, '10']\n    env: {X: 1, Y: ~}\n    restart: on-failure\n    min_uptime: 2s\n    stop: {signal: INT, timeout: 3s}\n    logs: {max_size: 1MiB, keep: 2}\n",
    )
    .unwrap();
    let a = &plan.services[0];
    assert_eq!(a.command, Command::Exec(vec!["sleep".into(), "10".into()]));
    assert_eq!(a.env["X"], "1");
    assert_eq!(a.env["Y"], "");
    assert_eq!(a.stop.signal, Signal::SIGINT);
    assert_eq!(a.stop.timeout, Duration::from_secs(3));
    assert_eq!(
        a.logs,
        LogSpec {
            max_size: 1 << 20,
            keep: 2
        }
    );
    assert_eq!(plan.state_dir, Path::new("/tmp/st"));
}

#[test]
fn errors_carry_line_column_and_path() {
    let m = messages("services:\n  web:\n    command: x\n    restrat: always\n");
    assert_eq!(
        m,
        vec![
            "/tmp/services.yaml:4:5: services.web.restrat: unknown key \"restrat\" (did you mean \"restart\"?); allowed keys: command, cwd, env, env_file, user, type, pid_file, restart, min_uptime, pre_start, pre_start_timeout, stop, logs, classify, recovery, escalation, sla, on_event, on_event_timeout, webhook, liveness, readiness, startup, watchdog, start_timeout, depends_on, limits, forward_signals"
        ]
    );
}

#[test]
fn all_errors_are_reported_at_once() {
    let m = messages(
        "services:\n  a:\n    command: ''\n  b:\n    command: x\n    min_uptime: fast\n  c:\n    command: x\n    stop: {signal: SIGNOPE}\n",
    );
    assert_eq!(m.len(), 3, "{m:?}");
    assert!(m[0].contains("services.a.command: empty command"));
    assert!(m[1].contains("services.b.min_uptime"));
    assert!(m[2].contains("services.c.stop.signal: unknown signal"));
}

const WEB: &str = "services:\n  web:\n    command: x\n";

#[test]
fn api_listens_on_loopback_by_default() {
    let plan = check(&format!("api: {{}}\n{WEB}")).unwrap();
    let api = plan.api.unwrap();
    assert_eq!(api.listen.to_string(), "127.0.0.1:9700");
    assert_eq!(api.token, None);
    let plan = check(&format!("api: {{listen: 9701}}\n{WEB}")).unwrap();
    assert_eq!(plan.api.unwrap().listen.to_string(), "127.0.0.1:9701");
    let plan = check(&format!("api: {{listen: '[::1]:9702'}}\n{WEB}")).unwrap();
    assert_eq!(plan.api.unwrap().listen.to_string(), "[::1]:9702");
    assert_eq!(check(WEB).unwrap().api, None);
}

#[test]
fn api_off_loopback_needs_a_token() {
    let m = messages(&format!("api:\n  listen: 0.0.0.0:9700\n{WEB}"));
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("/tmp/services.yaml:2:11: api.listen: 0.0.0.0:9700 is not a loopback"),
        "{m:?}"
    );
    let token = "api:\n  listen: 0.0.0.0:9700\n  token: 0123456789abcdef\n";
    let plan = check(&format!("{token}{WEB}")).unwrap();
    let api = plan.api.unwrap();
    assert_eq!(api.token.as_ref().unwrap().expose(), "0123456789abcdef");
    // Never printed.
    assert!(!format!("{api:?}").contains("0123"), "{api:?}");
    let json = serde_json::to_string(&api).unwrap();
    assert!(!json.contains("0123"), "{json}");
}

#[test]
fn api_keys_are_checked() {
    let m = messages(&format!("api:\n  listen: localhost:1\n  tokn: x\n{WEB}"));
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(
        m[0].contains(":3:3: api.tokn: unknown key \"tokn\" (did you mean \"token\"?)"),
        "{m:?}"
    );
    assert!(
        m[1].contains(":2:11: api.listen: expected an address"),
        "{m:?}"
    );
    let both = "api:\n  token: 0123456789abcdef\n  token_file: t\n";
    let m = messages(&format!("{both}{WEB}"));
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].contains("api.token_file: give `token` or `token_file`, not both"),
        "{m:?}"
    );
    let m = messages(&format!("api: {{token: short}}\n{WEB}"));
    assert!(
        m[0].contains("api.token: a token of 5 characters is too short"),
        "{m:?}"
    );
    let m = messages(&format!("api: {{token_file: /nonexistent/token}}\n{WEB}"));
    assert!(
        m[0].contains("api.token_file: cannot read /nonexistent/token"),
        "{m:?}"
    );
}

#[test]
fn plain_command_lines_skip_the_shell() {
    let words = |s: &str| plain_words(s);
    assert_eq!(
        words("./api --port 8080").unwrap(),
        vec!["./api", "--port", "8080"]
    );
    assert_eq!(words("  sleep   10 ").unwrap(), vec!["sleep", "10"]);
    for shell in [
        "exit 3",
        "echo hi",
        "a | b",
        "a && b",
        "A=1 cmd",
        "cmd $HOME",
        "cmd 'quoted arg'",
        "cmd > out",
        "cmd &",
        "trap '' TERM",
        "x; y",
        "ls *.txt",
        "",
    ] {
        assert_eq!(words(shell), None, "{shell}");
    }
    let plan = check("services:\n  a:\n    command: sleep 5\n  b:\n    command: exit 5\n").unwrap();
    assert_eq!(plan.services[0].command.argv(), vec!["sleep", "5"]);
    assert_eq!(
        plan.services[1].command.argv(),
        vec!["/bin/sh", "-c", "exit 5"]
    );
}

#[test]
fn user_needs_root() {
    let m = messages("services:\n  web:\n    command: x\n    user: nobody\n");
    assert!(
        m[0].contains("needs root (sentineld runs as uid 1000)"),
        "{m:?}"
    );
}

#[test]
fn duplicate_service() {
    let m = messages("services:\n  a:\n    command: x\n  a:\n    command: y\n");
    assert!(
        m[0].contains("4:3: services.a: duplicate service name"),
        "{m:?}"
    );
}

#[test]
fn missing_command_and_services() {
    assert!(
        messages("services:\n  a:\n    restart: never\n")[0]
            .contains("services.a.command: missing")
    );
    assert!(messages("state_dir: x\n")[0].contains("services: missing"));
}

/// What `check` prints for a value.
fn printed<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap()
}

#[test]
fn unset_keys_take_the_types_defaults() {
    let plan = check(
        "services:\n  web:\n    command: x\n    liveness: {tcp: 'localhost:80'}\n    readiness: notify\ngroups:\n  g: {children: [web]}\n",
    )
    .unwrap();
    let web = &plan.services[0];
    let mut expected = ServiceSpec::new("web", Command::Shell("x".into()), "/tmp".into());
    expected.liveness = Some(ProbeSpec {
        check: Check::Tcp("localhost:80".into()),
        ..ProbeSpec::default()
    });
    expected.readiness = Some(ProbeSpec::default());
    expected.group = Some("g".into());
    assert_eq!(printed(web), printed(&expected));
    assert_eq!(plan.supervisor, SupervisorSpec::default());
    let mut g = GroupSpec::new("g");
    g.children = vec!["web".into()];
    assert_eq!(plan.groups, vec![g]);
    assert!(!plan.exit_on_critical);
}

#[test]
fn a_short_interval_shortens_the_default_probe_timeout() {
    let plan = check(
        "services:\n  web:\n    command: x\n    liveness: {tcp: 'localhost:1', interval: 200ms}\n",
    )
    .unwrap();
    let probe = plan.services[0].liveness.as_ref().unwrap();
    assert_eq!(
        probe.timeout,
        ProbeTimeout::Fixed(Duration::from_millis(200))
    );
}

#[test]
fn every_key_with_a_fixed_set_of_values_names_them() {
    let svc = "services:\n  a:\n    command: x\n";
    let cases = [
        (
            "exit_on_critical: yes\nservices:\n  a:\n    command: x\n".to_string(),
            "1:19: exit_on_critical: expected true or false, found \"yes\"",
        ),
        (
            format!("{svc}    liveness: {{http: {{url: 'http://h/', method: post}}}}\n"),
            "liveness.http.method: expected GET or HEAD, found \"post\"",
        ),
        (
            format!("{svc}  b:\n    command: x\n    depends_on: {{a: strated}}\n"),
            "depends_on.a: expected one of started, ready, completed, found \"strated\" (did you mean \"started\"?)",
        ),
        (
            format!("{svc}    depends_on: [b]\n"),
            "depends_on: expected a mapping of service names to started, ready or completed, found a list",
        ),
        (
            format!("{svc}    classify: [{{exit_codes: [1]}}]\n"),
            "classify[0].severity: missing: transient, recoverable or critical",
        ),
        (
            format!("{svc}    restart: Always\n"),
            "restart: expected one of always, on-failure, never, found \"Always\" (did you mean \"always\"?)",
        ),
        (
            "supervisor: {strategy: one_for_al}\nservices:\n  a:\n    command: x\n".to_string(),
            "supervisor.strategy: expected one of one_for_one, one_for_all, rest_for_one, found \"one_for_al\" (did you mean \"one_for_all\"?)",
        ),
    ];
    for (yaml, expected) in cases {
        let m = messages(&yaml);
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].ends_with(expected), "{m:?}");
    }
}

#[test]
fn a_probe_timeout_may_be_adaptive_and_a_method_any_case() {
    let plan = check(
        "services:\n  a:\n    command: x\n    readiness: {http: {url: 'http://h:81/up', method: head}, timeout: adaptive}\n",
    )
    .unwrap();
    let probe = plan.services[0].readiness.as_ref().unwrap();
    assert_eq!(probe.timeout, ProbeTimeout::Adaptive);
    let Check::Http(http) = &probe.check else {
        panic!("{probe:?}")
    };
    assert_eq!(
        (http.method.as_str(), http.authority.as_str()),
        ("HEAD", "h:81")
    );
    assert_eq!(http.expect, HttpCheck::default().expect);
}

#[test]
fn overlap_is_a_boolean_beside_a_fallback_command() {
    let yaml = |v: &str| {
        format!("services:\n  a:\n    command: x\n    recovery:\n      fallback: {{ {v} }}\n")
    };
    let m = messages(&yaml("overlap: true"));
    assert!(
        m[0].contains("services.a.recovery.fallback.overlap: overlap needs a fallback command"),
        "{m:?}"
    );
    let m = messages(&yaml("command: y, overlap: yes"));
    assert!(m[0].contains("5:"), "{m:?}");
    assert!(
        m[0].contains("services.a.recovery.fallback.overlap"),
        "{m:?}"
    );
    let plan = check(&yaml("command: y, overlap: true")).unwrap();
    assert!(plan.services[0].recovery.overlap);
}

#[test]
fn limits_resources_and_limit_rules() {
    use crate::strategy::limits::Resource;
    let plan = check(
        "resources: { interval: 2s }
services:
  a:
    command: x
    limits: { memory: 512MiB, cpu: 90% for 1m }
    classify: [{ limits: [memory, cpu], severity: critical }]
  b:
    command: y
",
    )
    .unwrap();
    assert_eq!(plan.resources.interval, Some(Duration::from_secs(2)));
    let a = &plan.services[0];
    assert_eq!(a.limits.memory, Some(512 << 20));
    let cpu = a.limits.cpu.unwrap();
    assert_eq!((cpu.percent, cpu.window), (90.0, Duration::from_secs(60)));
    assert_eq!(a.classify[0].limits, [Resource::Memory, Resource::Cpu]);
    assert_eq!(plan.services[1].limits, Default::default());
    let plan = check("services:\n  a:\n    command: x\n").unwrap();
    assert_eq!(plan.resources.interval, Some(Duration::from_secs(5)));
    let m = messages(
        "services:\n  a:\n    command: x\n    classify: [{ limits: [cpu], signals: [KILL], severity: critical }]\n",
    );
    assert!(m[0].contains("cannot both match one failure"), "{m:?}");
    let m = messages(
        "resources: { interval: off }\nservices:\n  a:\n    command: x\n    limits: { memory: 1MiB }\n",
    );
    assert_eq!(
        m,
        [
            "/tmp/services.yaml:5:13: services.a.limits: limits need resource sampling, which `resources: { interval: off }` turns off"
        ]
    );
    let off = check("resources: { interval: off }\nservices:\n  a:\n    command: x\n").unwrap();
    assert_eq!(off.resources.interval, None);
}

#[test]
fn webhooks_take_their_defaults_and_hide_header_values() {
    let plan = check(
        "webhook: { url: \"http://127.0.0.1:${PORT}/top\" }
services:
  web:
    command: x
    webhook:
      url: http://hooks.local/h?k=1
      events: [started, failure, started]
      timeout: 2s
      headers: { Authorization: Bearer s3cret }
      queue: 10
",
    )
    .unwrap();
    let top = plan.webhook.as_ref().unwrap();
    assert_eq!(top.authority, "127.0.0.1:8080");
    assert_eq!(top.path, "/top");
    assert_eq!(
        top.events,
        ["failure", "fallback", "quarantine", "recovered", "reset"]
    );
    assert_eq!((top.timeout, top.queue), (Duration::from_secs(5), 1000));
    let web = plan.services[0].webhook.as_ref().unwrap();
    assert_eq!(web.authority, "hooks.local:80");
    assert_eq!(web.path, "/h?k=1");
    assert_eq!(web.events, ["started", "failure"]);
    assert_eq!((web.timeout, web.queue), (Duration::from_secs(2), 10));
    assert_eq!(
        web.headers,
        [("Authorization".into(), "Bearer s3cret".into())]
    );
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(
        !shown.contains("s3cret") && !shown.contains("/h?k"),
        "{shown}"
    );
    assert!(shown.contains("Authorization"), "{shown}");
}

#[test]
fn a_webhook_needs_a_plain_http_url_and_known_events() {
    let svc = |hook: &str| format!("services:\n  web:\n    command: x\n    webhook: {hook}\n");
    let m = messages(&svc("{ url: \"http://h/x\", events: [] }"));
    assert!(
        m[0].contains("services.web.webhook.events: list at least one"),
        "{m:?}"
    );
    // Credentials belong in `headers`, where they are never shown.
    let m = messages(&svc("{ url: \"http://u:p@h/x\" }"));
    assert!(
        m[0].contains("services.web.webhook.url: expected a URL"),
        "{m:?}"
    );
    let m = messages(&svc("{ url: \"http://h/x\", headers: { host: evil } }"));
    assert!(
        m[0].contains("services.web.webhook.headers.host: sentineld sets Host"),
        "{m:?}"
    );
    let m = messages(&svc(
        "{ url: \"http://h/x\", headers: { X-Key: \"s3cr\\u00e9t\" } }",
    ));
    assert!(
        m[0].ends_with("X-Key: header values must be printable ASCII"),
        "{m:?}"
    );
    assert!(!m[0].contains("s3cr"), "{m:?}");
}
