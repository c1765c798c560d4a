//! The daemon driven in-process: `supervisor::run` takes its plan, an inbox
//! of requests and its options as arguments, so a program (or a test) can
//! run it without a socket and talk to it through a channel.

use std::time::Duration;

use sentineld::control::protocol::{ErrorKind, Request, Response, State};
use sentineld::control::server::Incoming;
use sentineld::supervisor::{Inbox, Options, run};
use tokio::sync::{mpsc, oneshot};

fn ask(tx: &mpsc::Sender<Incoming>, request: Request) -> Response {
    let (reply, rx) = oneshot::channel();
    tx.blocking_send(Incoming { request, reply }).unwrap();
    rx.blocking_recv().unwrap().into_response()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[test]
fn a_daemon_runs_in_process_and_answers_through_its_inbox() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(&file, "services:\n  one:\n    command: exec sleep 1000\n").unwrap();
    let plan = sentineld::config::load(&file).unwrap();
    let (tx, rx) = mpsc::channel(16);
    let options = Options {
        seed: 7,
        env: vec![(b"PATH".to_vec(), b"/usr/bin:/bin".to_vec())],
        ready: None,
        http: None,
    };
    let daemon = std::thread::spawn(move || run(plan, Inbox::Channel(rx), options));

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let Response::Status(report) = ask(
            &tx,
            Request::Status {
                name: None,
                brief: false,
            },
        ) else {
            panic!("not a status report");
        };
        let s = &report.services[0];
        if let (State::Running, Some(pid)) = (s.state, s.pid) {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "never running");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(alive(pid));
    match ask(&tx, Request::Stop { name: "one".into() }) {
        Response::Done { message, .. } => assert_eq!(message, "one stopped"),
        other => panic!("{other:?}"),
    }
    assert!(!alive(pid));
    match ask(
        &tx,
        Request::Start {
            name: "nope".into(),
        },
    ) {
        Response::Error { kind, .. } => assert_eq!(kind, ErrorKind::UnknownService),
        other => panic!("{other:?}"),
    }
    match ask(&tx, Request::Start { name: "one".into() }) {
        Response::Done { message, .. } => assert!(message.starts_with("one running (pid ")),
        other => panic!("{other:?}"),
    }
    // Closing the inbox shuts the daemon down: every service stopped, exit 0.
    drop(tx);
    assert_eq!(daemon.join().unwrap().unwrap(), 0);
}
