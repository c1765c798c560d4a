//! `check FILE [--json]`: validate, print the resolved plan (YAML, or
//! JSON with `--json`), and warn — exit 0 — about what validation cannot
//! call an error because it depends on the machine at the moment: a
//! program that is not there or not executable ([`programs`]), a probe's
//! port that another process already listens on ([`ports`]).
//!
//! Warnings go to stderr as `FILE:LINE:COL: warning: PATH: message`, like
//! the errors; with `--json`, as one JSON object per line.

mod ports;
mod programs;

use std::path::Path;

use serde::Serialize;

use super::CommandError;
use crate::config::Plan;
use crate::config::yaml::{self, Node};

/// `check FILE`; `state_dir`: where a daemon of it runs, when not the
/// file's (`--state-dir`, `SENTINELD_STATE_DIR`), so that its services'
/// own ports are not taken for someone else's.
pub fn check(
    file: &Path,
    state_dir: Option<std::path::PathBuf>,
    json: bool,
) -> Result<i32, CommandError> {
    let mut plan = crate::config::load(file)?;
    if let Some(dir) = state_dir {
        plan.place_state_dir(dir);
    }
    let resolved = Resolved {
        plan: &plan,
        // The order services start in (stop is the reverse), by name.
        start_order: (plan.start_order.iter())
            .map(|&i| plan.services[i].name.as_str())
            .collect(),
    };
    if json {
        super::print_json(&resolved)?;
    } else {
        super::out(serde_yaml::to_string(&resolved).expect("plans serialize"));
    }
    for warning in warnings(&plan) {
        match json {
            true => super::err(format!(
                "{}\n",
                serde_json::to_string(&warning).expect("serializes")
            )),
            false => super::err(format!("{warning}\n")),
        }
    }
    if !json {
        let n = plan.services.len();
        let s = if n == 1 { "" } else { "s" };
        super::err(format!("{}: ok, {n} service{s}\n", file.display()));
    }
    Ok(0)
}

/// The plan as `check` prints it.
#[derive(Serialize)]
struct Resolved<'a> {
    #[serde(flatten)]
    plan: &'a Plan,
    start_order: Vec<&'a str>,
}

/// Something about a valid file that will not work as it stands.
#[derive(Debug, Serialize)]
pub struct Warning {
    #[serde(rename = "type")]
    kind: &'static str,
    file: String,
    line: usize,
    col: usize,
    /// The YAML path of the value (`services.web.command`).
    path: String,
    message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: warning: ", self.file, self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every warning of `plan`, each at the value in the file it is about.
pub fn warnings(plan: &Plan) -> Vec<Warning> {
    let mut found: Vec<(Vec<String>, String)> = Vec::new();
    let budget = crate::supervisor::budget::Budget::of(plan);
    if budget.needed > budget.limit {
        found.push((Vec::new(), budget.shortfall(plan.services.len())));
    }
    found.extend(programs::warnings(plan));
    found.extend(ports::warnings(plan));
    let doc = crate::config::read::read_text(&plan.file)
        .ok()
        .and_then(|text| yaml::parse(&text).ok());
    let file = plan.file.display().to_string();
    found
        .into_iter()
        .map(|(path, message)| {
            let (line, col) = doc.as_ref().map_or((1, 1), |d| locate(d, &path));
            Warning {
                kind: "warning",
                file: file.clone(),
                line,
                col,
                path: path.join("."),
                message,
            }
        })
        .collect()
}

/// Where the value at `path` is written: the deepest of its keys that the
/// file spells out (a default is reported at what holds it).
fn locate(doc: &Node, path: &[String]) -> (usize, usize) {
    let mut node = doc;
    for key in path {
        match node.get(key) {
            Some(next) => node = next,
            None => break,
        }
    }
    // `http: {url: …}`: at the URL.
    if let Some(url) = node.get("url") {
        node = url;
    }
    (node.line, node.col)
}
