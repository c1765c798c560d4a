//! One handler per control verb. Reads answer from the state at once;
//! start, stop, restart and reset go to the service's machine with a
//! ticket, and the machine answers when the outcome is known.

use std::time::Instant;

use tokio::sync::oneshot;

use super::daemon::Daemon;
use crate::config::units::{SUGGEST_MAX, did_you_mean};
use crate::control::connection;
use crate::control::protocol::{ErrorKind, Request, Response};
use crate::control::server::{Incoming, Reply};
use crate::strategy::machine::{Event, Phase, Verb};
use crate::strategy::system::Input;

impl Daemon {
    pub(super) fn handle(&mut self, incoming: Incoming, now: Instant) {
        let Incoming { request, reply } = incoming;
        match request {
            Request::Ping => {
                let _ = reply.send(
                    Response::Pong {
                        pid: std::process::id(),
                        version: env!("CARGO_PKG_VERSION").into(),
                    }
                    .into(),
                );
            }
            Request::Status { name, brief } => {
                let line = match self.status_line(name.as_deref(), brief, now) {
                    Ok(line) => line,
                    Err(e) => return drop(reply.send((*e).into())),
                };
                let _ = reply.send(big_reply(line));
            }
            Request::Metrics => {
                let text = crate::report::metrics::render(self.metrics_snapshot(now));
                let line = connection::to_line(&Response::Metrics { text });
                let _ = reply.send(big_reply(line));
            }
            Request::Events {
                name,
                follow,
                since,
            } => self.events(name, follow, since, reply),
            Request::Health => {
                let _ = reply.send(Response::Health(self.health(now)).into());
            }
            Request::Start { name } => self.verb(&name, Verb::Start, reply, now),
            Request::Stop { name } => self.verb(&name, Verb::Stop, reply, now),
            Request::Restart { name } => self.verb(&name, Verb::Restart, reply, now),
            Request::Reset { name } => self.verb(&name, Verb::Reset, reply, now),
            Request::Signal { name, signal } => {
                let _ = reply.send(self.signal_main(&name, &signal, now).into());
            }
            Request::Reload { dry_run } => self.reload(dry_run, Some(reply)),
            Request::Down => {
                self.down_waiters.push(reply);
                self.feed(now, Input::Shutdown);
            }
        }
    }

    /// A `status` reply as its line: the table's rows (`brief`) or every
    /// field, of one service or all.
    fn status_line(
        &self,
        name: Option<&str>,
        brief: bool,
        now: Instant,
    ) -> Result<Vec<u8>, Box<Response>> {
        if !brief {
            return match self.status(name, now) {
                e @ Response::Error { .. } => Err(Box::new(e)),
                r => Ok(connection::to_line(&r)),
            };
        }
        Ok(self.brief_line(&self.picked(name)?, now))
    }

    /// A service by name, or the error that answers an unknown one.
    pub(super) fn named(&self, name: &str) -> Result<usize, Box<Response>> {
        self.find(name).ok_or_else(|| Box::new(self.unknown(name)))
    }

    /// A service a reload removed that is still stopping, by name.
    pub(super) fn retiring_named(&self, name: &str) -> Option<usize> {
        self.system
            .retiring()
            .find(|&i| self.rt[i].spec.name == name)
    }

    #[cold]
    fn unknown(&self, name: &str) -> Response {
        if self.retiring_named(name).is_some() {
            let message = format!("{name}: removed by a reload, and stopping");
            return Response::error(ErrorKind::Conflict, message);
        }
        let live = (0..self.rt.len()).filter(|&i| !self.system.is_retired(i));
        let hint = did_you_mean(name, live.map(|i| self.rt[i].spec.name.as_str()));
        let shown: String = name.chars().take(SUGGEST_MAX).collect();
        let more = if shown.len() < name.len() { "…" } else { "" };
        Response::error(
            ErrorKind::UnknownService,
            format!("unknown service {shown:?}{more}{hint}"),
        )
    }

    fn verb(&mut self, name: &str, verb: Verb, reply: oneshot::Sender<Reply>, now: Instant) {
        let i = match self.named(name) {
            Ok(i) => i,
            Err(e) => {
                let _ = reply.send((*e).into());
                return;
            }
        };
        if self.system.shutting_down() {
            let e = Response::error(ErrorKind::Conflict, "sentineld is shutting down");
            let _ = reply.send(e.into());
            return;
        }
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(ticket, reply);
        self.feed(now, Input::Event(i, Event::Request(ticket, verb)));
    }

    /// `signal NAME SIG`: to the running primary's main process only, as
    /// `kill -HUP $MAINPID` would; what the process makes of it is its own
    /// (an exit is then handled like any other).
    fn signal_main(&mut self, name: &str, signal: &str, now: Instant) -> Response {
        let i = match self.named(name) {
            Ok(i) => i,
            Err(e) => return *e,
        };
        let sig = match crate::config::units::parse_signal(signal) {
            Ok(sig) => sig,
            Err(e) => return Response::error(ErrorKind::BadRequest, e),
        };
        let svc = &self.system.services[i];
        let Phase::Running { pid, .. } = svc.phase else {
            let state = svc.state_name();
            let msg = format!("{name} has no main process to signal: {state}");
            return Response::error(ErrorKind::Conflict, msg);
        };
        // SAFETY: plain syscall; `pid` is our child, running and not
        // reaped (the machine would not say Running otherwise).
        if unsafe { libc::kill(pid, sig as i32) } != 0 {
            let e = std::io::Error::last_os_error();
            return Response::error(ErrorKind::Internal, format!("kill {pid}: {e}"));
        }
        let message = format!("{} sent to {name} (pid {pid}) by request", sig.as_str());
        self.note(i, "signal", message.clone(), now);
        Response::done(message)
    }

    fn events(
        &mut self,
        name: Option<String>,
        follow: bool,
        since: Option<u64>,
        reply: oneshot::Sender<Reply>,
    ) {
        if let Some(n) = &name
            && let Err(e) = self.named(n)
        {
            let _ = reply.send((*e).into());
            return;
        }
        let missed = since.is_some_and(|id| self.journal.missed_after(id));
        // Missed: every event kept is after the reader's (an id from an
        // earlier run is not).
        let after = if missed { 0 } else { since.unwrap_or(0) };
        let of = self.journal.of(name.as_deref());
        let events = of.filter(|e| e.id > after).cloned().collect();
        let _ = reply.send(Reply {
            response: Response::Events { events, missed },
            line: None,
            stream: follow.then(|| (self.journal.subscribe(), name)),
        });
    }
}

/// A reply already written as its line, counted against the bytes all
/// replies may hold; `busy` when there is no room.
fn big_reply(line: Vec<u8>) -> Reply {
    match connection::reserve(line) {
        Some(line) => Reply {
            response: Response::done(String::new()),
            line: Some(line),
            stream: None,
        },
        None => connection::too_many_replies().into(),
    }
}
