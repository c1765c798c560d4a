//! What sentineld does with a signal sent to it, and the status it exits
//! with: the rules of a container's init (PID 1) and of a systemd service,
//! which hold wherever it runs.
//!
//! Every catchable signal whose default action would end the process is
//! caught — as PID 1 the kernel drops the ones left at their default, and
//! anywhere else one would kill sentineld with its services still running.
//! A signal with no use of its own stops every service in dependency order
//! first, then sentineld exits `128 + n`, the status a process killed by it
//! reports. The faults a process raises against itself (SIGSEGV, SIGBUS,
//! SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGTRAP) are left at their default: they
//! are a bug or a debugger, not a request.

/// What to do with one signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A child changed state: reap.
    Reap,
    /// Stop every service in dependency order, then exit 0 — or 1 when the
    /// system ended CRITICAL. SIGTERM (`podman stop`, `kubectl delete`,
    /// systemd), SIGINT (Ctrl-C), SIGPWR (LXC's halt) and SIGRTMIN+3
    /// (systemd's halt, the STOPSIGNAL of systemd images).
    Shutdown,
    /// Read the services file again (SIGHUP).
    Reload,
    /// Pass it on to the services that list it in `forward_signals`.
    Forward,
    /// No use for it here: stop every service, then exit `128 + n`.
    Fatal,
}

/// The signals a service may ask to have forwarded. The others have a
/// meaning to sentineld itself (TERM and INT stop it, HUP reloads it).
pub const FORWARDABLE: [i32; 3] = [libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH];

/// The offset of systemd's halt signal from SIGRTMIN.
const RT_HALT: i32 = 3;

/// What `sig` means to sentineld; `None` for a signal left at its default
/// (the self-inflicted faults, job control, SIGPIPE ignored by the runtime).
/// `rtmin` is the C library's SIGRTMIN (glibc keeps the first two).
pub fn action(sig: i32, rtmin: i32) -> Option<Action> {
    Some(match sig {
        libc::SIGCHLD => Action::Reap,
        libc::SIGTERM | libc::SIGINT | libc::SIGPWR => Action::Shutdown,
        s if s == rtmin + RT_HALT => Action::Shutdown,
        libc::SIGHUP => Action::Reload,
        s if FORWARDABLE.contains(&s) => Action::Forward,
        libc::SIGQUIT
        | libc::SIGALRM
        | libc::SIGVTALRM
        | libc::SIGPROF
        | libc::SIGXCPU
        | libc::SIGXFSZ
        | libc::SIGSTKFLT
        | libc::SIGIO => Action::Fatal,
        s if s >= rtmin && s <= libc::SIGRTMAX() => Action::Fatal,
        _ => return None,
    })
}

/// Every signal [`action`] gives a use to, in number order.
pub fn handled(rtmin: i32) -> Vec<i32> {
    (1..=libc::SIGRTMAX())
        .filter(|&s| action(s, rtmin).is_some())
        .collect()
}

/// Why the daemon is stopping, as far as its exit status is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Not stopping yet.
    #[default]
    Running,
    /// Asked to: `down`, SIGTERM, SIGINT, an inbox closed.
    Asked,
    /// A signal it has no use for.
    Signal(i32),
}

impl Ending {
    /// The first reason wins: a SIGQUIT during a `down` does not change
    /// what the exit says, nor a `down` during a SIGQUIT's shutdown.
    pub fn then(self, next: Ending) -> Ending {
        match self {
            Ending::Running => next,
            first => first,
        }
    }
}

/// The daemon's exit status: `128 + n` after a signal it had no use for;
/// else 1 if the system ended CRITICAL (the root gave up); else 0.
pub fn exit_status(ending: Ending, critical: bool) -> i32 {
    match ending {
        Ending::Signal(n) => 128 + n,
        _ if critical => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RTMIN: i32 = 34;

    #[test]
    fn stop_signals_of_runtimes_and_init_systems_shut_down() {
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGPWR, RTMIN + 3] {
            assert_eq!(action(sig, RTMIN), Some(Action::Shutdown), "{sig}");
        }
    }

    #[test]
    fn hup_reloads_and_the_forwardable_ones_forward() {
        assert_eq!(action(libc::SIGHUP, RTMIN), Some(Action::Reload));
        for sig in FORWARDABLE {
            assert_eq!(action(sig, RTMIN), Some(Action::Forward));
        }
        assert_eq!(action(libc::SIGCHLD, RTMIN), Some(Action::Reap));
    }

    #[test]
    fn signals_that_would_end_a_process_are_fatal_but_faults_stay_default() {
        for sig in [
            libc::SIGQUIT,
            libc::SIGALRM,
            libc::SIGXCPU,
            RTMIN,
            RTMIN + 4,
        ] {
            assert_eq!(action(sig, RTMIN), Some(Action::Fatal), "{sig}");
        }
        for sig in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGABRT,
            libc::SIGSYS,
            libc::SIGTRAP,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGTSTP,
            libc::SIGPIPE,
            libc::SIGURG,
        ] {
            assert_eq!(action(sig, RTMIN), None, "{sig}");
        }
        // glibc's own two realtime signals are below SIGRTMIN.
        assert_eq!(action(RTMIN - 1, RTMIN), None);
    }

    #[test]
    fn every_handled_signal_has_an_action_and_none_is_forbidden() {
        let all = handled(RTMIN);
        assert!(all.contains(&libc::SIGTERM) && all.contains(&libc::SIGCHLD));
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        for forbidden in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGILL] {
            assert!(!all.contains(&forbidden));
        }
    }

    #[test]
    fn exit_status_is_128_plus_the_signal_then_critical_then_zero() {
        assert_eq!(exit_status(Ending::Asked, false), 0);
        assert_eq!(exit_status(Ending::Running, false), 0);
        assert_eq!(exit_status(Ending::Asked, true), 1);
        assert_eq!(exit_status(Ending::Signal(libc::SIGQUIT), true), 131);
        assert_eq!(exit_status(Ending::Signal(libc::SIGALRM), false), 142);
    }

    #[test]
    fn the_first_reason_to_stop_is_the_one_reported() {
        let quit = Ending::Signal(libc::SIGQUIT);
        assert_eq!(Ending::Running.then(quit), quit);
        assert_eq!(quit.then(Ending::Asked), quit);
        assert_eq!(Ending::Asked.then(quit), Ending::Asked);
    }
}
