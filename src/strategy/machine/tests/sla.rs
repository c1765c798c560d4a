//! Availability and the SLA: a `sla` event (hooked) when the last hour's
//! figure falls below the target — on time, while the service stays down —
//! and another once it is met again.

use super::*;

fn sla_events(rt: &Rt) -> Vec<(String, bool)> {
    let records = rt.log.iter().filter_map(|a| match a {
        Action::Record(r) if r.kind == "sla" => Some((r.message.clone(), r.hook)),
        _ => None,
    });
    records.collect()
}

#[test]
fn staying_down_crosses_the_sla_on_time_and_coming_back_meets_it_again() {
    let mut rt = Rt::new(Config {
        sla: Some(0.99),
        hooks: true,
        restart: RestartPolicy::Never,
        ..config()
    });
    rt.begin();
    rt.advance(600 * SEC);
    rt.exit_primary(EXIT_0, false);
    assert_eq!(rt.svc.phase, Phase::Exited);
    // 99 % allows 36 s down an hour.
    let (at, timer) = rt.next_timer().expect("the SLA timer");
    assert_eq!(timer, Timer::Sla);
    let slack = at - rt.now;
    assert!(slack > 36 * SEC && slack < 37 * SEC, "{slack:?}");
    rt.run_until(at);
    let said = sla_events(&rt);
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(said[0].0.contains("below the SLA of 99.000%"), "{said:?}");
    assert!(said[0].1, "the hook runs for it");
    let ratio = rt
        .svc
        .availability
        .ratio(rt.now, crate::strategy::availability::HOUR);
    assert!(ratio.unwrap() < 0.99);
    // Up again: once the downtime leaves the hour, the SLA is met again.
    rt.request(Verb::Start);
    for _ in 0..61 {
        rt.advance(60 * SEC);
        rt.run_until(rt.now);
    }
    let said = sla_events(&rt);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[1].0.contains("met again"), "{said:?}");
}

#[test]
fn without_an_sla_no_timer_and_no_event() {
    let mut rt = Rt::new(Config {
        restart: RestartPolicy::Never,
        ..config()
    });
    rt.begin();
    rt.advance(600 * SEC);
    rt.exit_primary(EXIT_0, false);
    assert!(rt.svc.timer_at(Timer::Sla).is_none());
    assert!(sla_events(&rt).is_empty());
    let hour = crate::strategy::availability::HOUR;
    rt.advance(600 * SEC);
    assert_eq!(rt.svc.availability.ratio(rt.now, hour), Some(0.5));
}
