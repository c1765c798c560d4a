//! The supervision tree (Erlang/OTP semantics) and start dependencies.
//!
//! Groups restart their children by strategy (one_for_one, one_for_all,
//! rest_for_one); more than `intensity` restarts within `period` make a group
//! give up and escalate to its parent, which treats it as one failed child.
//! Past the root's limit every service goes to its fallback or quarantine and
//! the system is CRITICAL. `depends_on` (started / ready / completed) and a
//! group's child order gate starts; stops run in the reverse order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::{DependOn, Plan, RestartPolicy, Strategy};
use crate::strategy::orchestrator::Action;
use crate::strategy::restart::ExitStatus;
use crate::timefmt::fmt_duration;

use super::{AfterStop, Daemon, Phase};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Child {
    Service(usize),
    Group(usize),
}

pub(super) struct GroupRt {
    pub name: String,
    pub strategy: Strategy,
    /// None: no limit (the root, unless `supervisor:` sets one).
    pub intensity: Option<u32>,
    pub period: Duration,
    pub parent: Option<usize>,
    pub children: Vec<Child>,
    /// Restarts within the current period.
    pub restarts: VecDeque<Instant>,
}

/// Index 0 is the root.
pub(super) fn build_groups(plan: &Plan) -> (Vec<GroupRt>, Vec<usize>) {
    let mut groups = vec![GroupRt {
        name: "root".into(),
        strategy: plan.supervisor.strategy,
        intensity: plan.supervisor.intensity,
        period: plan.supervisor.period,
        parent: None,
        children: Vec::new(),
        restarts: VecDeque::new(),
    }];
    for g in &plan.groups {
        groups.push(GroupRt {
            name: g.name.clone(),
            strategy: g.strategy,
            intensity: Some(g.intensity),
            period: g.period,
            parent: None,
            children: Vec::new(),
            restarts: VecDeque::new(),
        });
    }
    let gidx = |name: &str| {
        1 + plan
            .groups
            .iter()
            .position(|g| g.name == name)
            .expect("validated")
    };
    let sidx = |name: &str| plan.services.iter().position(|s| s.name == name);
    for (k, g) in plan.groups.iter().enumerate() {
        groups[k + 1].parent = Some(g.parent.as_deref().map_or(0, gidx));
        groups[k + 1].children = g
            .children
            .iter()
            .map(|c| match sidx(c) {
                Some(i) => Child::Service(i),
                None => Child::Group(gidx(c)),
            })
            .collect();
    }
    // The root's children: ungrouped services and top-level groups.
    for (i, s) in plan.services.iter().enumerate() {
        if s.group.is_none() {
            groups[0].children.push(Child::Service(i));
        }
    }
    for (k, g) in plan.groups.iter().enumerate() {
        if g.parent.is_none() {
            groups[0].children.push(Child::Group(k + 1));
        }
    }
    let service_group = plan
        .services
        .iter()
        .map(|s| s.group.as_deref().map_or(0, gidx))
        .collect();
    (groups, service_group)
}

/// Explicit dependencies plus the implicit ones of group order: a service
/// that is a group's child starts after the service listed before it.
pub(super) fn dependencies(plan: &Plan) -> Vec<Vec<(usize, DependOn)>> {
    let idx = |name: &str| plan.services.iter().position(|s| s.name == name);
    let mut deps: Vec<Vec<(usize, DependOn)>> = plan
        .services
        .iter()
        .map(|s| {
            s.depends_on
                .iter()
                .filter_map(|(n, c)| idx(n).map(|j| (j, *c)))
                .collect()
        })
        .collect();
    for g in &plan.groups {
        let kids: Vec<usize> = g.children.iter().filter_map(|c| idx(c)).collect();
        for w in kids.windows(2) {
            if !deps[w[1]].iter().any(|(j, _)| *j == w[0]) {
                deps[w[1]].push((w[0], DependOn::Started));
            }
        }
    }
    deps
}

impl Daemon {
    /// Every service under `child`, in start order.
    fn services_under(&self, child: Child, out: &mut Vec<usize>) {
        match child {
            Child::Service(i) => out.push(i),
            Child::Group(g) => {
                for c in self.groups[g].children.clone() {
                    self.services_under(c, out);
                }
            }
        }
    }

    /// Whether `j` meets `cond` for its dependents now.
    pub(super) fn satisfies(&self, j: usize, cond: DependOn) -> bool {
        let d = &self.services[j];
        let exited_ok = matches!(d.phase, Phase::Exited)
            && matches!(d.last_exit, Some((ExitStatus::Code(0), _)));
        match cond {
            DependOn::Started => matches!(d.phase, Phase::Running { .. }) || exited_ok,
            DependOn::Ready => matches!(d.phase, Phase::Running { .. }) && d.ready == Some(true),
            DependOn::Completed => exited_ok,
        }
    }

    /// Why `i` is not started yet: (blocked, text), or None if it may start.
    pub(super) fn waiting_for(&self, i: usize) -> Option<(bool, String)> {
        for &(j, cond) in &self.deps[i] {
            if self.satisfies(j, cond) {
                continue;
            }
            let d = &self.services[j];
            let name = &d.spec.name;
            let blocked = match (&d.phase, d.last_exit) {
                (Phase::Exited, Some((status, _))) if !status.success() => {
                    Some(super::describe_exit(status))
                }
                (Phase::Failed { reason }, _) => Some(reason.clone()),
                (Phase::Exited, _) if cond == DependOn::Ready => Some("exited".into()),
                _ => None,
            };
            return Some(match blocked {
                Some(why) => (true, format!("blocked: waiting for {name} ({why})")),
                None => (false, format!("waiting for {name} ({})", cond.as_str())),
            });
        }
        None
    }

    /// Start `i` if it is waiting and its dependencies allow it.
    pub(super) fn try_start(&mut self, i: usize, now: Instant) {
        if self.shutting_down || !matches!(self.services[i].phase, Phase::Starting) {
            return;
        }
        if self.waiting_for(i).is_none() {
            self.spawn_primary(i, now);
        }
    }

    /// Something `j`'s dependents may wait for happened.
    pub(super) fn advance_dependents(&mut self, j: usize, now: Instant) {
        for d in self.dependents[j].clone() {
            self.try_start(d, now);
        }
    }

    pub(super) fn start_all_in_order(&mut self, now: Instant) {
        for i in self.order.clone() {
            self.try_start(i, now);
        }
    }

    /// A RECOVERABLE restart of `i` was decided. Count it against its group,
    /// restart the siblings the strategy names, and escalate when a group
    /// gives up. Returns true if the root gave up (the system is CRITICAL and
    /// `i` has been handled).
    pub(super) fn tree_restart(&mut self, i: usize, now: Instant) -> bool {
        let g = self.service_group[i];
        self.child_failed(g, Child::Service(i), i, now)
    }

    fn child_failed(&mut self, g: usize, child: Child, origin: usize, now: Instant) -> bool {
        let grp = &mut self.groups[g];
        while grp
            .restarts
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > grp.period)
        {
            grp.restarts.pop_front();
        }
        grp.restarts.push_back(now);
        let count = grp.restarts.len() as u32;
        if let Some(limit) = grp.intensity
            && count > limit
        {
            let name = grp.name.clone();
            let period = grp.period;
            grp.restarts.clear();
            let msg = format!(
                "group {name} gave up: {count} restarts within {} (intensity {limit})",
                fmt_duration(period)
            );
            match grp.parent {
                Some(p) => {
                    let parent = self.groups[p].name.clone();
                    self.event(origin, "tree", format!("{msg}; escalating to {parent}"));
                    return self.child_failed(p, Child::Group(g), origin, now);
                }
                None => {
                    self.event(origin, "tree", format!("{msg}: the system is critical"));
                    self.system_critical(msg, now);
                    return true;
                }
            }
        }
        let strategy = self.groups[g].strategy;
        let mut set = Vec::new();
        match strategy {
            Strategy::OneForOne => self.services_under(child, &mut set),
            Strategy::OneForAll => self.services_under(Child::Group(g), &mut set),
            Strategy::RestForOne => {
                let kids = self.groups[g].children.clone();
                let from = kids.iter().position(|c| *c == child).unwrap_or(0);
                for c in &kids[from..] {
                    self.services_under(*c, &mut set);
                }
            }
        }
        // Stop the others in reverse start order; each starts again, in
        // order, once it is down and its dependencies allow.
        let pos = |s: &usize| self.order.iter().position(|o| o == s).unwrap_or(0);
        set.sort_by_key(pos);
        let group = self.groups[g].name.clone();
        for s in set.into_iter().rev() {
            if s == origin || self.services[s].spec.restart == RestartPolicy::Never {
                continue;
            }
            if matches!(self.services[s].phase, Phase::Running { .. }) {
                let origin_name = self.services[origin].spec.name.clone();
                self.event(
                    s,
                    "tree",
                    format!(
                        "restarted with {origin_name} ({} in group {group})",
                        strategy.as_str()
                    ),
                );
                self.stop(s, AfterStop::Start, now);
            }
        }
        false
    }

    /// The root's intensity is exceeded: every service goes to its fallback
    /// or quarantine; sentineld keeps serving status (or, with
    /// `exit_on_critical`, stops everything and exits 1).
    fn system_critical(&mut self, reason: String, now: Instant) {
        tracing::error!("{reason}: the system is critical");
        self.system_critical = Some(reason);
        if self.exit_on_critical {
            self.exit_code = 1;
            self.begin_shutdown(now);
            return;
        }
        for s in 0..self.services.len() {
            if self.services[s].is_down() && !matches!(self.services[s].phase, Phase::Starting) {
                self.quarantine_now(s, now);
            } else {
                self.stop(s, AfterStop::Quarantine, now);
            }
        }
    }

    /// Put a stopped service on its fallback, or quarantine it.
    pub(super) fn quarantine_now(&mut self, i: usize, now: Instant) {
        let svc = &mut self.services[i];
        let until = svc
            .ladder
            .breaker
            .trip(now, svc.spec.recovery.retry_primary);
        let action = if svc.spec.recovery.fallback.is_some() {
            Action::Fallback {
                retry_primary_at: until,
            }
        } else {
            Action::Quarantine { until }
        };
        self.execute(i, action, Duration::ZERO, now);
    }
}
