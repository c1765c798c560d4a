//! The recovery chain end to end: real processes fail in the ways DESIGN §3
//! lists, and the events show the classification and the actions taken.

mod common;

use std::time::Duration;

use common::*;

fn runs(plan: &str) -> String {
    format!(
        "[{}, {}]",
        fixture("runs.sh").display(),
        plan.split(' ')
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Failure events of a service, as (severity, action, message).
fn failures(inst: &Instance, name: &str) -> Vec<(String, String, String)> {
    inst.events(name)
        .into_iter()
        .filter(|e| e["kind"] == "failure")
        .map(|e| {
            (
                e["severity"].as_str().unwrap_or("").to_string(),
                e["action"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_stable_service_has_no_events_beyond_its_start() {
    let inst = Instance::start(
        "services:\n  calm:\n    command: exec sleep 1000\n    min_uptime: 200ms\n",
    );
    let pid = inst.wait_running("calm", None);
    wait_until(Duration::from_secs(5), "1.5 s of uptime", || {
        inst.service("calm")["uptime_s"].as_f64().unwrap_or(0.0) >= 1.5
    });
    let events = inst.events("calm");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["kind"], "started");
    assert_eq!(events[0]["message"], format!("started (pid {pid})"));
    let s = inst.service("calm");
    assert_eq!(s["risk"], 0.0);
    assert_eq!(s["health"], "healthy");
    assert_eq!(s["last_failure"], serde_json::Value::Null);
}

#[test]
fn random_transient_failures_are_healed_by_retries_alone() {
    // 3 of 9 runs exit 75 (EX_TEMPFAIL); the others work for a while.
    let plan = "ok:1.2 75:0.05 ok:1.2 ok:1.2 75:0.05 ok:1.2 ok:1.2 75:0.05 forever";
    let inst = Instance::start(&format!(
        "services:\n  flaky:\n    command: {}\n    min_uptime: 200ms\n",
        runs(plan)
    ));
    wait_until(Duration::from_secs(30), "run 9", || {
        std::fs::read_to_string(inst.path("runs.count")).is_ok_and(|s| s.trim() == "9")
    });
    inst.wait_running("flaky", None);
    let f = failures(&inst, "flaky");
    assert_eq!(f.len(), 3, "{f:?}");
    for (k, (severity, action, message)) in f.iter().enumerate() {
        assert_eq!(severity, "transient", "{message}");
        assert_eq!(action, "retry", "{message}");
        assert!(message.starts_with("exit 75 after"), "{message}");
        assert!(
            message.contains(&format!("retry {}/3 in", k + 1)),
            "{message}"
        );
    }
    let s = inst.service("flaky");
    assert_eq!(s["actions"]["restart"], 0);
    assert_eq!(s["actions"]["fallback"], 0);
    assert_eq!(s["actions"]["quarantine"], 0);
    assert_eq!(s["failures"]["transient"], 3);
    assert_eq!(s["breaker"], "closed");
}

#[test]
fn sigabrt_every_third_run_restarts_with_the_cleanup_command_first() {
    let plan = "ok:0.4 ok:0.4 abrt:0.1 ok:0.4 ok:0.4 abrt:0.1 forever";
    let inst = Instance::start(&format!(
        "services:
  crashy:
    command: {}
    min_uptime: 200ms
    recovery:
      restart: {{ attempts: 3, cleanup: 'echo $$SENTINELD_CAUSE/$$SENTINELD_SEVERITY/$$SENTINELD_ATTEMPT > cleaned' }}
",
        runs(plan)
    ));
    wait_until(Duration::from_secs(20), "run 7", || {
        std::fs::read_to_string(inst.path("runs.count")).is_ok_and(|s| s.trim() == "7")
    });
    inst.wait_running("crashy", None);
    wait_until(Duration::from_secs(5), "run 7's output", || {
        inst.log("crashy").contains("run 7 start")
    });
    let log = inst.log("crashy");
    // The cleanup ran before the start that followed each abort, and only then.
    let cleaned: Vec<&str> = log
        .lines()
        .filter(|l| l.ends_with("after cleanup"))
        .collect();
    assert_eq!(
        cleaned,
        vec!["run 4 after cleanup", "run 7 after cleanup"],
        "{log}"
    );
    let f = failures(&inst, "crashy");
    assert_eq!(f.len(), 2, "{f:?}");
    for (k, (severity, action, message)) in f.iter().enumerate() {
        assert_eq!(
            (severity.as_str(), action.as_str()),
            ("recoverable", "restart"),
            "{message}"
        );
        assert!(message.starts_with("SIGABRT after"), "{message}");
        assert!(
            message.contains(&format!("restart {}/3", k + 1)),
            "{message}"
        );
    }
    // Events in order: failure, cleanup started, cleanup finished, started.
    let kinds: Vec<String> = inst
        .events("crashy")
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect();
    let first = kinds.iter().position(|k| k == "failure").unwrap();
    assert_eq!(
        &kinds[first..first + 4],
        ["failure", "cleanup", "cleanup", "started"],
        "{kinds:?}"
    );
    let s = inst.service("crashy");
    assert_eq!(s["failures"]["recoverable"], 2);
    assert_eq!(s["actions"]["restart"], 2);
    assert_eq!(s["actions"]["retry"], 0);
}

#[test]
fn with_overlap_a_config_error_goes_to_the_fallback_until_the_primary_is_fixed_never_with_neither()
{
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("maint")).unwrap();
    std::fs::write(
        dir.path().join("maint/index.html"),
        "down for maintenance\n",
    )
    .unwrap();
    let port = free_port();
    let inst = Instance::start_in(
        dir,
        &format!(
            "services:
  api:
    command: if [ -f fixed ]; then exec sleep 1000; fi; echo 'config is broken' >&2; exit 78
    min_uptime: 500ms
    recovery:
      fallback:
        command: [python3, -m, http.server, '{port}', --bind, 127.0.0.1, --directory, maint]
        retry_primary: 1s
        overlap: true
"
        ),
    );
    let s = inst.wait_state("api", "fallback");
    assert_eq!(s["health"], "degraded", "{s}");
    assert_eq!(s["last_failure"]["severity"], "critical");
    assert_eq!(s["last_failure"]["action"], "fallback");
    let fallback = s["fallback_pid"].as_i64().unwrap() as i32;
    wait_until(Duration::from_secs(10), "the fallback to serve", || {
        http_get(port).is_some_and(|b| b.contains("down for maintenance"))
    });
    std::fs::write(inst.path("fixed"), "").unwrap();
    wait_until(
        Duration::from_secs(15),
        "the primary back and the fallback gone",
        || {
            let s = inst.service("api");
            s["state"] == "running" && s["fallback_pid"].is_null() && !alive(fallback)
        },
    );
    let s = inst.service("api");
    assert_eq!(s["breaker"], "closed");
    // Risk from the critical failures decays over tens of seconds; until
    // then the service is running but degraded, not critical.
    assert!(
        matches!(s["health"].as_str(), Some("healthy" | "degraded")),
        "{s}"
    );
    let m = inst.messages("api");
    let find = |needle: &str| {
        m.iter()
            .position(|x| x.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {m:#?}"))
    };
    assert!(m[find("exit 78")].contains("critical → fallback"), "{m:#?}");
    let trial_start = m
        .iter()
        .rposition(|x| x.starts_with("started (pid"))
        .unwrap();
    let recovered = find("half-open trial passed, breaker closed");
    let stopping = find("stopping the fallback");
    // Never a moment with neither: the fallback is stopped only after the
    // primary started and passed its trial.
    assert!(find("fallback started") < trial_start, "{m:#?}");
    assert!(trial_start < recovered && recovered < stopping, "{m:#?}");
    assert!(stopping < find("fallback stopped"), "{m:#?}");
}

#[test]
fn repeated_transient_failures_escalate_to_restart_and_then_to_fallback() {
    let inst = Instance::start(&format!(
        "services:
  shaky:
    command: {}
    min_uptime: 1s
    recovery:
      retry: {{ attempts: 10 }}
      restart: {{ attempts: 2 }}
      fallback: {{ command: exec sleep 1000 }}
    escalation: {{ failures: 5, within: 60s }}
",
        runs("1:1.5")
    ));
    wait_until(Duration::from_secs(30), "the fallback", || {
        inst.service("shaky")["state"] == "fallback"
    });
    let f = failures(&inst, "shaky");
    assert_eq!(f.len(), 7, "{f:#?}");
    for (k, (severity, action, message)) in f[..4].iter().enumerate() {
        assert_eq!(
            (severity.as_str(), action.as_str()),
            ("transient", "retry"),
            "{message}"
        );
        assert!(
            message.contains(&format!("retry {}/10 now", k + 1)),
            "{message}"
        );
    }
    assert_eq!(
        (f[4].0.as_str(), f[4].1.as_str()),
        ("recoverable", "restart"),
        "{f:#?}"
    );
    assert!(
        f[4].2
            .contains("transient, escalated to recoverable: 5 failures in"),
        "{}",
        f[4].2
    );
    assert!(f[4].2.contains("restart 1/2"), "{}", f[4].2);
    assert!(
        f[5].2.contains("escalated to recoverable: 5 failures in"),
        "{}",
        f[5].2
    );
    assert!(f[5].2.contains("restart 2/2"), "{}", f[5].2);
    assert_eq!(f[6].1, "fallback", "{f:#?}");
    assert!(f[6].2.contains("2 restarts used → fallback"), "{}", f[6].2);
    let s = inst.service("shaky");
    assert!(alive(s["fallback_pid"].as_i64().unwrap() as i32));
}

#[test]
fn without_a_fallback_the_service_is_quarantined_and_tried_again_with_a_doubling_cooldown() {
    let inst = Instance::start(
        "services:
  broken:
    command: if [ -f fixed ]; then exec sleep 1000; fi; exit 78
    min_uptime: 300ms
    recovery:
      fallback: { retry_primary: 500ms }
",
    );
    let s = inst.wait_state("broken", "quarantined");
    assert_eq!(s["health"], "quarantined");
    assert!(s["next_at"].is_string(), "{s}");
    wait_until(Duration::from_secs(10), "three trials", || {
        failures(&inst, "broken").len() >= 3
    });
    let f = failures(&inst, "broken");
    assert!(
        f[0].2
            .contains("critical → quarantined (primary retried in 500ms)"),
        "{f:#?}"
    );
    assert!(f[1].2.contains("half-open trial failed"), "{f:#?}");
    assert!(f[1].2.contains("primary retried in 1.0s"), "{f:#?}");
    assert!(f[2].2.contains("primary retried in 2.0s"), "{f:#?}");
    let m = inst.messages("broken");
    assert!(
        m.iter()
            .filter(|x| x.starts_with("half-open: trying"))
            .count()
            >= 2,
        "{m:#?}"
    );

    // An operator fixes it and resets the breaker by hand.
    std::fs::write(inst.path("fixed"), "").unwrap();
    let out = inst.cli(&["reset", "broken"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("broken reset: breaker closed, primary started")
    );
    inst.wait_running("broken", None);
    let s = inst.service("broken");
    assert_eq!(s["breaker"], "closed");
    assert_eq!(s["risk"], 0.0);
}

#[test]
fn output_matches_classifies_the_same_exit_code_by_what_was_printed() {
    let svc = |name: &str, msg: &str| {
        format!(
            "  {name}:
    command: echo \"$$MSG\" >&2; exit 1
    env: {{ MSG: '{msg}' }}
    restart: on-failure
    classify:
      - {{ exit_codes: [1], output_matches: 'address already in use', severity: transient }}
      - {{ exit_codes: [1], severity: critical }}
"
        )
    };
    let inst = Instance::start(&format!(
        "services:\n{}{}",
        svc("port_busy", "bind: address already in use"),
        svc("other", "something else went wrong")
    ));
    wait_until(Duration::from_secs(5), "both failures", || {
        !failures(&inst, "port_busy").is_empty() && !failures(&inst, "other").is_empty()
    });
    let busy = &failures(&inst, "port_busy")[0];
    assert_eq!(
        (busy.0.as_str(), busy.1.as_str()),
        ("transient", "retry"),
        "{busy:?}"
    );
    assert!(busy.2.contains("transient (classify rule 1)"), "{busy:?}");
    let other = &failures(&inst, "other")[0];
    assert_eq!(
        (other.0.as_str(), other.1.as_str()),
        ("critical", "quarantine"),
        "{other:?}"
    );
    assert!(other.2.contains("critical (classify rule 2)"), "{other:?}");
}

#[test]
fn events_follow_streams_new_events() {
    let inst =
        Instance::start("services:\n  web:\n    command: exec sleep 1000\n    min_uptime: 100ms\n");
    let pid = inst.wait_running("web", None);
    let mut child = std::process::Command::new(BIN)
        .args(["events", "web", "-f", "--json"])
        .current_dir(inst.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            let done = line.contains("\"kind\":\"started\"") && lines.len() >= 2;
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    });
    // The backlog (the first start) arrives first; then kill the service and
    // see the failure and the new start stream in.
    wait_until(Duration::from_secs(5), "uptime past min_uptime", || {
        inst.service("web")["uptime_s"].as_f64().unwrap_or(0.0) > 0.2
    });
    kill(pid, libc::SIGKILL);
    inst.wait_running("web", Some(pid));
    let lines = reader.join().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let kinds: Vec<String> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["started", "failure", "started"], "{lines:#?}");
    assert!(lines[1].contains("SIGKILL after"), "{}", lines[1]);
}

#[test]
fn correlated_failures_are_staggered_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("upstream"), "").unwrap();
    let mut yaml = String::from("services:\n");
    for k in 0..6 {
        yaml += &format!(
            "  dep{k}:\n    command: while [ -f upstream ]; do sleep 0.02; done; exit 1\n    min_uptime: 100ms\n"
        );
    }
    let inst = Instance::start_in(dir, &yaml);
    for k in 0..6 {
        inst.wait_running(&format!("dep{k}"), None);
    }
    wait_until(Duration::from_secs(5), "uptime past min_uptime", || {
        inst.service("dep5")["uptime_s"].as_f64().unwrap_or(0.0) > 0.3
    });
    // The upstream goes away: all six fail within a few tens of ms.
    std::fs::remove_file(inst.path("upstream")).unwrap();
    wait_until(Duration::from_secs(10), "six failures", || {
        (0..6).all(|k| !failures(&inst, &format!("dep{k}")).is_empty())
    });
    let staggered: Vec<String> = (0..6)
        .map(|k| failures(&inst, &format!("dep{k}"))[0].2.clone())
        .filter(|m| m.contains("other services failed within 1s, start staggered by"))
        .collect();
    // The first two failures have fewer than two others before them.
    assert!(staggered.len() >= 3, "{staggered:#?}");
}

#[test]
fn on_event_hooks_get_the_failure_context() {
    let inst = Instance::start(&format!(
        "services:
  hooked:
    command: {}
    min_uptime: 200ms
    recovery: {{ reset_after: 500ms }}
    on_event: echo \"$$SENTINELD_SERVICE|$$SENTINELD_EVENT|$$SENTINELD_SEVERITY|$$SENTINELD_CAUSE|$$SENTINELD_EXIT_CODE|$$SENTINELD_ATTEMPT|$$SENTINELD_ACTION\" >> hook.log
",
        runs("3:0.3 forever")
    ));
    wait_until(
        Duration::from_secs(10),
        "the failure and the recovery hooks",
        || std::fs::read_to_string(inst.path("hook.log")).is_ok_and(|s| s.lines().count() >= 2),
    );
    let log = std::fs::read_to_string(inst.path("hook.log")).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(
        lines[0], "hooked|failure|transient|exit 3|3|1|retry",
        "{log}"
    );
    assert!(lines[1].starts_with("hooked|recovered|"), "{log}");
}

#[test]
fn a_stopped_fallbacks_whole_group_is_gone_after_its_stop_timeout() {
    // The fallback's leader exits on SIGTERM; its child ignores SIGTERM.
    let inst = Instance::start(
        "services:
  api:
    command: if [ -f fixed ]; then exec sleep 1000; fi; exit 78
    min_uptime: 300ms
    stop: { timeout: 500ms }
    recovery:
      fallback:
        command: (trap '' TERM; exec sleep 7402) & echo $$! > fbchild; trap 'exit 0' TERM; wait
        retry_primary: 500ms
",
    );
    inst.wait_state("api", "fallback");
    wait_until(Duration::from_secs(5), "the fallback's child", || {
        inst.path("fbchild").exists()
    });
    let child: i32 = std::fs::read_to_string(inst.path("fbchild"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(child));
    std::fs::write(inst.path("fixed"), "").unwrap();
    let primary = inst.wait_running("api", None);
    wait_until(
        Duration::from_secs(10),
        "the fallback's child to be gone",
        || !alive(child),
    );
    assert_eq!(inst.pid_of("api"), Some(primary));
    let m = inst.messages("api");
    assert!(
        m.iter().any(|x| x.starts_with("fallback stopped")),
        "{m:#?}"
    );
}

#[test]
fn a_hung_hook_is_killed_at_its_time_limit_and_later_hooks_run() {
    let inst = Instance::start(&format!(
        "services:
  hooked:
    command: {}
    min_uptime: 100ms
    on_event: if [ ! -f hung ]; then touch hung; exec sleep 7511; fi; echo \"$$SENTINELD_EVENT\" >> hook.log
    on_event_timeout: 500ms
",
        runs("1:0.3 1:0.3 1:0.3 1:0.3 forever")
    ));
    wait_until(Duration::from_secs(15), "a hook after the hung one", || {
        inst.path("hook.log").exists()
    });
    let m = inst.messages("hooked");
    assert!(
        m.iter()
            .any(|x| x.starts_with("on_event hook ran past 500ms: SIGKILL")),
        "{m:#?}"
    );
}

#[test]
fn a_hook_still_running_at_down_is_stopped_with_everything_else() {
    let mut inst = Instance::start(
        "services:
  hooked:
    command: sleep 0.3; exit 1
    on_event: echo $$$$ > hookpid; exec sleep 7501
",
    );
    wait_until(Duration::from_secs(10), "the hook", || {
        inst.path("hookpid").exists()
    });
    let hook: i32 = std::fs::read_to_string(inst.path("hookpid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(hook));
    assert!(inst.down().success());
    assert!(!alive(hook), "the hook outlived down");
}
