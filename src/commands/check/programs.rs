//! Programs that cannot run: every command the file gives — a service's
//! own, `pre_start`, `on_event`, `recovery.restart.cleanup`,
//! `recovery.fallback.command`, exec probes — resolved as spawn will: a
//! bare name through the service's own `PATH` (its `env`, else this
//! process's), a name with a `/` relative to the service's `cwd`. A shell
//! command (`sh -c`) is checked for `/bin/sh`, never for its inner words.
//!
//! Executable means for the user running `check`; a service with `user:`
//! runs as another one.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::{Check, Command, Plan, ServiceSpec};
use crate::supervisor::spawn::{DEFAULT_PATH, search_path};

/// (YAML path, message) for each command whose program cannot run.
pub fn warnings(plan: &Plan) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    for spec in &plan.services {
        for (keys, command) in commands(spec) {
            if let Some(message) = problem(command, spec) {
                let mut path = vec!["services".to_string(), spec.name.clone()];
                path.extend(keys.iter().map(|k| k.to_string()));
                out.push((path, message));
            }
        }
    }
    out
}

/// Every command of a service, with the keys it is written at.
fn commands(spec: &ServiceSpec) -> Vec<(Vec<&'static str>, &Command)> {
    let mut out = vec![(vec!["command"], &spec.command)];
    let optional = [
        (vec!["pre_start"], spec.pre_start.as_ref()),
        (vec!["on_event"], spec.on_event.as_ref()),
        (
            vec!["recovery", "restart", "cleanup"],
            spec.recovery.restart.cleanup.as_ref(),
        ),
        (
            vec!["recovery", "fallback", "command"],
            spec.recovery.fallback.as_ref().map(|f| &f.command),
        ),
    ];
    out.extend(optional.into_iter().filter_map(|(k, c)| Some((k, c?))));
    let probes = [
        ("liveness", &spec.liveness),
        ("readiness", &spec.readiness),
        ("startup", &spec.startup),
    ];
    for (key, probe) in probes {
        if let Some(Check::Exec(command)) = probe.as_ref().map(|p| &p.check) {
            out.push((vec![key, "exec"], command));
        }
    }
    out
}

/// Why `command`'s program would not start, if it would not.
fn problem(command: &Command, spec: &ServiceSpec) -> Option<String> {
    let program = command.argv().into_iter().next()?;
    if program.contains('/') {
        let full = spec.cwd.join(&program);
        return match std::fs::metadata(&full) {
            Err(_) => Some(format!(
                "program {program:?} not found ({})",
                full.display()
            )),
            Ok(m) if m.is_dir() => Some(format!(
                "program {program:?} is a directory ({})",
                full.display()
            )),
            Ok(_) if !executable(&full) => Some(format!(
                "program {program:?} is not executable ({})",
                full.display()
            )),
            Ok(_) => None,
        };
    }
    let path_var = spec
        .env
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    if search_path(path_var.as_bytes(), program.as_bytes()).is_some() {
        return None;
    }
    // Not found as spawn looks: is there a file of that name, just not
    // one this user may run?
    let not_executable = path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(&program))
        .find(|full| std::fs::metadata(full).is_ok_and(|m| !m.is_dir()));
    Some(match not_executable {
        Some(f) => format!(
            "program {program:?} not found in PATH: {} is not executable",
            f.display()
        ),
        None => format!("program {program:?} not found in PATH ({path_var})"),
    })
}

/// Whether this user may exec `path` (what spawn's lookup asks too).
fn executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: c is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}
