//! Failure → severity: the service's `classify` rules (first match wins),
//! then the default table of DESIGN §3.

pub use super::limits::Resource;
pub use super::policy::Severity;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The main process exited with a non-zero code.
    Exit(i32),
    /// The main process was killed by a signal that sentineld did not send.
    Signal(i32),
    /// Killed by the kernel's OOM killer.
    OomKill,
    /// The liveness probe failed `failure_threshold` times.
    Liveness,
    /// Not ready within `start_timeout`.
    ReadinessTimeout,
    /// A forking service's launcher exited 0, but no daemon was found.
    NoDaemon,
    /// fork or exec failed (errno), e.g. ENOENT, EACCES, or a resource
    /// shortage: EMFILE, ENFILE, EAGAIN, ENOMEM.
    Spawn(i32),
    /// The `pre_start` command failed (or was killed at its time limit):
    /// the configuration it checks is broken, the primary was not started.
    PreStart(super::restart::ExitStatus),
    /// A `limits:` figure was exceeded (the runtime's sampler measured it).
    Limit(Resource),
}

impl Cause {
    /// `exit 1`, `SIGSEGV`, `spawn ENOENT`: for events, status and the
    /// `SENTINELD_CAUSE` variable.
    pub fn describe(&self) -> String {
        match self {
            Cause::Exit(c) => format!("exit {c}"),
            Cause::Signal(s) => signal_name(*s),
            Cause::OomKill => "oom kill".into(),
            Cause::Liveness => "liveness probe failed".into(),
            Cause::ReadinessTimeout => "readiness timeout".into(),
            Cause::NoDaemon => "no daemon".into(),
            Cause::Spawn(errno) => format!(
                "spawn failed: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            Cause::PreStart(status) => format!("pre-start failed: {}", status_words(*status)),
            Cause::Limit(r) => format!("{} limit exceeded", r.as_str()),
        }
    }
}

fn status_words(status: super::restart::ExitStatus) -> String {
    match status {
        super::restart::ExitStatus::Code(c) => format!("exit {c}"),
        super::restart::ExitStatus::Signal(s) => signal_name(s),
    }
}

pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_string())
}

/// One `classify` rule. Every condition given must hold.
#[derive(Debug, Clone)]
pub struct Rule {
    pub exit_codes: Vec<i32>,
    pub signals: Vec<i32>,
    pub output_matches: Option<regex::bytes::Regex>,
    /// `limits: [memory, cpu]`: a limit exceeded on one of these.
    pub limits: Vec<Resource>,
    pub severity: Severity,
}

impl Rule {
    fn matches(&self, cause: &Cause, output: &[u8]) -> bool {
        if !self.exit_codes.is_empty()
            && !matches!(cause, Cause::Exit(c) if self.exit_codes.contains(c))
        {
            return false;
        }
        if !self.signals.is_empty()
            && !matches!(cause, Cause::Signal(s) if self.signals.contains(s))
        {
            return false;
        }
        if !self.limits.is_empty() && !matches!(cause, Cause::Limit(r) if self.limits.contains(r)) {
            return false;
        }
        if let Some(re) = &self.output_matches
            && !re.is_match(output)
        {
            return false;
        }
        true
    }
}

/// The severity of `cause` and the index of the rule that decided it
/// (`None`: the default table). `output` is the tail of the service's output.
pub fn classify(cause: &Cause, rules: &[Rule], output: &[u8]) -> (Severity, Option<usize>) {
    match rules.iter().position(|r| r.matches(cause, output)) {
        Some(i) => (rules[i].severity, Some(i)),
        None => (default_severity(cause), None),
    }
}

/// Phrases of causes that clear by themselves (a port still held by the
/// process before, a backend not up yet), matched case-insensitively in
/// the last line a process printed.
pub const PLAINLY_TRANSIENT: [&str; 7] = [
    "address already in use",
    "eaddrinuse",
    "connection refused",
    "econnrefused",
    "resource temporarily unavailable",
    "temporary failure in name resolution",
    "network is unreachable",
];

/// The phrase that makes a failure plainly transient: an exit the default
/// table calls TRANSIENT (no rule of the service's decided it) whose
/// last non-empty output line says one of [`PLAINLY_TRANSIENT`].
pub fn waits_on(cause: &Cause, rule: Option<usize>, output: &[u8]) -> Option<&'static str> {
    if rule.is_some() || !matches!(cause, Cause::Exit(_)) {
        return None;
    }
    if default_severity(cause) != Severity::Transient {
        return None;
    }
    let lower = super::text::last_line(output)?.to_ascii_lowercase();
    PLAINLY_TRANSIENT.into_iter().find(|p| lower.contains(p))
}

/// DESIGN §3's table.
pub fn default_severity(cause: &Cause) -> Severity {
    use libc::*;
    match *cause {
        // Out of descriptors, processes or memory: the shortage may clear,
        // the service is not broken.
        Cause::Spawn(EMFILE | ENFILE | EAGAIN | ENOMEM) => Severity::Transient,
        Cause::Spawn(_) => Severity::Critical,
        Cause::PreStart(_) => Severity::Critical,
        Cause::Exit(126 | 127) => Severity::Critical,
        Cause::Exit(75) => Severity::Transient,
        Cause::Exit(64..=78) => Severity::Critical,
        Cause::Exit(_) => Severity::Transient,
        Cause::Signal(SIGSEGV | SIGBUS | SIGABRT | SIGILL | SIGFPE) => Severity::Recoverable,
        Cause::OomKill | Cause::Liveness => Severity::Recoverable,
        // A leak or a runaway loop: restart, with the cleanup.
        Cause::Limit(_) => Severity::Recoverable,
        Cause::ReadinessTimeout => Severity::Recoverable,
        // A launcher whose daemon is not there: it failed as it started.
        Cause::NoDaemon => Severity::Transient,
        Cause::Signal(_) => Severity::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table() {
        let cases = [
            (Cause::Spawn(libc::ENOENT), Severity::Critical),
            (Cause::Spawn(libc::EACCES), Severity::Critical),
            (Cause::Spawn(libc::ENOEXEC), Severity::Critical),
            (Cause::Spawn(libc::EMFILE), Severity::Transient),
            (Cause::Spawn(libc::ENFILE), Severity::Transient),
            (Cause::Spawn(libc::EAGAIN), Severity::Transient),
            (Cause::Spawn(libc::ENOMEM), Severity::Transient),
            (Cause::Exit(126), Severity::Critical),
            (Cause::Exit(127), Severity::Critical),
            (Cause::Exit(64), Severity::Critical),
            (Cause::Exit(78), Severity::Critical),
            (Cause::Exit(75), Severity::Transient),
            (Cause::Exit(1), Severity::Transient),
            (Cause::Exit(2), Severity::Transient),
            (Cause::Exit(63), Severity::Transient),
            (Cause::Exit(79), Severity::Transient),
            (Cause::Exit(255), Severity::Transient),
            (Cause::Signal(libc::SIGSEGV), Severity::Recoverable),
            (Cause::Signal(libc::SIGBUS), Severity::Recoverable),
            (Cause::Signal(libc::SIGABRT), Severity::Recoverable),
            (Cause::Signal(libc::SIGILL), Severity::Recoverable),
            (Cause::Signal(libc::SIGFPE), Severity::Recoverable),
            (Cause::OomKill, Severity::Recoverable),
            (Cause::Liveness, Severity::Recoverable),
            (Cause::Signal(libc::SIGKILL), Severity::Transient),
            (Cause::Signal(libc::SIGTERM), Severity::Transient),
            (Cause::Limit(Resource::Memory), Severity::Recoverable),
            (Cause::Limit(Resource::Cpu), Severity::Recoverable),
        ];
        for (cause, want) in cases {
            assert_eq!(classify(&cause, &[], b""), (want, None), "{cause:?}");
        }
    }

    fn rule(codes: &[i32], sigs: &[i32], re: Option<&str>, severity: Severity) -> Rule {
        Rule {
            exit_codes: codes.to_vec(),
            signals: sigs.to_vec(),
            output_matches: re.map(|r| regex::bytes::Regex::new(r).unwrap()),
            limits: Vec::new(),
            severity,
        }
    }

    #[test]
    fn a_limits_rule_matches_only_a_limit_it_names() {
        let mut memory = rule(&[], &[], None, Severity::Transient);
        memory.limits = vec![Resource::Memory];
        let rules = [memory];
        let mem = Cause::Limit(Resource::Memory);
        assert_eq!(classify(&mem, &rules, b""), (Severity::Transient, Some(0)));
        let cpu = Cause::Limit(Resource::Cpu);
        assert_eq!(classify(&cpu, &rules, b""), (Severity::Recoverable, None));
        assert_eq!(
            classify(&Cause::Exit(1), &rules, b""),
            (Severity::Transient, None)
        );
        assert_eq!(mem.describe(), "memory limit exceeded");
        assert_eq!(cpu.describe(), "cpu limit exceeded");
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = [
            rule(
                &[1],
                &[],
                Some("address already in use"),
                Severity::Transient,
            ),
            rule(&[1], &[], None, Severity::Critical),
            rule(&[], &[libc::SIGSEGV], None, Severity::Critical),
        ];
        let out = b"bind: address already in use\n";
        assert_eq!(
            classify(&Cause::Exit(1), &rules, out),
            (Severity::Transient, Some(0))
        );
        assert_eq!(
            classify(&Cause::Exit(1), &rules, b"other"),
            (Severity::Critical, Some(1))
        );
        assert_eq!(
            classify(&Cause::Signal(libc::SIGSEGV), &rules, b""),
            (Severity::Critical, Some(2))
        );
        assert_eq!(
            classify(&Cause::Exit(2), &rules, out),
            (Severity::Transient, None)
        );
        // A signal rule never matches an exit, and the reverse.
        assert_eq!(
            classify(&Cause::Signal(1), &rules, out),
            (Severity::Transient, None)
        );
    }

    #[test]
    fn raising() {
        assert_eq!(Severity::Transient.raised(), Severity::Recoverable);
        assert_eq!(Severity::Recoverable.raised(), Severity::Critical);
        assert_eq!(Severity::Critical.raised(), Severity::Critical);
        assert!(Severity::Transient < Severity::Critical);
    }

    #[test]
    fn plainly_transient_is_the_last_line_of_a_transient_exit() {
        let bind = b"starting\nbind 127.0.0.1:8080: [Errno 98] Address already in use\n\n";
        type Case = (Cause, Option<usize>, &'static [u8], Option<&'static str>);
        let cases: [Case; 8] = [
            (Cause::Exit(1), None, bind, Some("address already in use")),
            (
                Cause::Exit(1),
                None,
                b"connect: ECONNREFUSED",
                Some("econnrefused"),
            ),
            // A rule of the service's decided: it is not second-guessed.
            (Cause::Exit(1), Some(0), bind, None),
            // Not the last line: an old message, not why it died.
            (
                Cause::Exit(1),
                None,
                b"connection refused\npanic: nil map\n",
                None,
            ),
            // A cause the default table does not call TRANSIENT.
            (Cause::Exit(78), None, bind, None),
            (Cause::Signal(libc::SIGSEGV), None, bind, None),
            (Cause::Liveness, None, bind, None),
            (Cause::Exit(1), None, b"", None),
        ];
        for (cause, rule, output, want) in cases {
            assert_eq!(waits_on(&cause, rule, output), want, "{cause:?} {output:?}");
        }
    }
}
