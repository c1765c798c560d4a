//! Random event sequences through one machine (fallback, cleanup, probes,
//! watchdog, start timeout and a memory limit configured) against its invariants, checked
//! after every step; then a shutdown that must bring everything down and
//! answer every request.

use proptest::prelude::*;

use super::super::super::breaker::Breaker;
use super::super::{Fallback, Notify};
use super::*;

/// What the runtime (or a client, or the tree) can do next.
#[derive(Debug, Clone)]
enum Op {
    /// The current primary's leader ends (a stale pid when there is none).
    Exit {
        status: usize,
        group_alive: bool,
    },
    /// The stopping group's last member is gone.
    GroupGone,
    FallbackExit {
        status: usize,
    },
    CleanupExit {
        status: usize,
    },
    /// The oldest probe in flight answers.
    Probe {
        ok: bool,
    },
    Notify {
        which: usize,
    },
    /// Time passes up to the next armed timer, which fires.
    Fire,
    /// Time passes; the timers due meanwhile fire.
    Advance {
        ms: u64,
    },
    Request {
        verb: usize,
    },
    /// The next spawn of this role fails.
    FailSpawn {
        role: usize,
    },
    Sibling,
    GaveUp,
    Shutdown,
    /// A resource sample of the current run, over the memory limit or not.
    Usage {
        over: bool,
    },
}

const STATUSES: [ExitStatus; 7] = [
    EXIT_0,
    EXIT_1,
    ExitStatus::Code(75),
    EXIT_78,
    SEGV,
    ExitStatus::Signal(libc::SIGKILL),
    ExitStatus::Signal(libc::SIGTERM),
];
const VERBS: [Verb; 4] = [Verb::Start, Verb::Stop, Verb::Restart, Verb::Reset];
const ROLES: [Role; 3] = [Role::Primary, Role::Fallback, Role::Cleanup];
const POLICIES: [RestartPolicy; 3] = [
    RestartPolicy::Always,
    RestartPolicy::OnFailure,
    RestartPolicy::Never,
];

fn op() -> impl Strategy<Value = Op> {
    let status = 0..STATUSES.len();
    prop_oneof![
        6 => (status.clone(), any::<bool>())
            .prop_map(|(status, group_alive)| Op::Exit { status, group_alive }),
        1 => Just(Op::GroupGone),
        2 => status.clone().prop_map(|status| Op::FallbackExit { status }),
        2 => status.prop_map(|status| Op::CleanupExit { status }),
        3 => any::<bool>().prop_map(|ok| Op::Probe { ok }),
        1 => (0usize..3).prop_map(|which| Op::Notify { which }),
        8 => Just(Op::Fire),
        2 => (0u64..3_000).prop_map(|ms| Op::Advance { ms }),
        4 => (0..VERBS.len()).prop_map(|verb| Op::Request { verb }),
        1 => (0..ROLES.len()).prop_map(|role| Op::FailSpawn { role }),
        1 => Just(Op::Sibling),
        1 => Just(Op::GaveUp),
        1 => Just(Op::Shutdown),
        2 => any::<bool>().prop_map(|over| Op::Usage { over }),
    ]
}

fn config(policy: usize) -> Config {
    let mut c = with_restart(full(), POLICIES[policy]);
    c.watchdog = Some(10 * SEC);
    c.start_timeout = Some(30 * SEC);
    c.limits.memory = Some(1 << 30);
    c
}

fn armed(rt: &Rt) -> Vec<Timer> {
    TIMERS
        .into_iter()
        .filter(|t| rt.svc.timer_at(*t).is_some())
        .collect()
}

fn apply(rt: &mut Rt, op: &Op) {
    match *op {
        Op::Exit {
            status,
            group_alive,
        } => rt.exit_primary(STATUSES[status], group_alive),
        Op::GroupGone => {
            if matches!(rt.svc.phase, Phase::Stopping { pid: None, .. }) {
                rt.feed(Event::GroupGone);
            }
        }
        Op::FallbackExit { status } => rt.exit_fallback(STATUSES[status]),
        Op::CleanupExit { status } => rt.exit_cleanup(STATUSES[status]),
        Op::Probe { ok } => {
            if !rt.probes.is_empty() {
                rt.probe(ok);
            }
        }
        Op::Notify { which } => {
            let n = [
                Notify::Ready,
                Notify::Watchdog,
                Notify::Status("busy".into()),
            ];
            rt.feed(Event::Notify(n[which].clone()));
        }
        Op::Fire => {
            if let Some((at, _)) = rt.next_timer() {
                rt.run_until(at);
            }
        }
        Op::Advance { ms } => rt.run_until(rt.now + Duration::from_millis(ms)),
        Op::Request { verb } => {
            rt.request(VERBS[verb]);
        }
        Op::FailSpawn { role } => rt.fail_next = Some(ROLES[role]),
        Op::Sibling => rt.feed(Event::SiblingRestart {
            message: "restarted with db".into(),
        }),
        Op::GaveUp => rt.feed(Event::RootGaveUp),
        Op::Shutdown => rt.shutdown(),
        Op::Usage { over } => rt.feed(Event::Usage(crate::strategy::limits::Usage {
            generation: rt.svc.generation,
            cpu_percent: Some(50.0),
            interval: SEC,
            rss_bytes: if over { 2 << 30 } else { 1 << 20 },
            threads: 1,
            fds: 3,
            processes: 1,
        })),
    }
}

/// The pids of `role` the runtime has alive.
fn alive(rt: &Rt, role: Role) -> Vec<Pid> {
    let of_role = rt.alive.iter().filter(|(_, r)| **r == role);
    of_role.map(|(p, _)| *p).collect()
}

/// The machine knows exactly the processes the runtime has alive.
fn agrees_with_the_runtime(rt: &Rt) -> Result<(), TestCaseError> {
    let s = &rt.svc;
    prop_assert!(
        rt.count_alive(Role::Primary) <= 1,
        "two primaries: {:?}",
        rt.alive
    );
    prop_assert_eq!(
        alive(rt, Role::Primary),
        s.primary_pid().into_iter().collect::<Vec<_>>()
    );
    prop_assert_eq!(
        alive(rt, Role::Fallback),
        s.fallback_pid().into_iter().collect::<Vec<_>>()
    );
    prop_assert_eq!(
        alive(rt, Role::Cleanup),
        s.cleanup.into_iter().collect::<Vec<_>>()
    );
    prop_assert!(
        s.primary_pid().is_none() || s.cleanup.is_none(),
        "the primary runs beside its cleanup"
    );
    // The fallback serves beside a running primary (not one being stopped
    // or killed) only while the breaker is not closed (a half-open trial,
    // or a start by hand while open), or until the primary has settled
    // after a reset: a bounded handover.
    let serving = matches!(
        s.fallback,
        Fallback::Running {
            stopping: false,
            ..
        }
    );
    let primary = matches!(s.phase, Phase::Running { .. }) && s.pending_cause.is_none();
    if serving && primary {
        let handover = s.timer_at(Timer::Settled).is_some();
        let breaker = s.ladder.breaker;
        prop_assert!(!breaker.is_closed() || handover, "{breaker:?}");
    }
    Ok(())
}

/// Every armed timer belongs to the current state, and a state that only
/// a timer ends has it armed.
fn timers_fit_the_state(rt: &Rt) -> Result<(), TestCaseError> {
    let s = &rt.svc;
    let running = matches!(s.phase, Phase::Running { .. });
    let waits_to_start = match s.phase {
        Phase::Backoff { .. } | Phase::Retrying { .. } | Phase::Quarantined { .. } => true,
        Phase::Restarting { .. } => s.cleanup.is_none(),
        _ => false,
    };
    for t in armed(rt) {
        let fits = match t {
            Timer::Start => waits_to_start,
            Timer::Stop => matches!(s.phase, Phase::Stopping { .. }),
            Timer::Fallback => matches!(s.fallback, Fallback::Respawn { .. }),
            Timer::FallbackStop => matches!(s.fallback, Fallback::Running { stopping: true, .. }),
            Timer::Cleanup => s.cleanup.is_some(),
            _ => running,
        };
        prop_assert!(fits, "{t:?} armed in {:?} / {:?}", s.phase, s.fallback);
    }
    if waits_to_start {
        // A trial waiting for its fallback to go (the hand-over) is ended
        // by the fallback's exit, which its stop timer forces (SIGKILL).
        let handing_over = s.handover
            && matches!(s.phase, Phase::Quarantined { .. })
            && matches!(
                s.fallback,
                Fallback::Running { stopping: true, .. } | Fallback::Remnants { .. }
            );
        prop_assert!(
            s.timer_at(Timer::Start).is_some() || handing_over,
            "stuck in {:?} / {:?}",
            s.phase,
            s.fallback
        );
    }
    if let Fallback::Respawn { .. } = s.fallback {
        prop_assert!(
            s.timer_at(Timer::Fallback).is_some(),
            "fallback never respawned"
        );
    }
    if let Breaker::HalfOpen { .. } = s.ladder.breaker {
        prop_assert!(
            !matches!(s.phase, Phase::Quarantined { .. }) || s.handover,
            "half-open but not tried"
        );
    }
    Ok(())
}

/// Shut down, then end every process and fire every timer until nothing
/// is left: the service is down and every request has its answer.
fn drain(rt: &mut Rt) -> Result<(), TestCaseError> {
    rt.shutdown();
    for _ in 0..50 {
        if let Some(&role) = rt.alive.values().next() {
            match role {
                Role::Primary => rt.exit_primary(ExitStatus::Signal(libc::SIGTERM), false),
                Role::Fallback => rt.exit_fallback(ExitStatus::Signal(libc::SIGTERM)),
                Role::Cleanup => rt.exit_cleanup(ExitStatus::Signal(libc::SIGKILL)),
                Role::PreStart => rt.exit_pre_start(ExitStatus::Signal(libc::SIGKILL), ""),
            }
        } else if matches!(rt.svc.phase, Phase::Stopping { pid: None, .. }) {
            rt.feed(Event::GroupGone);
        } else if let Some((at, _)) = rt.next_timer() {
            rt.run_until(at);
        } else {
            break;
        }
        agrees_with_the_runtime(rt)?;
    }
    prop_assert!(rt.svc.is_down(), "not down: {:?}", rt.svc.phase);
    prop_assert!(
        rt.all_answered(),
        "unanswered: {} of {}",
        rt.replies.len(),
        rt.next_ticket - 1
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_events_keep_the_invariants(
        policy in 0..POLICIES.len(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut rt = Rt::new(config(policy));
        rt.begin();
        let mut shut_at = None;
        for op in &ops {
            let before = rt.log.len();
            apply(&mut rt, op);
            if shut_at.is_none() && rt.ctx.shutting_down {
                shut_at = Some(before);
            }
            agrees_with_the_runtime(&rt)?;
            timers_fit_the_state(&rt)?;
            if let Some(from) = shut_at {
                let spawned = rt.log[from..].iter().any(|a| matches!(a, Action::Spawn(_)));
                prop_assert!(!spawned, "spawn after shutdown");
            }
        }
        drain(&mut rt)?;
    }
}
