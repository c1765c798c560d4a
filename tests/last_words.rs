//! What a failing process printed last is in its failure event and in the
//! status LAST column (nginx's `[emerg] unexpected "}"` need not be looked
//! up in the log), as one line; a run that printed nothing quotes nothing.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_failure_quotes_the_last_line_its_run_printed() {
    let inst = Instance::start(
        r#"services:
  web:
    command: if [ ! -f quiet ]; then echo 'starting'; printf '[emerg] unexpected "}" in nginx.conf:12\n\n'; touch quiet; exit 1; fi; exit 1
    restart: on-failure
    recovery: { retry: { attempts: 1 } }
"#,
    );
    wait_until(Duration::from_secs(10), "two failures", || {
        inst.messages_of("web", "failure").len() >= 2
    });
    let f = inst.messages_of("web", "failure");
    let quoted = "; last output: [emerg] unexpected \"}\" in nginx.conf:12";
    assert!(f[0].ends_with(quoted), "{f:#?}");
    // The next run printed nothing: nothing of the one before is quoted.
    assert!(!f[1].contains("last output"), "{f:#?}");
    let out = inst.cli(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!table.contains("[emerg]"), "{table}");
}

#[test]
fn the_last_column_carries_it_while_the_service_is_down() {
    let inst = Instance::start(
        r#"services:
  web:
    command: echo 'config is broken'; exit 78
"#,
    );
    inst.wait_state("web", "quarantined");
    let s = inst.service("web");
    let last = s["last"].as_str().unwrap_or_default().to_string();
    assert!(last.ends_with(" — config is broken"), "{s}");
    let out = inst.cli(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(table.contains("config is broken"), "{table}");
}

#[test]
fn while_the_fallback_stands_in_the_table_shows_its_pid() {
    let inst = Instance::start(
        "services:
  api:
    command: exit 78
    recovery: { fallback: { command: exec sleep 1000 } }
",
    );
    let s = inst.wait_state("api", "fallback");
    let fallback = s["fallback_pid"].as_i64().unwrap();
    assert!(s["pid"].is_null(), "{s}");
    let out = inst.cli(&["status"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = table.lines().find(|l| l.starts_with("api")).unwrap();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[3], fallback.to_string(), "{table}");
}

#[test]
fn clients_find_the_instance_from_a_subdirectory_and_say_where_they_looked() {
    let inst = Instance::start(
        "services:
  web:
    command: exec sleep 1000
",
    );
    inst.wait_running("web", None);
    let sub = inst.path("src/deep");
    std::fs::create_dir_all(&sub).unwrap();
    let status = |cwd: &std::path::Path| {
        std::process::Command::new(BIN)
            .args(["status", "web"])
            .current_dir(cwd)
            .env_remove("SENTINELD_STATE_DIR")
            .output()
            .unwrap()
    };
    let out = status(&sub);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("running"));
    let elsewhere = tempfile::tempdir().unwrap();
    if let Some(other) = sentineld::config::nearest_state_dir(elsewhere.path()) {
        eprintln!(
            "skipped the rest: {} is above the temp dir",
            other.display()
        );
        return;
    }
    let out = status(elsewhere.path());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success());
    let tried = elsewhere.path().join(".sentineld");
    assert!(err.contains(&tried.display().to_string()), "{err}");
}

#[test]
fn a_failed_run_that_is_not_restarted_shows_its_last_words_too() {
    let mut inst = Instance::start(
        "services:
  once:
    command: echo starting; echo fatal no config >&2; exit 1
    restart: never
",
    );
    let s = inst.wait_state("once", "exited");
    let last = s["last"].as_str().unwrap_or_default();
    assert!(last.ends_with("— fatal no config"), "{s}");
    let exited = inst.messages_of("once", "exited");
    assert!(
        exited
            .iter()
            .any(|m| m.contains("last output: fatal no config")),
        "{exited:#?}"
    );
    assert!(inst.down().success());
}
