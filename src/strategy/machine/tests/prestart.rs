//! `pre_start`: run before every start; a pass starts the primary, a
//! failure (exit, signal, time limit) is CRITICAL and starts nothing; a
//! stop kills it and starts nothing.

use super::*;
use crate::strategy::policy::Severity;

fn with_pre_start() -> Rt {
    Rt::new(Config {
        pre_start: Some(30 * SEC),
        ..config()
    })
}

/// Every event message so far.
fn messages(rt: &Rt) -> Vec<String> {
    let records = rt.log.iter().filter_map(|a| match a {
        Action::Record(r) => Some(r.message.clone()),
        _ => None,
    });
    records.collect()
}

fn kills(rt: &Rt) -> Vec<Pid> {
    let kills = rt.last.iter().filter_map(|a| match a {
        Action::Signal {
            pid,
            signal: libc::SIGKILL,
            ..
        } => Some(*pid),
        _ => None,
    });
    kills.collect()
}

#[test]
fn the_primary_starts_once_its_pre_start_passed_and_each_start_runs_it_again() {
    let mut rt = with_pre_start();
    rt.begin();
    assert_eq!(rt.spawned(), [Role::PreStart]);
    assert!(!rt.svc.is_down(), "a pre-start is a process of the service");
    rt.exit_pre_start(EXIT_0, "");
    assert_eq!(rt.spawned(), [Role::Primary]);
    rt.advance(5 * SEC);
    rt.exit_primary(EXIT_1, false);
    // The respawn after a long run is at once: through its pre-start.
    assert_eq!(rt.spawned(), [Role::PreStart]);
    rt.exit_pre_start(EXIT_0, "");
    assert_eq!(rt.spawned(), [Role::Primary]);
}

#[test]
fn a_failed_pre_start_is_critical_with_its_last_words_and_nothing_starts() {
    let mut rt = with_pre_start();
    rt.begin();
    let said = "nginx: configuration test\nnginx: [emerg] unexpected \"}\" in nginx.conf:12\n";
    rt.exit_pre_start(EXIT_1, said);
    assert!(rt.spawned().is_empty());
    let (decision, _) = rt.svc.last_failure.clone().expect("a failure");
    assert_eq!(decision.severity, Severity::Critical);
    let failure = messages(&rt)
        .into_iter()
        .find(|m| m.contains("pre-start failed"));
    let failure = failure.expect("a failure event");
    assert!(
        failure.contains("pre-start failed: exit 1")
            && failure.contains("[emerg] unexpected \"}\" in nginx.conf:12"),
        "{failure}"
    );
    assert!(
        matches!(rt.svc.phase, Phase::Quarantined { .. }),
        "{:?}",
        rt.svc.phase
    );
    assert_eq!(rt.count_alive(Role::Primary), 0);
}

#[test]
fn a_hung_pre_start_is_killed_at_its_limit_and_fails() {
    let mut rt = with_pre_start();
    rt.begin();
    let pid = rt.pid(Role::PreStart);
    rt.advance(30 * SEC);
    rt.fire(Timer::PreStart);
    assert_eq!(kills(&rt), [pid]);
    rt.exit_pre_start(ExitStatus::Signal(libc::SIGKILL), "");
    assert!(rt.spawned().is_empty());
    let m = messages(&rt);
    assert!(
        m.iter()
            .any(|m| m.contains("pre-start failed: SIGKILL (timed out after 30")),
        "{m:#?}"
    );
}

#[test]
fn a_stop_kills_the_pre_start_and_nothing_starts_a_restart_runs_a_new_one() {
    let mut rt = with_pre_start();
    rt.begin();
    let first = rt.pid(Role::PreStart);
    let stop = rt.request(Verb::Stop);
    assert_eq!(kills(&rt), [first]);
    rt.exit_pre_start(ExitStatus::Signal(libc::SIGKILL), "");
    assert!(rt.spawned().is_empty() && rt.svc.is_down());
    assert!(rt.reply(stop).is_some());
    let said = format!("stopped: its pre_start (pid {first}) was killed");
    assert!(messages(&rt).contains(&said), "{:?}", messages(&rt));
    assert!(rt.svc.last_failure.is_none());

    // A restart while the start's pre-start runs is that start: never a
    // second pre-start beside the first.
    rt.request(Verb::Start);
    let second = rt.pid(Role::PreStart);
    assert_ne!(second, first);
    let restart = rt.request(Verb::Restart);
    assert!(rt.spawned().is_empty() && kills(&rt).is_empty());
    rt.exit_pre_start(EXIT_0, "");
    assert_eq!(rt.spawned(), [Role::Primary]);
    assert!(matches!(rt.reply(restart), Some(Reply::Done(_))));
    assert!(rt.svc.last_failure.is_none());
}

#[test]
fn a_restart_of_a_running_service_runs_the_pre_start_again() {
    let mut rt = with_pre_start();
    rt.begin();
    rt.exit_pre_start(EXIT_0, "");
    rt.advance(5 * SEC);
    rt.request(Verb::Restart);
    rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), false);
    assert_eq!(rt.spawned(), [Role::PreStart]);
    // Its failure now: the service does not come back on a broken config.
    rt.exit_pre_start(EXIT_1, "bad config\n");
    assert!(rt.spawned().is_empty());
    assert_eq!(rt.count_alive(Role::Primary), 0);
}
