//! Reloads: removed services stop in reverse dependency order and stay
//! retired, added ones start as the new tree allows, changed ones restart
//! or take their configuration in place.

use super::*;

fn named(i: usize) -> Config {
    Config {
        name: format!("s{i}"),
        ..with_probes(config())
    }
}

/// A flat tree over `n` indices whose root lists only `live`.
fn tree(n: usize, live: &[usize], deps: Deps) -> Tree {
    let mut explicit = vec![Vec::new(); n];
    for &(s, on, condition) in deps {
        explicit[s].push((on, condition));
    }
    let children: Vec<Child> = live.iter().map(|&i| Child::Service(i)).collect();
    let root = group("root", Strategy::OneForOne, None, &children);
    Tree::new(vec![root], vec![0; n], explicit, (0..n).collect())
}

impl Run {
    fn reload(&mut self, r: Reconfigure) {
        self.last.clear();
        let out = self.sys.reconfigure(self.now, r);
        let inputs = self.carry_out(out);
        let last = std::mem::take(&mut self.last);
        for input in inputs {
            self.input(input);
        }
        self.last.splice(0..0, last);
    }
}

fn reconfigure(tree: Tree) -> Reconfigure {
    Reconfigure {
        tree,
        changed: Vec::new(),
        added: Vec::new(),
        removed: Vec::new(),
        exit_on_critical: false,
    }
}

#[test]
fn removed_services_stop_dependents_first_and_never_start_again() {
    // s0 ← s1 ← s2, and s3 on its own; s1 and s2 are removed.
    let mut r = flat(4, &[(1, 0, DependOn::Started), (2, 1, DependOn::Started)]);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    r.reload(Reconfigure {
        removed: vec![1, 2],
        ..reconfigure(tree(4, &[0, 3], &[]))
    });
    assert_eq!(r.stopped(), [2]);
    assert!(r.sys.is_retired(1) && r.sys.is_retired(2) && !r.sys.is_retired(0));
    r.exit(2, TERM);
    assert_eq!(r.stopped(), [1]);
    r.exit(1, TERM);
    assert!(r.spawned().is_empty() && r.stopped().is_empty());
    assert_eq!(r.sys.retiring().count(), 0);
    // The root giving up or a shutdown leaves them be, and finishes.
    r.input(Input::Shutdown);
    assert_eq!(r.stopped(), [3, 0]);
    r.exit(3, TERM);
    r.exit(0, TERM);
    assert!(r.sys.finished());
}

#[test]
fn an_added_service_waits_for_what_it_depends_on() {
    let mut r = flat(1, &[]);
    r.input(Input::StartAll);
    r.reload(Reconfigure {
        added: vec![named(1)],
        ..reconfigure(tree(2, &[0, 1], &[(1, 0, DependOn::Ready)]))
    });
    assert!(r.spawned().is_empty());
    assert_eq!(r.held(1), Some("waiting for s0 (ready)"));
    r.event(0, Event::Notify(Notify::Ready));
    assert_eq!(r.spawned(), [1]);
}

#[test]
fn a_restart_change_stops_and_starts_an_in_place_one_does_not() {
    let mut r = flat(2, &[]);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    let why = "restarted: command changed".to_string();
    r.reload(Reconfigure {
        changed: vec![(0, named(0), Some(why)), (1, named(1), None)],
        ..reconfigure(tree(2, &[0, 1], &[]))
    });
    assert_eq!(r.stopped(), [0]);
    r.exit(0, TERM);
    assert_eq!(r.spawned(), [0]);
    assert!(r.pids.contains_key(&1));
    assert_eq!(r.sys.services[1].generation, 1);
}

#[test]
fn a_removed_service_is_not_taken_by_the_root_giving_up() {
    let groups = vec![group(
        "root",
        Strategy::OneForOne,
        Some(0),
        &[Child::Service(0), Child::Service(1)],
    )];
    let mut r = run(groups, vec![0, 0], &[], false);
    r.input(Input::StartAll);
    r.now += 5 * SEC;
    let root = group("root", Strategy::OneForOne, Some(0), &[Child::Service(0)]);
    let t = Tree::new(vec![root], vec![0, 0], vec![Vec::new(); 2], vec![0, 1]);
    r.reload(Reconfigure {
        removed: vec![1],
        ..reconfigure(t)
    });
    r.exit(1, TERM);
    r.exit(0, ExitStatus::Signal(libc::SIGSEGV));
    assert!(r.sys.critical.is_some());
    assert!(r.last.iter().all(|(i, _)| *i == 0), "{:?}", r.last);
}
