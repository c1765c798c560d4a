//! Every service's machine under one supervision tree: the pure core the
//! runtime drives.
//!
//! [`System::handle`] takes the time and one [`Input`] and returns the
//! actions to carry out, each for a service. Between the machines it routes
//! what they say to each other: a decided restart goes to the [`Tree`]
//! (siblings restart by strategy, intensity escalates, the root may give
//! up), a service that started, became ready or ended lets its dependents
//! go, and at shutdown services stop in parallel waves, each once
//! everything that depends on it is down.

use std::collections::VecDeque;
use std::time::Instant;

use super::machine::{Action, Context, Event, Phase, Record, Service};
use super::policy::RestartPolicy;
use super::text::describe_exit;
use super::tree::{DepView, Ended, Tree, Verdict, Wait};
use wave::Wave;

pub use reload::Reconfigure;

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Start every service, in order, as dependencies allow.
    StartAll,
    Event(usize, Event),
    /// Stop everything for good.
    Shutdown,
}

#[derive(Debug)]
pub struct System {
    pub services: Vec<Service>,
    pub tree: Tree,
    ctx: Context,
    /// Why the system is critical: the root's intensity was exceeded.
    pub critical: Option<String>,
    exit_on_critical: bool,
    pub exit_code: i32,
    shutdown: Option<Wave>,
    /// Services a reload removed: stopped in dependency order, then never
    /// started again.
    retire: Wave,
}

type Queue = VecDeque<(usize, Event)>;
type Out = Vec<(usize, Action)>;

fn tree_record(message: String) -> Action {
    Action::Record(Record {
        kind: "tree",
        message,
        severity: None,
        action: None,
        hook: false,
    })
}

impl System {
    pub fn new(services: Vec<Service>, tree: Tree, seed: u64, exit_on_critical: bool) -> System {
        System {
            services,
            tree,
            ctx: Context::new(seed),
            critical: None,
            exit_on_critical,
            exit_code: 0,
            shutdown: None,
            retire: Wave::default(),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Out {
        let mut queue = Queue::new();
        let mut out = Out::new();
        match input {
            Input::StartAll => {
                for k in 0..self.tree.order().len() {
                    let i = self.tree.order()[k];
                    if self.services[i].wants_start() {
                        self.gate(i, &mut queue);
                    }
                }
            }
            Input::Event(i, event) => queue.push_back((i, event)),
            Input::Shutdown => self.begin_shutdown(&mut queue),
        }
        while let Some((i, event)) = queue.pop_front() {
            self.step(now, i, event, &mut queue, &mut out);
        }
        out
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// Shut down and every process of every service gone.
    pub fn finished(&self) -> bool {
        self.shutdown.as_ref().is_some_and(|s| s.left == 0)
    }

    /// What `j`'s dependents see of it.
    pub fn view(&self, j: usize) -> DepView {
        let s = &self.services[j];
        let ended = match (&s.phase, s.last_exit) {
            (Phase::Exited, Some((st, _))) if !st.success() => {
                Some(Ended::Failed(describe_exit(st)))
            }
            (Phase::Exited, _) => Some(Ended::Completed),
            (Phase::Failed { reason }, _) => Some(Ended::Failed(reason.clone())),
            _ => None,
        };
        DepView {
            running: matches!(s.phase, Phase::Running { .. }),
            ready: s.ready == Some(true),
            ended,
        }
    }

    /// What `i` waits for before it may start, if anything.
    pub fn waiting_for(&self, i: usize) -> Option<Wait> {
        self.tree.waiting_for(i, |j| self.view(j))
    }

    fn step(&mut self, now: Instant, i: usize, event: Event, queue: &mut Queue, out: &mut Out) {
        let before = self.view(i);
        for action in self.services[i].on_event(now, event, &mut self.ctx) {
            match action {
                Action::AskTree => self.tree_restart(now, i, queue, out),
                other => out.push((i, other)),
            }
        }
        if self.services[i].wants_start() {
            self.gate(i, queue);
        }
        if self.view(i) != before {
            for k in 0..self.tree.dependents(i).len() {
                let d = self.tree.dependents(i)[k];
                if self.services[d].phase == Phase::Waiting {
                    self.gate(d, queue);
                }
            }
        }
        self.release_if_down(i, queue);
    }

    /// Let a waiting service start, or tell it what it waits for.
    fn gate(&mut self, i: usize, queue: &mut Queue) {
        if self.shutdown.is_some() || self.retire.has(i) {
            return;
        }
        let event = match self.waiting_for(i) {
            None => Event::Go,
            Some(w) => Event::Held {
                why: w.describe(&self.services[w.on].config.name),
                blocked: w.blocked.is_some(),
            },
        };
        queue.push_back((i, event));
    }

    /// A RECOVERABLE restart of `i` was decided: the tree accounts it.
    fn tree_restart(&mut self, now: Instant, i: usize, queue: &mut Queue, out: &mut Out) {
        match self.tree.on_restart(now, i) {
            Verdict::Restart {
                group,
                strategy,
                siblings,
                gave_up,
            } => {
                for g in &gave_up {
                    let to = g.escalated_to.as_deref().unwrap_or("root");
                    out.push((
                        i,
                        tree_record(format!("{}; escalating to {to}", g.describe())),
                    ));
                }
                let origin = &self.services[i].config.name;
                let message = format!(
                    "restarted with {origin} ({} in group {})",
                    strategy.as_str(),
                    self.tree.group_name(group)
                );
                for s in siblings {
                    if self.services[s].config.restart != RestartPolicy::Never {
                        let message = message.clone();
                        queue.push_back((s, Event::SiblingRestart { message }));
                    }
                }
                queue.push_back((i, Event::Proceed));
            }
            Verdict::RootGaveUp { gave_up } => {
                let last = gave_up.len().saturating_sub(1);
                for (k, g) in gave_up.iter().enumerate() {
                    let text = match &g.escalated_to {
                        Some(to) if k < last => format!("{}; escalating to {to}", g.describe()),
                        _ => format!("{}: the system is critical", g.describe()),
                    };
                    out.push((i, tree_record(text)));
                }
                self.critical = gave_up.last().map(|g| g.describe());
                if self.exit_on_critical {
                    self.exit_code = 1;
                    self.begin_shutdown(queue);
                } else {
                    let live = (0..self.services.len()).filter(|&s| !self.retire.has(s));
                    queue.extend(live.map(|s| (s, Event::RootGaveUp)).collect::<Vec<_>>());
                }
            }
        }
    }

    fn begin_shutdown(&mut self, queue: &mut Queue) {
        if self.shutdown.is_some() {
            return;
        }
        self.ctx.shutting_down = true;
        let mut sd = Wave::default();
        sd.grow(self.services.len());
        for i in 0..self.services.len() {
            sd.join(i, self.tree.deps(i).iter().map(|&(j, _)| j).collect());
        }
        let order = self.tree.order().iter().rev().copied();
        for i in sd.tell(order) {
            queue.push_back((i, Event::Shutdown));
        }
        self.shutdown = Some(sd);
    }

    /// `i` was told to stop and is down: what it depends on may stop once
    /// every other dependent is released too.
    fn release_if_down(&mut self, i: usize, queue: &mut Queue) {
        if !self.services[i].is_down() {
            return;
        }
        let waves = [self.shutdown.as_mut(), Some(&mut self.retire)];
        for wave in waves.into_iter().flatten() {
            for j in wave.release(i) {
                queue.push_back((j, Event::Shutdown));
            }
        }
    }
}

mod reload;
#[cfg(test)]
mod tests;
mod wave;
