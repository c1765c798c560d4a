//! The top of the document: state_dir, the root supervisor, groups.

use std::time::Duration;

use super::{Parser, Section, check_name, join};
use crate::config::units::words;
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

pub(super) const TOP_KEYS: &[&str] = &[
    "state_dir",
    "services",
    "supervisor",
    "groups",
    "exit_on_critical",
    "api",
    "resources",
    "webhook",
];
const TOP_LATER: &[&str] = &[];
pub(super) const BOOLEAN: &[(&str, bool)] = &[("true", true), ("false", false)];

impl Parser<'_> {
    pub(super) fn plan(&mut self, doc: &Node) -> Option<Plan> {
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
        let mut plan = Plan {
            file: self.file.to_path_buf(),
            base_dir: self.base.to_path_buf(),
            state_dir: self.base.join(crate::state_dir::DEFAULT_NAME),
            services: Vec::new(),
            supervisor: SupervisorSpec::default(),
            groups: Vec::new(),
            exit_on_critical: false,
            api: None,
            resources: Default::default(),
            webhook: None,
            start_order: Vec::new(),
            state_dir_from_flag: false,
        };
        for (key, node) in top {
            self.top_key(&mut plan, key, node);
        }
        let groups_node = doc.get("groups");
        plan.start_order = self.tree(doc, &mut plan.services, &mut plan.groups, groups_node);
        self.limits_need_sampling(doc, &plan);
        if doc.get("services").is_none() {
            let start = Node {
                kind: NodeKind::Map(Vec::new()),
                line: 1,
                col: 1,
            };
            self.err(&start, "services", "missing: declare at least one service");
        }
        Some(plan)
    }

    /// `limits:` with `resources: { interval: off }` could never apply.
    fn limits_need_sampling(&mut self, doc: &Node, plan: &Plan) {
        if plan.resources.interval.is_some() {
            return;
        }
        for s in &plan.services {
            let node = (doc.get("services"))
                .and_then(|n| n.get(&s.name))
                .and_then(|n| n.get("limits"));
            if let (Some(node), true) = (node, s.limits != Default::default()) {
                let path = format!("services.{}.limits", s.name);
                let why =
                    "limits need resource sampling, which `resources: { interval: off }` turns off";
                self.err(node, &path, why);
            }
        }
    }

    /// One top-level key into `plan`; a bad value leaves the default.
    fn top_key(&mut self, plan: &mut Plan, key: &str, node: &Node) {
        match key {
            "state_dir" => {
                if let Some(s) = self.string(node, key) {
                    plan.state_dir = self.base.join(s);
                }
            }
            "services" => plan.services = self.services(node),
            "supervisor" => {
                if let Some(s) = self.section(node, key) {
                    plan.supervisor = s;
                }
            }
            "groups" => plan.groups = self.groups(node),
            "api" => plan.api = self.api(node),
            "exit_on_critical" => {
                if let Some(b) = self.choice(node, key, BOOLEAN) {
                    plan.exit_on_critical = b;
                }
            }
            "resources" => {
                if let Some(r) = self.section(node, key) {
                    plan.resources = r;
                }
            }
            "webhook" => plan.webhook = self.webhook(node, key),
            _ => unreachable!("fields() returns only allowed keys"),
        }
    }

    fn groups(&mut self, node: &Node) -> Vec<GroupSpec> {
        let Some(entries) = self.entries(node, "groups", "group names to groups") else {
            return Vec::new();
        };
        let mut out: Vec<GroupSpec> = Vec::new();
        for (k, val) in entries {
            let Some(name) = self.name(k, "groups", "group") else {
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
            if let Some(g) = self.group(name, k, val, &path) {
                out.push(g);
            }
        }
        out
    }

    fn group(&mut self, name: &str, key: &Node, node: &Node, path: &str) -> Option<GroupSpec> {
        let mut g = GroupSpec::new(name);
        let mut ok = self.read_into(node, path, &mut g)?;
        let children = join(path, "children");
        if node.get("children").is_none() {
            self.err(
                key,
                &children,
                "missing: list the group's services and groups",
            );
            ok = false;
        } else if ok && g.children.is_empty() {
            self.err(node, &children, "a group needs at least one child");
            ok = false;
        }
        ok.then_some(g)
    }

    /// Names of services and groups, checked once the whole file is read.
    fn children(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        self.list(node, path, |this, n, p| {
            let s = this.string(n, p)?;
            this.positions.insert(p.to_string(), n.clone());
            Some(s)
        })
    }

    fn intensity(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.count(node, path, 1..=100_000, "a number of restarts")
    }

    /// `strategy` or `period`, which the root and groups share.
    fn restarts_key(
        &mut self,
        strategy: &mut Strategy,
        period: &mut Duration,
        key: &str,
        val: &Node,
        p: &str,
    ) -> Option<()> {
        match key {
            "strategy" => {
                *strategy = self.choice(val, p, &words(Strategy::ALL, Strategy::as_str))?;
            }
            "period" => *period = self.positive_duration(val, p)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for SupervisorSpec {
    const KEYS: &'static [&'static str] = &["strategy", "intensity", "period"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "intensity" => self.intensity = Some(p.intensity(val, path)?),
            _ => p.restarts_key(&mut self.strategy, &mut self.period, key, val, path)?,
        }
        Some(())
    }
}

impl Section for GroupSpec {
    const KEYS: &'static [&'static str] = &["strategy", "intensity", "period", "children"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "intensity" => self.intensity = p.intensity(val, path)?,
            "children" => self.children = p.children(val, path)?,
            _ => p.restarts_key(&mut self.strategy, &mut self.period, key, val, path)?,
        }
        Some(())
    }
}
