//! Requests that make no sense in the current state get a defined answer —
//! queued, refused with a reason, or applied after the current step —
//! never a second process and never a client left waiting; and the spawn
//! failures and probe verdicts the matrix only touches.

use super::phases::{self, outcome};
use super::*;
use crate::strategy::machine::{Fallback, Target};

fn done(rt: &Rt, ticket: Ticket) -> &str {
    match rt.reply(ticket) {
        Some(Reply::Done(text)) => text,
        other => panic!("ticket {ticket}: {other:?}, expected Done"),
    }
}

fn conflict(rt: &Rt, ticket: Ticket) -> &str {
    match rt.reply(ticket) {
        Some(Reply::Conflict(text)) => text,
        other => panic!("ticket {ticket}: {other:?}, expected Conflict"),
    }
}

fn spawns_of(rt: &Rt, role: Role) -> usize {
    rt.roles.values().filter(|r| **r == role).count()
}

#[test]
fn start_while_stopping_starts_once_the_stop_is_done() {
    let mut rt = phases::running();
    let stop = rt.request(Verb::Stop);
    let start = rt.request(Verb::Start);
    assert!(rt.spawned().is_empty(), "{}", outcome(&rt));
    // The stop is overtaken by the start: its client hears so at once.
    assert!(
        conflict(&rt, stop).contains("start"),
        "{:?}",
        rt.reply(stop)
    );
    assert_eq!(rt.reply(start), None);
    rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), false);
    assert_eq!(rt.spawned(), [Role::Primary]);
    let pid = rt.running_pid().unwrap();
    assert_eq!(done(&rt, start), format!("api running (pid {pid})"));
    assert_eq!(spawns_of(&rt, Role::Primary), 2);
}

#[test]
fn start_during_a_restarts_cleanup_waits_for_it_then_starts_one_primary() {
    let mut rt = phases::cleaning();
    let start = rt.request(Verb::Start);
    let restart = rt.request(Verb::Restart);
    assert_eq!(outcome(&rt), "restarting +cl");
    assert_eq!(rt.count_alive(Role::Primary), 0);
    // Asked for by hand: no restart delay (100ms here) once the cleanup
    // is over, as when the request comes after it.
    rt.exit_cleanup(EXIT_0);
    assert_eq!(rt.spawned(), [Role::Primary]);
    let pid = rt.running_pid().unwrap();
    assert_eq!(done(&rt, start), format!("api running (pid {pid})"));
    assert_eq!(done(&rt, restart), format!("api running (pid {pid})"));
    rt.advance(SEC);
    rt.fire(Timer::Start);
    assert_eq!(spawns_of(&rt, Role::Primary), 2);
}

#[test]
fn a_stop_during_cleanup_then_a_start_waits_for_the_killed_cleanup() {
    let mut rt = phases::cleaning();
    let stop = rt.request(Verb::Stop);
    assert_eq!(rt.reply(stop), None, "the cleanup still runs");
    let start = rt.request(Verb::Start);
    assert!(rt.spawned().is_empty(), "{}", outcome(&rt));
    assert!(conflict(&rt, stop).contains("start"));
    rt.exit_cleanup(ExitStatus::Signal(libc::SIGKILL));
    assert_eq!(rt.spawned(), [Role::Primary]);
    assert!(done(&rt, start).starts_with("api running"));
}

#[test]
fn restart_of_a_waiting_service_says_what_it_waits_for() {
    let mut rt = phases::waiting();
    let t = rt.request(Verb::Restart);
    assert_eq!(
        done(&rt, t),
        "api starts once it is no longer waiting for db (started)"
    );
    rt.gate = Gate::Blocked;
    let t = rt.request(Verb::Restart);
    assert_eq!(
        conflict(&rt, t),
        "api cannot start: blocked: waiting for db (exit 1)"
    );
    assert_eq!(rt.svc.state_name(), "blocked");
    rt.gate = Gate::Go;
    rt.feed(Event::Go);
    assert!(rt.running_pid().is_some());
    assert!(rt.all_answered());
}

#[test]
fn start_of_a_stopped_service_waits_for_its_dependencies_like_restart() {
    for verb in [Verb::Start, Verb::Restart] {
        for build in [phases::stopped, phases::exited, phases::failed] {
            let mut rt = build();
            rt.gate = Gate::Held;
            let t = rt.request(verb);
            assert!(rt.spawned().is_empty(), "{verb:?}: {}", outcome(&rt));
            assert_eq!(rt.svc.phase, Phase::Waiting);
            assert!(done(&rt, t).contains("waiting for db"));
            rt.feed(Event::Go);
            assert_eq!(rt.spawned(), [Role::Primary]);
        }
    }
}

#[test]
fn stop_of_a_stopped_service_answers_at_once() {
    for build in [phases::stopped, phases::waiting, phases::exited] {
        let mut rt = build();
        let t = rt.request(Verb::Stop);
        assert_eq!(done(&rt, t), "api stopped");
    }
    let mut rt = phases::failed();
    let t = rt.request(Verb::Stop);
    assert_eq!(done(&rt, t), "api stopped");
    assert!(matches!(rt.svc.phase, Phase::Failed { .. }));
}

#[test]
fn reset_of_a_quarantined_service_starts_the_primary_and_answers_with_its_pid() {
    for build in [phases::quarantined, phases::on_fallback] {
        let mut rt = build();
        let t = rt.request(Verb::Reset);
        if rt.count_alive(Role::Fallback) == 1 {
            // The fallback goes first (it may hold the port); the answer
            // waits for the primary.
            assert!(rt.reply(t).is_none());
            assert!(rt.running_pid().is_none());
            rt.exit_fallback(ExitStatus::Signal(libc::SIGTERM));
        }
        let pid = rt.running_pid().expect("started");
        let expected = format!("api reset: breaker closed, primary started (pid {pid})");
        assert_eq!(done(&rt, t), expected);
        assert!(rt.svc.ladder.breaker.is_closed());
    }
}

#[test]
fn requests_during_shutdown_are_refused_but_stop() {
    for build in [phases::stopped, phases::quarantined, phases::waiting] {
        let mut rt = build();
        rt.shutdown();
        let from = rt.log.len();
        for verb in [Verb::Start, Verb::Restart, Verb::Reset] {
            let t = rt.request(verb);
            assert_eq!(conflict(&rt, t), "api: sentineld is shutting down");
        }
        let t = rt.request(Verb::Stop);
        assert_eq!(done(&rt, t), "api stopped");
        let spawns = rt.log[from..]
            .iter()
            .filter(|a| matches!(a, Action::Spawn(_)));
        assert_eq!(spawns.count(), 0);
    }
}

/// Running 5s, then the primary ends with `status` and the next spawn of
/// `role` fails.
fn exit_then_fail(status: ExitStatus, role: Role) -> Rt {
    let mut rt = phases::running();
    rt.advance(5 * SEC);
    rt.fail_next = Some(role);
    rt.exit_primary(status, false);
    rt
}

#[test]
fn a_failed_spawn_of_each_role_has_a_next_step() {
    // The primary: critical, so the fallback runs.
    let mut rt = Rt::new(full());
    rt.fail_next = Some(Role::Primary);
    rt.begin();
    assert_eq!(outcome(&rt), "quarantined(60s)[open] +fb: spawn P, spawn F");
    // The fallback: tried again in 1s.
    let mut rt = exit_then_fail(EXIT_78, Role::Fallback);
    assert_eq!(outcome(&rt), "quarantined(60s)[open] +fb(respawn): spawn F");
    assert_eq!(rt.svc.timer_at(Timer::Fallback), Some(rt.now + SEC));
    rt.fire(Timer::Fallback);
    assert_eq!(outcome(&rt), "quarantined(59s)[open] +fb: spawn F");
    // The cleanup: the primary starts without it.
    let rt = exit_then_fail(SEGV, Role::Cleanup);
    assert_eq!(outcome(&rt), "running: spawn C, spawn P");
}

#[test]
fn a_spawn_short_of_resources_is_retried_not_quarantined() {
    for errno in [libc::EMFILE, libc::ENFILE, libc::EAGAIN, libc::ENOMEM] {
        let mut rt = Rt::new(full());
        rt.fail_next = Some(Role::Primary);
        rt.fail_errno = errno;
        rt.begin();
        // Transient: retried after the backoff, with no fallback and no
        // quarantine as for a missing binary.
        assert_eq!(outcome(&rt), "retrying: spawn P");
        let failure = rt.svc.summary.clone().unwrap();
        assert!(
            failure.contains("transient → retry 1/2 in 100ms"),
            "{failure}"
        );
        assert_eq!(rt.svc.timer_at(Timer::Start), Some(rt.now + 100 * MS));
        rt.fire(Timer::Start);
        assert_eq!(outcome(&rt), "running: spawn P");
        assert_eq!(spawns_of(&rt, Role::Fallback), 0);
    }
}

#[test]
fn a_failed_liveness_probe_kills_and_its_exit_is_that_failure() {
    let mut rt = phases::probing();
    rt.probe(false);
    assert_eq!(outcome(&rt), "running: KILL P");
    // Results and notifications for a process being killed are ignored.
    rt.feed(Event::Notify(super::super::Notify::Ready));
    assert_eq!(rt.svc.ready, Some(false));
    rt.exit_primary(ExitStatus::Signal(libc::SIGKILL), false);
    // Recoverable (not the transient SIGKILL): restart, cleanup first.
    assert_eq!(outcome(&rt), "restarting +cl: spawn C");
    let failure = rt.svc.summary.clone().unwrap();
    assert!(
        failure.starts_with("liveness probe failed: recoverable"),
        "{failure}"
    );
}

#[test]
fn a_probe_result_for_an_earlier_process_is_ignored() {
    let mut rt = phases::probing();
    let (kind, generation) = rt.probes[0];
    rt.advance(2 * SEC);
    rt.exit_primary(EXIT_1, false);
    assert!(rt.probes.is_empty(), "an exit cancels the probes in flight");
    let stale = ProbeResult {
        kind,
        generation,
        ok: false,
        latency: MS,
        output: String::new(),
    };
    rt.feed(Event::Probe(stale));
    assert_eq!(outcome(&rt), "running");
}

#[test]
fn the_root_giving_up_stops_a_never_restarted_service_for_good() {
    let mut rt = phases::started(with_restart(full(), RestartPolicy::Never));
    rt.feed(Event::RootGaveUp);
    rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), false);
    assert_eq!(rt.svc.phase, Phase::Stopped);
    assert_eq!(rt.svc.timer_at(Timer::Start), None, "no half-open trial");
    assert_eq!(spawns_of(&rt, Role::Fallback), 0);
}

/// The primary on trial: its liveness probe passes, then min_uptime is up.
fn passes_its_trial(rt: &mut Rt) {
    rt.fire(Timer::Probe(ProbeKind::Liveness));
    rt.probe(true);
    rt.fire(Timer::Settled);
}

#[test]
fn a_probed_trial_passes_only_after_a_probe_did() {
    let mut rt = phases::trial();
    rt.fire(Timer::Settled);
    assert!(!rt.svc.ladder.breaker.is_closed(), "min_uptime alone");
    assert!(rt.svc.timer_at(Timer::Settled).is_some(), "looks again");
    passes_its_trial(&mut rt);
    assert!(rt.svc.ladder.breaker.is_closed());
}

#[test]
fn a_stopped_fallback_is_down_only_once_its_whole_group_is_gone() {
    let mut rt = phases::trial_beside();
    passes_its_trial(&mut rt);
    assert!(matches!(
        rt.svc.fallback,
        Fallback::Running { stopping: true, .. }
    ));
    let pid = rt.exit_fallback_leader(ExitStatus::Signal(libc::SIGTERM), true);
    assert_eq!(rt.svc.fallback, Fallback::Remnants { pgid: pid });
    rt.fire(Timer::FallbackStop);
    let kill = Action::Signal {
        pid,
        signal: libc::SIGKILL,
        target: Target::GroupOnly,
    };
    assert!(rt.last.contains(&kill), "{:?}", rt.last);
    assert!(
        rt.svc.timer_at(Timer::FallbackStop).is_some(),
        "looks again"
    );
    rt.feed(Event::FallbackGroupGone);
    assert_eq!(rt.svc.fallback, Fallback::Off);
    assert_eq!(rt.svc.timer_at(Timer::FallbackStop), None);
}

#[test]
fn a_fallback_wanted_while_the_old_ones_group_goes_starts_once_it_is_gone() {
    let mut rt = phases::trial_beside();
    passes_its_trial(&mut rt);
    rt.exit_fallback_leader(ExitStatus::Signal(libc::SIGTERM), true);
    // The primary fails at once: the fallback is wanted again, but the old
    // one's members are still there.
    rt.exit_primary(ExitStatus::Code(78), false);
    assert!(
        matches!(rt.svc.phase, Phase::Quarantined { .. }),
        "{:?}",
        rt.svc.phase
    );
    assert_eq!(rt.count_alive(Role::Fallback), 0);
    rt.feed(Event::FallbackGroupGone);
    assert_eq!(rt.count_alive(Role::Fallback), 1, "{:?}", rt.last);
}
