//! Reports from the log writer: events and a health floor, the lifecycle
//! untouched (the matrix checks that part).

use super::super::{LogReport, LogTrouble, Record};
use super::phases;
use super::*;
use crate::strategy::risk::Level;

fn report(trouble: LogTrouble, detail: &str, cleared: bool) -> Event {
    Event::Logs(LogReport {
        trouble,
        detail: detail.into(),
        cleared,
    })
}

fn records(actions: &[Action]) -> Vec<&str> {
    let texts = actions.iter().filter_map(|a| match a {
        Action::Record(Record {
            kind: "logs",
            message,
            ..
        }) => Some(message.as_str()),
        _ => None,
    });
    texts.collect()
}

#[test]
fn held_back_output_is_an_event_and_degrades_health_until_it_clears() {
    let mut rt = phases::started(config());
    let pid = rt.running_pid();
    rt.feed(report(
        LogTrouble::DiskFull,
        "No space left on device",
        false,
    ));
    assert_eq!(
        records(&rt.last),
        ["log writes failing: No space left on device; output held back"]
    );
    assert_eq!(rt.svc.level, Level::Degraded);
    assert_eq!(rt.running_pid(), pid, "the lifecycle is left alone");
    // The same trouble again is not a new event.
    rt.feed(report(
        LogTrouble::DiskFull,
        "No space left on device",
        false,
    ));
    assert!(records(&rt.last).is_empty());
    // The end of another trouble does not end this one.
    rt.feed(report(LogTrouble::Stalled, "", true));
    assert!(records(&rt.last).is_empty());
    assert_eq!(rt.svc.level, Level::Degraded);

    rt.feed(report(LogTrouble::DiskFull, "", true));
    assert_eq!(
        records(&rt.last),
        ["log writes resumed; held-back output written"]
    );
    assert_eq!(rt.svc.log_condition, None);
    assert_eq!(rt.svc.level, Level::Healthy);
}

#[test]
fn a_stall_then_a_removal_each_say_what_happened() {
    let mut rt = phases::exited();
    rt.feed(report(LogTrouble::Stalled, "3s", false));
    assert_eq!(
        records(&rt.last),
        ["log writes stalled: a write has not returned for 3s; output held back"]
    );
    rt.feed(report(LogTrouble::Stalled, "", true));
    rt.feed(report(LogTrouble::Removed, "unlinked while open", false));
    let cond = rt.svc.log_condition.clone().unwrap();
    assert_eq!(cond.trouble, LogTrouble::Removed);
    assert_eq!(
        cond.message,
        "log file removed (unlinked while open); recreating it"
    );
    rt.feed(report(LogTrouble::Removed, "", true));
    assert_eq!(
        records(&rt.last),
        ["log file recreated; log writes resumed"]
    );
}
