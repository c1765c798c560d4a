//! `status [NAME] [--json]` and `events [NAME] [-f] [--json]`.

use std::io::Write;
use std::path::Path;

use super::CommandError;
use crate::color::ColorChoice;
use crate::control::client;
use crate::control::protocol::{BriefLine, EventRecord, Request, Response};
use crate::report::table::{self, Style};

pub fn status(
    state_dir: &Path,
    name: Option<String>,
    json: bool,
    color: ColorChoice,
) -> Result<i32, CommandError> {
    if !json && name.is_none() {
        return status_table(state_dir, color);
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
        other => return Err(CommandError::from_reply(other)),
    };
    if json {
        return super::print_json(&report);
    }
    let style = Style::for_stdout(color);
    let out = if report.services.len() == 1 {
        table::render_one(&report.services[0], &report.events, &style)
    } else {
        let rows: Vec<_> = report.services.iter().map(table::row).collect();
        table::render(&rows, &style)
    };
    super::out(out);
    Ok(0)
}

/// `status`: the table of every service, from a `brief` reply read in
/// place (10,000 rows without a copy of each).
fn status_table(state_dir: &Path, color: ColorChoice) -> Result<i32, CommandError> {
    let request = Request::Status {
        name: None,
        brief: true,
    };
    let line = client::request_line(state_dir, &request)?;
    let brief: BriefLine = match serde_json::from_slice(&line) {
        Ok(b) => b,
        Err(_) => return Err(CommandError::from_reply(client::parse(&line)?)),
    };
    let mut out = table::render(&brief.services, &Style::for_stdout(color));
    if let Some(e) = &brief.reload_error {
        out.push_str(&format!(
            "\nthe last reload failed at {e}\n  (nothing changed; `sentineld reload --dry-run` shows every error)\n"
        ));
    }
    super::out(out);
    Ok(0)
}

/// `events [NAME] [-f] [--json]`.
pub fn events(
    state_dir: &Path,
    name: Option<String>,
    follow: bool,
    json: bool,
) -> Result<i32, CommandError> {
    let mut out = std::io::stdout().lock();
    let mut print = |e: &EventRecord| -> bool {
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
            other => Err(CommandError::from_reply(other)),
        },
    )?;
    Ok(0)
}
