//! One builder per phase the matrix starts from, each reached the way the
//! runtime would reach it, and a one-line summary of an outcome.

use super::super::super::breaker::Breaker;
use super::*;
use crate::strategy::machine::Fallback;

pub(super) fn started(config: Config) -> Rt {
    let mut rt = Rt::new(config);
    rt.begin();
    assert!(rt.running_pid().is_some(), "{:?}", rt.svc.phase);
    rt
}

/// Held by a dependency that may still come.
pub(super) fn waiting() -> Rt {
    let mut rt = Rt::new(full());
    rt.gate = Gate::Held;
    rt.begin();
    assert_eq!(rt.svc.phase, Phase::Waiting);
    rt
}

pub(super) fn running() -> Rt {
    started(full())
}

/// Running, its first liveness probe in flight.
pub(super) fn probing() -> Rt {
    let mut rt = running();
    rt.fire(Timer::Probe(ProbeKind::Liveness));
    assert_eq!(rt.probes.len(), 1);
    rt
}

/// Ran 10ms and exited 0 under `restart: always`.
pub(super) fn backoff() -> Rt {
    let mut rt = running();
    rt.advance(10 * MS);
    rt.exit_primary(EXIT_0, false);
    assert!(matches!(rt.svc.phase, Phase::Backoff { .. }));
    rt
}

/// Ran 10ms and exited 1: a transient failure, retried in 100ms.
pub(super) fn retrying() -> Rt {
    let mut rt = running();
    rt.advance(10 * MS);
    rt.exit_primary(EXIT_1, false);
    assert!(matches!(rt.svc.phase, Phase::Retrying { .. }));
    rt
}

/// Ran 10ms and died of SIGSEGV: a restart, its cleanup running.
pub(super) fn cleaning() -> Rt {
    let mut rt = running();
    rt.advance(10 * MS);
    rt.exit_primary(SEGV, false);
    assert!(matches!(rt.svc.phase, Phase::Restarting { .. }));
    assert_eq!(rt.count_alive(Role::Cleanup), 1);
    rt
}

/// The restart's cleanup is done; the primary starts in 100ms.
pub(super) fn restart_pending() -> Rt {
    let mut rt = cleaning();
    rt.exit_cleanup(EXIT_0);
    assert!(rt.svc.timer_at(Timer::Start).is_some());
    rt
}

fn critical(config: Config) -> Rt {
    let mut rt = started(config);
    rt.advance(5 * SEC);
    rt.exit_primary(EXIT_78, false);
    assert!(matches!(rt.svc.phase, Phase::Quarantined { .. }));
    rt
}

/// Exit 78 without a fallback: quarantined for 60s.
pub(super) fn quarantined() -> Rt {
    critical(with_probes(with_cleanup(config())))
}

/// Exit 78: quarantined for 60s, the fallback running.
pub(super) fn on_fallback() -> Rt {
    let rt = critical(full());
    assert_eq!(rt.count_alive(Role::Fallback), 1);
    rt
}

/// 60s later: the breaker half-open, the fallback stopped first; the
/// primary waits for it to be gone (the hand-over).
pub(super) fn handing_over() -> Rt {
    let mut rt = on_fallback();
    rt.fire(Timer::Start);
    assert!(matches!(rt.svc.ladder.breaker, Breaker::HalfOpen { .. }));
    assert!(rt.running_pid().is_none());
    assert!(matches!(
        rt.svc.fallback,
        Fallback::Running { stopping: true, .. }
    ));
    rt
}

/// The fallback gone: the primary on trial alone.
pub(super) fn trial() -> Rt {
    let mut rt = handing_over();
    rt.exit_fallback(ExitStatus::Signal(libc::SIGTERM));
    assert!(rt.running_pid().is_some());
    assert_eq!(rt.count_alive(Role::Fallback), 0);
    rt
}

/// With `overlap`: 60s later the primary on trial beside the fallback.
pub(super) fn trial_beside() -> Rt {
    let mut config = full();
    config.overlap = true;
    let mut rt = critical(config);
    rt.fire(Timer::Start);
    assert!(matches!(rt.svc.ladder.breaker, Breaker::HalfOpen { .. }));
    assert!(rt.running_pid().is_some());
    assert_eq!(rt.count_alive(Role::Fallback), 1);
    rt
}

/// A sibling's restart stops it (to start again): SIGTERM sent.
pub(super) fn stopping() -> Rt {
    let mut rt = running();
    rt.advance(5 * SEC);
    let message = "restarted with db".to_string();
    rt.feed(Event::SiblingRestart { message });
    assert!(matches!(rt.svc.phase, Phase::Stopping { pid: Some(_), .. }));
    rt
}

/// Stopping; the leader exited, other members of its group have not.
pub(super) fn remnants() -> Rt {
    let mut rt = stopping();
    rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), true);
    assert!(matches!(rt.svc.phase, Phase::Stopping { pid: None, .. }));
    rt
}

/// Stopped by request.
pub(super) fn stopped() -> Rt {
    let mut rt = running();
    let ticket = rt.request(Verb::Stop);
    rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), false);
    assert!(matches!(rt.reply(ticket), Some(Reply::Done(_))));
    assert_eq!(rt.svc.phase, Phase::Stopped);
    rt
}

/// Exited 0 under `restart: on-failure`.
pub(super) fn exited() -> Rt {
    let mut rt = started(with_restart(full(), RestartPolicy::OnFailure));
    rt.advance(5 * SEC);
    rt.exit_primary(EXIT_0, false);
    assert_eq!(rt.svc.phase, Phase::Exited);
    rt
}

/// Could not be spawned under `restart: never`.
pub(super) fn failed() -> Rt {
    let mut rt = Rt::new(with_restart(full(), RestartPolicy::Never));
    rt.fail_next = Some(Role::Primary);
    rt.begin();
    assert!(matches!(rt.svc.phase, Phase::Failed { .. }));
    rt
}

fn letter(role: Role) -> &'static str {
    match role {
        Role::Primary => "P",
        Role::Fallback => "F",
        Role::Cleanup => "C",
        Role::PreStart => "B",
    }
}

/// The phase (a quarantine with the time left), the breaker when not
/// closed, the fallback and cleanup when there are any, and readiness
/// once reached: `running[half-open] +fb ready`.
pub(super) fn state(rt: &Rt) -> String {
    let s = &rt.svc;
    let mut out = match s.phase {
        Phase::Waiting => "waiting",
        Phase::Running { .. } => "running",
        Phase::Backoff { .. } => "backoff",
        Phase::Retrying { .. } => "retrying",
        Phase::Restarting { .. } => "restarting",
        Phase::Quarantined { .. } => "quarantined",
        Phase::Stopping { pid: Some(_), .. } => "stopping",
        Phase::Stopping { pid: None, .. } => "stopping-rest",
        Phase::Stopped => "stopped",
        Phase::Exited => "exited",
        Phase::Failed { .. } => "failed",
    }
    .to_string();
    if let Phase::Quarantined { until } = s.phase {
        let left = until.saturating_duration_since(rt.now).as_secs();
        out.push_str(&format!("({left}s)"));
    }
    match s.ladder.breaker {
        Breaker::Closed => {}
        Breaker::Open { .. } => out.push_str("[open]"),
        Breaker::HalfOpen { .. } => out.push_str("[half-open]"),
    }
    out.push_str(match s.fallback {
        Fallback::Off => "",
        Fallback::Running {
            stopping: false, ..
        } => " +fb",
        Fallback::Running { .. } => " +fb(stopping)",
        Fallback::Respawn { .. } => " +fb(respawn)",
        Fallback::Remnants { .. } => " +fb(remnants)",
    });
    if s.cleanup.is_some() {
        out.push_str(" +cl");
    }
    if s.ready == Some(true) {
        out.push_str(" ready");
    }
    out
}

/// [`state`] and the key actions of the last feed: spawns, signals (but
/// SIGCONT) by the role they hit, probes run, replies.
pub(super) fn outcome(rt: &Rt) -> String {
    let acts: Vec<String> = rt
        .last
        .iter()
        .filter_map(|a| match *a {
            Action::Spawn(role) => Some(format!("spawn {}", letter(role))),
            Action::Signal { pid, signal, .. } if signal != libc::SIGCONT => {
                let sig = match signal {
                    libc::SIGTERM => "TERM",
                    libc::SIGKILL => "KILL",
                    _ => "SIG?",
                };
                Some(format!("{sig} {}", letter(rt.roles[&pid])))
            }
            Action::RunProbe { .. } => Some("probe".into()),
            Action::Reply(_, Reply::Done(_)) => Some("done".into()),
            Action::Reply(_, Reply::Conflict(_)) => Some("conflict".into()),
            _ => None,
        })
        .collect();
    match acts.is_empty() {
        true => state(rt),
        false => format!("{}: {}", state(rt), acts.join(", ")),
    }
}
