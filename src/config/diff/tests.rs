use std::path::Path;

use super::*;
use crate::config::Context;
use crate::config::parse::plan_from_str;

fn plan(yaml: &str) -> Plan {
    let env = |_: &str| None;
    let ctx = Context {
        env: &env,
        euid: 1000,
    };
    plan_from_str(yaml, Path::new("/tmp/services.yaml"), &ctx).expect("valid")
}

fn between(old: &str, new: &str) -> Diff {
    let old = plan(old);
    let running = Running {
        services: old.services.iter().collect(),
        groups: &old.groups,
        supervisor: &old.supervisor,
        exit_on_critical: old.exit_on_critical,
        webhook: old.webhook.as_ref(),
    };
    diff(&running, &plan(new))
}

const BASE: &str = "services:
  db:
    command: sleep 100
  api:
    command: sleep 200
    depends_on: { db: started }
  web:
    command: sleep 300
";

#[test]
fn the_same_file_changes_nothing() {
    let d = between(BASE, BASE);
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.summary(), "no changes");
}

#[test]
fn added_removed_restarted_and_in_place_are_told_apart() {
    let new = "services:
  db:
    command: sleep 100
    liveness: { exec: \"true\", interval: 2s }
  api:
    command: sleep 201
    depends_on: { db: started }
  cache:
    command: sleep 400
";
    let d = between(BASE, new);
    assert_eq!(d.change("cache"), Some(&Change::Added));
    assert_eq!(d.change("web"), Some(&Change::Removed));
    assert_eq!(
        d.change("api"),
        Some(&Change::Restart(vec!["command".into()]))
    );
    assert_eq!(
        d.change("db"),
        Some(&Change::InPlace(vec!["liveness".into()]))
    );
    assert_eq!(
        d.summary(),
        "1 added, 1 removed, 1 restarted, 1 changed in place"
    );
    let text = d.to_string();
    assert!(text.contains("+ cache: added\n"), "{text}");
    assert!(text.contains("- web: removed\n"), "{text}");
    assert!(text.contains("~ api: restart (command)\n"), "{text}");
    assert!(text.contains("~ db: in place (liveness)\n"), "{text}");
}

#[test]
fn a_restart_key_decides_and_is_named_first() {
    let new = BASE.replace(
        "  web:\n    command: sleep 300\n",
        "  web:\n    command: sleep 300\n    env: { A: b }\n    restart: on-failure\n",
    );
    let d = between(BASE, &new);
    assert_eq!(
        d.change("web"),
        Some(&Change::Restart(vec!["env".into(), "restart".into()]))
    );
}

#[test]
fn dependencies_and_groups_change_in_place() {
    let new = "services:
  db:
    command: sleep 100
  api:
    command: sleep 200
  web:
    command: sleep 300
groups:
  front:
    children: [web]
";
    let d = between(BASE, new);
    assert_eq!(
        d.change("api"),
        Some(&Change::InPlace(vec!["depends_on".into()]))
    );
    assert_eq!(
        d.change("web"),
        Some(&Change::InPlace(vec!["group".into()]))
    );
    assert_eq!(d.tree, vec!["groups.front: added".to_string()]);
}

#[test]
fn root_settings_are_tree_changes() {
    let new = format!("supervisor: {{ strategy: one_for_all }}\n{BASE}");
    let d = between(BASE, &new);
    assert!(d.services.is_empty());
    assert_eq!(d.tree, vec!["supervisor".to_string()]);
    assert_eq!(d.summary(), "1 tree settings changed");
}

#[test]
fn a_webhook_change_applies_in_place_even_a_hidden_header_value() {
    let hook = |v: &str| {
        format!(
            "webhook: {{ url: \"http://127.0.0.1:9/top\" }}\nservices:\n  db:\n    command: sleep 100\n    webhook: {{ url: \"http://127.0.0.1:9/h\", headers: {{ Authorization: {v} }} }}\n"
        )
    };
    let d = between(&hook("a"), &hook("b"));
    assert_eq!(
        d.change("db"),
        Some(&Change::InPlace(vec!["webhook".into()]))
    );
    assert!(d.tree.is_empty(), "{d}");
    let top = hook("a").replace("/top", "/other");
    let d = between(&hook("a"), &top);
    assert_eq!(d.tree, ["webhook"]);
}
