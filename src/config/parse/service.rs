//! A service's own keys: command, cwd, env, env_file, user, restart, stop,
//! logs; the keys of its probes and recovery are read by their modules.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Parser, Section, check_name, join};
use crate::config::units::{self, words};
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

pub(super) const SERVICE_KEYS: &[&str] = &[
    "command",
    "cwd",
    "env",
    "env_file",
    "user",
    "type",
    "pid_file",
    "restart",
    "min_uptime",
    "pre_start",
    "pre_start_timeout",
    "stop",
    "logs",
    "classify",
    "recovery",
    "escalation",
    "sla",
    "on_event",
    "on_event_timeout",
    "webhook",
    "liveness",
    "readiness",
    "startup",
    "watchdog",
    "start_timeout",
    "depends_on",
    "limits",
    "forward_signals",
];

impl Parser<'_> {
    pub(super) fn services(&mut self, node: &Node) -> Vec<ServiceSpec> {
        let Some(entries) = self.entries(node, "services", "service names to services") else {
            return Vec::new();
        };
        if entries.is_empty() {
            self.err(node, "services", "no services declared");
        }
        let mut out: Vec<ServiceSpec> = Vec::new();
        // A set, not a list: 10,000 services are 50 million comparisons
        // in a list.
        let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for (k, val) in entries {
            let Some(name) = self.name(k, "services", "service") else {
                continue;
            };
            let path = format!("services.{name}");
            if !names.insert(name) {
                self.err(k, &path, format!("duplicate service name {name:?}"));
                continue;
            }
            if let Err(e) = check_name(name) {
                self.err(k, &path, e);
                continue;
            }
            if let Some(spec) = self.service(name, k, val, &path) {
                out.push(spec);
            }
        }
        out
    }

    fn service(&mut self, name: &str, key: &Node, node: &Node, path: &str) -> Option<ServiceSpec> {
        // Stands in until the command is read; a service without one is an error.
        let placeholder = Command::Exec(Vec::new());
        let mut spec = ServiceSpec::new(name, placeholder, self.base.to_path_buf());
        let mut env_file_vars = Vec::new();
        let mut ok = self.each_key(
            node,
            path,
            SERVICE_KEYS,
            &mut spec,
            |this, spec, key, val, p| {
                match key {
                    "env_file" => env_file_vars = this.env_file(val, p)?,
                    _ => this.service_key(spec, key, val, p)?,
                }
                Some(())
            },
        )?;
        if let (Some(file), ServiceType::Simple) = (node.get("pid_file"), spec.kind) {
            let msg = "a pid_file is read only for `type: forking` services";
            self.err(file, &join(path, "pid_file"), msg);
            ok = false;
        }
        if node.get("command").is_none() {
            self.err(
                key,
                &join(path, "command"),
                "missing: every service needs a command",
            );
            ok = false;
        }
        // Relative to the service's cwd, whichever key came first.
        spec.pid_file = spec.pid_file.take().map(|f| spec.cwd.join(f));
        let mut env: BTreeMap<String, String> = env_file_vars.into_iter().collect();
        env.extend(std::mem::take(&mut spec.env));
        spec.env = env;
        ok.then_some(spec)
    }

    /// One key of a service other than `env_file`, into `spec`.
    fn service_key(
        &mut self,
        spec: &mut ServiceSpec,
        key: &str,
        val: &Node,
        p: &str,
    ) -> Option<()> {
        let restart = words(RestartPolicy::ALL, RestartPolicy::as_str);
        match key {
            "command" => spec.command = self.command(val, p)?,
            "cwd" => spec.cwd = self.cwd(val, p)?,
            "env" => spec.env = self.env(val, p)?,
            "user" => spec.user = Some(self.user(val, p)?),
            "restart" => spec.restart = self.choice(val, p, &restart)?,
            "type" => {
                let kinds = words(ServiceType::ALL, ServiceType::as_str);
                spec.kind = self.choice(val, p, &kinds)?;
            }
            "pid_file" => spec.pid_file = Some(PathBuf::from(self.string(val, p)?)),
            "min_uptime" => spec.min_uptime = self.duration(val, p)?,
            "stop" => spec.stop = self.section(val, p)?,
            "logs" => spec.logs = self.section(val, p)?,
            "classify" => spec.classify = self.classify(val, p)?,
            "recovery" => spec.recovery = self.recovery(val, p)?,
            "escalation" => spec.escalation = self.section(val, p)?,
            "sla" => spec.sla = self.section(val, p)?,
            "on_event" => spec.on_event = Some(self.command(val, p)?),
            "pre_start" => spec.pre_start = Some(self.command(val, p)?),
            "pre_start_timeout" => spec.pre_start_timeout = self.positive_duration(val, p)?,
            "on_event_timeout" => spec.on_event_timeout = self.positive_duration(val, p)?,
            "webhook" => spec.webhook = Some(self.webhook(val, p)?),
            "liveness" => spec.liveness = Some(self.probe(val, p, false)?),
            "readiness" => spec.readiness = Some(self.probe(val, p, true)?),
            "startup" => spec.startup = Some(self.probe(val, p, false)?),
            "watchdog" => spec.watchdog = Some(self.positive_duration(val, p)?),
            "start_timeout" => spec.start_timeout = Some(self.positive_duration(val, p)?),
            "depends_on" => spec.depends_on = self.depends_on(val, p)?,
            "limits" => spec.limits = self.section(val, p)?,
            "forward_signals" => spec.forward_signals = self.forward_signals(val, p)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }

    /// `forward_signals: [USR1, WINCH]`: only the signals sentineld has no
    /// use of its own for; a repeat is no error.
    fn forward_signals(&mut self, node: &Node, path: &str) -> Option<Vec<Signal>> {
        use crate::strategy::signals::FORWARDABLE;
        let sigs = self.list(node, path, |this, v, p| {
            let sig = this.parsed(v, p, units::parse_signal)?;
            if FORWARDABLE.contains(&(sig as i32)) {
                return Some(sig);
            }
            let why = match sig {
                Signal::SIGTERM | Signal::SIGINT => "it stops sentineld",
                Signal::SIGHUP => "it reloads sentineld",
                _ => "sentineld does not catch it for its services",
            };
            let name = sig.as_str();
            let msg =
                format!("{name} cannot be forwarded: {why}; expected SIGUSR1, SIGUSR2 or SIGWINCH");
            this.err(v, p, msg);
            None
        })?;
        let mut out: Vec<Signal> = Vec::with_capacity(sigs.len());
        for sig in sigs {
            if !out.contains(&sig) {
                out.push(sig);
            }
        }
        Some(out)
    }

    pub(super) fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
        match &node.kind {
            NodeKind::Seq(items) => {
                if items.is_empty() {
                    self.err(
                        node,
                        path,
                        "empty command: give the program and its arguments",
                    );
                    return None;
                }
                let mut argv = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    argv.push(self.string(item, &format!("{path}[{i}]"))?);
                }
                if argv[0].trim().is_empty() {
                    self.err(&items[0], &format!("{path}[0]"), "empty program name");
                    return None;
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    self.err(node, path, "arguments cannot contain NUL bytes");
                    return None;
                }
                Some(Command::Exec(argv))
            }
            _ => {
                let s = self.string(node, path)?;
                if s.trim().is_empty() {
                    self.err(
                        node,
                        path,
                        "empty command: give a shell command line or a list",
                    );
                    return None;
                }
                if s.contains('\0') {
                    self.err(node, path, "the command cannot contain NUL bytes");
                    return None;
                }
                Some(Command::Shell(s))
            }
        }
    }

    fn cwd(&mut self, node: &Node, path: &str) -> Option<PathBuf> {
        let s = self.string(node, path)?;
        let dir: PathBuf = self
            .base
            .join(&s)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        if !dir.is_dir() {
            self.err(
                node,
                path,
                format!("directory {} does not exist", dir.display()),
            );
            return None;
        }
        Some(dir)
    }

    fn env(&mut self, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
        let entries = self.entries(node, path, "NAME: value")?;
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, val) in entries {
            let Some(key) = self.name(k, path, "variable") else {
                ok = false;
                continue;
            };
            let p = join(path, key);
            if !units::valid_env_name(key) {
                self.err(
                    k,
                    &p,
                    format!("invalid variable name {key:?}: use letters, digits and _"),
                );
                ok = false;
                continue;
            }
            if out.contains_key(key) {
                self.err(k, &p, "duplicate key");
                ok = false;
                continue;
            }
            let value = if val.is_null() {
                Some(String::new())
            } else {
                self.string(val, &p)
            };
            match value {
                Some(v) if v.contains('\0') => {
                    self.err(val, &p, "values cannot contain NUL bytes");
                    ok = false;
                }
                Some(v) => {
                    out.insert(key.clone(), v);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn env_file(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let s = self.string(node, path)?;
        let file = self.base.join(&s);
        let text = match crate::config::read::read_text(&file) {
            Ok(t) => t,
            Err(e) => {
                self.err(node, path, format!("cannot read {}: {e}", file.display()));
                return None;
            }
        };
        match units::parse_env_file(&text) {
            Ok(vars) => Some(vars),
            Err((line, msg)) => {
                self.err(node, path, format!("{}:{line}: {msg}", file.display()));
                None
            }
        }
    }

    fn user(&mut self, node: &Node, path: &str) -> Option<UserSpec> {
        let name = self.string(node, path)?;
        if self.ctx.euid != 0 {
            self.err(
                node,
                path,
                format!(
                    "running a service as another user needs root (sentineld runs as uid {})",
                    self.ctx.euid
                ),
            );
            return None;
        }
        let found = match name.parse::<u32>() {
            Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
            Err(_) => nix::unistd::User::from_name(&name),
        };
        match found {
            Ok(Some(u)) => Some(UserSpec {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            }),
            Ok(None) => {
                self.err(node, path, format!("unknown user {name:?}"));
                None
            }
            Err(e) => {
                self.err(node, path, format!("cannot look up user {name:?}: {e}"));
                None
            }
        }
    }
}

impl Section for StopSpec {
    const KEYS: &'static [&'static str] = &["signal", "timeout"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "signal" => self.signal = p.parsed(val, path, units::parse_signal)?,
            "timeout" => self.timeout = p.duration(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for LogSpec {
    const KEYS: &'static [&'static str] = &["max_size", "keep"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "max_size" => self.max_size = p.parsed(val, path, log_size)?,
            "keep" => self.keep = p.count(val, path, 0..=1000, "a number of files")?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

/// A log file's size limit: at least 4KiB.
fn log_size(s: &str) -> Result<u64, String> {
    let n = units::parse_size(s)?;
    if n < 4096 {
        return Err(format!("{s} is too small: at least 4KiB"));
    }
    Ok(n)
}
