//! The bad services files: a name, the file, and what `check` says.
//! `tests/schema.rs` holds the JSON Schema to them too.

/// `{f}` in `expected` stands for the services file's path.
pub const CASES: &[(&str, &str, &str)] = &[
    (
        "webhook over https",
        "services:\n  web:\n    command: touch started\n    webhook: { url: \"https://hooks.example/x\" }\n",
        "{f}:4:21: services.web.webhook.url: https is not supported (sentineld has no TLS stack); use http://, e.g. to a local relay",
    ),
    (
        "webhook URL with a secret in it, never repeated",
        "services:\n  web:\n    command: touch started\n    webhook: { url: \"http://admin:SECRETPW@h/SECRETPATH\" }\n",
        "{f}:4:21: services.web.webhook.url: expected a URL like http://127.0.0.1:9000/hooks (http://, a host, an optional port from 1 to 65535, an optional path; no user part, no spaces, no #fragment); the value is not repeated here, as it may hold a secret",
    ),
    (
        "webhook without a url",
        "webhook: { events: [failure] }\nservices:\n  web:\n    command: touch started\n",
        "{f}:1:10: webhook.url: missing: the http:// URL to POST events to",
    ),
    (
        "webhook event kind misspelt",
        "webhook: { url: \"http://127.0.0.1:9/h\", events: [failure, recoverd] }\nservices:\n  web:\n    command: touch started\n",
        "{f}:1:59: webhook.events[1]: expected one of failure, recovered, fallback, quarantine, reset, started, ready, not ready, exited, stopping, stopped, cleanup, trial, probe, hook, logs, tree, reload, found \"recoverd\" (did you mean \"recovered\"?)",
    ),
    (
        "webhook unknown key",
        "services:\n  web:\n    command: touch started\n    webhook:\n      url: \"http://127.0.0.1:9/h\"\n      header: { A: b }\n",
        "{f}:6:7: services.web.webhook.header: unknown key \"header\" (did you mean \"headers\"?); allowed keys: url, events, timeout, headers, queue",
    ),
    (
        "malformed YAML",
        "services:\n  web:\n    command: [touch, started\n",
        "{f}:4:1: invalid YAML: while parsing a flow sequence, expected ',' or ']'",
    ),
    (
        "top level is not a mapping",
        "- touch started\n",
        "{f}:1:1: expected a mapping with a `services:` key, found a list",
    ),
    (
        "unknown top-level key",
        "services:\n  web:\n    command: touch started\nstate_dri: x\n",
        "{f}:4:1: state_dri: unknown key \"state_dri\" (did you mean \"state_dir\"?); allowed keys: state_dir, services, supervisor, groups, exit_on_critical, api, resources, webhook",
    ),
    (
        "unknown service key",
        "services:\n  web:\n    command: touch started\n    restrat: always\n",
        "{f}:4:5: services.web.restrat: unknown key \"restrat\" (did you mean \"restart\"?); allowed keys: command, cwd, env, env_file, user, type, pid_file, restart, min_uptime, pre_start, pre_start_timeout, stop, logs, classify, recovery, escalation, sla, on_event, on_event_timeout, webhook, liveness, readiness, startup, watchdog, start_timeout, depends_on, limits, forward_signals",
    ),
    (
        "forwarding a signal sentineld has a use for",
        "services:\n  web:\n    command: touch started\n    forward_signals: [USR1, HUP]\n",
        "{f}:4:29: services.web.forward_signals[1]: SIGHUP cannot be forwarded: it reloads sentineld; expected SIGUSR1, SIGUSR2 or SIGWINCH",
    ),
    (
        "forwarding a signal that is not one",
        "services:\n  web:\n    command: touch started\n    forward_signals: [USR3]\n",
        "{f}:4:23: services.web.forward_signals[0]: unknown signal \"USR3\" (did you mean \"SIGUSR1\"?)",
    ),
    (
        "wrong type",
        "services:\n  web:\n    command: {touch: started}\n",
        "{f}:3:14: services.web.command: expected a string, found a mapping",
    ),
    (
        "service is not a mapping",
        "services:\n  web: touch started\n",
        "{f}:2:8: services.web: expected a mapping, found \"touch started\"",
    ),
    (
        "bad duration",
        "services:\n  web:\n    command: touch started\n    min_uptime: fast\n",
        "{f}:4:17: services.web.min_uptime: expected a duration like 500ms, 10s or 1m30s, found \"fast\"",
    ),
    (
        "duration without unit",
        "services:\n  web:\n    command: touch started\n    stop: {timeout: 10}\n",
        "{f}:4:21: services.web.stop.timeout: expected a duration with a unit like 10s or 10ms, found the bare number 10",
    ),
    (
        "empty command string",
        "services:\n  web:\n    command: '  '\n",
        "{f}:3:14: services.web.command: empty command: give a shell command line or a list",
    ),
    (
        "empty command list",
        "services:\n  web:\n    command: []\n",
        "{f}:3:14: services.web.command: empty command: give the program and its arguments",
    ),
    (
        "missing command",
        "services:\n  web:\n    restart: never\n",
        "{f}:2:3: services.web.command: missing: every service needs a command",
    ),
    (
        "missing env_file",
        "services:\n  web:\n    command: touch started\n    env_file: missing.env\n",
        "{f}:4:15: services.web.env_file: cannot read {d}/missing.env: No such file or directory (os error 2)",
    ),
    (
        "unknown signal",
        "services:\n  web:\n    command: touch started\n    stop: {signal: SIGTREM}\n",
        "{f}:4:20: services.web.stop.signal: unknown signal \"SIGTREM\" (did you mean \"SIGTERM\"?)",
    ),
    (
        "duplicate service name",
        "services:\n  web:\n    command: touch started\n  web:\n    command: touch started\n",
        "{f}:4:3: services.web: duplicate service name \"web\"",
    ),
    (
        "unknown user",
        "services:\n  web:\n    command: touch started\n    user: no-such-user-xyz\n",
        "{f}:4:11: services.web.user: unknown user \"no-such-user-xyz\"",
    ),
    (
        "HTTP API open to the network without a token",
        "api: {listen: '0.0.0.0:9700'}\nservices:\n  web:\n    command: touch started\n",
        "{f}:1:15: api.listen: 0.0.0.0:9700 is not a loopback address: set api.token (or api.token_file) so that only clients that know it are served",
    ),
    (
        "HTTP API with both token and token_file",
        "api: {token: '0123456789abcdef', token_file: t}\nservices:\n  web:\n    command: touch started\n",
        "{f}:1:46: api.token_file: give `token` or `token_file`, not both",
    ),
    (
        "bad restart value",
        "services:\n  web:\n    command: touch started\n    restart: on-failur\n",
        "{f}:4:14: services.web.restart: expected one of always, on-failure, never, found \"on-failur\" (did you mean \"on-failure\"?)",
    ),
    (
        "bad size",
        "services:\n  web:\n    command: touch started\n    logs: {max_size: lots}\n",
        "{f}:4:22: services.web.logs.max_size: expected a size like 10MiB, 512KiB or 4096, found \"lots\"",
    ),
    (
        "negative keep",
        "services:\n  web:\n    command: touch started\n    logs: {keep: -1}\n",
        "{f}:4:18: services.web.logs.keep: expected a number of files from 0 to 1000, found \"-1\"",
    ),
    (
        "unset variable",
        "services:\n  web:\n    command: touch ${SENTINELD_TEST_UNSET_VAR}\n",
        "{f}:3:14: services.web.command: environment variable SENTINELD_TEST_UNSET_VAR is not set (write ${SENTINELD_TEST_UNSET_VAR:-default} to give a default)",
    ),
    (
        "unterminated variable",
        "services:\n  web:\n    command: touch ${HOME\n",
        "{f}:3:14: services.web.command: unterminated ${...} in \"touch ${HOME\"",
    ),
    (
        "invalid service name",
        "services:\n  we/b:\n    command: touch started\n",
        "{f}:2:3: services.we/b: invalid service name \"we/b\": use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit",
    ),
    (
        "no services",
        "services: {}\n",
        "{f}:1:11: services: no services declared",
    ),
    (
        "missing services",
        "state_dir: x\n",
        "{f}:1:1: services: missing: declare at least one service",
    ),
    (
        "missing cwd",
        "services:\n  web:\n    command: touch started\n    cwd: nowhere\n",
        "{f}:4:10: services.web.cwd: directory {d}/nowhere does not exist",
    ),
    (
        "invalid env name",
        "services:\n  web:\n    command: touch started\n    env: {'A=B': 1}\n",
        "{f}:4:11: services.web.env.A=B: invalid variable name \"A=B\": use letters, digits and _",
    ),
    (
        "env value is a list",
        "services:\n  web:\n    command: touch started\n    env: {A: [1]}\n",
        "{f}:4:14: services.web.env.A: expected a string, found a list",
    ),
    (
        "argument is a mapping",
        "services:\n  web:\n    command: [touch, {a: 1}]\n",
        "{f}:3:22: services.web.command[1]: expected a string, found a mapping",
    ),
    (
        "unknown nested key",
        "services:\n  web:\n    command: touch started\n    stop: {signal: TERM, grace: 1s}\n",
        "{f}:4:26: services.web.stop.grace: unknown key \"grace\"; allowed keys: signal, timeout",
    ),
    (
        "classify rule without a condition",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { severity: transient }\n",
        "{f}:5:9: services.web.classify[0]: a rule needs at least one of exit_codes, signals, output_matches, limits",
    ),
    (
        "bad severity",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { exit_codes: [1], severity: fatal }\n",
        "{f}:5:38: services.web.classify[0].severity: expected one of transient, recoverable, critical, found \"fatal\"",
    ),
    (
        "bad regular expression",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { output_matches: '(', severity: transient }\n",
        "{f}:5:27: services.web.classify[0].output_matches: invalid regular expression \"(\": unclosed group",
    ),
    (
        "exit code out of range",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { exit_codes: [0], severity: transient }\n",
        "{f}:5:24: services.web.classify[0].exit_codes[0]: expected an exit code from 1 to 255, found \"0\"",
    ),
    (
        "exit codes and signals in one rule",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { exit_codes: [1], signals: [SEGV], severity: critical }\n",
        "{f}:5:9: services.web.classify[0]: exit_codes, signals and limits cannot both match one failure; write two rules",
    ),
    (
        "memory limit that is not a size",
        "services:\n  web:\n    command: touch started\n    limits: { memory: lots }\n",
        "{f}:4:23: services.web.limits.memory: expected a size like 10MiB, 512KiB or 4096, found \"lots\"",
    ),
    (
        "cpu limit without a percent sign",
        "services:\n  web:\n    command: touch started\n    limits: { cpu: 90 for 1m }\n",
        "{f}:4:20: services.web.limits.cpu: expected a CPU limit like 90% or 90% for 1m, found \"90 for 1m\"",
    ),
    (
        "unknown limit",
        "services:\n  web:\n    command: touch started\n    limits: { disk: 1GiB }\n",
        "{f}:4:15: services.web.limits.disk: unknown key \"disk\"; allowed keys: memory, cpu",
    ),
    (
        "classify rule on an unknown limit",
        "services:\n  web:\n    command: touch started\n    classify:\n      - { limits: [disk], severity: critical }\n",
        "{f}:5:20: services.web.classify[0].limits[0]: expected memory or cpu, found \"disk\"",
    ),
    (
        "sampling interval too short",
        "resources: { interval: 1ms }\nservices:\n  web:\n    command: touch started\n",
        "{f}:1:24: resources.interval: 1ms is too short: at least 100ms",
    ),
    (
        "classify is not a list",
        "services:\n  web:\n    command: touch started\n    classify: { exit_codes: [1] }\n",
        "{f}:4:15: services.web.classify: expected a list, found a mapping",
    ),
    (
        "unknown recovery key",
        "services:\n  web:\n    command: touch started\n    recovery: { retyr: {attempts: 2} }\n",
        "{f}:4:17: services.web.recovery.retyr: unknown key \"retyr\" (did you mean \"retry\"?); allowed keys: retry, restart, fallback, reset_after",
    ),
    (
        "jitter out of range",
        "services:\n  web:\n    command: touch started\n    recovery: { retry: {jitter: 2} }\n",
        "{f}:4:33: services.web.recovery.retry.jitter: expected a fraction from 0 to 0.9, found \"2\"",
    ),
    (
        "zero escalation failures",
        "services:\n  web:\n    command: touch started\n    escalation: { failures: 0 }\n",
        "{f}:4:29: services.web.escalation.failures: expected a number of failures from 1 to 1000, found \"0\"",
    ),
    (
        "empty fallback command",
        "services:\n  web:\n    command: touch started\n    recovery: { fallback: { command: '' } }\n",
        "{f}:4:38: services.web.recovery.fallback.command: empty command: give a shell command line or a list",
    ),
    (
        "probe without a kind",
        "services:\n  web:\n    command: touch started\n    liveness: { interval: 1s }\n",
        "{f}:4:15: services.web.liveness: a probe needs one of exec, http, tcp",
    ),
    (
        "probe with two kinds",
        "services:\n  web:\n    command: touch started\n    liveness: { exec: 'true', tcp: '127.0.0.1:80' }\n",
        "{f}:4:15: services.web.liveness: a probe has exactly one of exec, http, tcp",
    ),
    (
        "bad probe URL",
        "services:\n  web:\n    command: touch started\n    liveness: { http: 'ftp://x/y' }\n",
        "{f}:4:23: services.web.liveness.http: expected a URL like http://127.0.0.1:8080/health, found \"ftp://x/y\"",
    ),
    (
        "https probe",
        "services:\n  web:\n    command: touch started\n    liveness: { http: 'https://x/y' }\n",
        "{f}:4:23: services.web.liveness.http: \"https://x/y\": https is not supported by probes; use http:// or a tcp probe",
    ),
    (
        "zero probe interval",
        "services:\n  web:\n    command: touch started\n    readiness: { tcp: '127.0.0.1:80', interval: 0s }\n",
        "{f}:4:49: services.web.readiness.interval: 0s is too short: at least 10ms",
    ),
    (
        "notify for liveness",
        "services:\n  web:\n    command: touch started\n    liveness: notify\n",
        "{f}:4:15: services.web.liveness: expected a mapping with one of exec, http, tcp, found \"notify\"",
    ),
    (
        "bad expected status",
        "services:\n  web:\n    command: touch started\n    liveness: { http: { url: 'http://127.0.0.1:1/', expect: '600' } }\n",
        "{f}:4:61: services.web.liveness.http.expect: expected a status code or a range like 200-399, found \"600\"",
    ),
    (
        "tcp probe without a port",
        "services:\n  web:\n    command: touch started\n    readiness: { tcp: localhost }\n",
        "{f}:4:23: services.web.readiness.tcp: expected host:port with a port from 1 to 65535, found \"localhost\"",
    ),
    (
        "probe timeout longer than its interval",
        "services:\n  web:\n    command: touch started\n    liveness: { tcp: '127.0.0.1:80', timeout: 5s, interval: 1s }\n",
        "{f}:4:15: services.web.liveness.timeout: must not be longer than interval",
    ),
    (
        "dependency cycle",
        "services:\n  a:\n    command: touch started\n    depends_on: {b: started}\n  b:\n    command: touch started\n    depends_on: {a: started}\n",
        "{f}:7:18: services.b.depends_on.a: dependency cycle: a → b → a",
    ),
    (
        "unknown dependency",
        "services:\n  a:\n    command: touch started\n    depends_on: {bb: started}\n  b:\n    command: touch started\n",
        "{f}:4:18: services.a.depends_on.bb: unknown service \"bb\" (did you mean \"b\"?)",
    ),
    (
        "ready without a readiness probe",
        "services:\n  a:\n    command: touch started\n    depends_on: {b: ready}\n  b:\n    command: touch started\n",
        "{f}:4:18: services.a.depends_on.b: \"b\" has no readiness probe, so it never becomes ready; give it one or use started",
    ),
    (
        "completed on a permanent service",
        "services:\n  a:\n    command: touch started\n  b:\n    command: touch started\n    depends_on: {a: completed}\n",
        "{f}:6:18: services.b.depends_on.a: \"a\" has restart: always, so it never completes; give it restart: never or on-failure",
    ),
    (
        "a service in two groups",
        "services:\n  a:\n    command: touch started\ngroups:\n  g1: {children: [a]}\n  g2: {children: [a]}\n",
        "{f}:6:19: groups.g2.children[0]: \"a\" is already a child of group \"g1\"",
    ),
    (
        "a group containing itself",
        "services:\n  a:\n    command: touch started\ngroups:\n  g1: {children: [a, g1]}\n",
        "{f}:5:22: groups.g1.children[1]: a group cannot contain itself",
    ),
    (
        "groups containing each other",
        "services:\n  a:\n    command: touch started\ngroups:\n  g1: {children: [g2]}\n  g2: {children: [g1, a]}\n",
        "{f}:5:3: groups.g1: groups contain each other: g1 → g2 → g1\n{f}:6:3: groups.g2: groups contain each other: g2 → g1 → g2",
    ),
    (
        "unknown group child",
        "services:\n  a:\n    command: touch started\ngroups:\n  g1: {children: [aa]}\n",
        "{f}:5:19: groups.g1.children[0]: unknown service or group \"aa\" (did you mean \"a\"?)",
    ),
    (
        "bad strategy",
        "services:\n  a:\n    command: touch started\ngroups:\n  g: {children: [a], strategy: one_for_none}\n",
        "{f}:5:32: groups.g.strategy: expected one of one_for_one, one_for_all, rest_for_one, found \"one_for_none\" (did you mean \"one_for_one\"?)",
    ),
    (
        "group order against depends_on",
        "services:\n  a:\n    command: touch started\n  b:\n    command: touch started\n    depends_on: {a: started}\ngroups:\n  g: {children: [b, a]}\n",
        "{f}:6:18: services.b.depends_on.a: dependency cycle: a → b → a (a group's children also start in their listed order)",
    ),
    (
        "every error at once",
        "services:\n  a:\n    command: ''\n  b:\n    command: touch started\n    min_uptime: 1\n  c:\n    command: touch started\n    restart: maybe\n",
        "{f}:3:14: services.a.command: empty command: give a shell command line or a list\n\
         {f}:6:17: services.b.min_uptime: expected a duration with a unit like 1s or 1ms, found the bare number 1\n\
         {f}:9:14: services.c.restart: expected one of always, on-failure, never, found \"maybe\"",
    ),
];
