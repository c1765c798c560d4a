//! A validated [`Plan`] → the pure core's inputs: one machine [`Config`]
//! per service and the supervision [`Tree`].

use std::collections::HashMap;

use crate::config::{Check, Plan, ProbeSpec, ProbeTimeout, ServiceSpec};
use crate::strategy::backoff::BackoffSpec;
use crate::strategy::classify::Rule;
use crate::strategy::machine::{Config, ProbeConfig};
use crate::strategy::orchestrator::RecoveryPolicy;
use crate::strategy::policy::DependOn;
use crate::strategy::tree::{Child, GroupDef, Tree};

fn probe(p: &ProbeSpec) -> ProbeConfig {
    ProbeConfig {
        interval: p.interval,
        initial_delay: p.initial_delay,
        timeout: match p.timeout {
            ProbeTimeout::Fixed(t) => Some(t),
            ProbeTimeout::Adaptive => None,
        },
        success_threshold: p.success_threshold,
        failure_threshold: p.failure_threshold,
        notify: p.check == Check::Notify,
    }
}

pub(super) fn rules(spec: &ServiceSpec) -> Vec<Rule> {
    spec.classify
        .iter()
        .map(|r| Rule {
            exit_codes: r.exit_codes.clone(),
            signals: r.signals.iter().map(|s| *s as i32).collect(),
            output_matches: r
                .output_matches
                .as_ref()
                .map(|re| regex::bytes::Regex::new(re).expect("validated")),
            limits: r.limits.clone(),
            severity: r.severity,
        })
        .collect()
}

pub(super) fn machine_config(spec: &ServiceSpec) -> Config {
    let r = &spec.recovery;
    Config {
        name: spec.name.clone(),
        restart: spec.restart,
        min_uptime: spec.min_uptime,
        stop_signal: spec.stop.signal as i32,
        stop_timeout: spec.stop.timeout,
        recovery: RecoveryPolicy {
            retry_attempts: r.retry.attempts,
            backoff: BackoffSpec {
                base: r.retry.backoff,
                max: r.retry.max_backoff,
                jitter: r.retry.jitter,
            },
            restart_attempts: r.restart.attempts,
            has_fallback: r.fallback.is_some(),
            retry_primary: r.retry_primary,
            min_uptime: spec.min_uptime,
            reset_after: r.reset_after,
        },
        escalation: (spec.escalation.failures, spec.escalation.within),
        rules: rules(spec),
        cleanup: r.restart.cleanup.as_ref().map(|_| r.restart.timeout),
        pre_start: spec.pre_start.as_ref().map(|_| spec.pre_start_timeout),
        sla: spec.sla.availability,
        hooks: spec.on_event.is_some(),
        forking: spec.kind == crate::config::ServiceType::Forking,
        probes: [&spec.liveness, &spec.readiness, &spec.startup].map(|p| p.as_ref().map(probe)),
        watchdog: spec.watchdog,
        start_timeout: spec.start_timeout,
        overlap: r.overlap,
        limits: spec.limits,
    }
}

/// The tree: index 0 is the root, then the plan's groups in order.
pub(super) fn tree(plan: &Plan) -> Tree {
    let slots: Vec<usize> = (0..plan.services.len()).collect();
    tree_over(plan, &slots, plan.services.len())
}

/// The tree over `n` service indices, the plan's service `k` at index
/// `slots[k]`; an index no service of the plan has (a service a reload
/// removed) hangs off the root with no dependencies, no siblings, and last
/// in the start order.
pub(super) fn tree_over(plan: &Plan, slots: &[usize], n: usize) -> Tree {
    let gidx = |name: &str| {
        1 + plan
            .groups
            .iter()
            .position(|g| g.name == name)
            .expect("validated")
    };
    // By name, once: 10,000 services' dependencies are not each a scan.
    let by_name: HashMap<&str, usize> = (plan.services.iter().zip(slots))
        .map(|(s, &i)| (s.name.as_str(), i))
        .collect();
    let sidx = |name: &str| by_name.get(name).copied();
    let mut root = GroupDef {
        name: "root".into(),
        strategy: plan.supervisor.strategy,
        intensity: plan.supervisor.intensity,
        period: plan.supervisor.period,
        parent: None,
        children: Vec::new(),
    };
    // The root's children: ungrouped services, then top-level groups.
    for (k, s) in plan.services.iter().enumerate() {
        if s.group.is_none() {
            root.children.push(Child::Service(slots[k]));
        }
    }
    for (k, g) in plan.groups.iter().enumerate() {
        if g.parent.is_none() {
            root.children.push(Child::Group(k + 1));
        }
    }
    let mut groups = vec![root];
    for g in &plan.groups {
        groups.push(GroupDef {
            name: g.name.clone(),
            strategy: g.strategy,
            intensity: Some(g.intensity),
            period: g.period,
            parent: Some(g.parent.as_deref().map_or(0, gidx)),
            children: g
                .children
                .iter()
                .map(|c| match sidx(c) {
                    Some(i) => Child::Service(i),
                    None => Child::Group(gidx(c)),
                })
                .collect(),
        });
    }
    let mut service_group = vec![0; n];
    let mut deps: Vec<Vec<(usize, DependOn)>> = vec![Vec::new(); n];
    for (k, s) in plan.services.iter().enumerate() {
        service_group[slots[k]] = s.group.as_deref().map_or(0, gidx);
        deps[slots[k]] = (s.depends_on.iter())
            .filter_map(|(name, c)| sidx(name).map(|j| (j, *c)))
            .collect();
    }
    let mut order: Vec<usize> = plan.start_order.iter().map(|&k| slots[k]).collect();
    let mut placed = vec![false; n];
    for &i in &order {
        placed[i] = true;
    }
    order.extend((0..n).filter(|&i| !placed[i]));
    Tree::new(groups, service_group, deps, order)
}
