//! The signals sent to sentineld itself, through signal-hook: what each
//! means is decided in [`crate::strategy::signals`]; here they are caught,
//! told to the log with who sent them, and carried out.

use std::pin::Pin;
use std::time::Instant;

use futures_core::Stream;
use signal_hook::iterator::exfiltrator::origin::WithOrigin;
use signal_hook::low_level::siginfo::Origin;
use signal_hook_tokio::SignalsInfo;

use super::daemon::Daemon;
use super::reaper;
use crate::strategy::machine::Phase;
use crate::strategy::signals::{self, Action, Ending};

/// Every signal sentineld gives a use to, as a stream on the event loop.
pub(super) struct Signals(SignalsInfo<WithOrigin>);

impl Signals {
    pub(super) fn catch() -> std::io::Result<Signals> {
        let wanted = signals::handled(libc::SIGRTMIN());
        SignalsInfo::with_exfiltrator(wanted, WithOrigin::default()).map(Signals)
    }

    /// The next signal; signal-hook merges repeats of one still pending.
    pub(super) async fn next(&mut self) -> Option<Origin> {
        std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_next(cx)).await
    }
}

/// `SIGTERM from pid 812 (uid 0)`, or without the sender when the kernel
/// sent it.
fn describe(origin: &Origin) -> String {
    let name = signal_name(origin.signal);
    match &origin.process {
        Some(p) if p.pid > 0 => format!("{name} from pid {} (uid {})", p.pid, p.uid),
        _ => name,
    }
}

/// `SIGTERM`, `SIGRTMIN+3`, or the number.
pub(super) fn signal_name(sig: i32) -> String {
    let rtmin = libc::SIGRTMIN();
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) if sig >= rtmin => format!("SIGRTMIN+{}", sig - rtmin),
        Err(_) => format!("signal {sig}"),
    }
}

impl Daemon {
    /// Carry out what a signal sent to sentineld means.
    pub(super) fn on_signal(&mut self, origin: Origin, now: Instant) {
        let sig = origin.signal;
        match signals::action(sig, libc::SIGRTMIN()) {
            Some(Action::Reap) => reaper::reap_all(self, now),
            Some(Action::Shutdown) => {
                tracing::info!("{}: stopping all services", describe(&origin));
                self.stop_for(Ending::Asked, now);
            }
            Some(Action::Fatal) => {
                let code = 128 + sig;
                let what = describe(&origin);
                tracing::warn!("{what}: no use for it; stopping all services, then exit {code}");
                self.stop_for(Ending::Signal(sig), now);
            }
            Some(Action::Reload) => {
                let file = self.reloads.file.display().to_string();
                tracing::info!("{}: reloading {file}", describe(&origin));
                self.reload(false, None);
            }
            Some(Action::Forward) => self.forward(sig, now),
            None => {}
        }
    }

    /// Stop every service, remembering why for the exit status.
    pub(super) fn stop_for(&mut self, why: Ending, now: Instant) {
        self.ending = self.ending.then(why);
        self.begin_shutdown(now);
    }

    /// Pass `sig` to the main process of each running service that lists
    /// it in `forward_signals`.
    fn forward(&mut self, sig: i32, now: Instant) {
        let name = signal_name(sig);
        let mut sent = 0;
        for i in 0..self.rt.len() {
            if !self.rt[i].spec.forward_signals.contains(&sig) {
                continue;
            }
            let Phase::Running { pid, .. } = self.system.services[i].phase else {
                continue;
            };
            // SAFETY: plain syscall; `pid` is our running, unreaped child.
            if unsafe { libc::kill(pid, sig) } == 0 {
                let message = format!("{name} forwarded to {} (pid {pid})", self.rt[i].spec.name);
                self.note(i, "signal", message, now);
                sent += 1;
            }
        }
        if sent == 0 {
            tracing::info!("{name}: no running service lists it in forward_signals; ignored");
        }
    }

    /// The status to exit with, once every service is down.
    pub(super) fn exit_status(&self) -> i32 {
        let critical = self.system.exit_code != 0 || self.system.critical.is_some();
        signals::exit_status(self.ending, critical)
    }
}
