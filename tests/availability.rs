//! Availability over the last hour and day, and the SLA: a service that
//! goes down gets a `sla` event, and its hook runs, once the hour's figure
//! falls below its target; status and metrics show the figures.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_service_down_long_enough_breaks_its_sla_with_an_event_and_a_hook() {
    let mut inst = Instance::start(
        "services:
  web:
    command: sleep 1000
    restart: never
    sla: { availability: 99.9% }
    on_event: [sh, -c, 'echo \"$SENTINELD_EVENT: $SENTINELD_MESSAGE\" >> hooked']
  steady:
    command: sleep 1000
  probed:
    command: sleep 1000
    readiness: { exec: \"true\", interval: 300ms }
    sla: { availability: 99.9% }
",
    );
    let pid = inst.wait_running("web", None);
    inst.wait_running("steady", None);
    let a = &inst.service("web")["availability"];
    assert_eq!(a["sla"], 99.9, "{a}");
    assert_eq!(a["sla_met"], true, "{a}");
    kill(pid, libc::SIGTERM);
    inst.wait_state("web", "exited");
    wait_until(Duration::from_secs(10), "the sla event", || {
        !inst.messages_of("web", "sla").is_empty()
    });
    let said = inst.messages_of("web", "sla");
    assert!(said[0].contains("below the SLA of 99.900%"), "{said:?}");
    wait_until(Duration::from_secs(10), "the hook", || {
        std::fs::read_to_string(inst.path("hooked")).is_ok_and(|h| h.contains("sla: availability"))
    });
    let s = inst.service("web");
    let a = &s["availability"];
    assert_eq!(a["sla_met"], false, "{s}");
    let hour = a["ready_1h"].as_f64().unwrap();
    assert!(hour < 99.9 && hour > 0.0, "{a}");
    assert_eq!(
        a["running_1h"], a["ready_1h"],
        "no readiness check: the same"
    );
    // The steady one: all the time since it started, no SLA, no event.
    let steady = inst.service("steady");
    assert!(
        steady["availability"]["running_1h"].as_f64().unwrap() > 90.0,
        "{steady}"
    );
    assert!(steady["availability"].get("sla").is_none());
    assert!(inst.messages_of("steady", "sla").is_empty());
    // The moments before its first readiness pass are within the hour's
    // budget: no breach at start.
    assert_eq!(inst.service("probed")["ready"], true);
    assert!(inst.messages_of("probed", "sla").is_empty());
    assert_eq!(inst.service("probed")["availability"]["sla_met"], true);
    // Status NAME says it; metrics carry the same figure.
    let text = String::from_utf8_lossy(&inst.cli(&["status", "web"]).stdout).into_owned();
    assert!(text.contains("SLA 99.9% NOT met"), "{text}");
    let metrics = String::from_utf8_lossy(&inst.cli(&["metrics"]).stdout).into_owned();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("sentineld_service_availability_ratio{")
                && l.contains("service=\"web\"")
                && l.contains("of=\"ready\"")
                && l.contains("window=\"1h\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let ratio: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(ratio < 0.999, "{line}");
    assert!(metrics.contains("sentineld_service_sla_availability_ratio{service=\"web\"} 0.999"));
    assert!(inst.down().success());
}
