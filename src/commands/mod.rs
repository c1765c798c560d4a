//! One function per CLI verb. Each returns the process exit code or an
//! error whose message is printed as is.

pub mod logs;
pub mod up;

use std::path::Path;

use crate::control::client::{self, ClientError};
use crate::control::protocol::{BriefLine, ErrorKind, Request, Response};
use crate::report::table::{self, Style};

/// Exit codes: 0 ok, 1 runtime failure, 2 bad input (config or usage).
const EXIT_FAILURE: i32 = 1;
const EXIT_BAD_INPUT: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("{0}")]
    Daemon(String),
    #[error("{0}")]
    BadInput(String),
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::BadInput(_) => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        }
    }
}

pub fn check(file: &Path) -> Result<i32, CommandError> {
    let plan = crate::config::load(file).map_err(|e| CommandError::BadInput(e.to_string()))?;
    let mut value = serde_yaml::to_value(&plan).expect("plans serialize");
    // The order services start in (stop is the reverse), by name.
    let order: Vec<&str> = plan
        .start_order
        .iter()
        .map(|&i| plan.services[i].name.as_str())
        .collect();
    if let Some(map) = value.as_mapping_mut() {
        map.insert("start_order".into(), order.into());
    }
    let yaml = serde_yaml::to_string(&value).expect("plans serialize");
    print!("{yaml}");
    let budget = crate::supervisor::budget::Budget::of(&plan);
    if budget.needed > budget.limit {
        eprintln!("warning: {}", budget.shortfall(plan.services.len()));
    }
    eprintln!(
        "{}: ok, {} service{}",
        file.display(),
        plan.services.len(),
        if plan.services.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}

pub fn status(state_dir: &Path, name: Option<String>, json: bool) -> Result<i32, CommandError> {
    if !json && name.is_none() {
        return status_table(state_dir);
    }
    let resp = client::request(
        state_dir,
        &Request::Status {
            name: name.clone(),
            brief: false,
        },
        None,
    )?;
    let report = match resp {
        Response::Status(r) => r,
        Response::Error { message, .. } => return Err(CommandError::Daemon(message)),
        other => return Err(CommandError::Daemon(format!("unexpected reply {other:?}"))),
    };
    let out = if json {
        let mut s = serde_json::to_string(&report).expect("reports serialize");
        s.push('\n');
        s
    } else if name.is_some() && report.services.len() == 1 {
        table::render_one(&report.services[0], &report.events, &Style::detect())
    } else {
        let rows: Vec<_> = report.services.iter().map(table::row).collect();
        table::render(&rows, &Style::detect())
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    Ok(0)
}

/// `status`: the table of every service, from a `brief` reply read in
/// place (10,000 rows without a copy of each).
fn status_table(state_dir: &Path) -> Result<i32, CommandError> {
    use std::io::Write;
    let request = Request::Status {
        name: None,
        brief: true,
    };
    let line = client::request_line(state_dir, &request)?;
    let brief: BriefLine = match serde_json::from_slice(&line) {
        Ok(b) => b,
        Err(_) => {
            return match client::parse(&line)? {
                Response::Error { message, .. } => Err(CommandError::Daemon(message)),
                other => Err(CommandError::Daemon(format!("unexpected reply {other:?}"))),
            };
        }
    };
    let mut out = table::render(&brief.services, &Style::detect());
    if let Some(e) = &brief.reload_error {
        out.push_str(&format!(
            "\nthe last reload failed at {e}\n  (nothing changed; `sentineld reload --dry-run` shows every error)\n"
        ));
    }
    let _ = std::io::stdout().lock().write_all(out.as_bytes());
    Ok(0)
}

/// start / stop / restart / down: send, wait for the outcome (a stop may
/// take a whole stop timeout), print it.
pub fn simple(state_dir: &Path, request: Request) -> Result<i32, CommandError> {
    let response = if request == Request::Down {
        client::request_until_closed(state_dir, &request)?
    } else {
        client::request(state_dir, &request, None)?
    };
    match response {
        Response::Done { message } => {
            println!("{message}");
            Ok(0)
        }
        // A services file with errors: the same exit status and messages
        // as `check`.
        Response::Error {
            kind: ErrorKind::InvalidConfig,
            message,
        } => Err(CommandError::BadInput(message)),
        Response::Error { message, .. } => Err(CommandError::Daemon(message)),
        other => Err(CommandError::Daemon(format!("unexpected reply {other:?}"))),
    }
}

/// `metrics`: the Prometheus text as the daemon wrote it.
pub fn metrics(state_dir: &Path) -> Result<i32, CommandError> {
    use std::io::Write;
    match client::request(state_dir, &Request::Metrics, None)? {
        Response::Metrics { text } => {
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(0)
        }
        Response::Error { message, .. } => Err(CommandError::Daemon(message)),
        other => Err(CommandError::Daemon(format!("unexpected reply {other:?}"))),
    }
}

/// `events [NAME] [-f] [--json]`.
pub fn events(
    state_dir: &Path,
    name: Option<String>,
    follow: bool,
    json: bool,
) -> Result<i32, CommandError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let mut print = |e: &crate::control::protocol::EventRecord| -> bool {
        let line = if json {
            serde_json::to_string(e).expect("events serialize")
        } else if e.service.is_empty() {
            format!("{}  {}", e.at, e.message)
        } else {
            format!("{}  {:<12} {}", e.at, e.service, e.message)
        };
        writeln!(out, "{line}").and_then(|_| out.flush()).is_ok()
    };
    client::stream(
        state_dir,
        &Request::Events {
            name,
            follow,
            since: None,
        },
        |response| match response {
            // Without --follow the backlog is all there is.
            Response::Events { events, .. } => Ok(events.iter().all(&mut print) && follow),
            Response::Event(e) => Ok(print(&e)),
            Response::Error { message, .. } => Err(CommandError::Daemon(message)),
            other => Err(CommandError::Daemon(format!("unexpected reply {other:?}"))),
        },
    )?;
    Ok(0)
}
