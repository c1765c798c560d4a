//! Every phase × every event kind: the resulting state and the key actions.

use super::phases::{self, outcome, state};
use super::*;

/// The event kinds the matrix feeds.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ev {
    Go,
    Held,
    /// A spawn nobody asked for is answered.
    Spawned(Role),
    SpawnFailed(Role),
    Exit0,
    Exit1,
    /// Exit 1, other members of the group still alive.
    ExitGroup,
    GroupGone,
    FallbackExit,
    CleanupExit,
    ProbeFail,
    Ready,
    Timer(Timer),
    Request(Verb),
    Proceed,
    Sibling,
    GaveUp,
    Shutdown,
    /// The log writer reports a trouble: nothing but an event.
    Logs,
    /// A resource sample of the current run, without limits: only kept.
    Usage,
}

/// Every event kind but the timers, which come from [`TIMERS`].
const EVENTS: [Ev; 26] = [
    Ev::Go,
    Ev::Held,
    Ev::Spawned(Role::Primary),
    Ev::Spawned(Role::Fallback),
    Ev::Spawned(Role::Cleanup),
    Ev::SpawnFailed(Role::Primary),
    Ev::SpawnFailed(Role::Fallback),
    Ev::SpawnFailed(Role::Cleanup),
    Ev::Exit0,
    Ev::Exit1,
    Ev::ExitGroup,
    Ev::GroupGone,
    Ev::FallbackExit,
    Ev::CleanupExit,
    Ev::ProbeFail,
    Ev::Ready,
    Ev::Request(Verb::Start),
    Ev::Request(Verb::Stop),
    Ev::Request(Verb::Restart),
    Ev::Request(Verb::Reset),
    Ev::Proceed,
    Ev::Sibling,
    Ev::GaveUp,
    Ev::Shutdown,
    Ev::Logs,
    Ev::Usage,
];

fn events() -> impl Iterator<Item = Ev> {
    EVENTS.into_iter().chain(TIMERS.into_iter().map(Ev::Timer))
}

fn apply(rt: &mut Rt, ev: Ev) {
    let message = || "no such file".to_string();
    match ev {
        Ev::Go => rt.feed(Event::Go),
        Ev::Held => rt.feed(Event::Held {
            why: "waiting for db (started)".into(),
            blocked: false,
        }),
        Ev::Spawned(role) => rt.feed(Event::Spawned { role, pid: 999 }),
        Ev::SpawnFailed(role) => rt.feed(Event::SpawnFailed {
            role,
            errno: libc::ENOENT,
            message: message(),
        }),
        Ev::Exit0 => rt.exit_primary(EXIT_0, false),
        Ev::Exit1 => rt.exit_primary(EXIT_1, false),
        Ev::ExitGroup => rt.exit_primary(EXIT_1, true),
        Ev::GroupGone => rt.feed(Event::GroupGone),
        Ev::FallbackExit => rt.exit_fallback(EXIT_1),
        Ev::CleanupExit => rt.exit_cleanup(EXIT_0),
        Ev::ProbeFail => rt.probe(false),
        Ev::Ready => rt.feed(Event::Notify(super::super::Notify::Ready)),
        Ev::Timer(t) => rt.fire(t),
        Ev::Request(verb) => {
            rt.request(verb);
        }
        Ev::Proceed => rt.feed(Event::Proceed),
        Ev::Sibling => rt.feed(Event::SiblingRestart {
            message: "restarted with db".into(),
        }),
        Ev::GaveUp => rt.feed(Event::RootGaveUp),
        Ev::Shutdown => rt.shutdown(),
        Ev::Logs => rt.feed(Event::Logs(super::super::LogReport {
            trouble: super::super::LogTrouble::DiskFull,
            detail: "No space left on device".into(),
            cleared: false,
        })),
        Ev::Usage => rt.feed(Event::Usage(crate::strategy::limits::Usage {
            generation: rt.svc.generation,
            cpu_percent: Some(400.0),
            interval: SEC,
            rss_bytes: 1 << 40,
            threads: 1,
            fds: 1,
            processes: 1,
        })),
    }
}

/// What some events do in a phase, as [`outcome`] shows it.
type Cells = &'static [(Ev, &'static str)];

/// A phase, how to reach it, and every event that changes something there
/// with the expected [`outcome`]; any other event must leave the state as
/// it was and do nothing (a stale pid, a timer that is not armed, a spawn
/// nobody asked for, a word from the tree that does not apply).
type Row = (&'static str, fn() -> Rt, &'static [Cells]);

use Ev::{Exit0, Exit1, ExitGroup, GaveUp, Request as Req, Shutdown, Sibling};
use Verb::{Reset, Restart, Start, Stop};

/// Requests and the tree's word to a running primary (not on trial).
#[rustfmt::skip]
const UP: Cells = &[
    (Ev::Ready, "running ready"),
    (Req(Start), "running: done"),
    (Req(Stop), "stopping: TERM P"),
    (Req(Restart), "stopping: TERM P"),
    (Req(Reset), "running: done"),
    (Sibling, "stopping: TERM P"),
    (GaveUp, "stopping: TERM P"),
    (Shutdown, "stopping: TERM P"),
];

/// A service down and waiting for its Start timer (backoff, retry,
/// restart delay after the cleanup).
#[rustfmt::skip]
const WAITING_TO_START: Cells = &[
    (Ev::Timer(Timer::Start), "running: spawn P"),
    (Req(Start), "running: spawn P, done"),
    (Req(Stop), "stopped: done"),
    (Req(Restart), "running: spawn P, done"),
    (Req(Reset), "running: spawn P, done"),
    (GaveUp, "quarantined(60s)[open] +fb: spawn F"),
    (Shutdown, "stopped"),
];

/// Exited or failed for good: only a request starts it again.
#[rustfmt::skip]
const ENDED: Cells = &[
    (Req(Start), "running: spawn P, done"),
    (Req(Restart), "running: spawn P, done"),
];

#[rustfmt::skip]
const PHASES: &[Row] = &[
    ("waiting", phases::waiting, &[&[
        (Ev::Go, "running: spawn P"),
        // Asked again: still held; the answer says for what.
        (Req(Start), "waiting: done"),
        (Req(Stop), "stopped: done"),
        (Req(Restart), "waiting: done"),
        (Req(Reset), "waiting: done"),
        (GaveUp, "quarantined(60s)[open] +fb: spawn F"),
        (Shutdown, "stopped"),
    ]]),
    ("running", phases::running, &[UP, &[
        (Exit0, "backoff"),
        (Exit1, "retrying"),
        (ExitGroup, "retrying"),
        (Ev::Timer(Timer::Probe(ProbeKind::Liveness)), "running: probe"),
    ]]),
    ("probing", phases::probing, &[UP, &[
        // Up 2s, past min_uptime: respawned at once.
        (Exit0, "running: spawn P"),
        (Exit1, "running: spawn P"),
        (ExitGroup, "running: spawn P"),
        (Ev::ProbeFail, "running: KILL P"),
    ]]),
    ("backoff", phases::backoff, &[WAITING_TO_START]),
    ("retrying", phases::retrying, &[WAITING_TO_START]),
    ("cleaning", phases::cleaning, &[&[
        (Ev::CleanupExit, "restarting"),
        (Ev::Timer(Timer::Cleanup), "restarting +cl: KILL C"),
        // Start and restart wait for the cleanup (see requests.rs).
        (Req(Stop), "stopped +cl: KILL C"),
        (Req(Reset), "restarting +cl: done"),
        (GaveUp, "quarantined(60s)[open] +fb +cl: KILL C, spawn F"),
        (Shutdown, "stopped +cl: KILL C"),
    ]]),
    ("restart-pending", phases::restart_pending, &[WAITING_TO_START]),
    ("quarantined", phases::quarantined, &[&[
        (Ev::Timer(Timer::Start), "running[half-open]: spawn P"),
        // A start by hand is not a reset: the breaker stays open until the
        // primary has run min_uptime.
        (Req(Start), "running[open]: spawn P, done"),
        (Req(Stop), "stopped[open]: done"),
        (Req(Restart), "running[open]: spawn P, done"),
        (Req(Reset), "running: spawn P, done"),
        (Shutdown, "stopped[open]"),
    ]]),
    ("on-fallback", phases::on_fallback, &[&[
        (Ev::FallbackExit, "quarantined(60s)[open] +fb(respawn)"),
        // The hand-over: the fallback goes first, the primary waits for it.
        (Ev::Timer(Timer::Start), "quarantined(0s)[half-open] +fb(stopping): TERM F"),
        (Req(Start), "quarantined(60s)[open] +fb(stopping): TERM F"),
        (Req(Stop), "stopped[open] +fb(stopping): TERM F"),
        (Req(Restart), "waiting[open] +fb(stopping): TERM F"),
        // Started by hand, reset or not: the fallback goes first.
        (Req(Reset), "quarantined(60s) +fb(stopping): TERM F"),
        (Shutdown, "stopped[open] +fb(stopping): TERM F"),
    ]]),
    ("handing-over", phases::handing_over, &[&[
        // Gone: the primary's trial starts, alone.
        (Ev::FallbackExit, "running[half-open]: spawn P"),
        (Ev::Timer(Timer::FallbackStop), "quarantined(0s)[half-open] +fb(stopping): KILL F"),
        (Req(Start), "quarantined(0s)[half-open] +fb(stopping)"),
        (Req(Stop), "stopped[half-open] +fb(stopping)"),
        (Req(Restart), "waiting[half-open] +fb(stopping)"),
        (Req(Reset), "quarantined(0s) +fb(stopping)"),
        (GaveUp, "quarantined(0s)[half-open] +fb(stopping)"),
        (Shutdown, "stopped[half-open] +fb(stopping)"),
    ]]),
    ("trial", phases::trial, &[&[
        (Exit0, "backoff[half-open]"),
        // A failed trial brings the fallback back at once.
        (Exit1, "quarantined(120s)[open] +fb: spawn F"),
        (ExitGroup, "quarantined(120s)[open] +fb: spawn F"),
        (Ev::Ready, "running[half-open] ready"),
        // Probed: min_uptime alone does not pass the trial, a probe's pass must.
        (Ev::Timer(Timer::Settled), "running[half-open]"),
        (Ev::Timer(Timer::Probe(ProbeKind::Liveness)), "running[half-open]: probe"),
        (Req(Start), "running[half-open]: done"),
        (Req(Stop), "stopping[half-open]: TERM P"),
        (Req(Restart), "stopping[half-open]: TERM P"),
        (Req(Reset), "running: done"),
        (Sibling, "stopping[half-open]: TERM P"),
        (GaveUp, "stopping[half-open]: TERM P"),
        (Shutdown, "stopping[half-open]: TERM P"),
    ]]),
    ("trial-beside", phases::trial_beside, &[&[
        (Exit0, "backoff[half-open] +fb"),
        (Exit1, "quarantined(120s)[open] +fb"),
        (ExitGroup, "quarantined(120s)[open] +fb"),
        (Ev::FallbackExit, "running[half-open] +fb: spawn F"),
        (Ev::Ready, "running[half-open] +fb ready"),
        (Ev::Timer(Timer::Settled), "running[half-open] +fb"),
        (Ev::Timer(Timer::Probe(ProbeKind::Liveness)), "running[half-open] +fb: probe"),
        (Req(Start), "running[half-open] +fb: done"),
        (Req(Stop), "stopping[half-open] +fb(stopping): TERM F, TERM P"),
        (Req(Restart), "stopping[half-open] +fb(stopping): TERM F, TERM P"),
        (Req(Reset), "running +fb: done"),
        (Sibling, "stopping[half-open] +fb(stopping): TERM F, TERM P"),
        // The fallback keeps serving: the service goes back to it.
        (GaveUp, "stopping[half-open] +fb: TERM P"),
        (Shutdown, "stopping[half-open] +fb(stopping): TERM F, TERM P"),
    ]]),
    ("stopping", phases::stopping, &[&[
        (Exit0, "running: spawn P"),
        (Exit1, "running: spawn P"),
        (ExitGroup, "stopping-rest"),
        (Ev::Timer(Timer::Stop), "stopping: KILL P"),
        (Req(Reset), "stopping: done"),
    ]]),
    ("remnants", phases::remnants, &[&[
        (Ev::GroupGone, "running: spawn P"),
        // Down only once the group is gone: no new primary beside it.
        (Ev::Timer(Timer::Stop), "stopping-rest: KILL P"),
        (Req(Reset), "stopping-rest: done"),
    ]]),
    ("stopped", phases::stopped, &[ENDED, &[
        (Req(Stop), "stopped: done"),
        (Req(Reset), "stopped: done"),
    ]]),
    ("exited", phases::exited, &[ENDED, &[
        (Req(Stop), "exited: done"),
        (Req(Reset), "exited: done"),
    ]]),
    ("failed", phases::failed, &[ENDED, &[
        (Req(Stop), "failed: done"),
        (Req(Reset), "running: spawn P, done"),
    ]]),
];

#[test]
fn every_phase_by_every_event() {
    let mut wrong = Vec::new();
    for &(name, build, changes) in PHASES {
        for ev in events() {
            let mut rt = build();
            let before = state(&rt);
            apply(&mut rt, ev);
            let got = outcome(&rt);
            let expected = changes
                .iter()
                .flat_map(|cells| cells.iter())
                .find(|(e, _)| *e == ev)
                .map_or(before.clone(), |(_, s)| s.to_string());
            if got != expected {
                wrong.push(format!(
                    "{name} × {ev:?}: expected {expected:?}, got {got:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
