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
use super::spawn::KernelSigaction;
use crate::strategy::machine::Phase;
use crate::strategy::signals::{self, Action, Ending};

/// Every signal sentineld gives a use to, as a stream on the event loop.
pub(super) struct Signals(SignalsInfo<WithOrigin>);

impl Signals {
    /// Take over every signal sentineld has a use for, then let through
    /// those [`hold`] kept waiting (they are delivered now).
    pub(super) fn catch() -> std::io::Result<Signals> {
        let wanted = signals::handled(libc::SIGRTMIN());
        let caught = SignalsInfo::with_exfiltrator(wanted, WithOrigin::default()).map(Signals)?;
        // SAFETY: a valid set; this is the loop's thread.
        unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &held(), std::ptr::null_mut()) };
        Ok(caught)
    }

    /// The next signal; signal-hook merges repeats of one still pending.
    pub(super) async fn next(&mut self) -> Option<Origin> {
        std::future::poll_fn(|cx| Pin::new(&mut self.0).poll_next(cx)).await
    }
}

/// Every signal [`Signals::catch`] takes over but SIGCHLD (blocked for
/// good in every thread, for the signalfd).
fn held() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes the set; sigaddset takes valid numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in signals::handled(libc::SIGRTMIN()) {
            if sig != libc::SIGCHLD {
                libc::sigaddset(&mut set, sig);
            }
        }
        set
    }
}

/// Hold every signal sentineld has a use for until [`Signals::catch`] has
/// its handlers in place: as PID 1 one left at its default is dropped by
/// the kernel (a `podman stop` right after the start would be lost, and the
/// services started anyway), anywhere else it would end sentineld before it
/// could stop anything. `up` calls it first, before any thread exists, so
/// every thread inherits the mask; `catch` lets them through in the loop's.
///
/// Signal 32, which glibc keeps for itself (its `sigaction` refuses it) and
/// no one else sends, is ignored where it is at its default: it would end
/// sentineld without a shutdown. Services get it back at its default.
pub fn hold() {
    // SAFETY: a valid set; no thread exists yet.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &held(), std::ptr::null_mut()) };
    ignore_sigcancel();
}

/// Undo [`hold`] in a process that will not supervise (`up -d`'s launcher,
/// which only waits for the daemon to say it is ready).
pub fn release() {
    // SAFETY: a valid set.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &held(), std::ptr::null_mut()) };
}

/// Signal 32 to SIG_IGN by the raw system call, if nothing handles it.
fn ignore_sigcancel() {
    const SIGCANCEL: libc::c_long = 32;
    let mut old = KernelSigaction::of(libc::SIG_DFL);
    let ignore = KernelSigaction::of(libc::SIG_IGN);
    let none = std::ptr::null::<KernelSigaction>();
    // SAFETY: valid pointers to kernel sigaction structs, the kernel's
    // sigset size; the first call only reads.
    unsafe {
        let read = libc::syscall(libc::SYS_rt_sigaction, SIGCANCEL, none, &mut old, 8usize);
        if read == 0 && old.handler == libc::SIG_DFL {
            libc::syscall(libc::SYS_rt_sigaction, SIGCANCEL, &ignore, none, 8usize);
        }
    }
}

/// Whether `sig` stops sentineld.
fn stops(sig: i32) -> bool {
    matches!(
        signals::action(sig, libc::SIGRTMIN()),
        Some(Action::Shutdown | Action::Fatal)
    )
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

/// `SIGRTMIN+3` for a realtime signal; else the name every event uses
/// ([`crate::strategy::classify::signal_name`]).
pub(super) fn signal_name(sig: i32) -> String {
    let rtmin = libc::SIGRTMIN();
    match sig >= rtmin {
        true => format!("SIGRTMIN+{}", sig - rtmin),
        false => crate::strategy::classify::signal_name(sig),
    }
}

impl Daemon {
    /// Carry out what a signal sent to sentineld means.
    pub(super) fn on_signal(&mut self, origin: Origin, now: Instant) {
        let sig = origin.signal;
        match signals::action(sig, libc::SIGRTMIN()) {
            Some(Action::Reap) => reaper::reap_all(self, now),
            _ if self.system.shutting_down() && stops(sig) => {
                // The first reason to stop is the one the exit reports.
                tracing::info!("{}: already stopping all services", describe(&origin));
            }
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
            Some(Action::Forward) => self.forward(&origin, now),
            None => {}
        }
    }

    /// Stop every service, remembering why for the exit status.
    pub(super) fn stop_for(&mut self, why: Ending, now: Instant) {
        self.ending = self.ending.then(why);
        self.begin_shutdown(now);
    }

    /// Pass the signal to the main process of each running service that
    /// lists it in `forward_signals`.
    fn forward(&mut self, origin: &Origin, now: Instant) {
        let (sig, name) = (origin.signal, describe(origin));
        let mut sent = 0;
        for i in 0..self.rt.len() {
            if !self.rt[i]
                .spec
                .forward_signals
                .iter()
                .any(|&s| s as i32 == sig)
            {
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
