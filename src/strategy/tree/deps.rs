//! Start and stop order: `depends_on` (started / ready / completed) plus the
//! implicit dependency of a group's child order gate starts; stops run in
//! the reverse order, in parallel waves, so shutdown takes the longest chain
//! of stop timeouts, never their sum.
//!
//! Knows nothing of a service's state beyond the [`DepView`] the caller
//! hands it.

use std::cmp::Reverse;

use super::{Child, GroupDef, Tree};
use crate::strategy::policy::DependOn;

/// What a dependent needs to know about one service.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DepView {
    pub running: bool,
    pub ready: bool,
    pub ended: Option<Ended>,
}

/// How a service that is not coming back ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ended {
    /// Exited 0 and is not restarted.
    Completed,
    /// Exited non-zero for good, or failed; the text says why ("exit 1").
    Failed(String),
}

/// Whether a service seen as `view` meets `cond` for its dependents.
pub fn satisfies(view: &DepView, cond: DependOn) -> bool {
    let completed = view.ended == Some(Ended::Completed);
    match cond {
        DependOn::Started => view.running || completed,
        DependOn::Ready => view.running && view.ready,
        DependOn::Completed => completed,
    }
}

/// What a service waits for before it may start.
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub on: usize,
    pub condition: DependOn,
    /// Some(why): it cannot come (the dependency failed, or it completed
    /// while `ready` is needed: "exited").
    pub blocked: Option<String>,
}

impl Wait {
    /// "blocked: waiting for db (exit 1)" or "waiting for db (ready)".
    pub fn describe(&self, on_name: &str) -> String {
        match &self.blocked {
            Some(why) => format!("blocked: waiting for {on_name} ({why})"),
            None => format!("waiting for {on_name} ({})", self.condition.as_str()),
        }
    }
}

/// The dependency graph and the start order.
#[derive(Debug, Clone)]
pub(super) struct Graph {
    deps: Vec<Vec<(usize, DependOn)>>,
    dependents: Vec<Vec<usize>>,
    order: Vec<usize>,
    /// rank[s]: s's place in `order`.
    pub(super) rank: Vec<usize>,
}

impl Graph {
    /// See [`Tree::new`].
    pub(super) fn new(
        groups: &[GroupDef],
        explicit: Vec<Vec<(usize, DependOn)>>,
        order: Vec<usize>,
        n: usize,
    ) -> Graph {
        let deps = with_group_order(groups, explicit, n);
        let mut dependents = vec![Vec::new(); n];
        for (i, d) in deps.iter().enumerate() {
            for &(j, _) in d {
                dependents[j].push(i);
            }
        }
        let order = if is_permutation(&order, n) {
            order
        } else {
            (0..n).collect()
        };
        let mut rank = vec![0; n];
        for (k, &s) in order.iter().enumerate() {
            rank[s] = k;
        }
        Graph {
            deps,
            dependents,
            order,
            rank,
        }
    }
}

impl Tree {
    /// Explicit dependencies first, then the one of group order.
    pub fn deps(&self, service: usize) -> &[(usize, DependOn)] {
        &self.graph.deps[service]
    }

    pub fn dependents(&self, service: usize) -> &[usize] {
        &self.graph.dependents[service]
    }

    pub fn order(&self) -> &[usize] {
        &self.graph.order
    }

    /// What `service` waits for before it may start, given each service's
    /// view: its first dependency that is not met. None: it may start.
    pub fn waiting_for(&self, service: usize, view: impl Fn(usize) -> DepView) -> Option<Wait> {
        self.graph.deps[service]
            .iter()
            .find_map(|&(on, condition)| {
                let v = view(on);
                if satisfies(&v, condition) {
                    return None;
                }
                let blocked = match v.ended {
                    Some(Ended::Failed(why)) => Some(why),
                    Some(Ended::Completed) if condition == DependOn::Ready => Some("exited".into()),
                    _ => None,
                };
                Some(Wait {
                    on,
                    condition,
                    blocked,
                })
            })
    }

    /// The stop order at shutdown, in waves that may stop in parallel. Wave
    /// 0: services nothing depends on; wave k+1: services all of whose
    /// dependents are in waves ≤ k. Within a wave, reverse start order.
    pub fn stop_waves(&self) -> Vec<Vec<usize>> {
        let Graph {
            deps,
            dependents,
            order,
            rank,
        } = &self.graph;
        let mut dependents_left: Vec<usize> = dependents.iter().map(Vec::len).collect();
        let mut wave: Vec<usize> = order.iter().rev().copied().collect();
        wave.retain(|&s| dependents_left[s] == 0);
        let mut waves = Vec::new();
        let mut placed = 0;
        while !wave.is_empty() {
            placed += wave.len();
            let mut next = Vec::new();
            for &s in &wave {
                for &(j, _) in &deps[s] {
                    dependents_left[j] -= 1;
                    if dependents_left[j] == 0 {
                        next.push(j);
                    }
                }
            }
            next.sort_unstable_by_key(|&s| Reverse(rank[s]));
            waves.push(std::mem::replace(&mut wave, next));
        }
        if placed < order.len() {
            // A dependency cycle (the configuration rejects them): stop what
            // is left last rather than leave it running.
            let rest = order.iter().rev().copied();
            waves.push(rest.filter(|&s| dependents_left[s] > 0).collect());
        }
        waves
    }

    /// At shutdown, `service` may stop once every service that depends on
    /// it is down.
    pub fn may_stop(&self, service: usize, is_down: impl Fn(usize) -> bool) -> bool {
        self.graph.dependents[service]
            .iter()
            .all(|&d| d == service || is_down(d))
    }
}

/// The explicit dependencies `deps` plus those of group order (see [`Tree::new`]).
fn with_group_order(
    groups: &[GroupDef],
    mut deps: Vec<Vec<(usize, DependOn)>>,
    n: usize,
) -> Vec<Vec<(usize, DependOn)>> {
    deps.resize(n, Vec::new());
    for g in groups.iter().skip(1) {
        let services: Vec<usize> = g
            .children
            .iter()
            .filter_map(|c| match *c {
                Child::Service(s) => Some(s),
                Child::Group(_) => None,
            })
            .collect();
        for w in services.windows(2) {
            if !deps[w[1]].iter().any(|&(j, _)| j == w[0]) {
                deps[w[1]].push((w[0], DependOn::Started));
            }
        }
    }
    deps
}

fn is_permutation(order: &[usize], n: usize) -> bool {
    let mut seen = vec![false; n];
    order.len() == n
        && order
            .iter()
            .all(|&s| s < n && !std::mem::replace(&mut seen[s], true))
}

#[cfg(test)]
mod tests {
    use super::super::group;
    use super::*;
    use crate::strategy::policy::Strategy::OneForOne;
    use Child::{Group as G, Service as S};
    use DependOn::{Completed, Ready, Started};

    /// `n` services under the root; `deps`: (service, on, condition).
    fn flat(n: usize, deps: &[(usize, usize, DependOn)], order: Vec<usize>) -> Tree {
        let root = group("root", OneForOne, None, None, (0..n).map(S).collect());
        let mut explicit = vec![Vec::new(); n];
        for &(s, on, cond) in deps {
            explicit[s].push((on, cond));
        }
        Tree::new(vec![root], vec![0; n], explicit, order)
    }

    fn view(running: bool, ready: bool, ended: Option<Ended>) -> DepView {
        DepView {
            running,
            ready,
            ended,
        }
    }

    /// What api (1), which depends on db (0) with `cond`, shows while db looks like `db`.
    fn api_waits(cond: DependOn, db: DepView) -> Option<String> {
        let t = flat(2, &[(1, 0, cond)], Vec::new());
        let wait = t.waiting_for(1, |_| db.clone())?;
        assert_eq!((wait.on, wait.condition), (0, cond));
        Some(wait.describe("db"))
    }

    #[test]
    fn group_order_is_a_started_dependency_unless_depends_on_names_it() {
        // root: [s0, s1, backend]; backend: [s2, cache, s3, s4]; cache: [s5].
        let groups = vec![
            group("root", OneForOne, None, None, vec![S(0), S(1), G(1)]),
            group(
                "backend",
                OneForOne,
                None,
                Some(0),
                vec![S(2), G(2), S(3), S(4)],
            ),
            group("cache", OneForOne, None, Some(1), vec![S(5)]),
        ];
        let mut explicit = vec![Vec::new(); 6];
        explicit[3].push((2, Ready));
        let t = Tree::new(groups, vec![0, 0, 1, 1, 1, 2], explicit, Vec::new());
        // The root's children are unordered: they start in parallel.
        assert_eq!(t.deps(1), []);
        // The subgroup between s2 and s3 does not break the chain, and the
        // explicit `ready` stands instead of the implicit `started`.
        assert_eq!(t.deps(3), [(2, Ready)]);
        assert_eq!(t.deps(4), [(3, Started)]);
        assert_eq!(t.deps(5), []);
        assert_eq!((t.dependents(2), t.dependents(3)), (&[3][..], &[4][..]));
        assert_eq!(t.order(), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn started_is_met_by_a_running_or_completed_dependency() {
        let db = DepView::default();
        assert_eq!(api_waits(Started, db).unwrap(), "waiting for db (started)");
        assert_eq!(api_waits(Started, view(true, false, None)), None);
        assert_eq!(
            api_waits(Started, view(false, false, Some(Ended::Completed))),
            None
        );
        let failed = view(false, false, Some(Ended::Failed("exit 1".into())));
        assert_eq!(
            api_waits(Started, failed).unwrap(),
            "blocked: waiting for db (exit 1)"
        );
    }

    #[test]
    fn ready_needs_a_running_ready_dependency_and_an_exit_blocks_it() {
        let starting = view(true, false, None);
        assert_eq!(
            api_waits(Ready, starting).unwrap(),
            "waiting for db (ready)"
        );
        assert_eq!(api_waits(Ready, view(true, true, None)), None);
        let completed = view(false, false, Some(Ended::Completed));
        assert_eq!(
            api_waits(Ready, completed).unwrap(),
            "blocked: waiting for db (exited)"
        );
        let failed = view(
            false,
            false,
            Some(Ended::Failed("killed by SIGSEGV".into())),
        );
        let text = "blocked: waiting for db (killed by SIGSEGV)";
        assert_eq!(api_waits(Ready, failed).unwrap(), text);
    }

    #[test]
    fn completed_needs_a_clean_exit() {
        let running = view(true, true, None);
        assert_eq!(
            api_waits(Completed, running).unwrap(),
            "waiting for db (completed)"
        );
        assert_eq!(
            api_waits(Completed, view(false, false, Some(Ended::Completed))),
            None
        );
        let failed = view(false, false, Some(Ended::Failed("exit 2".into())));
        assert_eq!(
            api_waits(Completed, failed).unwrap(),
            "blocked: waiting for db (exit 2)"
        );
    }

    #[test]
    fn the_first_unmet_dependency_is_the_one_reported() {
        let t = flat(3, &[(2, 0, Started), (2, 1, Ready)], Vec::new());
        let running = |s| view(s == 0, false, None);
        let wait = t.waiting_for(2, running).unwrap();
        assert_eq!((wait.on, wait.condition, wait.blocked), (1, Ready, None));
        assert_eq!(t.waiting_for(0, running), None);
    }

    #[test]
    fn stop_waves_follow_dependents_first_in_reverse_start_order() {
        let order = || (0..4).collect::<Vec<_>>();
        let chain = flat(3, &[(1, 0, Started), (2, 1, Ready)], Vec::new());
        assert_eq!(chain.stop_waves(), [vec![2], vec![1], vec![0]]);
        let diamond = [
            (1, 0, Started),
            (2, 0, Started),
            (3, 1, Ready),
            (3, 2, Ready),
        ];
        let diamond = flat(4, &diamond, order());
        assert_eq!(diamond.stop_waves(), [vec![3], vec![2, 1], vec![0]]);
        // s0 waits for the longer of its dependents' chains.
        let uneven = flat(
            4,
            &[(1, 0, Started), (2, 0, Started), (3, 2, Started)],
            order(),
        );
        assert_eq!(uneven.stop_waves(), [vec![3, 1], vec![2], vec![0]]);
        assert_eq!(flat(4, &[], order()).stop_waves(), [vec![3, 2, 1, 0]]);
        assert_eq!(
            flat(4, &[], vec![2, 0, 3, 1]).stop_waves(),
            [vec![1, 3, 0, 2]]
        );
    }

    #[test]
    fn stop_waves_follow_group_order() {
        let groups = vec![
            group("root", OneForOne, None, None, vec![S(3), G(1)]),
            group("backend", OneForOne, None, Some(0), vec![S(0), S(1), S(2)]),
        ];
        let t = Tree::new(groups, vec![1, 1, 1, 0], vec![Vec::new(); 4], Vec::new());
        assert_eq!(t.stop_waves(), [vec![3, 2], vec![1], vec![0]]);
    }

    #[test]
    fn a_dependency_cycle_still_stops_everything() {
        let t = flat(3, &[(0, 1, Started), (1, 0, Started)], Vec::new());
        assert_eq!(t.stop_waves(), [vec![2], vec![1, 0]]);
    }

    #[test]
    fn a_service_may_stop_once_all_its_dependents_are_down() {
        let diamond = [
            (1, 0, Started),
            (2, 0, Started),
            (3, 1, Ready),
            (3, 2, Ready),
        ];
        let t = flat(4, &diamond, Vec::new());
        assert!(!t.may_stop(0, |_| false));
        assert!(!t.may_stop(0, |s| s == 1));
        assert!(t.may_stop(0, |s| s == 1 || s == 2));
        assert!(t.may_stop(3, |_| false));
    }

    #[test]
    fn a_start_order_that_is_not_a_permutation_is_replaced() {
        assert_eq!(flat(3, &[], vec![0, 0, 1]).order(), [0, 1, 2]);
        assert_eq!(flat(3, &[], vec![2, 1]).order(), [0, 1, 2]);
        assert_eq!(flat(3, &[], vec![2, 0, 1]).order(), [2, 0, 1]);
    }
}
