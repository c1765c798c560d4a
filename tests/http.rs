//! The HTTP API (`api.listen`) against a running daemon: every endpoint,
//! checked against the OpenAPI document; the token; query parameters;
//! server-sent events and their resumption. Limits (malformed, slow and
//! oversized requests, the connection cap) are in `http_limits.rs`.

#[path = "common/http.rs"]
mod client;
mod common;

use std::io::{BufReader, Write};
use std::time::Duration;

use client::*;
use common::*;

#[test]
fn every_endpoint_answers_as_the_openapi_document_says() {
    let api = OpenApi::load(BIN);
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let check = |method: &str, template: &str, path: &str| {
        let answer = request(port, method, path, &[("Content-Length", "0")]);
        api.check(method, template, &answer);
        answer
    };
    let health = check("GET", "/healthz", "/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["system"]["health"], "healthy");
    assert_eq!(check("GET", "/readyz", "/readyz").status, 200);

    let status = check("GET", "/api/v1/status", "/api/v1/status");
    assert_eq!(status.status, 200);
    let web = inst.pid_of("web");
    assert_eq!(
        status.json()["services"][0]["pid"]
            .as_i64()
            .map(|p| p as i32),
        web
    );

    let one = check("GET", "/api/v1/services/{name}", "/api/v1/services/web");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["services"][0]["name"], "web");
    assert!(!one.json()["events"].as_array().unwrap().is_empty());
    let unknown = check("GET", "/api/v1/services/{name}", "/api/v1/services/wbe");
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["kind"], "unknown_service");
    assert!(
        unknown.json()["message"]
            .as_str()
            .unwrap()
            .contains("did you mean")
    );

    let verb = |v: &str| {
        let template = format!("/api/v1/services/{{name}}/{v}");
        check("POST", &template, &format!("/api/v1/services/web/{v}"))
    };
    let restarted = verb("restart");
    assert_eq!(restarted.status, 200, "{:?}", restarted.json());
    assert_eq!(restarted.json()["type"], "done");
    let new = inst.wait_running("web", web);
    assert_ne!(Some(new), web);
    assert_eq!(verb("stop").status, 200);
    assert_eq!(inst.service("web")["state"], "stopped");
    assert_eq!(verb("start").status, 200);
    inst.wait_running("web", Some(new));
    assert_eq!(verb("reset").status, 200);
    let unknown = check(
        "POST",
        "/api/v1/services/{name}/stop",
        "/api/v1/services/x/stop",
    );
    assert_eq!(
        (unknown.status, unknown.json()["kind"].clone()),
        (404, "unknown_service".into())
    );

    // Wrong method, unknown path: JSON errors with their statuses.
    let wrong = request(port, "POST", "/api/v1/status", &[("Content-Length", "0")]);
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("GET")));
    api.validate_as("Error", &wrong.json());
    let lost = get(port, "/api/v1/nothing");
    assert_eq!(lost.status, 404);
    api.validate_as("Error", &lost.json());
    let lost = get(port, "/api/v1/services/web/restart");
    assert_eq!(lost.status, 405);

    // The event stream's events are the schema's too.
    let mut events = EventStream::open(port, &[]);
    assert_eq!(events.status, 200);
    let first = events.next(Duration::from_secs(5)).unwrap();
    assert_eq!(first.id.as_deref(), Some("1"));
    api.validate_as("Event", &serde_json::from_str(&first.data).unwrap());
}

#[test]
fn routes_served_are_the_routes_documented() {
    let api = OpenApi::load(BIN);
    let mut served: Vec<(String, String)> = sentineld::control::http::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    served.sort();
    assert_eq!(served, api.operations());
    // And each is answered by the daemon, not refused as unknown.
    let port = free_port();
    let _inst = start(&with_api(port, WEB));
    for (method, template) in &served {
        if template.ends_with("/events") {
            assert_eq!(EventStream::open(port, &[]).status, 200);
            continue;
        }
        let path = template.replace("{name}", "web");
        let answer = request(port, method, &path, &[("Content-Length", "0")]);
        assert_eq!(answer.status, 200, "{method} {path}: {:?}", answer.json());
        api.check(method, template, &answer);
    }
}

#[test]
fn readyz_waits_for_every_readiness_check() {
    let port = free_port();
    let services = format!(
        "{WEB}  db:\n    command: exec sleep 1000\n    readiness:\n      exec: test -f ready\n      interval: 100ms\n"
    );
    let inst = start(&with_api(port, &services));
    let api = OpenApi::load(BIN);
    wait_until(Duration::from_secs(10), "readyz 503 naming db", || {
        let answer = get(port, "/readyz");
        answer.status == 503 && answer.json()["not_ready"] == serde_json::json!(["db"])
    });
    api.check("GET", "/readyz", &get(port, "/readyz"));
    // Not ready is not unhealthy.
    assert_eq!(get(port, "/healthz").status, 200);
    std::fs::write(inst.path("ready"), "").unwrap();
    wait_until(Duration::from_secs(10), "readyz 200", || {
        get(port, "/readyz").status == 200
    });
}

#[test]
fn healthz_is_503_once_the_root_gives_up() {
    let port = free_port();
    let yaml = format!(
        "api: {{ listen: 127.0.0.1:{port} }}
supervisor: {{ intensity: 1, period: 60s }}
services:
  web:
    command: exec sleep 1000
  crashy:
    command: sleep 0.3; exec kill -ABRT $$$$
    min_uptime: 100ms
    recovery: {{ restart: {{ attempts: 100 }} }}
"
    );
    let _inst = Instance::start(&yaml);
    let api = OpenApi::load(BIN);
    wait_until(Duration::from_secs(20), "healthz 503", || {
        get(port, "/healthz").status == 503
    });
    let answer = get(port, "/healthz");
    api.check("GET", "/healthz", &answer);
    assert_eq!(answer.json()["system"]["health"], "critical");
}

#[test]
fn public_health_answers_probes_without_the_token_in_brief_and_nothing_more() {
    let port = free_port();
    let yaml = format!(
        "api:\n  listen: 0.0.0.0:{port}\n  token: {TOKEN}\n  public_health: true
services:
{WEB}  db:
    command: exec sleep 1000
    readiness: {{ exec: test -e ready, interval: 100ms }}
"
    );
    let inst = start(&yaml);
    let api = OpenApi::load(BIN);
    wait_until(Duration::from_secs(10), "readyz 503", || {
        get(port, "/readyz").status == 503
    });
    let brief = get(port, "/readyz");
    api.check("GET", "/readyz", &brief);
    assert_eq!(
        brief.json(),
        serde_json::json!({"type": "health", "status": "unavailable"})
    );
    let healthz = get(port, "/healthz");
    assert_eq!(
        (healthz.status, healthz.json()["status"].as_str()),
        (200, Some("ok"))
    );
    // With the token, the whole report, naming who is not ready.
    let auth = format!("Bearer {TOKEN}");
    let full = request(port, "GET", "/readyz", &[("Authorization", &auth)]);
    api.check("GET", "/readyz", &full);
    assert_eq!(full.json()["not_ready"], serde_json::json!(["db"]));
    // Everything else still asks for it.
    assert_eq!(get(port, "/api/v1/status").status, 401);
    assert_eq!(post(port, "/healthz").status, 401);
    assert_eq!(get(port, "/api/v1/events").status, 401);
    std::fs::write(inst.path("ready"), "").unwrap();
    wait_until(Duration::from_secs(10), "readyz 200", || {
        get(port, "/readyz").status == 200
    });
    assert_eq!(get(port, "/readyz").json()["status"], "ok");
}

#[test]
fn the_token_is_required_off_loopback_and_compared_whole() {
    let port = free_port();
    let yaml = format!("api:\n  listen: 0.0.0.0:{port}\n  token: {TOKEN}\nservices:\n{WEB}");
    let _inst = start(&yaml);
    let api = OpenApi::load(BIN);
    let with = |auth: &str| request(port, "GET", "/api/v1/status", &[("Authorization", auth)]);
    let none = get(port, "/api/v1/status");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    api.check("GET", "/api/v1/status", &none);
    assert_eq!(none.json()["kind"], "unauthorized");
    for wrong in [
        format!("Bearer {}", &TOKEN[..TOKEN.len() - 1]),
        format!("Bearer {TOKEN}x"),
        format!("Bearer {}X", &TOKEN[..TOKEN.len() - 1]),
        format!("Basic {TOKEN}"),
        TOKEN.to_string(),
        "Bearer ".to_string(),
    ] {
        assert_eq!(with(&wrong).status, 401, "{wrong}");
    }
    assert_eq!(get(port, "/healthz").status, 401, "every route asks");
    let ok = with(&format!("Bearer {TOKEN}"));
    assert_eq!(ok.status, 200);
    assert_eq!(
        with(&format!("bearer {TOKEN}")).status,
        200,
        "the scheme's case"
    );
    api.check("GET", "/api/v1/status", &ok);
    // The token is never logged.
    let log = std::fs::read_to_string(_inst.path("up.log")).unwrap();
    assert!(!log.contains(TOKEN), "{log}");
}

#[test]
fn an_open_address_without_a_token_or_a_taken_port_starts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(
        &file,
        format!("api:\n  listen: 0.0.0.0:9700\nservices:\n{WEB}"),
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":2:11: api.listen: 0.0.0.0:9700 is not a loopback address"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let marker = dir.path().join("started");
    let yaml = format!(
        "api:\n  listen: 127.0.0.1:{port}\nservices:\n  web:\n    command: touch {}; exec sleep 1000\n",
        marker.display()
    );
    std::fs::write(&file, yaml).unwrap();
    let mut up = std::process::Command::new(BIN);
    up.args(["up", "services.yaml"]).current_dir(dir.path());
    let out = run_bounded(up);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot listen on 127.0.0.1:{port} (api.listen): Address already in use"
        )),
        "{err}"
    );
    assert!(!marker.exists(), "a service was started");
}

/// Run `cmd` to its end, killed (and the test failed) after 30 s.
fn run_bounded(mut cmd: std::process::Command) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            kill(-pid, libc::SIGKILL);
            panic!("{cmd:?} did not finish within 30 s");
        }
    }
}

#[test]
fn events_resume_after_the_last_event_id() {
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let api = OpenApi::load(BIN);
    let mut stream = EventStream::open(port, &[]);
    let started = stream.next(Duration::from_secs(5)).unwrap();
    assert_eq!(started.id.as_deref(), Some("1"));
    // Live: a restart's events arrive as they happen.
    assert_eq!(post(port, "/api/v1/services/web/restart").status, 200);
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = stream.next(Duration::from_secs(5)).expect("live events");
        let data: serde_json::Value = serde_json::from_str(&e.data).unwrap();
        api.validate_as("Event", &data);
        assert_eq!(e.id, Some(data["id"].to_string()));
        seen.push(data);
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["stopping", "stopped", "started"]);
    drop(stream);

    // Resumed after the first: the rest of them, in order, then live.
    let mut resumed = EventStream::open(port, &[("Last-Event-ID", "1")]);
    let ids: Vec<String> = (0..3)
        .map(|_| resumed.next(Duration::from_secs(5)).unwrap().id.unwrap())
        .collect();
    assert_eq!(ids, ["2", "3", "4"]);
    assert_eq!(post(port, "/api/v1/services/web/stop").status, 200);
    let next = resumed.next(Duration::from_secs(5)).unwrap();
    assert_eq!(next.id.as_deref(), Some("5"));

    // An id the journal never gave (from an earlier run): told, then all.
    let mut stale = EventStream::open(port, &[("Last-Event-ID", "999999")]);
    let missed = stale.next(Duration::from_secs(5)).unwrap();
    assert_eq!(missed.event.as_deref(), Some("missed"));
    api.validate_as("Missed", &serde_json::from_str(&missed.data).unwrap());
    assert_eq!(
        stale.next(Duration::from_secs(5)).unwrap().id.as_deref(),
        Some("1")
    );
    assert!(inst.cli(&["status"]).status.success());
}

#[test]
fn the_schema_check_catches_what_the_document_does_not_allow() {
    let api = OpenApi::load(BIN);
    let bad = [
        (
            "Event",
            serde_json::json!({"id": 1, "at": "x", "service": "web"}),
        ),
        (
            "Error",
            serde_json::json!({"type": "error", "kind": "oops", "message": "m"}),
        ),
        (
            "Health",
            serde_json::json!({"type": "health", "system": {"health": "fine"}}),
        ),
    ];
    for (name, value) in bad {
        let caught = std::panic::catch_unwind(|| api.validate_as(name, &value));
        assert!(caught.is_err(), "{name} accepted {value}");
    }
    let answer = Answer {
        status: 418,
        headers: Vec::new(),
        body: b"{}".to_vec(),
    };
    let caught = std::panic::catch_unwind(|| api.check("GET", "/healthz", &answer));
    assert!(caught.is_err(), "a status the document does not list");
}

#[test]
fn without_a_token_only_local_clients_are_served() {
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let api = OpenApi::load(BIN);
    let web = inst.pid_of("web");
    let restart = "/api/v1/services/{name}/restart";
    // A page of another site, through the user's browser (CSRF).
    let csrf = request(
        port,
        "POST",
        "/api/v1/services/web/restart",
        &[("Origin", "http://evil.example"), ("Content-Length", "0")],
    );
    assert_eq!(csrf.status, 403);
    api.check("POST", restart, &csrf);
    assert!(
        csrf.json()["message"]
            .as_str()
            .unwrap()
            .contains("evil.example")
    );
    assert_eq!(inst.pid_of("web"), web, "nothing was restarted");
    // A name of another site that resolves to 127.0.0.1 (DNS rebinding):
    // the raw client sends Host first, so this one names the other host.
    let mut s = connect(port);
    s.write_all(
        b"GET /api/v1/status HTTP/1.1\r\nHost: evil.example:9700\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let rebound = read_answer(&mut BufReader::new(s));
    assert_eq!(rebound.status, 403);
    api.check("GET", "/api/v1/status", &rebound);
    // Local pages and programs are served.
    let local = request(
        port,
        "GET",
        "/healthz",
        &[("Origin", "http://localhost:3000")],
    );
    assert_eq!(local.status, 200);
}

#[test]
fn metrics_and_reload_over_http() {
    let api = OpenApi::load(BIN);
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    inst.wait_running("web", None);
    let metrics = get(port, "/metrics");
    api.check("GET", "/metrics", &metrics);
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("sentineld_service_up{service=\"web\"} 1"),
        "{text}"
    );

    // A reload: dry run first, then for real; the file gains a service.
    let yaml = std::fs::read_to_string(inst.path("services.yaml")).unwrap();
    let more = format!("{yaml}  extra:\n    command: sleep 1000\n");
    std::fs::write(inst.path("services.yaml"), more).unwrap();
    let headers = [("Content-Length", "0")];
    let dry = request(port, "POST", "/api/v1/reload?dry_run=true", &headers);
    api.check("POST", "/api/v1/reload", &dry);
    assert_eq!(dry.status, 200);
    assert!(
        dry.json()["message"]
            .as_str()
            .unwrap()
            .contains("+ extra: added")
    );
    let names = |inst: &Instance| inst.status()["services"].as_array().unwrap().len();
    assert_eq!(names(&inst), 1);
    let done = request(port, "POST", "/api/v1/reload", &headers);
    api.check("POST", "/api/v1/reload", &done);
    assert_eq!(done.status, 200, "{:?}", done.json());
    inst.wait_running("extra", None);
    // A bad file: 422, every error, nothing changes.
    std::fs::write(inst.path("services.yaml"), "services: [\n").unwrap();
    let bad = request(port, "POST", "/api/v1/reload", &headers);
    api.check("POST", "/api/v1/reload", &bad);
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["kind"], "invalid_config");
    assert_eq!(names(&inst), 2);
    let get_reload = get(port, "/api/v1/reload");
    assert_eq!(get_reload.status, 405);
}

#[test]
fn a_dry_run_that_is_not_true_or_false_and_unknown_parameters_change_nothing() {
    let api = OpenApi::load(BIN);
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let yaml = std::fs::read_to_string(inst.path("services.yaml")).unwrap();
    let more = format!("{yaml}  extra:\n    command: sleep 1000\n");
    std::fs::write(inst.path("services.yaml"), more).unwrap();
    let headers = [("Content-Length", "0")];
    for (query, named) in [
        ("dry_run=yes", "dry_run"),
        ("dry_run=TRUE", "dry_run"),
        ("dry_run", "dry_run"),
        ("dry-run=true", "dry-run"),
        ("dry_run=true&force=1", "force"),
    ] {
        let path = format!("/api/v1/reload?{query}");
        let answer = request(port, "POST", &path, &headers);
        api.check("POST", "/api/v1/reload", &answer);
        assert_eq!(answer.status, 400, "{query}: {:?}", answer.json());
        assert_eq!(answer.json()["kind"], "bad_request");
        let message = answer.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains(named), "{query}: {message}");
    }
    let names = |inst: &Instance| inst.status()["services"].as_array().unwrap().len();
    assert_eq!(names(&inst), 1, "nothing was reloaded");
    let web = inst.pid_of("web");
    let stop = request(port, "POST", "/api/v1/services/web/stop?now=1", &headers);
    assert_eq!(stop.status, 400);
    api.check("POST", "/api/v1/services/{name}/stop", &stop);
    assert_eq!(inst.pid_of("web"), web, "nothing was stopped");
    let status = get(port, "/api/v1/status?verbose=true");
    assert_eq!(status.status, 400);
    assert!(
        status.json()["message"]
            .as_str()
            .unwrap()
            .contains("verbose")
    );
    // The right spellings still work.
    let dry = request(port, "POST", "/api/v1/reload?dry_run=1", &headers);
    assert_eq!(dry.status, 200, "{:?}", dry.json());
    assert_eq!(names(&inst), 1);
    let real = request(port, "POST", "/api/v1/reload?dry_run=false", &headers);
    assert_eq!(real.status, 200, "{:?}", real.json());
    inst.wait_running("extra", None);
}

#[test]
fn ambiguous_or_odd_requests_are_refused_not_guessed_at() {
    let api = OpenApi::load(BIN);
    let port = free_port();
    let _inst = start(&with_api(port, WEB));
    let raw = |head: &str| {
        let mut s = connect(port);
        let head = format!("{head}Connection: close\r\n\r\n");
        s.write_all(head.as_bytes()).unwrap();
        read_answer(&mut BufReader::new(s))
    };
    let status = "/api/v1/status";
    for (head, expected) in [
        (
            "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nHost: evil.com\r\n",
            400,
        ),
        (
            "GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\n\
             Origin: http://evil.com\r\n",
            400,
        ),
        ("GET /api/v1/status HTTP/1.1\r\n", 400),
        (
            "GET http://evil.com/api/v1/status HTTP/1.1\r\nHost: localhost\r\n",
            403,
        ),
        (
            "GET http://localhost:1/api/v1/status HTTP/1.1\r\nHost: localhost\r\n",
            200,
        ),
        ("GET /api/v1/status HTTP/1.0\r\n", 200),
    ] {
        let answer = raw(head);
        assert_eq!(answer.status, expected, "{head:?}");
        api.check("GET", status, &answer);
    }
    assert_eq!(get(port, "//api/v1/status").status, 404);
    let encoded = get(port, "/api/v1/services/%77eb");
    assert_eq!(encoded.status, 400);
    api.check("GET", "/api/v1/services/{name}", &encoded);
    assert!(
        encoded.json()["message"]
            .as_str()
            .unwrap()
            .contains("encod")
    );
    // An id that is not one is refused, not taken as "from the start".
    for id in ["abc", "18446744073709551616", "-1"] {
        let events = EventStream::open(port, &[("Last-Event-ID", id)]);
        assert_eq!(events.status, 400, "{id}");
    }
    assert_eq!(
        EventStream::open(port, &[("Last-Event-ID", " 3 ")]).status,
        200
    );
}
