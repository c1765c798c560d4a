//! Bad services files: exit 2, the exact message (file:line:col: path:
//! what), and nothing started — neither by `check` nor by `up`.

#[path = "config_errors/cases.rs"]
mod cases;
mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use cases::CASES;
use common::BIN;

fn expect_rejected(
    dir: &std::path::Path,
    args: &[&str],
    expected: &str,
    name: &str,
    uid: Option<u32>,
) {
    let mut cmd = Command::new(if uid.is_some() {
        common::bin_for_anyone()
    } else {
        BIN.into()
    });
    cmd.args(args)
        .current_dir(dir)
        .env_remove("SENTINELD_TEST_UNSET_VAR");
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{name}: {args:?}: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        expected,
        "{name}: {args:?}"
    );
    assert!(out.stdout.is_empty(), "{name}");
    assert!(!dir.join("started").exists(), "{name}: a service ran");
    assert!(
        !dir.join(".sentineld").exists(),
        "{name}: up created its state dir"
    );
}

#[test]
fn every_bad_file_is_rejected_with_its_exact_message_and_starts_nothing() {
    assert!(CASES.len() >= 20);
    for (name, yaml, expected) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("services.yaml");
        std::fs::write(&file, yaml).unwrap();
        let expected = expected
            .replace("{f}", &file.display().to_string())
            .replace("{d}", &dir.path().display().to_string());
        expect_rejected(
            dir.path(),
            &["check", "services.yaml"],
            &expected,
            name,
            None,
        );
        expect_rejected(dir.path(), &["up", "services.yaml"], &expected, name, None);
        expect_rejected(
            dir.path(),
            &["up", "-d", "services.yaml"],
            &expected,
            name,
            None,
        );
    }
}

#[test]
fn user_needs_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    command: touch started\n    user: root\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    let (uid, shown) = if euid == 0 {
        (Some(65534), 65534)
    } else {
        (None, euid)
    };
    let expected = format!(
        "{}:4:11: services.web.user: running a service as another user needs root (sentineld runs as uid {shown})",
        file.display()
    );
    expect_rejected(
        dir.path(),
        &["check", "services.yaml"],
        &expected,
        "user",
        uid,
    );
    expect_rejected(dir.path(), &["up", "services.yaml"], &expected, "user", uid);
}

#[test]
fn unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["check", "nope.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "cannot read nope.yaml: No such file or directory (os error 2)"
    );
}

#[test]
fn check_prints_the_resolved_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.yaml"),
        "services:\n  web:\n    command: [sleep, '${SECS:-5}']\n    env: {A: 1}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "services.yaml"])
        .current_dir(dir.path())
        .env_remove("SECS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("- sleep\n"), "{plan}");
    assert!(plan.contains("- '5'"), "{plan}");
    assert!(plan.contains("restart: always"), "{plan}");
    assert!(plan.contains("min_uptime: 1s"), "{plan}");
    assert!(plan.contains("signal: SIGTERM"), "{plan}");
    assert!(plan.contains("start_order:\n- web\n"), "{plan}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("ok, 1 service"));
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = Command::new(BIN)
        .args(["status", "--jsn"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unexpected argument '--jsn'"));
    let out = Command::new(BIN)
        .args(["logs", "web", "-n", "many"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'many'"));
    let out = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
