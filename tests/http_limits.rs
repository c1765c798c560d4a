//! The HTTP API's limits against a running daemon: malformed, oversized
//! and slow requests, and the connection cap: at it, the connection that
//! waited longest for a request makes room; only busy ones make a newcomer
//! wait.

#[path = "common/http.rs"]
mod client;
mod common;

use std::io::{BufReader, Read, Write};
use std::time::{Duration, Instant};

use client::*;
use common::*;

/// `GET /healthz` answered 200 within `within`.
fn served_quickly(port: u16, within: Duration) {
    let t = Instant::now();
    assert_eq!(get(port, "/healthz").status, 200);
    assert!(t.elapsed() < within, "took {:?}", t.elapsed());
}

#[test]
fn malformed_oversized_and_slow_requests_are_refused_while_others_are_served() {
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let api = OpenApi::load(BIN);
    // A slow client: half a request head, then nothing.
    let mut slow = connect(port);
    slow.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: localhost\r\n")
        .unwrap();
    let opened = Instant::now();
    served_quickly(port, Duration::from_secs(2));

    let raw = |bytes: &[u8]| {
        let mut s = connect(port);
        s.write_all(bytes).unwrap();
        read_answer(&mut BufReader::new(s))
    };
    assert_eq!(raw(b"NOT HTTP AT ALL\r\n\r\n").status, 400);
    assert_eq!(
        raw(b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n").status,
        400
    );
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(raw(huge.as_bytes()).status, 431);
    let declared =
        b"POST /api/v1/services/web/restart HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n";
    let answer = raw(declared);
    assert_eq!(answer.status, 413);
    api.check("POST", "/api/v1/services/{name}/restart", &answer);
    let chunked = format!(
        "POST /api/v1/services/web/restart HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n{}\r\n0\r\n\r\n",
        "b".repeat(0x800)
    );
    assert_eq!(raw(chunked.as_bytes()).status, 413);
    let web = inst.pid_of("web");
    assert_eq!(inst.pid_of("web"), web, "nothing was restarted");
    // A small body is read and ignored.
    let small = b"POST /api/v1/services/web/reset HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    assert_eq!(raw(small).status, 200);

    // The slow client is closed by the header timeout, the others served.
    served_quickly(port, Duration::from_secs(2));
    slow.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    let waited = opened.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(20),
        "{waited:?}"
    );
    assert!(inst.cli(&["status"]).status.success());
    served_quickly(port, Duration::from_secs(2));
}

#[test]
fn trickling_clients_without_the_token_cannot_lock_out_one_that_has_it() {
    let port = free_port();
    let yaml = format!("api:\n  listen: 127.0.0.1:{port}\n  token: {TOKEN}\nservices:\n{WEB}");
    let _inst = start(&yaml);
    let cap = sentineld::control::http::MAX_CONNECTIONS;
    // Every connection the server allows, each sending a header byte now
    // and then and reopened as soon as the server closes it.
    let mut crowd = Trickle::open(port, cap);
    let auth = format!("Bearer {TOKEN}");
    for _ in 0..20 {
        crowd.step();
        let t = Instant::now();
        let answer = request(port, "GET", "/healthz", &[("Authorization", &auth)]);
        assert_eq!(
            answer.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&answer.body)
        );
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t.elapsed()
        );
    }
    crowd.step();
    assert!(crowd.reopened > 0, "no trickling connection made room");
}

/// Connections that trickle a request head, never finishing it.
struct Trickle {
    port: u16,
    open: Vec<std::net::TcpStream>,
    reopened: usize,
}

impl Trickle {
    fn open(port: u16, n: usize) -> Trickle {
        let open = (0..n).map(|_| Trickle::one(port)).collect();
        Trickle {
            port,
            open,
            reopened: 0,
        }
    }

    fn one(port: u16) -> std::net::TcpStream {
        let mut s = connect(port);
        s.write_all(b"GET /healthz HTTP/1.1\r\nX-Pad: ").unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    /// A byte on each; those the server closed are opened again.
    fn step(&mut self) {
        for s in &mut self.open {
            let closed = match s.read(&mut [0u8; 512]) {
                Ok(_) => true,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
            if closed || s.write_all(b"a").is_err() {
                *s = Trickle::one(self.port);
                self.reopened += 1;
            }
        }
    }
}

#[test]
fn at_the_cap_only_busy_connections_make_a_newcomer_wait() {
    let port = free_port();
    let inst = start(&with_api(port, WEB));
    let cap = sentineld::control::http::MAX_CONNECTIONS;
    let followers = sentineld::control::http::MAX_FOLLOWERS;
    let mut streams: Vec<_> = (0..followers)
        .map(|_| EventStream::open(port, &[]))
        .collect();
    assert!(streams.iter().all(|s| s.status == 200));
    assert_eq!(
        EventStream::open(port, &[]).status,
        503,
        "streams are capped"
    );
    // The rest: requests whose bodies are awaited (for 10 s), each seen
    // busy by its `100 Continue`.
    let head = "POST /api/v1/services/web/reset HTTP/1.1\r\nHost: localhost\r\n\
                Content-Length: 100\r\nExpect: 100-continue\r\n\r\n";
    let busy: Vec<_> = (followers..cap)
        .map(|_| {
            let mut s = connect(port);
            s.write_all(head.as_bytes()).unwrap();
            let mut r = BufReader::new(s);
            assert_eq!(read_head(&mut r).0, 100);
            r
        })
        .collect();
    let mut s = connect(port);
    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let answer = read_answer(&mut BufReader::new(s));
    assert_eq!(
        (answer.status, answer.json()["kind"].clone()),
        (503, "busy".into())
    );
    assert!(
        inst.cli(&["status"]).status.success(),
        "the socket is served"
    );
    // A stream that ends frees its place; no busy connection was closed.
    streams.pop();
    wait_until(Duration::from_secs(5), "served again", || {
        get(port, "/healthz").status == 200
    });
    for mut r in busy {
        let mut rest = [0u8; 1];
        r.get_mut().set_nonblocking(true).unwrap();
        let read = r.read(&mut rest);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{read:?}"
        );
    }
    assert_eq!(streams.len(), followers - 1);
}

#[test]
fn at_the_cap_the_connection_that_waited_longest_makes_room() {
    let port = free_port();
    let _inst = start(&with_api(port, WEB));
    let cap = sentineld::control::http::MAX_CONNECTIONS;
    let mut held: Vec<_> = (0..cap).map(|_| connect(port)).collect();
    // Served, twice: each newcomer closes the oldest idle connection
    // (the first one served has gone, a newer idle one takes its place).
    assert_eq!(get(port, "/healthz").status, 200);
    held.push(connect(port));
    assert_eq!(get(port, "/healthz").status, 200);
    // The two oldest were closed (their reads end), the rest are open.
    for s in &mut held[..2] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let read = s.read(&mut [0u8; 1]);
        let reset = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset;
        assert!(
            matches!(&read, Ok(0)) || matches!(&read, Err(e) if reset(e)),
            "{read:?}"
        );
    }
    for s in &mut held[2..] {
        s.set_nonblocking(true).unwrap();
        let read = s.read(&mut [0u8; 1]);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{read:?}"
        );
    }
}

#[test]
fn a_crowd_of_tokenless_probes_cannot_make_the_next_probe_fail() {
    // Under api.public_health anyone may ask /healthz; 80 connections
    // asking it back to back (more than the 64 kept) must not leave the
    // kubelet's next probe a 503.
    let port = free_port();
    let yaml = format!(
        "api: {{ listen: 127.0.0.1:{port}, token: {TOKEN}, public_health: true }}\nservices:\n{WEB}"
    );
    let _inst = start(&yaml);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let crowd: Vec<_> = (0..80)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut r = BufReader::new(s.try_clone().unwrap());
                    // Pipelined, keep-alive, for as long as it is kept.
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        // Eight at a time: always one in hand for the server.
                        let ask = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".repeat(8);
                        if s.write_all(&ask).is_err()
                            || (0..8).any(|_| quiet_answer(&mut r).is_none())
                        {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // The kubelet restarts the pod after three failed probes in a row
    // (failureThreshold 3); before, 29 of 30 were refused.
    let answers: Vec<u16> = (0..30).map(|_| get(port, "/healthz").status).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in crowd {
        let _ = t.join();
    }
    let refused = answers.iter().filter(|&&s| s != 200).count();
    let in_a_row = answers.windows(3).any(|w| w.iter().all(|&s| s != 200));
    assert!(
        !in_a_row && refused <= 10,
        "probes answered while the crowd asked: {answers:?}"
    );
}

/// An answer's status, its body read past; none once the connection is
/// closed (made room for another) — without the panics of `read_answer`.
fn quiet_answer(r: &mut impl std::io::BufRead) -> Option<u16> {
    let mut line = String::new();
    r.read_line(&mut line).ok().filter(|&n| n > 0)?;
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        let mut header = String::new();
        r.read_line(&mut header).ok().filter(|&n| n > 0)?;
        let header = header.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(n) = header.strip_prefix("content-length:") {
            length = n.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some(status)
}
