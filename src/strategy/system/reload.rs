//! A reload, as the core sees it: a new tree, new configurations for some
//! services, services to add and services to retire.
//!
//! Services keep their index for the daemon's life: an added one takes the
//! next index; a removed one is stopped (in reverse dependency order, as at
//! shutdown) and stays in its slot, retired — out of the tree, never
//! started again, not shown.

use std::time::Instant;

use super::{Event, Out, Queue, System};
use crate::strategy::machine::{Config, Phase, Service};
use crate::strategy::tree::Tree;

#[derive(Debug)]
pub struct Reconfigure {
    /// The new tree over every index, the added ones included; retired
    /// services hang off the root with no dependencies and no siblings.
    pub tree: Tree,
    /// New configurations of existing services; with a reason, the running
    /// primary restarts to take it.
    pub changed: Vec<(usize, Config, Option<String>)>,
    /// Appended, in order: their indices follow the existing ones.
    pub added: Vec<Config>,
    pub removed: Vec<usize>,
    pub exit_on_critical: bool,
}

impl System {
    /// Whether a reload removed `i`.
    pub fn is_retired(&self, i: usize) -> bool {
        self.retire.has(i)
    }

    /// A reload removed `i` and it is down: it is gone for good.
    pub fn is_gone(&self, i: usize) -> bool {
        self.retire.has(i) && !self.retire.holds(i)
    }

    /// A removed service still has a process.
    pub fn retiring(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.services.len()).filter(|&i| self.retire.holds(i))
    }

    pub fn reconfigure(&mut self, now: Instant, r: Reconfigure) -> Out {
        let mut queue = Queue::new();
        let mut out = Out::new();
        let old = std::mem::replace(&mut self.tree, r.tree);
        self.tree.keep_windows(&old);
        self.exit_on_critical = r.exit_on_critical;
        let mut removing = vec![false; self.services.len()];
        for &i in &r.removed {
            removing[i] = true;
        }
        let leaving = |s: &System, j: usize| removing[j] || s.retire.holds(j);
        for &i in &r.removed {
            let deps = old.deps(i).iter().map(|&(j, _)| j);
            let deps = deps.filter(|&j| leaving(self, j)).collect();
            self.retire.join(i, deps);
        }
        for (i, config, restart) in r.changed {
            let actions = self.services[i].reconfigure(now, config, restart, &mut self.ctx);
            out.extend(actions.into_iter().map(|a| (i, a)));
        }
        for config in r.added {
            let i = self.services.len();
            self.services.push(Service::new(i, config));
        }
        self.retire.grow(self.services.len());
        let order: Vec<usize> = self.tree.order().iter().rev().copied().collect();
        for i in self.retire.tell(order.into_iter()) {
            queue.push_back((i, Event::Shutdown));
        }
        // Added services, and any whose dependencies changed, start as the
        // new tree allows.
        for k in 0..self.tree.order().len() {
            let i = self.tree.order()[k];
            let waiting = self.services[i].phase == Phase::Waiting;
            if waiting && self.services[i].wants_start() && !self.retire.has(i) {
                self.gate(i, &mut queue);
            }
        }
        while let Some((i, event)) = queue.pop_front() {
            self.step(now, i, event, &mut queue, &mut out);
        }
        out
    }
}
