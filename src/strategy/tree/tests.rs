use super::*;
use Child::{Group as G, Service as S};
use Strategy::{OneForAll, OneForOne, RestForOne};
use proptest::collection::vec as pvec;
use proptest::{prop_assert, prop_assert_eq, proptest};

const SEC: Duration = Duration::from_secs(1);

/// Four services under the root, which has `strategy` and no limit.
fn flat(strategy: Strategy, order: Vec<usize>) -> Tree {
    let root = group("root", strategy, None, None, (0..4).map(S).collect());
    Tree::new(vec![root], vec![0; 4], vec![Vec::new(); 4], order)
}

/// root (one_for_one): [s0, backend]; backend (`strategy`, 3 per 30 s):
/// [s1, db, s4]; db (one_for_one, 2 per 30 s): [s2, s3].
fn nested(strategy: Strategy, root_intensity: Option<u32>) -> Tree {
    let backend = vec![S(1), G(2), S(4)];
    let groups = vec![
        group("root", OneForOne, root_intensity, None, vec![S(0), G(1)]),
        group("backend", strategy, Some(3), Some(0), backend),
        group("db", OneForOne, Some(2), Some(1), vec![S(2), S(3)]),
    ];
    Tree::new(groups, vec![0, 1, 2, 2, 1], vec![Vec::new(); 5], Vec::new())
}

fn siblings(v: Verdict) -> Vec<usize> {
    match v {
        Verdict::Restart { siblings, .. } => siblings,
        other => panic!("{other:?}"),
    }
}

fn gave_up(v: &Verdict) -> Vec<String> {
    match v {
        Verdict::Restart { gave_up, .. } | Verdict::RootGaveUp { gave_up } => {
            gave_up.iter().map(GaveUp::event_text).collect()
        }
    }
}

fn in_period(t: &Tree, now: Instant) -> Vec<u32> {
    t.groups(now).map(|g| g.restarts_in_period).collect()
}

#[test]
fn each_strategy_restarts_its_set_in_reverse_start_order_without_the_origin() {
    let t0 = Instant::now();
    let set = |st, s| siblings(flat(st, (0..4).collect()).on_restart(t0, s));
    assert!(set(OneForOne, 2).is_empty());
    assert_eq!(set(OneForAll, 1), [3, 2, 0]);
    assert_eq!(set(RestForOne, 1), [3, 2]);
    assert!(set(RestForOne, 3).is_empty());
    // Reverse of the start order, not of the children list.
    let v = flat(OneForAll, vec![3, 1, 0, 2]).on_restart(t0, 0);
    assert_eq!(siblings(v), [2, 1, 3]);
}

#[test]
fn a_strategy_that_takes_a_subgroup_takes_all_its_services() {
    let t0 = Instant::now();
    let v = nested(OneForAll, None).on_restart(t0, 1);
    let expected = Verdict::Restart {
        group: 1,
        strategy: OneForAll,
        siblings: vec![4, 3, 2],
        gave_up: Vec::new(),
    };
    assert_eq!(v, expected);
    let set = |s| siblings(nested(RestForOne, None).on_restart(t0, s));
    assert_eq!(set(1), [4, 3, 2]);
    assert!(set(4).is_empty());
    let v = nested(OneForAll, None).on_restart(t0, 3);
    assert!(matches!(v, Verdict::Restart { group: 2, .. }));
    assert!(siblings(v).is_empty());
}

#[test]
fn intensity_restarts_are_fine_and_the_next_gives_up_to_the_parent() {
    let t0 = Instant::now();
    let mut t = nested(OneForOne, None);
    for k in 0..3u32 {
        assert!(gave_up(&t.on_restart(t0 + k * SEC, 1)).is_empty());
    }
    let v = t.on_restart(t0 + 3 * SEC, 1);
    assert_eq!(
        gave_up(&v),
        ["group backend gave up: 4 restarts within 30.0s (intensity 3); escalating to root"]
    );
    // The root (one_for_one) restarts the failed child: all of backend.
    assert!(matches!(v, Verdict::Restart { group: 0, .. }));
    assert_eq!(siblings(v), [4, 3, 2]);
    assert_eq!(in_period(&t, t0 + 3 * SEC), [1, 0, 0]);
    // The window was cleared: the next restart is the first again.
    assert!(gave_up(&t.on_restart(t0 + 4 * SEC, 1)).is_empty());
    assert_eq!(in_period(&t, t0 + 4 * SEC), [1, 1, 0]);
}

#[test]
fn the_window_slides_and_a_restart_exactly_period_old_still_counts() {
    let t0 = Instant::now();
    let mut t = nested(OneForOne, None);
    for s in [0u32, 10, 20, 31] {
        assert!(gave_up(&t.on_restart(t0 + s * SEC, 4)).is_empty());
    }
    assert_eq!(in_period(&t, t0 + 31 * SEC)[1], 3);
    // At 40 s the restart of 10 s is exactly one period old.
    let v = t.on_restart(t0 + 40 * SEC, 4);
    assert_eq!(gave_up(&v).len(), 1);
    assert_eq!(in_period(&t, t0 + 100 * SEC), [0, 0, 0]);
}

#[test]
fn an_inner_group_that_gives_up_is_one_failed_child_of_its_parent() {
    let t0 = Instant::now();
    let mut t = nested(RestForOne, None);
    t.on_restart(t0, 2);
    t.on_restart(t0, 3);
    let v = t.on_restart(t0 + SEC, 2);
    let db = GaveUp {
        group: "db".into(),
        restarts: 3,
        period: 30 * SEC,
        intensity: 2,
        escalated_to: Some("backend".into()),
    };
    let expected = Verdict::Restart {
        group: 1,
        strategy: RestForOne,
        siblings: vec![4, 3],
        gave_up: vec![db],
    };
    assert_eq!(v, expected);
    assert_eq!(in_period(&t, t0 + SEC), [0, 1, 0]);
    // backend one_for_one: only the inner group's services.
    let mut t = nested(OneForOne, None);
    t.on_restart(t0, 2);
    t.on_restart(t0, 2);
    assert_eq!(siblings(t.on_restart(t0, 2)), [3]);
}

#[test]
fn escalation_past_a_root_with_intensity_makes_the_system_critical() {
    let groups = vec![
        group("root", OneForAll, Some(0), None, vec![G(1)]),
        group("outer", OneForAll, Some(0), Some(0), vec![G(2)]),
        group("inner", OneForAll, Some(0), Some(1), vec![S(0), S(1)]),
    ];
    let mut t = Tree::new(groups, vec![2, 2], vec![Vec::new(); 2], vec![0, 1]);
    let t0 = Instant::now();
    let v = t.on_restart(t0, 0);
    assert!(matches!(v, Verdict::RootGaveUp { .. }));
    let texts = gave_up(&v);
    assert!(texts[0].ends_with("to outer") && texts[1].ends_with("to root"));
    assert_eq!(
        texts[2],
        "group root gave up: 1 restarts within 30.0s (intensity 0): the system is critical"
    );
    assert_eq!(in_period(&t, t0), [0, 0, 0]);
}

#[test]
fn a_root_without_intensity_never_gives_up() {
    let t0 = Instant::now();
    let mut t = flat(OneForOne, (0..4).collect());
    for k in 0..10_000 {
        assert!(gave_up(&t.on_restart(t0, k % 4)).is_empty());
    }
    assert_eq!(in_period(&t, t0), [10_000]);
    assert_eq!(in_period(&t, t0 + 31 * SEC), [0]);
}

#[test]
fn status_sees_every_group_and_durations_read_like_the_events() {
    let t = nested(RestForOne, Some(10));
    let views: Vec<_> = t.groups(Instant::now()).collect();
    let db = (views[2].index, views[2].name, views[2].parent);
    assert_eq!((db, views[0].parent), ((2, "db", Some("backend")), None));
    assert_eq!(views[1].strategy, RestForOne);
    assert_eq!(views[1].children, [S(1), G(2), S(4)]);
    assert_eq!((views[0].intensity, views[1].period), (Some(10), 30 * SEC));
    assert_eq!((t.len(), t.group_of(3), t.group_name(2)), (5, 2, "db"));
    assert_eq!(fmt_duration(Duration::from_millis(500)), "500ms");
}

/// Groups (parent index raw, strategy, intensity, period s) and
/// services (group raw, place among its group's children, start rank).
fn random_tree(
    shape: &[(usize, usize, Option<u32>, u32)],
    services: &[(usize, usize, usize)],
) -> Tree {
    let strategies = [OneForOne, OneForAll, RestForOne];
    let mut groups = Vec::new();
    for (g, &(p, st, i, s)) in shape.iter().enumerate() {
        let (name, parent) = (format!("g{g}"), (g > 0).then(|| p % g));
        let def = group(&name, strategies[st], i, parent, Vec::new());
        groups.push(GroupDef {
            period: s * SEC,
            ..def
        });
    }
    let mut slots: Vec<Vec<(usize, Child)>> = vec![Vec::new(); groups.len()];
    for g in 1..groups.len() {
        slots[groups[g].parent.unwrap()].push((shape[g].0, G(g)));
    }
    let service_group: Vec<usize> = services.iter().map(|s| s.0 % groups.len()).collect();
    for (i, s) in services.iter().enumerate() {
        slots[service_group[i]].push((s.1, S(i)));
    }
    for (g, mut kids) in slots.into_iter().enumerate() {
        kids.sort_by_key(|k| k.0);
        groups[g].children = kids.into_iter().map(|k| k.1).collect();
    }
    let mut order: Vec<usize> = (0..services.len()).collect();
    order.sort_by_key(|&i| services[i].2);
    let no_deps = vec![Vec::new(); services.len()];
    Tree::new(groups, service_group, no_deps, order)
}

fn ancestors(t: &Tree, mut g: usize) -> Vec<usize> {
    let mut chain = vec![g];
    while let Some(p) = t.groups[g].def.parent {
        chain.push(p);
        g = p;
    }
    chain
}

proptest! {
    #[test]
    fn restart_sets_stay_in_the_accounted_subtree_and_windows_within_intensity(
        shape in pvec((0usize..100, 0usize..3, proptest::option::of(0u32..4), 1u32..20), 1..5),
        services in pvec((0usize..100, 0usize..100, 0usize..100), 1..10),
        restarts in pvec((0usize..100, 0u64..5_000), 1..80),
    ) {
        let mut t = random_tree(&shape, &services);
        let mut now = Instant::now();
        for (raw, gap) in restarts {
            let origin = raw % t.len();
            now += Duration::from_millis(gap);
            let path = ancestors(&t, t.group_of(origin));
            match t.on_restart(now, origin) {
                Verdict::Restart { group, siblings, gave_up, .. } => {
                    let hops = path.iter().position(|&g| g == group);
                    prop_assert_eq!(hops, Some(gave_up.len()));
                    prop_assert!(!siblings.contains(&origin));
                    for s in &siblings {
                        prop_assert!(ancestors(&t, t.group_of(*s)).contains(&group));
                    }
                    let ranks: Vec<usize> = siblings.iter().map(|&s| t.graph.rank[s]).collect();
                    prop_assert!(ranks.windows(2).all(|w| w[0] > w[1]));
                }
                Verdict::RootGaveUp { gave_up } => {
                    prop_assert_eq!(gave_up.len(), path.len());
                    prop_assert_eq!(gave_up.last().map(|g| g.group.as_str()), Some("g0"));
                }
            }
            for g in &t.groups {
                if let Some(limit) = g.def.intensity {
                    prop_assert!(g.window.len() <= limit as usize);
                }
            }
        }
    }
}
