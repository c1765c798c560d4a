//! A service's own keys: command, cwd, env, env_file, user, restart, stop,
//! logs; the keys of its probes and recovery are read by their modules.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Parser, check_name, join, node_has_key};
use crate::config::units::{self, words};
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

const SERVICE_KEYS: &[&str] = &[
    "command",
    "cwd",
    "env",
    "env_file",
    "user",
    "restart",
    "min_uptime",
    "stop",
    "logs",
    "classify",
    "recovery",
    "escalation",
    "on_event",
    "liveness",
    "readiness",
    "startup",
    "watchdog",
    "start_timeout",
    "depends_on",
];
const SERVICE_LATER: &[&str] = &[];
const STOP_KEYS: &[&str] = &["signal", "timeout"];
const LOG_KEYS: &[&str] = &["max_size", "keep"];

impl Parser<'_> {
    pub(super) fn services(&mut self, node: &Node) -> Vec<ServiceSpec> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                "services",
                format!("expected a mapping of service names to services, found {found}"),
            );
            return Vec::new();
        };
        if entries.is_empty() {
            self.err(node, "services", "no services declared");
        }
        let mut out: Vec<ServiceSpec> = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (k, val) in entries {
            let NodeKind::Scalar { value: name, .. } = &k.kind else {
                self.err(k, "services", "service names must be strings");
                continue;
            };
            let path = format!("services.{name}");
            if names.contains(&name.as_str()) {
                self.err(k, &path, format!("duplicate service name {name:?}"));
                continue;
            }
            names.push(name);
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
        let fields = self.fields(node, path, SERVICE_KEYS, SERVICE_LATER)?;
        // Stands in until the command is read; a service without one is an error.
        let placeholder = Command::Exec(Vec::new());
        let mut spec = ServiceSpec::new(name, placeholder, self.base.to_path_buf());
        let mut env_file_vars = Vec::new();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= if key == "env_file" {
                self.env_file(val, &p).map(|v| env_file_vars = v).is_some()
            } else {
                self.service_key(&mut spec, key, val, &p)
            };
        }
        if !node_has_key(node, "command") {
            self.err(
                key,
                &join(path, "command"),
                "missing: every service needs a command",
            );
            ok = false;
        }
        let mut env: BTreeMap<String, String> = env_file_vars.into_iter().collect();
        env.extend(std::mem::take(&mut spec.env));
        spec.env = env;
        ok.then_some(spec)
    }

    /// One key of a service other than `env_file`, into `spec`.
    fn service_key(&mut self, spec: &mut ServiceSpec, key: &str, val: &Node, p: &str) -> bool {
        match key {
            "command" => self.command(val, p).map(|c| spec.command = c).is_some(),
            "cwd" => self.cwd(val, p).map(|d| spec.cwd = d).is_some(),
            "env" => self.env(val, p).map(|e| spec.env = e).is_some(),
            "user" => self.user(val, p).map(|u| spec.user = Some(u)).is_some(),
            "restart" => self
                .choice(val, p, &words(RestartPolicy::ALL, RestartPolicy::as_str))
                .map(|r| spec.restart = r)
                .is_some(),
            "min_uptime" => self.duration(val, p).map(|d| spec.min_uptime = d).is_some(),
            "stop" => self.stop(val, p).map(|s| spec.stop = s).is_some(),
            "logs" => self.logs(val, p).map(|l| spec.logs = l).is_some(),
            "classify" => self.classify(val, p).map(|c| spec.classify = c).is_some(),
            "recovery" => self.recovery(val, p).map(|r| spec.recovery = r).is_some(),
            "escalation" => self
                .escalation(val, p)
                .map(|e| spec.escalation = e)
                .is_some(),
            "on_event" => self
                .command(val, p)
                .map(|c| spec.on_event = Some(c))
                .is_some(),
            "liveness" => self
                .probe(val, p, false)
                .map(|x| spec.liveness = Some(x))
                .is_some(),
            "readiness" => self
                .probe(val, p, true)
                .map(|x| spec.readiness = Some(x))
                .is_some(),
            "startup" => self
                .probe(val, p, false)
                .map(|x| spec.startup = Some(x))
                .is_some(),
            "watchdog" => self
                .positive_duration(val, p)
                .map(|d| spec.watchdog = Some(d))
                .is_some(),
            "start_timeout" => self
                .positive_duration(val, p)
                .map(|d| spec.start_timeout = Some(d))
                .is_some(),
            "depends_on" => self
                .depends_on(val, p)
                .map(|d| spec.depends_on = d)
                .is_some(),
            _ => unreachable!("fields() returns only allowed keys"),
        }
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
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                path,
                format!("expected a mapping of NAME: value, found {found}"),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        let mut ok = true;
        for (k, val) in entries {
            let NodeKind::Scalar { value: key, .. } = &k.kind else {
                self.err(k, path, "variable names must be strings");
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
            } else if matches!(val.kind, NodeKind::Scalar { .. }) {
                self.string(val, &p)
            } else {
                let found = val.describe();
                self.err(val, &p, format!("expected a string, found {found}"));
                None
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
        let text = match std::fs::read_to_string(&file) {
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

    fn stop(&mut self, node: &Node, path: &str) -> Option<StopSpec> {
        let fields = self.fields(node, path, STOP_KEYS, &[])?;
        let mut spec = StopSpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "signal" => self
                    .parsed(val, &p, units::parse_signal)
                    .map(|s| spec.signal = s)
                    .is_some(),
                "timeout" => self.duration(val, &p).map(|d| spec.timeout = d).is_some(),
                _ => unreachable!(),
            };
        }
        ok.then_some(spec)
    }

    fn logs(&mut self, node: &Node, path: &str) -> Option<LogSpec> {
        let fields = self.fields(node, path, LOG_KEYS, &[])?;
        let mut spec = LogSpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "max_size" => self
                    .parsed(val, &p, |s| {
                        let n = units::parse_size(s)?;
                        if n < 4096 {
                            return Err(format!("{s} is too small: at least 4KiB"));
                        }
                        Ok(n)
                    })
                    .map(|n| spec.max_size = n)
                    .is_some(),
                "keep" => self
                    .parsed(val, &p, |s| {
                        s.parse::<u32>().ok().filter(|n| *n <= 1000).ok_or_else(|| {
                            format!("expected a number of files from 0 to 1000, found {s:?}")
                        })
                    })
                    .map(|n| spec.keep = n)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok.then_some(spec)
    }
}
