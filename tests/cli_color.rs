//! `--color auto|always|never` and `NO_COLOR`: escape codes only when
//! asked for or on a terminal, never through a pipe by default, never in
//! `--json`; the daemon's own log follows the same rule.

mod common;

use std::process::{Command, Stdio};

use common::*;

const ESC: &str = "\x1b[";

/// A client command through a pipe, with `NO_COLOR` as given (unset: None).
fn piped(inst: &Instance, args: &[&str], no_color: Option<&str>) -> String {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(inst.dir.path())
        .env_remove("SENTINELD_STATE_DIR")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped());
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn status_colours_only_when_asked_through_a_pipe() {
    let inst = Instance::start("services:\n  web:\n    command: sleep 1000\n");
    inst.wait_running("web", None);
    // `always` wins over a pipe and over NO_COLOR, in both status paths
    // (the fast one and clap's), for the table and for one service.
    for args in [
        &["status", "--color", "always"][..],
        &["status", "--color=always"],
        &["--color", "always", "status"],
        &["status", "web", "--color", "always"],
    ] {
        let out = piped(&inst, args, Some("1"));
        assert!(
            out.contains(&format!("{ESC}32mrunning{ESC}0m")),
            "{args:?}: {out}"
        );
    }
    for (args, no_color) in [
        (&["status"][..], None),
        (&["status", "--color", "auto"], None),
        (&["status", "--color", "never"], None),
        (&["status", "web", "--color", "never"], None),
        (&["status", "--color", "auto"], Some("1")),
        (&["status", "--json", "--color", "always"], None),
        (&["status", "web", "--json", "--color", "always"], None),
        (&["events", "--json", "--color", "always"], None),
    ] {
        let out = piped(&inst, args, no_color);
        assert!(out.contains("web"), "{args:?}: {out}");
        assert!(!out.contains(ESC), "{args:?} NO_COLOR={no_color:?}: {out}");
    }
    let bad = inst.cli(&["status", "--color", "sometimes"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn the_daemons_log_is_coloured_only_with_color_always() {
    let plain = Instance::start("services:\n  web:\n    command: sleep 1000\n");
    plain.wait_running("web", None);
    let dir = tempfile::tempdir().unwrap();
    let coloured = Instance::start_with(dir, "services:\n  web:\n    command: sleep 1000\n", |c| {
        c.args(["--color", "always"]);
    });
    coloured.wait_running("web", None);
    let log = |inst: &Instance| std::fs::read_to_string(inst.path("up.log")).unwrap();
    wait_until(
        std::time::Duration::from_secs(10),
        "the daemon's log",
        || !log(&plain).is_empty() && !log(&coloured).is_empty(),
    );
    assert!(!log(&plain).contains(ESC), "{}", log(&plain));
    assert!(log(&coloured).contains(ESC), "{}", log(&coloured));
}

#[test]
fn clap_own_help_and_errors_follow_color_never_on_a_terminal() {
    // `script` gives the command a terminal, where clap would colour.
    let on_tty = |args: &str| {
        let out = Command::new("script")
            .args(["-qc", &format!("{BIN} {args}"), "/dev/null"])
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .output()
            .expect("script (util-linux)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_tty("--help");
    assert!(coloured.contains(ESC), "a terminal gets colour by default");
    for args in ["--color never --help", "--color=never status --bogus"] {
        let text = on_tty(args);
        assert!(!text.contains(ESC) && text.len() > 20, "{args}: {text:?}");
    }
}
