//! Control requests (start, stop, restart, reset) and their answers. A
//! request is answered once the service has settled: up (or plainly not
//! staying up), down, or held by a dependency — never left waiting.

use std::time::Instant;

use super::{Action, Context, Phase, Reply, Service, Then, Ticket, Verb, Want};

impl Service {
    pub(super) fn request(&mut self, ticket: Ticket, verb: Verb, now: Instant, ctx: &mut Context) {
        if ctx.shutting_down && verb != Verb::Stop {
            let msg = format!("{}: sentineld is shutting down", self.config.name);
            self.out.push(Action::Reply(ticket, Reply::Conflict(msg)));
            return;
        }
        match verb {
            Verb::Start => self.start_request(ticket, now, ctx),
            Verb::Stop => {
                self.waiters.push((ticket, Want::Down));
                self.stop(Then::Stay, now, ctx);
            }
            Verb::Restart => {
                self.overtake_stops();
                self.waiters.push((ticket, Want::Up));
                match &mut self.phase {
                    // Queued: the primary starts once the cleanup is over.
                    Phase::Restarting { start_at } if self.cleanup.is_some() => *start_at = now,
                    Phase::Waiting => self.wants_start = true,
                    _ => {
                        self.ladder.young.clear();
                        self.stop(Then::Start, now, ctx);
                    }
                }
            }
            Verb::Reset => self.reset(ticket, now, ctx),
        }
    }

    fn start_request(&mut self, ticket: Ticket, now: Instant, ctx: &mut Context) {
        self.overtake_stops();
        self.waiters.push((ticket, Want::Up));
        match &mut self.phase {
            Phase::Running { .. } => {}
            // Applied after the current step; asked for by hand, so
            // without what is left of a restart's delay.
            Phase::Stopping { then, .. } => *then = Then::Start,
            Phase::Restarting { start_at } if self.cleanup.is_some() => *start_at = now,
            // Held or at rest: the tree says when, as for a restart.
            Phase::Waiting | Phase::Stopped | Phase::Exited | Phase::Failed { .. } => {
                self.ladder.young.clear();
                self.phase = Phase::Waiting;
                self.wants_start = true;
            }
            _ => {
                self.ladder.young.clear();
                self.spawn_primary(now, ctx);
            }
        }
    }

    /// A start overtakes the stops still waiting for the service to be
    /// down: it will not stay down, so their clients hear it now.
    fn overtake_stops(&mut self) {
        let name = &self.config.name;
        let msg = format!("{name}: not stopped: started again by a later request");
        let out = &mut self.out;
        self.waiters.retain(|&(ticket, want)| {
            if want == Want::Down {
                out.push(Action::Reply(ticket, Reply::Conflict(msg.clone())));
            }
            want != Want::Down
        });
    }

    /// `sentineld reset NAME`: as if the service had never failed; a
    /// service waiting on its recovery starts now.
    fn reset(&mut self, ticket: Ticket, now: Instant, ctx: &mut Context) {
        self.ladder.reset();
        self.level = super::super::risk::Level::Healthy;
        self.stats.episode = None;
        self.stats.attempt_pending = false;
        self.summary = None;
        let msg = "reset by request: breaker closed, failure history cleared".to_string();
        self.record("reset", msg);
        let waiting = matches!(
            self.phase,
            Phase::Quarantined { .. }
                | Phase::Retrying { .. }
                | Phase::Backoff { .. }
                | Phase::Failed { .. }
        ) || (matches!(self.phase, Phase::Restarting { .. })
            && self.cleanup.is_none());
        if waiting {
            self.waiters.push((ticket, Want::Reset));
            self.spawn_primary(now, ctx);
        } else {
            let name = &self.config.name;
            let msg = format!("{name} reset: breaker closed, failure history cleared");
            self.out.push(Action::Reply(ticket, Reply::Done(msg)));
        }
    }

    /// Whether the service is between steps that happen in one turn (a
    /// spawn or the tree's word pending): no answer is given then.
    fn in_transit(&self) -> bool {
        self.spawning[super::Role::Primary as usize]
            || self.pending_restart.is_some()
            || self.adopting
            || self.wants_start()
    }

    /// Answer every request whose outcome is known now.
    pub(super) fn settle(&mut self) {
        if self.waiters.is_empty() || self.in_transit() {
            return;
        }
        let mut k = 0;
        while k < self.waiters.len() {
            let (ticket, want) = self.waiters[k];
            match self.outcome(want) {
                Some(reply) => {
                    self.waiters.swap_remove(k);
                    self.out.push(Action::Reply(ticket, reply));
                }
                None => k += 1,
            }
        }
    }

    fn outcome(&self, want: Want) -> Option<Reply> {
        let name = &self.config.name;
        let state = self.state_name();
        let not_up = || {
            let why = self
                .summary
                .as_ref()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            Reply::Conflict(format!("{name} did not stay up: {state}{why}"))
        };
        Some(match (&self.phase, want) {
            // The primary starts once the fallback is gone (the hand-over).
            (_, Want::Up | Want::Reset) if self.handover => return None,
            (Phase::Running { pid, .. }, Want::Reset) => Reply::Done(format!(
                "{name} reset: breaker closed, primary started (pid {pid})"
            )),
            // The primary starts once the cleanup is over.
            (Phase::Restarting { .. }, Want::Reset) if self.cleanup.is_some() => return None,
            (_, Want::Reset) => Reply::Done(format!(
                "{name} reset, but the primary did not start: {state}"
            )),
            (Phase::Running { pid, .. }, Want::Up) => {
                Reply::Done(format!("{name} running (pid {pid})"))
            }
            (_, Want::Down) if self.is_down() => Reply::Done(format!("{name} stopped")),
            (_, Want::Down) => return None,
            (Phase::Failed { reason }, _) => Reply::Conflict(format!("{name}: {reason}")),
            (Phase::Waiting, Want::Up) => match &self.held {
                Some((why, true)) => Reply::Conflict(format!("{name} cannot start: {why}")),
                Some((why, false)) => {
                    Reply::Done(format!("{name} starts once it is no longer {why}"))
                }
                None => return None,
            },
            (
                Phase::Exited
                | Phase::Backoff { .. }
                | Phase::Retrying { .. }
                | Phase::Quarantined { .. }
                | Phase::Stopped,
                Want::Up,
            ) => not_up(),
            (_, Want::Up) => return None,
        })
    }

    /// The state's name as status shows it.
    pub fn state_name(&self) -> &'static str {
        let fallback = matches!(
            self.fallback,
            super::Fallback::Running {
                stopping: false,
                ..
            }
        );
        match self.phase {
            Phase::Waiting if self.held.as_ref().is_some_and(|(_, b)| *b) => "blocked",
            Phase::Stopping { .. } => "stopping",
            _ if fallback => "fallback",
            Phase::Waiting => "starting",
            Phase::Running { .. } => "running",
            Phase::Backoff { .. } => "backoff",
            Phase::Retrying { .. } => "retrying",
            Phase::Restarting { .. } => "restarting",
            Phase::Quarantined { .. } => "quarantined",
            Phase::Stopped => "stopped",
            Phase::Exited => "exited",
            Phase::Failed { .. } => "failed",
        }
    }
}
