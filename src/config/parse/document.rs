//! The top of the document: state_dir, the root supervisor, groups.

use super::{Parser, check_name, join};
use crate::config::units::words;
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

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
const BOOLEAN: &[(&str, bool)] = &[("true", true), ("false", false)];

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
}
