//! The control socket under crowds and stalls: a cap on connections that
//! never costs the services their descriptors, idle and partial-request
//! timeouts, a cap on followers, a peer that never reads.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::*;
use sentineld::strategy::admission::{
    IDLE_TIMEOUT, Limits, MAX_CONNECTIONS, PARTIAL_TIMEOUT, REPLY_TIMEOUT, plan_fds,
};
use serde_json::Value;

const ONE: &str = "services:\n  web:\n    command: exec sleep 1000\n";

fn connect(inst: &Instance) -> UnixStream {
    UnixStream::connect(inst.path(".sentineld/control.sock")).unwrap()
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Read one line from `s`, waiting at most `within`; None if the daemon
/// closed it without one or said nothing in time.
fn read_line(s: &UnixStream, within: Duration) -> Option<Value> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut line = String::new();
    match BufReader::new(s).read_line(&mut line) {
        Ok(n) if n > 0 => {
            Some(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        }
        _ => None,
    }
}

/// The daemon closed `s`: a read returns end-of-file (or a reset) at once.
fn closed_by_daemon(s: &UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut rest = Vec::new();
    match (&*s).read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

/// The daemon has closed its end of `s` (seen without reading from `s`).
fn hung_up_on(s: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: 0,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    unsafe { libc::poll(&mut p, 1, 0) };
    p.revents & libc::POLLHUP != 0
}

fn follow(inst: &Instance) -> UnixStream {
    let mut s = connect(inst);
    s.write_all(b"{\"version\":1,\"type\":\"events\",\"follow\":true}\n")
        .unwrap();
    s
}

#[test]
fn a_crowd_of_silent_clients_neither_locks_out_status_nor_starves_a_respawn() {
    // A descriptor limit the crowd alone could exhaust.
    const NOFILE: u64 = 512;
    let inst = Instance::start_with(tempfile::tempdir().unwrap(), ONE, |up| unsafe {
        up.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: NOFILE,
                rlim_max: NOFILE,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    });
    let web = inst.wait_running("web", None);
    let crowd: Vec<UnixStream> = (0..NOFILE + 100).map(|_| connect(&inst)).collect();
    // The daemon is taking the crowd in.
    wait_until(Duration::from_secs(10), "the crowd to be accepted", || {
        open_fds(inst.pid()) >= MAX_CONNECTIONS
    });
    let out = inst.cli(&["status"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("web"));
    // The services keep their descriptors: a SIGKILLed one is respawned,
    // not quarantined for EMFILE.
    kill(web, libc::SIGKILL);
    let again = inst.wait_running("web", Some(web));
    assert_ne!(again, web);
    assert_eq!(inst.service("web")["restarts"], 1);
    let most = MAX_CONNECTIONS + 1 + plan_fds(1, 0) as usize;
    let fds = open_fds(inst.pid());
    assert!(fds <= most, "{fds} descriptors open, more than {most}");
    // The oldest silent client made room for the newer ones, and was told.
    let reply = read_line(&crowd[0], Duration::from_secs(5)).expect("a reason");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["kind"], "busy", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .unwrap()
            .starts_with("connection closed to make room for a newer one"),
        "{reply}"
    );
    assert!(closed_by_daemon(&crowd[0]));
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_a_follower_is_not() {
    let inst = Instance::start(ONE);
    let web = inst.wait_running("web", None);
    let started = Instant::now();
    let idle = connect(&inst);
    let follower = follow(&inst);
    let first = read_line(&follower, Duration::from_secs(5)).expect("recent events");
    assert_eq!(first["type"], "events", "{first}");
    let reply = read_line(&idle, IDLE_TIMEOUT + Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still open after {:?}", started.elapsed()));
    let waited = started.elapsed();
    assert!(waited >= IDLE_TIMEOUT, "closed after {waited:?}");
    assert_eq!(reply["kind"], "bad_request", "{reply}");
    assert_eq!(
        reply["message"],
        format!(
            "connection closed: no request for {}s",
            IDLE_TIMEOUT.as_secs()
        )
    );
    assert!(closed_by_daemon(&idle));
    // The follower, as quiet, still gets what happens next.
    kill(web, libc::SIGKILL);
    let event = read_line(&follower, Duration::from_secs(10)).expect("an event");
    assert_eq!(event["type"], "event", "{event}");
    assert_eq!(event["service"], "web", "{event}");
}

#[test]
fn a_request_line_must_end_within_the_partial_timeout_however_it_trickles() {
    let inst = Instance::start(ONE);
    inst.wait_running("web", None);
    let mut s = connect(&inst);
    let started = Instant::now();
    s.write_all(b"{\"version\":1,").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // A byte every half second: never idle, never a whole line.
    let mut got = Vec::new();
    let limit = PARTIAL_TIMEOUT + Duration::from_secs(15);
    while !got.contains(&b'\n') {
        assert!(started.elapsed() < limit, "still open after {limit:?}");
        let _ = s.write_all(b" ");
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => panic!("closed without a word after {:?}", started.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e} after {:?}", started.elapsed()),
        }
    }
    let waited = started.elapsed();
    assert!(waited >= PARTIAL_TIMEOUT, "closed after {waited:?}");
    let reply: Value = serde_json::from_slice(&got).unwrap();
    assert_eq!(reply["kind"], "bad_request", "{reply}");
    assert_eq!(
        reply["message"],
        format!(
            "request incomplete: a request line must end within {}s of its first byte",
            PARTIAL_TIMEOUT.as_secs()
        )
    );
    assert!(closed_by_daemon(&s));
    assert!(inst.cli(&["status"]).status.success());
}

#[test]
fn followers_are_capped_and_a_hung_up_one_frees_its_slot() {
    // The daemon raises its descriptor limit to the hard one, ours too.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let cap = Limits::for_plan(lim.rlim_max.min(1 << 20), plan_fds(1, 0)).followers;
    let inst = Instance::start(ONE);
    inst.wait_running("web", None);
    let mut followers: Vec<UnixStream> = (0..cap).map(|_| follow(&inst)).collect();
    for f in &followers {
        let first = read_line(f, Duration::from_secs(5)).expect("recent events");
        assert_eq!(first["type"], "events", "{first}");
    }
    let extra = follow(&inst);
    let reply = read_line(&extra, Duration::from_secs(5)).expect("a reply");
    assert_eq!(reply["type"], "error", "{reply}");
    assert_eq!(reply["kind"], "busy", "{reply}");
    assert_eq!(
        reply["message"],
        "too many followers: every slot for `events -f` is taken; try again"
    );
    // Plain requests are still served.
    assert!(inst.cli(&["status"]).status.success());
    // One follower hangs up while nothing happens: its slot is free at once,
    // not at the next event.
    drop(followers.pop());
    wait_until(Duration::from_secs(5), "a free follower slot", || {
        let s = follow(&inst);
        read_line(&s, Duration::from_secs(5)).is_some_and(|r| r["type"] == "events")
    });
}

#[test]
fn a_peer_that_never_reads_its_replies_is_dropped() {
    let inst = Instance::start(ONE);
    inst.wait_running("web", None);
    let mut s = connect(&inst);
    // Far more replies than a socket buffer holds, none of them read.
    let many = b"{\"version\":1,\"type\":\"status\"}\n".repeat(2000);
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(&many);
    let started = Instant::now();
    wait_until(
        REPLY_TIMEOUT + Duration::from_secs(15),
        "the daemon to drop the connection",
        || hung_up_on(&s),
    );
    let waited = started.elapsed();
    assert!(waited >= REPLY_TIMEOUT / 2, "dropped after {waited:?}");
    assert!(inst.cli(&["status"]).status.success());
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Peers that ask for a big reply and never read it get `busy` once the
/// replies waiting for their readers add up to the cap: the daemon does
/// not hold a copy of its whole state for each.
#[test]
fn replies_nobody_reads_are_bounded_in_all() {
    let mut yaml = String::from("services:\n");
    for k in 0..1000 {
        yaml.push_str(&format!("  s{k}:\n    command: exec sleep 1000\n"));
    }
    let inst = Instance::start(&yaml);
    wait_until(Duration::from_secs(60), "every service running", || {
        let st = inst.status();
        let services = st["services"].as_array().unwrap();
        services.iter().all(|s| s["state"] == "running")
    });
    let before = rss_kib(inst.pid());
    let mut peers = Vec::new();
    for _ in 0..200 {
        let mut s = connect(&inst);
        s.write_all(b"{\"version\":1,\"type\":\"status\",\"name\":null}\n")
            .unwrap();
        peers.push(s);
    }
    // Each full reply is about 0.65 MB: 200 of them would be 130 MB. A
    // request sent after them is answered after them.
    assert!(inst.cli(&["status", "s1"]).status.success());
    let during = rss_kib(inst.pid());
    assert!(
        during < before + 100 * 1024,
        "RSS grew from {before} KiB to {during} KiB"
    );
    // A big reply past the cap is refused as busy, not queued.
    let out = inst.cli(&["status", "--json"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("too many large replies"),
        "{out:?}"
    );
    drop(peers);
}
