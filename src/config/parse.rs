//! Validation: the spanned YAML tree → [`Plan`], collecting every error.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::units::{self, did_you_mean, words};
use super::yaml::{self, Node, NodeKind};
use super::*;
use crate::strategy::policy::Severity;

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "services",
    "supervisor",
    "groups",
    "exit_on_critical",
];
const TOP_LATER: &[&str] = &["api"];
const SUPERVISOR_KEYS: &[&str] = &["strategy", "intensity", "period"];
const GROUP_KEYS: &[&str] = &["strategy", "intensity", "period", "children"];
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
const PROBE_KEYS: &[&str] = &[
    "exec",
    "http",
    "tcp",
    "interval",
    "timeout",
    "initial_delay",
    "failure_threshold",
    "success_threshold",
];
const HTTP_KEYS: &[&str] = &["url", "method", "expect", "headers"];
const RULE_KEYS: &[&str] = &["exit_codes", "signals", "output_matches", "severity"];
const RECOVERY_KEYS: &[&str] = &["retry", "restart", "fallback", "reset_after"];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_backoff", "jitter"];
const RESTART_KEYS: &[&str] = &["attempts", "cleanup", "timeout"];
const FALLBACK_KEYS: &[&str] = &["command", "retry_primary"];
const ESCALATION_KEYS: &[&str] = &["failures", "within"];
const STOP_KEYS: &[&str] = &["signal", "timeout"];
const LOG_KEYS: &[&str] = &["max_size", "keep"];

const BOOLEAN: &[(&str, bool)] = &[("true", true), ("false", false)];
/// Matched in upper case: `get` is GET.
const HTTP_METHODS: &[(&str, &str)] = &[("GET", "GET"), ("HEAD", "HEAD")];
const PROBE_TIMEOUT: &[(&str, ProbeTimeout)] = &[("adaptive", ProbeTimeout::Adaptive)];

pub(super) fn plan_from_str(
    text: &str,
    file: &Path,
    ctx: &Context<'_>,
) -> Result<Plan, Vec<ConfigError>> {
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut v = Validator {
        file,
        base: &base,
        ctx,
        errors: Vec::new(),
        positions: HashMap::new(),
    };
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(vec![ConfigError {
                file: file.to_path_buf(),
                line: e.line,
                col: e.col,
                path: String::new(),
                message: format!("invalid YAML: {}", e.message),
            }]);
        }
    };
    let plan = v.plan(&doc);
    match plan {
        Some(plan) if v.errors.is_empty() => Ok(plan),
        _ => Err(v.errors),
    }
}

struct Validator<'a> {
    file: &'a Path,
    base: &'a Path,
    ctx: &'a Context<'a>,
    errors: Vec<ConfigError>,
    /// Nodes of names checked only once the whole file is read (group
    /// children, depends_on keys), by YAML path.
    positions: HashMap<String, Node>,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl<'a> Validator<'a> {
    fn err(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: node.line,
            col: node.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The entries of a mapping whose keys are all known, after reporting
    /// unknown, duplicate and not-yet-supported keys.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
        later: &[&str],
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            _ if node.is_null() => return Some(Vec::new()),
            _ => {
                let found = node.describe();
                self.err(node, path, format!("expected a mapping, found {found}"));
                return None;
            }
        };
        let mut out: Vec<(&'n str, &'n Node)> = Vec::new();
        for (k, val) in entries {
            let NodeKind::Scalar { value: key, .. } = &k.kind else {
                self.err(k, path, "keys must be plain strings");
                continue;
            };
            let here = join(path, key);
            if allowed.contains(&key.as_str()) {
                if out.iter().any(|(seen, _)| seen == key) {
                    self.err(k, &here, "duplicate key");
                    continue;
                }
                out.push((key.as_str(), val));
            } else if later.contains(&key.as_str()) {
                self.err(k, &here, "not supported yet");
            } else {
                let hint = did_you_mean(key, allowed.iter().chain(later).copied());
                self.err(
                    k,
                    &here,
                    format!(
                        "unknown key {key:?}{hint}; allowed keys: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(out)
    }

    /// A scalar as a string, with `${VAR}` expanded.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, .. } if !node.is_null() => {
                match units::expand_env(value, self.ctx.env) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.err(node, path, e);
                        None
                    }
                }
            }
            _ => {
                let found = node.describe();
                self.err(node, path, format!("expected a string, found {found}"));
                None
            }
        }
    }

    fn parsed<T>(
        &mut self,
        node: &Node,
        path: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(node, path)?;
        match f(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(node, path, e);
                None
            }
        }
    }

    /// A key with a fixed set of values, such as a restart policy.
    fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        self.parsed(node, path, |s| units::one_of(s, options))
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.parsed(node, path, units::parse_duration)
    }

    fn plan(&mut self, doc: &Node) -> Option<Plan> {
        if !matches!(doc.kind, NodeKind::Map(_)) {
            let found = doc.describe();
            self.err(
                doc,
                "",
                format!("expected a mapping with a `services:` key, found {found}"),
            );
            return None;
        }
        let top = self.fields(doc, "", TOP_KEYS, TOP_LATER)?;
        let mut state_dir = self.base.join(crate::state_dir::DEFAULT_NAME);
        let mut services = Vec::new();
        let mut saw_services = false;
        let mut supervisor = SupervisorSpec::default();
        let mut groups = Vec::new();
        let mut groups_node = None;
        let mut exit_on_critical = false;
        for (key, node) in top {
            match key {
                "state_dir" => {
                    if let Some(s) = self.string(node, key) {
                        state_dir = self.base.join(s);
                    }
                }
                "services" => {
                    saw_services = true;
                    services = self.services(node);
                }
                "supervisor" => {
                    if let Some(s) = self.supervisor(node) {
                        supervisor = s;
                    }
                }
                "groups" => {
                    groups = self.groups(node);
                    groups_node = Some(node);
                }
                "exit_on_critical" => {
                    if let Some(b) = self.choice(node, key, BOOLEAN) {
                        exit_on_critical = b;
                    }
                }
                _ => unreachable!("fields() returns only allowed keys"),
            }
        }
        let start_order = self.tree(doc, &mut services, &mut groups, groups_node);
        if !saw_services {
            let start = Node {
                kind: NodeKind::Map(Vec::new()),
                line: 1,
                col: 1,
            };
            self.err(&start, "services", "missing: declare at least one service");
        }
        Some(Plan {
            file: self.file.to_path_buf(),
            base_dir: self.base.to_path_buf(),
            state_dir,
            services,
            supervisor,
            groups,
            exit_on_critical,
            start_order,
        })
    }

    fn strategy(&mut self, node: &Node, path: &str) -> Option<Strategy> {
        self.choice(node, path, &words(Strategy::ALL, Strategy::as_str))
    }

    fn supervisor(&mut self, node: &Node) -> Option<SupervisorSpec> {
        let fields = self.fields(node, "supervisor", SUPERVISOR_KEYS, &[])?;
        let mut spec = SupervisorSpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join("supervisor", key);
            ok &= match key {
                "strategy" => self.strategy(val, &p).map(|s| spec.strategy = s).is_some(),
                "intensity" => self
                    .count(val, &p, 1..=100_000, "a number of restarts")
                    .map(|n| spec.intensity = Some(n))
                    .is_some(),
                "period" => self
                    .positive_duration(val, &p)
                    .map(|d| spec.period = d)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok.then_some(spec)
    }

    fn groups(&mut self, node: &Node) -> Vec<GroupSpec> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                "groups",
                format!("expected a mapping of group names to groups, found {found}"),
            );
            return Vec::new();
        };
        let mut out: Vec<GroupSpec> = Vec::new();
        for (k, val) in entries {
            let NodeKind::Scalar { value: name, .. } = &k.kind else {
                self.err(k, "groups", "group names must be strings");
                continue;
            };
            let path = format!("groups.{name}");
            if out.iter().any(|g| &g.name == name) {
                self.err(k, &path, format!("duplicate group name {name:?}"));
                continue;
            }
            if let Err(e) = check_name(name) {
                self.err(k, &path, e.replace("service name", "group name"));
                continue;
            }
            self.positions.insert(path.clone(), k.clone());
            let Some(fields) = self.fields(val, &path, GROUP_KEYS, &[]) else {
                continue;
            };
            let mut g = GroupSpec::new(name.clone());
            let mut ok = true;
            let mut saw_children = false;
            for (key, v) in fields {
                let p = join(&path, key);
                ok &= match key {
                    "strategy" => self.strategy(v, &p).map(|s| g.strategy = s).is_some(),
                    "intensity" => self
                        .count(v, &p, 1..=100_000, "a number of restarts")
                        .map(|n| g.intensity = n)
                        .is_some(),
                    "period" => self
                        .positive_duration(v, &p)
                        .map(|d| g.period = d)
                        .is_some(),
                    "children" => {
                        saw_children = true;
                        let kids = self.list(v, &p, |this, n, p| {
                            let s = this.string(n, p)?;
                            this.positions.insert(p.to_string(), n.clone());
                            Some(s)
                        });
                        kids.map(|c| g.children = c).is_some()
                    }
                    _ => unreachable!(),
                };
            }
            if !saw_children {
                self.err(
                    k,
                    &join(&path, "children"),
                    "missing: list the group's services and groups",
                );
                ok = false;
            } else if ok && g.children.is_empty() {
                self.err(
                    val,
                    &join(&path, "children"),
                    "a group needs at least one child",
                );
                ok = false;
            }
            if ok {
                out.push(g);
            }
        }
        out
    }

    fn depends_on(&mut self, node: &Node, path: &str) -> Option<Vec<(String, DependOn)>> {
        let conditions = words(DependOn::ALL, DependOn::as_str);
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                path,
                format!(
                    "expected a mapping of service names to {}, found {found}",
                    units::or_list(&conditions)
                ),
            );
            return None;
        };
        let mut out: Vec<(String, DependOn)> = Vec::new();
        let mut ok = true;
        for (k, v) in entries {
            let NodeKind::Scalar { value: name, .. } = &k.kind else {
                self.err(k, path, "service names must be strings");
                ok = false;
                continue;
            };
            let p = join(path, name);
            if out.iter().any(|(n, _)| n == name) {
                self.err(k, &p, "duplicate key");
                ok = false;
                continue;
            }
            self.positions.insert(p.clone(), k.clone());
            match self.choice(v, &p, &conditions) {
                Some(c) => out.push((name.clone(), c)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn at(&self, path: &str, fallback: &Node) -> Node {
        self.positions
            .get(path)
            .cloned()
            .unwrap_or_else(|| fallback.clone())
    }

    /// Cross-checks of the tree and the dependencies, and the start order.
    fn tree(
        &mut self,
        doc: &Node,
        services: &mut [ServiceSpec],
        groups: &mut [GroupSpec],
        groups_node: Option<&Node>,
    ) -> Vec<usize> {
        let anchor = groups_node.unwrap_or(doc).clone();
        let svc_index: HashMap<String, usize> = services
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        let group_index: HashMap<String, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.name.clone(), i))
            .collect();
        let all_names: Vec<String> = services
            .iter()
            .map(|s| s.name.clone())
            .chain(groups.iter().map(|g| g.name.clone()))
            .collect();
        for g in groups.iter() {
            if svc_index.contains_key(&g.name) {
                let path = format!("groups.{}", g.name);
                let node = self.at(&path, &anchor);
                self.err(
                    &node,
                    &path,
                    format!("{:?} is already a service name", g.name),
                );
            }
        }
        let mut parent_of: HashMap<String, String> = HashMap::new();
        for g in groups.iter() {
            for (k, child) in g.children.iter().enumerate() {
                let path = format!("groups.{}.children[{k}]", g.name);
                let node = self.at(&path, &anchor);
                if child == &g.name {
                    self.err(&node, &path, "a group cannot contain itself");
                } else if !svc_index.contains_key(child) && !group_index.contains_key(child) {
                    let hint = did_you_mean(child, all_names.iter().map(String::as_str));
                    self.err(
                        &node,
                        &path,
                        format!("unknown service or group {child:?}{hint}"),
                    );
                } else if let Some(other) = parent_of.get(child) {
                    self.err(
                        &node,
                        &path,
                        format!("{child:?} is already a child of group {other:?}"),
                    );
                } else {
                    parent_of.insert(child.clone(), g.name.clone());
                }
            }
        }
        for g in groups.iter_mut() {
            g.parent = parent_of.get(&g.name).cloned();
        }
        // Groups that contain each other.
        for g in groups.iter() {
            let mut chain = vec![g.name.clone()];
            let mut cur = g.name.clone();
            while let Some(p) = parent_of.get(&cur) {
                if p == &g.name {
                    chain.push(p.clone());
                    let path = format!("groups.{}", g.name);
                    let node = self.at(&path, &anchor);
                    self.err(
                        &node,
                        &path,
                        format!("groups contain each other: {}", chain.join(" → ")),
                    );
                    break;
                }
                if chain.contains(p) {
                    break;
                }
                chain.push(p.clone());
                cur = p.clone();
            }
        }
        for s in services.iter_mut() {
            s.group = parent_of.get(&s.name).cloned();
        }

        // Edges: (from, to, why) — `to` starts after `from`.
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (i, s) in services.iter().enumerate() {
            for (dep, cond) in &s.depends_on {
                let path = format!("services.{}.depends_on.{dep}", s.name);
                let node = self.at(&path, doc);
                match svc_index.get(dep) {
                    None => {
                        let hint = did_you_mean(dep, services.iter().map(|s| s.name.as_str()));
                        self.err(&node, &path, format!("unknown service {dep:?}{hint}"));
                    }
                    Some(&j) if j == i => {
                        self.err(&node, &path, "a service cannot depend on itself");
                    }
                    Some(&j) => {
                        if *cond == DependOn::Ready && services[j].readiness.is_none() {
                            self.err(
                                &node,
                                &path,
                                format!(
                                    "{dep:?} has no readiness probe, so it never becomes ready; give it one or use started"
                                ),
                            );
                        }
                        if *cond == DependOn::Completed
                            && services[j].restart == RestartPolicy::Always
                        {
                            self.err(
                                &node,
                                &path,
                                format!(
                                    "{dep:?} has restart: always, so it never completes; give it restart: never or on-failure"
                                ),
                            );
                        }
                        edges.push((j, i));
                    }
                }
            }
        }
        for g in groups.iter() {
            let svc_children: Vec<usize> = g
                .children
                .iter()
                .filter_map(|c| svc_index.get(c).copied())
                .collect();
            for w in svc_children.windows(2) {
                edges.push((w[0], w[1]));
            }
        }
        // Kahn's algorithm; ties by declaration order.
        let n = services.len();
        let mut indeg = vec![0usize; n];
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &(a, b) in &edges {
            if !out[a].contains(&b) {
                out[a].push(b);
                indeg[b] += 1;
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&i| indeg[i] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop_first() {
            order.push(i);
            for &b in &out[i] {
                indeg[b] -= 1;
                if indeg[b] == 0 {
                    ready.insert(b);
                }
            }
        }
        if order.len() < n {
            // Name one cycle among what is left.
            let left: Vec<usize> = (0..n).filter(|i| indeg[*i] > 0).collect();
            let start = left[0];
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = out[cur]
                    .iter()
                    .copied()
                    .find(|b| indeg[*b] > 0)
                    .expect("a node left by Kahn has a successor left");
                if let Some(pos) = path.iter().position(|&p| p == next) {
                    let cycle: Vec<&str> = path[pos..]
                        .iter()
                        .chain(std::iter::once(&next))
                        .map(|&k| services[k].name.as_str())
                        .collect();
                    let first = services[path[pos]].name.clone();
                    let second = services[path.get(pos + 1).copied().unwrap_or(next)]
                        .name
                        .clone();
                    let p = format!("services.{second}.depends_on.{first}");
                    let node = self.at(&p, doc);
                    let p = if self.positions.contains_key(&p) {
                        p
                    } else {
                        format!("services.{second}")
                    };
                    let note = if groups.is_empty() {
                        ""
                    } else {
                        " (a group's children also start in their listed order)"
                    };
                    self.err(
                        &node,
                        &p,
                        format!("dependency cycle: {}{note}", cycle.join(" → ")),
                    );
                    break;
                }
                path.push(next);
                cur = next;
            }
            return (0..n).collect();
        }
        order
    }

    fn services(&mut self, node: &Node) -> Vec<ServiceSpec> {
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

    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.parsed(node, path, |s| {
            let d = units::parse_duration(s)?;
            if d < Duration::from_millis(10) {
                return Err(format!("{s} is too short: at least 10ms"));
            }
            Ok(d)
        })
    }

    /// A probe: exactly one of exec / http / tcp, or the string `notify`
    /// (readiness only).
    fn probe(&mut self, node: &Node, path: &str, readiness: bool) -> Option<ProbeSpec> {
        let mut spec = ProbeSpec::default();
        if let NodeKind::Scalar { value, .. } = &node.kind {
            if value == "notify" && readiness {
                return Some(spec);
            }
            let allowed = if readiness {
                "`notify` or a mapping"
            } else {
                "a mapping"
            };
            self.err(
                node,
                path,
                format!("expected {allowed} with one of exec, http, tcp, found {value:?}"),
            );
            return None;
        }
        let fields = self.fields(node, path, PROBE_KEYS, &[])?;
        let mut ok = true;
        let mut checks = Vec::new();
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "exec" => self
                    .command(val, &p)
                    .map(|c| checks.push(Check::Exec(c)))
                    .is_some(),
                "http" => self
                    .http(val, &p)
                    .map(|h| checks.push(Check::Http(h)))
                    .is_some(),
                "tcp" => self
                    .parsed(val, &p, parse_tcp)
                    .map(|t| checks.push(Check::Tcp(t)))
                    .is_some(),
                "interval" => self
                    .positive_duration(val, &p)
                    .map(|d| spec.interval = d)
                    .is_some(),
                "timeout" => {
                    if let NodeKind::Scalar { value, .. } = &val.kind
                        && let Some(t) = units::lookup(value, PROBE_TIMEOUT)
                    {
                        spec.timeout = t;
                        true
                    } else {
                        self.positive_duration(val, &p)
                            .map(|d| spec.timeout = ProbeTimeout::Fixed(d))
                            .is_some()
                    }
                }
                "initial_delay" => self
                    .duration(val, &p)
                    .map(|d| spec.initial_delay = d)
                    .is_some(),
                "failure_threshold" => self
                    .count(val, &p, 1..=1000, "a count")
                    .map(|n| spec.failure_threshold = n)
                    .is_some(),
                "success_threshold" => self
                    .count(val, &p, 1..=1000, "a count")
                    .map(|n| spec.success_threshold = n)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        if !ok {
            return None;
        }
        match checks.len() {
            1 => spec.check = checks.pop().expect("one"),
            0 => {
                self.err(node, path, "a probe needs one of exec, http, tcp");
                return None;
            }
            _ => {
                self.err(node, path, "a probe has exactly one of exec, http, tcp");
                return None;
            }
        }
        let timeout_set = node_has_key(node, "timeout");
        if let ProbeTimeout::Fixed(t) = spec.timeout
            && t > spec.interval
            && !timeout_set
        {
            // The default (1s) follows a shorter interval.
            spec.timeout = ProbeTimeout::Fixed(spec.interval);
        }
        if let ProbeTimeout::Fixed(t) = spec.timeout
            && t > spec.interval
        {
            self.err(
                node,
                &join(path, "timeout"),
                "must not be longer than interval",
            );
            return None;
        }
        Some(spec)
    }

    fn http(&mut self, node: &Node, path: &str) -> Option<HttpCheck> {
        let mut check = HttpCheck::default();
        let (url_node, url_path) = if let NodeKind::Scalar { .. } = node.kind {
            (node.clone(), path.to_string())
        } else {
            let fields = self.fields(node, path, HTTP_KEYS, &[])?;
            let mut ok = true;
            let mut url = None;
            for (key, val) in fields {
                let p = join(path, key);
                ok &= match key {
                    "url" => {
                        url = Some(val.clone());
                        true
                    }
                    "method" => self
                        .parsed(val, &p, |s| {
                            units::lookup(&s.to_ascii_uppercase(), HTTP_METHODS)
                                .map(str::to_string)
                                .ok_or_else(|| units::not_one_of(s, HTTP_METHODS))
                        })
                        .map(|m| check.method = m)
                        .is_some(),
                    "expect" => self
                        .parsed(val, &p, parse_status_range)
                        .map(|r| check.expect = r)
                        .is_some(),
                    "headers" => self.headers(val, &p).map(|h| check.headers = h).is_some(),
                    _ => unreachable!(),
                };
            }
            if !ok {
                return None;
            }
            match url {
                Some(u) => (u, join(path, "url")),
                None => {
                    self.err(node, &join(path, "url"), "missing: the URL to request");
                    return None;
                }
            }
        };
        let (url, authority, target) = self.parsed(&url_node, &url_path, parse_http_url)?;
        check.url = url;
        check.authority = authority;
        check.path = target;
        Some(check)
    }

    /// A mapping of header names to string values.
    fn headers(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                path,
                format!("expected a mapping of Name: value, found {found}"),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let NodeKind::Scalar { value: key, .. } = &k.kind else {
                self.err(k, path, "header names must be strings");
                return None;
            };
            let p = join(path, key);
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.err(k, &p, format!("invalid header name {key:?}"));
                return None;
            }
            let value = self.string(v, &p)?;
            if value.contains(['\r', '\n']) {
                self.err(v, &p, "header values cannot contain line breaks");
                return None;
            }
            out.push((key.clone(), value));
        }
        Some(out)
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Option<T> {
        self.parsed(node, path, |s| {
            s.parse::<T>()
                .ok()
                .filter(|v| ok(v))
                .ok_or_else(|| format!("expected {what}, found {s:?}"))
        })
    }

    /// A whole number in `range`, described as `what` in the error
    /// ("a count from 1 to 1000").
    fn count(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<u32>,
        what: &str,
    ) -> Option<u32> {
        let what = format!("{what} from {} to {}", range.start(), range.end());
        self.number::<u32>(node, path, &what, |n| range.contains(n))
    }

    fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let NodeKind::Seq(items) = &node.kind else {
            let found = node.describe();
            self.err(node, path, format!("expected a list, found {found}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            match item(self, it, &format!("{path}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn classify(&mut self, node: &Node, path: &str) -> Option<Vec<ClassifyRule>> {
        self.list(node, path, |v, n, p| v.rule(n, p))
    }

    fn rule(&mut self, node: &Node, path: &str) -> Option<ClassifyRule> {
        let severities = words(Severity::ALL, Severity::as_str);
        let fields = self.fields(node, path, RULE_KEYS, &[])?;
        let mut rule = ClassifyRule {
            exit_codes: Vec::new(),
            signals: Vec::new(),
            output_matches: None,
            severity: Severity::Transient,
        };
        let mut ok = true;
        let mut severity = false;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "exit_codes" => self
                    .list(val, &p, |v, n, p| {
                        v.number::<i32>(n, p, "an exit code from 1 to 255", |c| {
                            (1..=255).contains(c)
                        })
                    })
                    .map(|c| rule.exit_codes = c)
                    .is_some(),
                "signals" => self
                    .list(val, &p, |v, n, p| v.parsed(n, p, units::parse_signal))
                    .map(|s| rule.signals = s)
                    .is_some(),
                "output_matches" => self
                    .parsed(val, &p, |s| {
                        regex::bytes::Regex::new(s)
                            .map(|_| s.to_string())
                            .map_err(|e| {
                                // The syntax error's last line says what is wrong;
                                // the lines above draw a caret diagram.
                                let text = e.to_string();
                                let what = text
                                    .lines()
                                    .last()
                                    .unwrap_or("")
                                    .trim_start_matches("error: ");
                                format!("invalid regular expression {s:?}: {what}")
                            })
                    })
                    .map(|r| rule.output_matches = Some(r))
                    .is_some(),
                "severity" => {
                    severity = true;
                    self.choice(val, &p, &severities)
                        .map(|s| rule.severity = s)
                        .is_some()
                }
                _ => unreachable!(),
            };
        }
        if ok && !severity {
            self.err(
                node,
                &join(path, "severity"),
                format!("missing: {}", units::or_list(&severities)),
            );
            ok = false;
        }
        if ok
            && rule.exit_codes.is_empty()
            && rule.signals.is_empty()
            && rule.output_matches.is_none()
        {
            self.err(
                node,
                path,
                "a rule needs at least one of exit_codes, signals, output_matches",
            );
            ok = false;
        }
        if ok && !rule.exit_codes.is_empty() && !rule.signals.is_empty() {
            self.err(
                node,
                path,
                "exit_codes and signals cannot both match one exit; write two rules",
            );
            ok = false;
        }
        ok.then_some(rule)
    }

    fn recovery(&mut self, node: &Node, path: &str) -> Option<RecoverySpec> {
        let fields = self.fields(node, path, RECOVERY_KEYS, &[])?;
        let mut spec = RecoverySpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "retry" => self.retry(val, &p, &mut spec.retry),
                "restart" => self.restart_spec(val, &p, &mut spec.restart),
                "fallback" => self.fallback(val, &p, &mut spec),
                "reset_after" => self
                    .duration(val, &p)
                    .map(|d| spec.reset_after = d)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        if ok && spec.retry.backoff > spec.retry.max_backoff {
            self.err(
                node,
                &join(path, "retry.max_backoff"),
                "must not be shorter than retry.backoff",
            );
            ok = false;
        }
        ok.then_some(spec)
    }

    fn retry(&mut self, node: &Node, path: &str, spec: &mut RetrySpec) -> bool {
        let Some(fields) = self.fields(node, path, RETRY_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "attempts" => self
                    .count(val, &p, 0..=1000, "a number of attempts")
                    .map(|n| spec.attempts = n)
                    .is_some(),
                "backoff" => self.duration(val, &p).map(|d| spec.backoff = d).is_some(),
                "max_backoff" => self
                    .duration(val, &p)
                    .map(|d| spec.max_backoff = d)
                    .is_some(),
                "jitter" => self
                    .number::<f64>(val, &p, "a fraction from 0 to 0.9", |j| {
                        (0.0..=0.9).contains(j)
                    })
                    .map(|j| spec.jitter = j)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    fn restart_spec(&mut self, node: &Node, path: &str, spec: &mut RestartSpec) -> bool {
        let Some(fields) = self.fields(node, path, RESTART_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "attempts" => self
                    .count(val, &p, 0..=1000, "a number of attempts")
                    .map(|n| spec.attempts = n)
                    .is_some(),
                "cleanup" => self
                    .command(val, &p)
                    .map(|c| spec.cleanup = Some(c))
                    .is_some(),
                "timeout" => self.duration(val, &p).map(|d| spec.timeout = d).is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    fn fallback(&mut self, node: &Node, path: &str, spec: &mut RecoverySpec) -> bool {
        let Some(fields) = self.fields(node, path, FALLBACK_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "command" => self
                    .command(val, &p)
                    .map(|c| spec.fallback = Some(FallbackSpec { command: c }))
                    .is_some(),
                "retry_primary" => self
                    .parsed(val, &p, |s| {
                        let d = units::parse_duration(s)?;
                        if d < Duration::from_millis(100) {
                            return Err(format!("{s} is too short: at least 100ms"));
                        }
                        Ok(d)
                    })
                    .map(|d| spec.retry_primary = d)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    fn escalation(&mut self, node: &Node, path: &str) -> Option<EscalationSpec> {
        let fields = self.fields(node, path, ESCALATION_KEYS, &[])?;
        let mut spec = EscalationSpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "failures" => self
                    .count(val, &p, 1..=1000, "a number of failures")
                    .map(|n| spec.failures = n)
                    .is_some(),
                "within" => self.duration(val, &p).map(|d| spec.within = d).is_some(),
                _ => unreachable!(),
            };
        }
        ok.then_some(spec)
    }

    fn command(&mut self, node: &Node, path: &str) -> Option<Command> {
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

fn node_has_key(node: &Node, key: &str) -> bool {
    matches!(&node.kind, NodeKind::Map(entries)
        if entries.iter().any(|(k, _)| matches!(&k.kind, NodeKind::Scalar { value, .. } if value == key)))
}

/// `host:port`, port 1–65535.
fn parse_tcp(s: &str) -> Result<String, String> {
    let bad = || format!("expected host:port with a port from 1 to 65535, found {s:?}");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() => Ok(s.to_string()),
        _ => Err(bad()),
    }
}

/// `200`, `200-399`.
fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected a status code or a range like 200-399, found {s:?}");
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&a) || !(100..=599).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// `http://host[:port][/path]` → (url, "host:port", "/path").
fn parse_http_url(s: &str) -> Result<(String, String, String), String> {
    let bad = || format!("expected a URL like http://127.0.0.1:8080/health, found {s:?}");
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: https is not supported by probes; use http:// or a tcp probe"
        ));
    }
    let rest = s.strip_prefix("http://").ok_or_else(bad)?;
    let (hostport, target) = match rest.find('/') {
        Some(k) => (&rest[..k], &rest[k..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() || hostport.contains(['@', ' ', '?', '#']) || target.contains(' ') {
        return Err(bad());
    }
    let authority = match hostport.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse::<u16>() {
            Ok(p) if p > 0 => hostport.to_string(),
            _ => return Err(bad()),
        },
        Some(_) => return Err(bad()),
        None => format!("{hostport}:80"),
    };
    Ok((s.to_string(), authority, target.to_string()))
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid service name {name:?}: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<Plan, Vec<ConfigError>> {
        let env = |k: &str| match k {
            "PORT" => Some("8080".to_string()),
            _ => None,
        };
        let ctx = Context {
            env: &env,
            euid: 1000,
        };
        plan_from_str(yaml, Path::new("/tmp/services.yaml"), &ctx)
    }

    fn messages(yaml: &str) -> Vec<String> {
        check(yaml)
            .unwrap_err()
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn minimal_service_gets_defaults() {
        let plan = check("services:\n  web:\n    command: ./web --port ${PORT}\n").unwrap();
        let web = &plan.services[0];
        assert_eq!(web.command, Command::Shell("./web --port 8080".into()));
        assert_eq!(web.restart, RestartPolicy::Always);
        assert_eq!(web.min_uptime, Duration::from_secs(1));
        assert_eq!(web.stop.signal, Signal::SIGTERM);
        assert_eq!(plan.state_dir, Path::new("/tmp/.sentineld"));
        assert_eq!(web.cwd, Path::new("/tmp"));
    }

    #[test]
    fn list_command_and_every_key() {
        let plan = check(
            "state_dir: st\nservices:\n  a:\n    command: [sleep, '10']\n    env: {X: 1, Y: ~}\n    restart: on-failure\n    min_uptime: 2s\n    stop: {signal: INT, timeout: 3s}\n    logs: {max_size: 1MiB, keep: 2}\n",
        )
        .unwrap();
        let a = &plan.services[0];
        assert_eq!(a.command, Command::Exec(vec!["sleep".into(), "10".into()]));
        assert_eq!(a.env["X"], "1");
        assert_eq!(a.env["Y"], "");
        assert_eq!(a.stop.signal, Signal::SIGINT);
        assert_eq!(a.stop.timeout, Duration::from_secs(3));
        assert_eq!(
            a.logs,
            LogSpec {
                max_size: 1 << 20,
                keep: 2
            }
        );
        assert_eq!(plan.state_dir, Path::new("/tmp/st"));
    }

    #[test]
    fn errors_carry_line_column_and_path() {
        let m = messages("services:\n  web:\n    command: x\n    restrat: always\n");
        assert_eq!(
            m,
            vec![
                "/tmp/services.yaml:4:5: services.web.restrat: unknown key \"restrat\" (did you mean \"restart\"?); allowed keys: command, cwd, env, env_file, user, restart, min_uptime, stop, logs, classify, recovery, escalation, on_event, liveness, readiness, startup, watchdog, start_timeout, depends_on"
            ]
        );
    }

    #[test]
    fn all_errors_are_reported_at_once() {
        let m = messages(
            "services:\n  a:\n    command: ''\n  b:\n    command: x\n    min_uptime: fast\n  c:\n    command: x\n    stop: {signal: SIGNOPE}\n",
        );
        assert_eq!(m.len(), 3, "{m:?}");
        assert!(m[0].contains("services.a.command: empty command"));
        assert!(m[1].contains("services.b.min_uptime"));
        assert!(m[2].contains("services.c.stop.signal: unknown signal"));
    }

    #[test]
    fn later_keys_are_rejected_not_ignored() {
        let m = messages("api: {listen: ':1'}\nservices:\n  web:\n    command: x\n");
        assert_eq!(m, vec!["/tmp/services.yaml:1:1: api: not supported yet"]);
    }

    #[test]
    fn plain_command_lines_skip_the_shell() {
        let words = |s: &str| super::super::plain_words(s);
        assert_eq!(
            words("./api --port 8080").unwrap(),
            vec!["./api", "--port", "8080"]
        );
        assert_eq!(words("  sleep   10 ").unwrap(), vec!["sleep", "10"]);
        for shell in [
            "exit 3",
            "echo hi",
            "a | b",
            "a && b",
            "A=1 cmd",
            "cmd $HOME",
            "cmd 'quoted arg'",
            "cmd > out",
            "cmd &",
            "trap '' TERM",
            "x; y",
            "ls *.txt",
            "",
        ] {
            assert_eq!(words(shell), None, "{shell}");
        }
        let plan =
            check("services:\n  a:\n    command: sleep 5\n  b:\n    command: exit 5\n").unwrap();
        assert_eq!(plan.services[0].command.argv(), vec!["sleep", "5"]);
        assert_eq!(
            plan.services[1].command.argv(),
            vec!["/bin/sh", "-c", "exit 5"]
        );
    }

    #[test]
    fn user_needs_root() {
        let m = messages("services:\n  web:\n    command: x\n    user: nobody\n");
        assert!(
            m[0].contains("needs root (sentineld runs as uid 1000)"),
            "{m:?}"
        );
    }

    #[test]
    fn duplicate_service() {
        let m = messages("services:\n  a:\n    command: x\n  a:\n    command: y\n");
        assert!(
            m[0].contains("4:3: services.a: duplicate service name"),
            "{m:?}"
        );
    }

    #[test]
    fn missing_command_and_services() {
        assert!(
            messages("services:\n  a:\n    restart: never\n")[0]
                .contains("services.a.command: missing")
        );
        assert!(messages("state_dir: x\n")[0].contains("services: missing"));
    }
}
