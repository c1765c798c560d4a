//! `start`, `stop`, `restart`, `reset`, `signal`, `reload` and `down`: one
//! request, and the daemon's answer — its message for people, or with
//! `--json` its reply object (`{"type":"done","message":…}`, a reload's
//! with `changes`).

use std::path::Path;

use super::CommandError;
use crate::control::client;
use crate::control::protocol::{Request, Response};

/// Send, wait for the outcome (a stop may take a whole stop timeout),
/// print it.
pub fn simple(state_dir: &Path, request: Request, json: bool) -> Result<i32, CommandError> {
    let response = if request == Request::Down {
        client::request_until_closed(state_dir, &request)?
    } else {
        client::request(state_dir, &request, None)?
    };
    match response {
        Response::Done { .. } if json => super::print_json(&response),
        Response::Done { message, .. } => {
            super::out(format!("{message}\n"));
            Ok(0)
        }
        // A services file with errors: the same exit status and messages
        // as `check`.
        other => Err(CommandError::from_reply(other)),
    }
}
