//! The supervision tree (Erlang/OTP semantics) and the start/stop order, as
//! pure decisions.
//!
//! A group restarts its children by its strategy (one_for_one: the failed
//! child; one_for_all: all; rest_for_one: the failed child and those after
//! it). More than `intensity` restarts within `period` make a group give up:
//! its window is cleared and its parent counts one restart of the whole
//! group. Past the root's limit the system is critical; a root without a
//! limit never gives up. `depends_on` and a group's child order gate starts;
//! stops run in the reverse order, in parallel waves.
//!
//! Owns the groups' restart windows and (in `tree/deps.rs`) the dependency
//! graph. Never reads a clock (`now` comes in), never touches a process, and
//! knows nothing of a service's state beyond the [`DepView`] the caller hands it.

mod deps;

use std::cmp::Reverse;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::policy::{DependOn, Strategy};
use deps::Graph;
pub use deps::{DepView, Ended, Wait, satisfies};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    Service(usize),
    Group(usize),
}

#[derive(Debug, Clone)]
pub struct GroupDef {
    pub name: String,
    pub strategy: Strategy,
    /// None: no limit (the root, unless `supervisor:` sets one).
    pub intensity: Option<u32>,
    pub period: Duration,
    /// Index into the groups; None only for index 0, the root.
    pub parent: Option<usize>,
    /// Start order.
    pub children: Vec<Child>,
}

#[derive(Debug, Clone)]
struct Group {
    def: GroupDef,
    /// Restarts within the period, oldest first. With an intensity it never
    /// holds more than `intensity`: the one past it makes the group give up,
    /// which clears it.
    window: VecDeque<Instant>,
}

impl Group {
    fn is_in_period(&self, now: Instant, at: Instant) -> bool {
        now.saturating_duration_since(at) <= self.def.period
    }

    fn restarts_in_period(&self, now: Instant) -> u32 {
        let in_period = |at: &&Instant| self.is_in_period(now, **at);
        self.window.iter().rev().take_while(in_period).count() as u32
    }
}

#[derive(Debug, Clone)]
pub struct Tree {
    groups: Vec<Group>,
    service_group: Vec<usize>,
    /// Where each service and each group stands among its group's children
    /// (rest_for_one restarts from there).
    service_pos: Vec<usize>,
    group_pos: Vec<usize>,
    graph: Graph,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Restart in place; also stop and start again `siblings` (the
    /// strategy's set at the group where the restart was finally accounted,
    /// minus the service itself), in reverse start order. `gave_up` lists
    /// the groups that gave up and escalated on the way, innermost first.
    Restart {
        group: usize,
        strategy: Strategy,
        siblings: Vec<usize>,
        gave_up: Vec<GaveUp>,
    },
    /// The root's intensity was exceeded: the system is critical.
    /// `gave_up` ends with the root.
    RootGaveUp { gave_up: Vec<GaveUp> },
}

/// A group that gave up: more than `intensity` restarts within `period`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaveUp {
    pub group: String,
    pub restarts: u32,
    pub period: Duration,
    pub intensity: u32,
    /// The parent that counts the group as one failed child; None: the root.
    pub escalated_to: Option<String>,
}

impl GaveUp {
    /// "group backend gave up: 4 restarts within 30.0s (intensity 3)".
    pub fn describe(&self) -> String {
        format!(
            "group {} gave up: {} restarts within {} (intensity {})",
            self.group,
            self.restarts,
            fmt_duration(self.period),
            self.intensity
        )
    }

    /// The event text: what happened and where it went ("…; escalating to
    /// root", or "…: the system is critical").
    pub fn event_text(&self) -> String {
        match &self.escalated_to {
            Some(parent) => format!("{}; escalating to {parent}", self.describe()),
            None => format!("{}: the system is critical", self.describe()),
        }
    }
}

/// One group, for status.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupView<'a> {
    pub index: usize,
    pub name: &'a str,
    pub parent: Option<&'a str>,
    pub strategy: Strategy,
    pub intensity: Option<u32>,
    pub period: Duration,
    pub restarts_in_period: u32,
    pub children: &'a [Child],
}

impl Tree {
    /// `groups[0]` is the root. `service_group[i]`: the group of service i.
    /// `explicit_deps[i]`: service i's `depends_on`. `order`: the start
    /// order, a permutation of 0..n (anything else is replaced by 0..n).
    ///
    /// In each group but the root, a service child also depends (started) on
    /// the service child listed before it, unless it names it in
    /// `depends_on`. The root's children are the services no group lists:
    /// nothing orders them, so they start in parallel.
    ///
    /// Panics if an index is out of range.
    pub fn new(
        groups: Vec<GroupDef>,
        service_group: Vec<usize>,
        explicit_deps: Vec<Vec<(usize, DependOn)>>,
        order: Vec<usize>,
    ) -> Tree {
        let n = service_group.len();
        let graph = Graph::new(&groups, explicit_deps, order, n);
        let mut service_pos = vec![0; n];
        let mut group_pos = vec![0; groups.len()];
        for g in &groups {
            for (k, c) in g.children.iter().enumerate() {
                match *c {
                    Child::Service(s) => service_pos[s] = k,
                    Child::Group(h) => group_pos[h] = k,
                }
            }
        }
        let groups = groups
            .into_iter()
            .map(|def| Group {
                def,
                window: VecDeque::new(),
            })
            .collect();
        Tree {
            groups,
            service_group,
            service_pos,
            group_pos,
            graph,
        }
    }

    /// How many services.
    pub fn len(&self) -> usize {
        self.service_group.len()
    }

    pub fn is_empty(&self) -> bool {
        self.service_group.is_empty()
    }

    pub fn group_of(&self, service: usize) -> usize {
        self.service_group[service]
    }

    pub fn group_name(&self, g: usize) -> &str {
        &self.groups[g].def.name
    }

    /// A RECOVERABLE restart of `service` was decided at `now`: count it in
    /// its group's window, escalate through every group that gives up, and
    /// say what follows.
    pub fn on_restart(&mut self, now: Instant, service: usize) -> Verdict {
        let mut g = self.service_group[service];
        let mut child = Child::Service(service);
        let mut gave_up = Vec::new();
        while let Some(record) = self.account(g, now) {
            gave_up.push(record);
            match self.groups[g].def.parent {
                Some(parent) => {
                    child = Child::Group(g);
                    g = parent;
                }
                None => return Verdict::RootGaveUp { gave_up },
            }
        }
        Verdict::Restart {
            group: g,
            strategy: self.groups[g].def.strategy,
            siblings: self.restart_set(g, child, service),
            gave_up,
        }
    }

    /// Count one restart in group `g`'s window. Some: that was more than its
    /// intensity allows, and the group gave up (its window is cleared).
    fn account(&mut self, g: usize, now: Instant) -> Option<GaveUp> {
        let group = &mut self.groups[g];
        while let Some(&at) = group.window.front()
            && !group.is_in_period(now, at)
        {
            group.window.pop_front();
        }
        group.window.push_back(now);
        let restarts = group.window.len() as u32;
        let intensity = group.def.intensity?;
        if restarts <= intensity {
            return None;
        }
        group.window.clear();
        let group = &self.groups[g].def;
        Some(GaveUp {
            group: group.name.clone(),
            restarts,
            period: group.period,
            intensity,
            escalated_to: group.parent.map(|p| self.groups[p].def.name.clone()),
        })
    }

    /// The services group `g`'s strategy restarts when `child` failed,
    /// without `origin`, in reverse start order.
    fn restart_set(&self, g: usize, child: Child, origin: usize) -> Vec<usize> {
        let group = &self.groups[g].def;
        let mut set = Vec::new();
        match group.strategy {
            Strategy::OneForOne => self.services_under(child, &mut set),
            Strategy::OneForAll => self.services_under(Child::Group(g), &mut set),
            Strategy::RestForOne => {
                let from = match child {
                    Child::Service(s) => self.service_pos[s],
                    Child::Group(h) => self.group_pos[h],
                };
                for &c in group.children.iter().skip(from) {
                    self.services_under(c, &mut set);
                }
            }
        }
        set.retain(|&s| s != origin);
        set.sort_unstable_by_key(|&s| Reverse(self.graph.rank[s]));
        set
    }

    fn services_under(&self, child: Child, out: &mut Vec<usize>) {
        match child {
            Child::Service(s) => out.push(s),
            Child::Group(g) => {
                for &c in &self.groups[g].def.children {
                    self.services_under(c, out);
                }
            }
        }
    }

    /// A tree built anew (a reload) keeps the restart windows of the groups
    /// it shares with `old`, by name: a group that was giving up still is.
    pub fn keep_windows(&mut self, old: &Tree) {
        for g in &mut self.groups {
            if let Some(o) = old.groups.iter().find(|o| o.def.name == g.def.name) {
                g.window = o.window.clone();
            }
        }
    }

    /// Every group with its restarts within the period at `now`, for status.
    pub fn groups(&self, now: Instant) -> impl Iterator<Item = GroupView<'_>> {
        self.groups
            .iter()
            .enumerate()
            .map(move |(index, g)| GroupView {
                index,
                name: &g.def.name,
                parent: g.def.parent.map(|p| self.groups[p].def.name.as_str()),
                strategy: g.def.strategy,
                intensity: g.def.intensity,
                period: g.def.period,
                restarts_in_period: g.restarts_in_period(now),
                children: &g.def.children,
            })
    }
}

fn fmt_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A group for tests: period 30 s.
#[cfg(test)]
fn group(
    name: &str,
    strategy: Strategy,
    intensity: Option<u32>,
    parent: Option<usize>,
    children: Vec<Child>,
) -> GroupDef {
    GroupDef {
        name: name.into(),
        strategy,
        intensity,
        period: Duration::from_secs(30),
        parent,
        children,
    }
}

#[cfg(test)]
mod tests;
