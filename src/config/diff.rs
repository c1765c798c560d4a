//! What a reload changes: the running services against a newly read
//! [`Plan`], service by service and key by key.
//!
//! Pure: it compares two configurations and says what each change needs;
//! the runtime carries it out. A change to what a process is started with
//! (its command, directory, environment, user, type, pid file) needs a
//! restart; anything else about a service (probes, classify rules,
//! recovery, hooks, stop settings, logs) applies in place, to the running
//! process. `depends_on` and `group` change the tree, which is rebuilt
//! without touching what runs.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::webhook::WebhookSpec;
use super::{GroupSpec, Plan, ServiceSpec, SupervisorSpec};

/// The keys of a service that its process is started with.
const RESTART_KEYS: &[&str] = &["command", "cwd", "env", "user", "type", "pid_file"];

/// What a reload does to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    /// Stopped and started again with the new configuration; the keys
    /// that made it so, then any others that changed.
    Restart(Vec<String>),
    /// The new configuration applies to the running process.
    InPlace(Vec<String>),
}

/// A reload's changes, by service name, in the new file's order (removed
/// services last, in the old order).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub services: Vec<(String, Change)>,
    /// `supervisor`, `groups.NAME`, `exit_on_critical`, `webhook`: the
    /// top-level settings that changed.
    pub tree: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.tree.is_empty()
    }

    pub fn change(&self, name: &str) -> Option<&Change> {
        self.services
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
    }

    fn count(&self, pick: fn(&Change) -> bool) -> usize {
        self.services.iter().filter(|(_, c)| pick(c)).count()
    }

    /// "1 added, 1 removed, 1 restarted, 2 changed in place".
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "no changes".into();
        }
        let parts = [
            (self.count(|c| *c == Change::Added), "added"),
            (self.count(|c| *c == Change::Removed), "removed"),
            (self.count(|c| matches!(c, Change::Restart(_))), "restarted"),
            (
                self.count(|c| matches!(c, Change::InPlace(_))),
                "changed in place",
            ),
            (self.tree.len(), "tree settings changed"),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        said.join(", ")
    }
}

/// One line per change: `+ web`, `- old`, `~ api: restart (command, env)`,
/// `~ db: in place (liveness)`, `~ groups.backend`.
impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, change) in &self.services {
            match change {
                Change::Added => writeln!(f, "+ {name}: added")?,
                Change::Removed => writeln!(f, "- {name}: removed")?,
                Change::Restart(keys) => writeln!(f, "~ {name}: restart ({})", keys.join(", "))?,
                Change::InPlace(keys) => writeln!(f, "~ {name}: in place ({})", keys.join(", "))?,
            }
        }
        for what in &self.tree {
            writeln!(f, "~ {what}")?;
        }
        Ok(())
    }
}

/// What a running configuration is, for a diff: its services, groups and
/// root settings.
pub struct Running<'a> {
    pub services: Vec<&'a ServiceSpec>,
    pub groups: &'a [GroupSpec],
    pub supervisor: &'a SupervisorSpec,
    pub exit_on_critical: bool,
    pub webhook: Option<&'a WebhookSpec>,
}

pub fn diff(old: &Running<'_>, new: &Plan) -> Diff {
    let mut d = Diff::default();
    let old_by_name: BTreeMap<&str, &ServiceSpec> =
        old.services.iter().map(|s| (s.name.as_str(), *s)).collect();
    for s in &new.services {
        match old_by_name.get(s.name.as_str()) {
            None => d.services.push((s.name.clone(), Change::Added)),
            Some(o) => {
                if let Some(change) = service_change(o, s) {
                    d.services.push((s.name.clone(), change));
                }
            }
        }
    }
    let new_names: BTreeSet<&str> = new.services.iter().map(|s| s.name.as_str()).collect();
    for o in &old.services {
        if !new_names.contains(o.name.as_str()) {
            d.services.push((o.name.clone(), Change::Removed));
        }
    }
    if old.supervisor != &new.supervisor {
        d.tree.push("supervisor".into());
    }
    if old.exit_on_critical != new.exit_on_critical {
        d.tree.push("exit_on_critical".into());
    }
    if old.webhook != new.webhook.as_ref() {
        d.tree.push("webhook".into());
    }
    for g in &new.groups {
        match old.groups.iter().find(|o| o.name == g.name) {
            None => d.tree.push(format!("groups.{}: added", g.name)),
            Some(o) if o != g => d.tree.push(format!("groups.{}", g.name)),
            Some(_) => {}
        }
    }
    for o in old.groups {
        if !new.groups.iter().any(|g| g.name == o.name) {
            d.tree.push(format!("groups.{}: removed", o.name));
        }
    }
    d
}

/// The keys whose values differ, as the file spells them.
fn changed_keys(old: &ServiceSpec, new: &ServiceSpec) -> Vec<String> {
    let as_map = |s: &ServiceSpec| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(old), as_map(new));
    let mut keys: Vec<String> = a.keys().chain(b.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| a.get(k) != b.get(k));
    keys
}

fn service_change(old: &ServiceSpec, new: &ServiceSpec) -> Option<Change> {
    let mut keys = changed_keys(old, new);
    // What is shown of a webhook hides its header values: compared whole.
    if old.webhook != new.webhook && !keys.iter().any(|k| k == "webhook") {
        keys.push("webhook".into());
    }
    if keys.is_empty() {
        return None;
    }
    // The keys that decide first, so the reason reads first.
    keys.sort_by_key(|k| !RESTART_KEYS.contains(&k.as_str()));
    if RESTART_KEYS.contains(&keys[0].as_str()) {
        Some(Change::Restart(keys))
    } else {
        Some(Change::InPlace(keys))
    }
}

#[cfg(test)]
mod tests;
