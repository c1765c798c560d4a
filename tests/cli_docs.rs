//! Shell completions and the man page, generated from the clap definitions:
//! every subcommand is in each, and the bash script is valid bash.

mod common;

use std::process::Command;

use common::BIN;

const SUBCOMMANDS: &[&str] = &[
    "up",
    "check",
    "status",
    "start",
    "stop",
    "restart",
    "reset",
    "signal",
    "reload",
    "events",
    "logs",
    "metrics",
    "down",
    "openapi",
    "schema",
    "completions",
    "man",
];

fn run(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn completions_name_every_subcommand_and_bash_parses_its_script() {
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell}: no {sub}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sentineld.bash");
    std::fs::write(&file, run(&["completions", "bash"])).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "{check:?}");
    let bad = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
}

#[test]
fn the_man_page_has_a_section_for_every_subcommand() {
    let page = run(&["man"]);
    assert!(
        page.starts_with(".ie") || page.contains(".TH sentineld 1"),
        "{page}"
    );
    assert!(page.contains(".TH sentineld 1"));
    for sub in SUBCOMMANDS {
        let heading = format!(".SH \"SENTINELD {}\"", sub.to_uppercase());
        assert!(page.contains(&heading), "no {heading}");
    }
    assert!(page.contains("state\\-dir"), "global options are there");
}
