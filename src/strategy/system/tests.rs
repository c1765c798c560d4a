//! The system: start order, group restarts, the root giving up, shutdown waves.
use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::strategy::machine::tests::{config, with_probes};
use crate::strategy::machine::{Config, Exit, Notify, Pid, Reply, Role, Verb};
use crate::strategy::policy::{DependOn, Strategy};
use crate::strategy::restart::ExitStatus;
use crate::strategy::tree::{Child, GroupDef};

const SEC: Duration = Duration::from_secs(1);
const TERM: ExitStatus = ExitStatus::Signal(libc::SIGTERM);

/// The runtime around a system: spawns get fresh pids at once.
struct Run {
    sys: System,
    now: Instant,
    next_pid: Pid,
    /// Each service's primary while it runs.
    pids: BTreeMap<usize, Pid>,
    /// What the last input led to, follow-ups included.
    last: Out,
}

fn group(name: &str, strategy: Strategy, intensity: Option<u32>, children: &[Child]) -> GroupDef {
    GroupDef {
        name: name.into(),
        strategy,
        intensity,
        period: 30 * SEC,
        parent: (name != "root").then_some(0),
        children: children.to_vec(),
    }
}

type Deps<'a> = &'a [(usize, usize, DependOn)];

/// Services s0… (readiness by `READY=1`) in groups `of`;
/// `deps`: (service, on, condition); `groups[0]` is the root.
fn run(groups: Vec<GroupDef>, of: Vec<usize>, deps: Deps, exit_on_critical: bool) -> Run {
    let n = of.len();
    let mut explicit = vec![Vec::new(); n];
    for &(s, on, condition) in deps {
        explicit[s].push((on, condition));
    }
    let services = (0..n)
        .map(|i| {
            let name = format!("s{i}");
            Service::new(
                i,
                Config {
                    name,
                    ..with_probes(config())
                },
            )
        })
        .collect();
    let tree = Tree::new(groups, of, explicit, (0..n).collect());
    let sys = System::new(services, tree, 1, exit_on_critical);
    let now = Instant::now();
    Run {
        sys,
        now,
        next_pid: 100,
        pids: BTreeMap::new(),
        last: Out::new(),
    }
}

/// `n` services under a one_for_one root.
fn flat(n: usize, deps: Deps) -> Run {
    let children: Vec<Child> = (0..n).map(Child::Service).collect();
    run(
        vec![group("root", Strategy::OneForOne, None, &children)],
        vec![0; n],
        deps,
        false,
    )
}

fn spawns(out: &Out) -> Vec<usize> {
    let primary = out
        .iter()
        .filter(|(_, a)| *a == Action::Spawn(Role::Primary));
    primary.map(|(i, _)| *i).collect()
}

impl Run {
    fn input(&mut self, input: Input) {
        self.last.clear();
        let mut inputs = vec![input];
        while let Some(input) = inputs.pop() {
            let out = self.sys.handle(self.now, input);
            inputs.extend(self.carry_out(out));
        }
    }

    /// Record `out` in `last`; spawns get fresh pids at once: the events
    /// that answer them.
    fn carry_out(&mut self, out: Out) -> Vec<Input> {
        let mut answers = Vec::new();
        for (i, action) in out {
            if let Action::Spawn(role) = action {
                let pid = self.next_pid;
                self.next_pid += 1;
                if role == Role::Primary {
                    self.pids.insert(i, pid);
                }
                answers.push(Input::Event(i, Event::Spawned { role, pid }));
            }
            self.last.push((i, action));
        }
        answers
    }

    fn event(&mut self, i: usize, event: Event) {
        self.input(Input::Event(i, event));
    }

    fn exit(&mut self, i: usize, status: ExitStatus) {
        let pid = self.pids.remove(&i).expect("running");
        let exit = Exit {
            status: Some(status),
            ..Exit::default()
        };
        self.event(i, Event::Exited { pid, exit });
    }

    /// The services the last input spawned, in order.
    fn spawned(&self) -> Vec<usize> {
        spawns(&self.last)
    }

    /// The services the last input sent their stop signal, in order.
    fn stopped(&self) -> Vec<usize> {
        let term = |a: &Action| {
            matches!(
                a,
                Action::Signal {
                    signal: libc::SIGTERM,
                    ..
                }
            )
        };
        self.last
            .iter()
            .filter(|(_, a)| term(a))
            .map(|(i, _)| *i)
            .collect()
    }

    fn held(&self, i: usize) -> Option<&str> {
        self.sys.services[i]
            .held
            .as_ref()
            .map(|(why, _)| why.as_str())
    }
}

#[test]
fn start_all_starts_a_dependent_once_its_dependency_runs() {
    let mut r = flat(3, &[(1, 0, DependOn::Started)]);
    let out = r.sys.handle(r.now, Input::StartAll);
    // s2 depends on nothing: it starts beside s0.
    assert_eq!(spawns(&out), [0, 2]);
    assert_eq!(r.held(1), Some("waiting for s0 (started)"));
    r.pids.insert(0, 7);
    let role = Role::Primary;
    r.event(0, Event::Spawned { role, pid: 7 });
    assert_eq!(r.spawned(), [1]);
    assert_eq!(r.held(1), None);
}

#[test]
fn a_dependent_on_ready_waits_for_readiness() {
    let mut r = flat(2, &[(1, 0, DependOn::Ready)]);
    r.input(Input::StartAll);
    assert_eq!(r.spawned(), [0]);
    assert_eq!(r.held(1), Some("waiting for s0 (ready)"));
    r.event(0, Event::Notify(Notify::Ready));
    assert_eq!(r.spawned(), [1]);
}

/// s0, s1, s2 in a one_for_all group `backend` under the root, started.
fn one_for_all_of_three() -> Run {
    let children = [Child::Service(0), Child::Service(1), Child::Service(2)];
    let groups = vec![
        group("root", Strategy::OneForOne, None, &[Child::Group(1)]),
        group("backend", Strategy::OneForAll, Some(10), &children),
    ];
    let mut r = run(groups, vec![1; 3], &[], false);
    r.input(Input::StartAll);
    r
}

#[test]
fn a_restart_in_a_one_for_all_group_restarts_the_running_siblings() {
    let mut r = one_for_all_of_three();
    assert_eq!(r.pids.len(), 3);
    r.now += 5 * SEC;
    r.exit(0, ExitStatus::Signal(libc::SIGSEGV));
    // Siblings stop in reverse start order; s0 restarts at once.
    assert_eq!((r.stopped(), r.spawned()), (vec![2, 1], vec![0]));
    r.exit(2, TERM);
    assert_eq!(r.held(2), Some("waiting for s1 (started)"));
    r.exit(1, TERM);
    assert_eq!(r.spawned(), [1, 2]);
}

fn critical(exit_on_critical: bool) -> Run {
    let children = [Child::Service(0), Child::Service(1)];
    let groups = vec![group("root", Strategy::OneForOne, Some(0), &children)];
    let mut r = run(groups, vec![0, 0], &[], exit_on_critical);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    r.exit(0, ExitStatus::Signal(libc::SIGSEGV));
    let why = "group root gave up: 1 restarts within 30.0s (intensity 0)";
    assert_eq!(r.sys.critical.as_deref(), Some(why));
    assert_eq!((r.stopped(), r.spawned()), (vec![1], vec![]));
    r
}

#[test]
fn the_root_giving_up_with_exit_on_critical_shuts_down_with_code_1() {
    let mut r = critical(true);
    assert!(r.sys.shutting_down());
    assert!(!r.sys.finished(), "s1 still runs");
    assert_eq!(r.sys.exit_code, 1);
    // The service whose restart tipped the root answers requests.
    r.event(0, Event::Request(1, Verb::Stop));
    assert!(
        r.last
            .contains(&(0, Action::Reply(1, Reply::Done("s0 stopped".into()))))
    );
    r.exit(1, TERM);
    assert!(r.sys.finished());
}

#[test]
fn the_root_giving_up_quarantines_every_service_and_keeps_serving() {
    let mut r = critical(false);
    assert!(!r.sys.shutting_down());
    assert_eq!(r.sys.exit_code, 0);
    r.exit(1, TERM);
    for s in &r.sys.services {
        assert!(
            matches!(s.phase, Phase::Quarantined { .. }),
            "{:?}",
            s.phase
        );
    }
}

#[test]
fn shutdown_stops_in_waves_each_once_its_dependents_are_down() {
    // s0 ← s1 ← s2, and s3 on its own.
    let mut r = flat(4, &[(1, 0, DependOn::Started), (2, 1, DependOn::Started)]);
    r.input(Input::StartAll);
    assert_eq!(r.pids.len(), 4);
    r.input(Input::Shutdown);
    assert_eq!(r.stopped(), [3, 2]);
    r.exit(2, TERM);
    assert_eq!(r.stopped(), [1]);
    r.exit(3, TERM);
    assert!(r.stopped().is_empty());
    r.exit(1, TERM);
    assert_eq!(r.stopped(), [0]);
    assert!(!r.sys.finished());
    r.exit(0, TERM);
    assert!(r.sys.finished());
    assert!(r.last.iter().all(|(_, a)| !matches!(a, Action::Spawn(_))));
}

#[test]
fn a_group_restart_brings_siblings_back_in_order_after_what_they_depend_on() {
    let mut r = one_for_all_of_three();
    r.now += 5 * SEC;
    r.exit(1, ExitStatus::Signal(libc::SIGSEGV));
    // s1 restarts only once s0, which it follows, runs again.
    assert_eq!((r.stopped(), r.spawned()), (vec![2, 0], vec![]));
    assert_eq!(r.held(1), Some("waiting for s0 (started)"));
    r.exit(0, TERM);
    assert_eq!(r.spawned(), [0, 1]);
    r.exit(2, TERM);
    assert_eq!(r.spawned(), [2]);
}

#[test]
fn a_dependent_already_down_still_holds_back_what_it_depends_on() {
    // s0 ← s1 ← s2 ← s3; s2 is down, about to be respawned, when shutdown begins.
    let deps = [
        (1, 0, DependOn::Started),
        (2, 1, DependOn::Started),
        (3, 2, DependOn::Started),
    ];
    let mut r = flat(4, &deps);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    r.exit(2, ExitStatus::Code(1));
    // Respawned at once, it dies young: down, waiting out a delay.
    r.exit(2, ExitStatus::Code(1));
    assert!(r.sys.services[2].is_down() && r.sys.services[2].next_step().is_some());
    r.input(Input::Shutdown);
    assert_eq!(r.stopped(), [3]);
    r.exit(3, TERM);
    assert_eq!(r.stopped(), [1]);
    r.exit(1, TERM);
    assert_eq!(r.stopped(), [0]);
    r.exit(0, TERM);
    assert!(r.sys.finished());
}

#[test]
fn exit_on_critical_with_the_last_service_failing_finishes() {
    let groups = vec![group(
        "root",
        Strategy::OneForOne,
        Some(0),
        &[Child::Service(0)],
    )];
    let mut r = run(groups, vec![0], &[], true);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    r.exit(0, ExitStatus::Signal(libc::SIGSEGV));
    assert!(r.sys.finished());
    assert_eq!(r.sys.exit_code, 1);
}

mod reload;
