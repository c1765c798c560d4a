//! Webhooks: a local receiver records what sentineld POSTs — the event as
//! JSON, only the kinds asked for, the custom headers — and answers as
//! each test needs: 200, 500 (retried), 404 (not retried), or never (a
//! hanging endpoint, which must not delay a restart).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// How a receiver answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers (the connection stays open).
    Never,
}

/// One request as received.
#[derive(Debug, Clone)]
struct Post {
    method: String,
    path: String,
    /// Lower-case names.
    headers: HashMap<String, String>,
    body: Value,
}

/// A local HTTP endpoint on a thread of its own, for the test's lifetime.
struct Receiver {
    port: u16,
    posts: Arc<Mutex<Vec<Post>>>,
    /// Connections accepted (a hanging one counts before its request is read).
    accepted: Arc<Mutex<usize>>,
}

impl Receiver {
    fn start(answer: Answer) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let posts = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (p, a) = (posts.clone(), accepted.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                *a.lock().unwrap() += 1;
                let Some(post) = read_post(&stream) else {
                    continue;
                };
                p.lock().unwrap().push(post);
                match answer {
                    Answer::Status(code) => {
                        let mut s = &stream;
                        let head = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = s.write_all(head.as_bytes());
                    }
                    Answer::Never => held.push(stream),
                }
            }
        });
        Receiver {
            port,
            posts,
            accepted,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    fn kinds(&self) -> Vec<String> {
        (self.posts().iter())
            .map(|p| p.body["kind"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    fn wait_for(&self, what: &str, mut cond: impl FnMut(&[Post]) -> bool) -> Vec<Post> {
        wait_until(Duration::from_secs(20), what, || cond(&self.posts()));
        self.posts()
    }
}

fn read_post(stream: &TcpStream) -> Option<Post> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some(Post {
        method,
        path,
        headers,
        body: serde_json::from_slice(&body).ok()?,
    })
}

/// `system.webhooks` of status: the top-level endpoint first.
fn webhooks(inst: &Instance) -> Vec<Value> {
    inst.status()["system"]["webhooks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn endpoint(inst: &Instance, service: Option<&str>) -> Value {
    (webhooks(inst).into_iter())
        .find(|w| w["service"].as_str() == service)
        .unwrap_or_else(|| panic!("no webhook of {service:?} in status"))
}

#[test]
fn a_failure_is_posted_as_json_with_the_headers_and_only_the_kinds_asked_for() {
    let rx = Receiver::start(Answer::Status(200));
    let yaml = format!(
        "services:
  web:
    command: sh -c 'sleep 0.3; exit 3'
    webhook:
      url: \"{}\"
      events: [failure]
      headers: {{ Authorization: \"Bearer s3cret-token\", X-Team: ops }}
",
        rx.url("/hooks/web?x=1")
    );
    let inst = Instance::start(&yaml);
    let posts = rx.wait_for("a failure POST", |p| !p.is_empty());
    let post = &posts[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.path, "/hooks/web?x=1");
    assert_eq!(post.headers["content-type"], "application/json");
    assert!(
        post.headers["user-agent"].starts_with("sentineld/"),
        "{post:?}"
    );
    assert_eq!(post.headers["authorization"], "Bearer s3cret-token");
    assert_eq!(post.headers["x-team"], "ops");
    let body = &post.body;
    assert_eq!(body["service"], "web");
    assert_eq!(body["kind"], "failure");
    assert_eq!(body["severity"], "transient");
    assert!(
        body["message"].as_str().unwrap().contains("exit 3"),
        "{body}"
    );
    assert!(body["action"].is_string(), "{body}");
    assert!(body["at"].is_string(), "{body}");
    assert_eq!(body["sentineld"]["pid"], inst.pid());
    assert!(body["sentineld"]["host"].is_string(), "{body}");
    // The same record as `events --json` has.
    let events = inst.events("web");
    let failure = (events.iter())
        .find(|e| e["kind"] == "failure" && e["at"] == body["at"])
        .expect("the posted failure in the journal");
    assert_eq!(failure["message"], body["message"]);

    // Started and exited happened too, and were not sent.
    rx.wait_for("a second failure POST", |p| p.len() >= 2);
    assert!(
        rx.kinds().iter().all(|k| k == "failure"),
        "{:?}",
        rx.kinds()
    );
    wait_until(Duration::from_secs(10), "sent counted", || {
        endpoint(&inst, Some("web"))["sent"].as_u64() >= Some(2)
    });
    let w = endpoint(&inst, Some("web"));
    assert_eq!(
        (w["failed"].as_u64(), w["dropped"].as_u64()),
        (Some(0), Some(0))
    );
    let metrics = inst.cli(&["metrics"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("sentineld_webhooks_sent_total{scope=\"service\",service=\"web\"}"),
        "{text}"
    );
    // A header's value is a secret: shown nowhere.
    let check = inst.cli(&["check", "services.yaml"]);
    assert!(check.status.success(), "{check:?}");
    for shown in [
        String::from_utf8_lossy(&check.stdout).into_owned(),
        text.into_owned(),
        std::fs::read_to_string(inst.path("up.log")).unwrap(),
        serde_json::to_string(&inst.status()).unwrap(),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}

#[test]
fn the_top_level_webhook_gets_system_events_and_follows_a_reload() {
    let before = Receiver::start(Answer::Status(200));
    let after = Receiver::start(Answer::Status(200));
    let own = Receiver::start(Answer::Status(204));
    let yaml = |top: &Receiver, service: &str| {
        format!(
            "webhook: {{ url: \"{}\", events: [reload, started] }}
services:
  web:
    command: sleep 1000
{service}",
            top.url("/top")
        )
    };
    let mut inst = Instance::start(&yaml(&before, ""));
    let pid = inst.wait_running("web", None);
    before.wait_for("web's start", |p| {
        p.iter().any(|p| p.body["kind"] == "started")
    });

    let service_hook = format!(
        "    webhook: {{ url: \"{}\", events: [failure] }}\n",
        own.url("/web")
    );
    std::fs::write(inst.path("services.yaml"), yaml(&after, &service_hook)).unwrap();
    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    let posts = after.wait_for("the reload event", |p| !p.is_empty());
    assert_eq!(posts[0].body["kind"], "reload");
    assert_eq!(posts[0].body["service"], "");
    assert!(
        (before.kinds().iter()).all(|k| k != "reload"),
        "the old endpoint got {:?}",
        before.kinds()
    );
    // The service's new webhook applies in place: same pid, and its
    // failure is posted.
    assert_eq!(inst.pid_of("web"), Some(pid));
    kill(pid, libc::SIGKILL);
    let posts = own.wait_for("web's failure", |p| !p.is_empty());
    assert_eq!(posts[0].body["kind"], "failure");
    assert_eq!(posts[0].body["service"], "web");
    inst.wait_running("web", Some(pid));
    after.wait_for("the restart's start", |p| {
        p.iter().any(|p| p.body["kind"] == "started")
    });
    let hooks = webhooks(&inst);
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(hooks[0]["service"], Value::Null);
    inst.down();
}

/// Median time from a SIGKILL of a service that ran past `min_uptime` to
/// its new pid running, over `rounds` kills.
fn restart_latency(inst: &Instance, rounds: usize) -> Duration {
    let mut pid = inst.wait_running("web", None);
    let mut took = Vec::new();
    for _ in 0..rounds {
        // Past min_uptime: respawned at once, not backed off.
        let since = Instant::now();
        wait_until(Duration::from_secs(5), "min_uptime", || {
            since.elapsed() > Duration::from_millis(1100)
        });
        let killed = Instant::now();
        kill(pid, libc::SIGKILL);
        pid = inst.wait_running("web", Some(pid));
        took.push(killed.elapsed());
    }
    took.sort();
    took[took.len() / 2]
}

#[test]
fn a_hanging_endpoint_does_not_delay_a_restart() {
    const SERVICE: &str = "services:\n  web:\n    command: sleep 1000\n";
    let plain = Instance::start(SERVICE);
    let without = restart_latency(&plain, 3);
    drop(plain);

    let hang = Receiver::start(Answer::Never);
    let yaml = format!(
        "webhook: {{ url: \"{}\", events: [failure, exited, started, recovered], timeout: 5s }}
{SERVICE}    webhook: {{ url: \"{}\", events: [failure, exited, started], timeout: 5s }}
",
        hang.url("/top"),
        hang.url("/web")
    );
    let mut inst = Instance::start(&yaml);
    let with = restart_latency(&inst, 3);
    eprintln!(
        "restart latency (median of 3): {without:?} without a webhook, {with:?} with a hanging one"
    );
    assert!(
        *hang.accepted.lock().unwrap() >= 1,
        "the endpoint was tried"
    );
    assert!(
        with < without + Duration::from_secs(1),
        "a hanging endpoint delayed restarts: {with:?} against {without:?}"
    );
    let w = endpoint(&inst, Some("web"));
    assert_eq!(w["sent"], 0, "{w}");
    assert!(w["queued"].as_u64() > Some(0), "{w}");
    // Nor does it hold up a shutdown.
    let asked = Instant::now();
    assert!(inst.down().success());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

#[test]
fn a_5xx_is_retried_three_times_and_a_4xx_not_at_all() {
    let broken = Receiver::start(Answer::Status(500));
    let refusing = Receiver::start(Answer::Status(404));
    let yaml = format!(
        "webhook: {{ url: \"{}\", events: [reload] }}
services:
  web:
    command: sleep 1000
    webhook: {{ url: \"{}\", events: [started] }}
",
        broken.url("/top"),
        refusing.url("/web")
    );
    let inst = Instance::start(&yaml);
    inst.wait_running("web", None);
    let out = inst.cli(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    // 1 s, 2 s and 4 s apart (±20%): about 7 s in all.
    wait_until(
        Duration::from_secs(20),
        "the top-level webhook to give up",
        || endpoint(&inst, None)["failed"] == 1,
    );
    let posts = broken.posts();
    assert_eq!(posts.len(), 4, "the first try and 3 retries");
    assert!(posts.iter().all(|p| p.body == posts[0].body));
    wait_until(Duration::from_secs(10), "web's webhook to give up", || {
        endpoint(&inst, Some("web"))["failed"] == 1
    });
    assert_eq!(refusing.posts().len(), 1, "a 4xx is not retried");
    let top = endpoint(&inst, None);
    assert_eq!(
        (top["sent"].as_u64(), top["dropped"].as_u64()),
        (Some(0), Some(0))
    );
    let metrics = inst.cli(&["metrics"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("sentineld_webhooks_failed_total{scope=\"global\"} 1"),
        "{text}"
    );
}

#[test]
fn a_full_queue_drops_the_new_notification_and_counts_it() {
    let hang = Receiver::start(Answer::Never);
    let yaml = format!(
        "webhook: {{ url: \"{}\", events: [reload], timeout: 60s, queue: 1 }}
services:
  web:
    command: sleep 1000
",
        hang.url("/top")
    );
    let inst = Instance::start(&yaml);
    let reload = || {
        let out = inst.cli(&["reload"]);
        assert!(out.status.success(), "{out:?}");
    };
    reload();
    // The first is being sent (out of the queue), and hangs.
    hang.wait_for("the first reload's POST", |p| p.len() == 1);
    reload();
    wait_until(Duration::from_secs(10), "the second queued", || {
        endpoint(&inst, None)["queued"] == 1
    });
    reload();
    wait_until(Duration::from_secs(10), "the third dropped", || {
        endpoint(&inst, None)["dropped"] == 1
    });
    let top = endpoint(&inst, None);
    assert_eq!(
        (top["queued"].as_u64(), top["sent"].as_u64()),
        (Some(1), Some(0))
    );
    let metrics = inst.cli(&["metrics"]);
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("sentineld_webhooks_dropped_total{scope=\"global\"} 1"),
        "{text}"
    );
    assert_eq!(hang.posts().len(), 1);
}

/// Open descriptors of process `pid`.
fn fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn an_endpoint_a_reload_replaces_lets_go_of_its_connection() {
    let hang = Receiver::start(Answer::Never);
    let yaml = |n: usize| {
        format!(
            "webhook: {{ url: \"{}\", events: [reload, started], timeout: 60s }}\nservices:\n  web:\n    command: sleep 1000\n",
            hang.url(&format!("/p{n}"))
        )
    };
    let mut inst = Instance::start(&yaml(0));
    inst.wait_running("web", None);
    hang.wait_for("the first post", |p| !p.is_empty());
    let before = fds(inst.pid());
    for n in 1..=20 {
        std::fs::write(inst.path("services.yaml"), yaml(n)).unwrap();
        let out = inst.cli(&["reload"]);
        assert!(out.status.success(), "{out:?}");
    }
    // Each replaced endpoint's sender is stopped with its socket: the
    // daemon does not hold one connection per reload.
    wait_until(Duration::from_secs(10), "old connections closed", || {
        fds(inst.pid()) <= before + 3
    });
    assert!(inst.down().success());
}
