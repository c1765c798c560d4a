//! Hand-over between a fallback and its primary when they need the same
//! thing — one port, without SO_REUSEPORT, as most servers bind: the
//! fallback is stopped before the primary's trial and comes back at once
//! when the trial fails; and young deaths of a plainly transient cause
//! ("address already in use") are waited out, not escalated.

mod common;

use std::time::Duration;

use common::*;

/// A directory `name` with an index.html that says `text`.
fn site(inst_dir: &std::path::Path, name: &str, text: &str) {
    std::fs::create_dir(inst_dir.join(name)).unwrap();
    std::fs::write(inst_dir.join(name).join("index.html"), text).unwrap();
}

/// A service `api` whose primary (the page "the real page") and fallback
/// ("down for maintenance") are `python3 -m http.server` on one port; the
/// primary runs `broken` instead until a file `fixed` exists. Returned once
/// the fallback serves.
fn on_one_port(broken: &str, retry_primary: &str) -> (Instance, u16) {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), "live", "the real page\n");
    site(dir.path(), "maint", "down for maintenance\n");
    let port = free_port();
    let server =
        |d: &str| format!("python3 -m http.server {port} --bind 127.0.0.1 --directory {d}");
    let inst = Instance::start_in(
        dir,
        &format!(
            "services:
  api:
    command: if [ ! -f fixed ]; then {broken}; fi; exec {}
    min_uptime: 500ms
    recovery:
      fallback:
        command: exec {}
        retry_primary: {retry_primary}
",
            server("live"),
            server("maint")
        ),
    );
    inst.wait_state("api", "fallback");
    wait_until(Duration::from_secs(10), "the fallback to serve", || {
        http_get(port).is_some_and(|b| b.contains("down for maintenance"))
    });
    (inst, port)
}

#[test]
fn a_primary_and_its_fallback_on_one_port_hand_over_both_ways() {
    let (inst, port) = on_one_port("echo 'invalid configuration' >&2; exit 78", "1s");
    // A trial while the config is still broken fails, and the fallback
    // is back at once.
    wait_until(Duration::from_secs(10), "a failed trial", || {
        let m = inst.messages("api");
        let failed = m.iter().position(|x| x.contains("half-open trial failed"));
        failed.is_some_and(|f| m[f..].iter().any(|x| x.starts_with("fallback started")))
    });
    wait_until(
        Duration::from_secs(10),
        "the fallback to serve again",
        || http_get(port).is_some_and(|b| b.contains("down for maintenance")),
    );
    std::fs::write(inst.path("fixed"), "").unwrap();
    wait_until(Duration::from_secs(20), "the real page on the port", || {
        http_get(port).is_some_and(|b| b.contains("the real page"))
    });
    wait_until(Duration::from_secs(10), "the trial to pass", || {
        let s = inst.service("api");
        s["state"] == "running" && s["breaker"] == "closed" && s["fallback_pid"].is_null()
    });
    let m = inst.messages("api");
    let last = |needle: &str| {
        m.iter()
            .rposition(|x| x.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {m:#?}"))
    };
    // The last trial: the fallback went first, then the primary started
    // and passed; no failure of the primary in between (no EADDRINUSE).
    let handing = last("stopping the fallback first");
    let gone = last("fallback stopped");
    let started = last("started (pid");
    let passed = last("half-open trial passed");
    assert!(
        handing < gone && gone < started && started < passed,
        "{m:#?}"
    );
    assert!(
        !m[handing..]
            .iter()
            .any(|x| x.contains("address already in use")),
        "{m:#?}"
    );
    assert!(!inst.log("api").contains("Address already in use"));
}

#[test]
fn a_port_still_held_is_waited_out_without_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let inst = Instance::start_in(
        dir,
        "services:
  api:
    command: if [ ! -f free ]; then echo 'bind failed, [Errno 98] Address already in use' >&2; exit 1; fi; exec sleep 1000
    recovery:
      fallback: { command: exec sleep 1000 }
",
    );
    // Well past where the ladder would have escalated (3 retries, then
    // restarts, then the fallback, within about 3 s).
    wait_until(Duration::from_secs(20), "six failures waited out", || {
        inst.messages_of("api", "failure").len() >= 6
    });
    std::fs::write(inst.path("free"), "").unwrap();
    let pid = inst.wait_running("api", None);
    let s = inst.service("api");
    assert_eq!(s["actions"]["fallback"], 0, "{s}");
    assert_eq!(s["actions"]["restart"], 0, "{s}");
    assert!(s["fallback_pid"].is_null(), "{s}");
    let f = inst.messages_of("api", "failure");
    for m in &f {
        assert!(m.contains("plainly transient"), "{m}");
        assert!(m.contains("→ retry in") || m.contains("→ retry now"), "{m}");
        assert!(!m.contains("escalated"), "{m}");
    }
    assert!(alive(pid));
}

#[test]
fn reset_on_the_fallback_hands_the_port_over_too() {
    let (inst, port) = on_one_port("exit 78", "1h");
    std::fs::write(inst.path("fixed"), "").unwrap();
    let out = inst.cli(&["reset", "api"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{said}");
    assert!(said.contains("primary started"), "{said}");
    wait_until(Duration::from_secs(10), "the real page on the port", || {
        http_get(port).is_some_and(|b| b.contains("the real page"))
    });
    let m = inst.messages("api");
    assert!(
        !m.iter().any(|x| x.contains("address already in use")),
        "{m:#?}"
    );
    assert!(!inst.log("api").contains("Address already in use"));
}

#[test]
fn an_earlier_runs_output_does_not_make_a_death_plainly_transient() {
    let inst = Instance::start(
        "services:
  api:
    command: if [ ! -f said ]; then touch said; echo 'connect to db, Connection refused'; fi; sleep 0.1; exit 1
    recovery:
      retry: { attempts: 1 }
      fallback: { command: exec sleep 1000 }
",
    );
    wait_until(Duration::from_secs(20), "the fallback", || {
        inst.service("api")["state"] == "fallback"
    });
    let f = inst.messages_of("api", "failure");
    assert!(f[0].contains("plainly transient"), "{f:#?}");
    assert!(
        f[1..].iter().all(|m| !m.contains("plainly transient")),
        "{f:#?}"
    );
}
