//! One function per CLI verb. Each returns the process exit code or an
//! error whose message is printed as is (as a JSON object with `--json`).
//!
//! - [`status`]: `status`, `events` — the daemon's view.
//! - [`actions`]: `start`, `stop`, `restart`, `reset`, `signal`, `reload`,
//!   `down` — a request and the daemon's answer.
//! - [`check`]: the resolved plan, its warnings.
//! - [`metrics`], [`logs`], [`up`].

pub mod actions;
pub mod check;
pub mod logs;
pub mod metrics;
pub mod status;
pub mod up;

pub use actions::simple;
pub use check::check;
pub use metrics::metrics;
pub use status::{events, status};

use std::io::Write;

use crate::control::client::ClientError;
use crate::control::protocol::{ErrorKind, Response};

/// Exit codes: 0 ok, 1 runtime failure, 2 bad input (config or usage).
const EXIT_FAILURE: i32 = 1;
const EXIT_BAD_INPUT: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Client(#[from] ClientError),
    /// The daemon refused, with its reason.
    #[error("{1}")]
    Daemon(ErrorKind, String),
    /// A services file with errors, as the daemon reported it (`reload`).
    #[error("{0}")]
    BadInput(String),
    /// A services file with errors, read here: each with its location.
    #[error("{0}")]
    Config(#[from] crate::config::LoadError),
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::BadInput(_) | CommandError::Config(_) => EXIT_BAD_INPUT,
            _ => EXIT_FAILURE,
        }
    }

    /// A reply that is not the one asked for: the daemon's error as it
    /// said it, anything else as a protocol error.
    pub fn from_reply(response: Response) -> CommandError {
        match response {
            Response::Error {
                kind: ErrorKind::InvalidConfig,
                message,
            } => CommandError::BadInput(message),
            Response::Error { kind, message } => CommandError::Daemon(kind, message),
            other => CommandError::Client(ClientError::Protocol(format!("{other:?}"))),
        }
    }

    /// What went wrong, for machines: the daemon's kind (`unknown_service`,
    /// `conflict`, …), `invalid_config`, or the client's own `not_running`,
    /// `io`, `protocol`, `failed`.
    pub fn kind(&self) -> String {
        match self {
            CommandError::Client(ClientError::NotRunning(_)) => "not_running".into(),
            CommandError::Client(ClientError::Io { .. }) => "io".into(),
            CommandError::Client(ClientError::Protocol(_)) => "protocol".into(),
            CommandError::Daemon(kind, _) => match serde_json::to_value(kind) {
                Ok(serde_json::Value::String(s)) => s,
                _ => "internal".into(),
            },
            CommandError::BadInput(_) | CommandError::Config(_) => "invalid_config".into(),
            CommandError::Failed(_) => "failed".into(),
        }
    }

    /// `{"type":"error","kind":…,"message":…}`: the shape of the daemon's
    /// own error replies; a services file's errors add `errors`, each
    /// `{file, line, col, path, message}`.
    pub fn to_json(&self) -> String {
        let mut v =
            serde_json::json!({"type": "error", "kind": self.kind(), "message": self.to_string()});
        if let CommandError::Config(crate::config::LoadError::Invalid(errors)) = self {
            let each = |e: &crate::config::ConfigError| {
                serde_json::json!({
                    "file": e.file, "line": e.line, "col": e.col,
                    "path": e.path, "message": e.message,
                })
            };
            v["errors"] = errors.iter().map(each).collect();
        }
        v.to_string()
    }

    /// Printed as is, not after `sentineld: `: config errors start with
    /// `file:line:col`, like a compiler's.
    pub fn is_located(&self) -> bool {
        matches!(self, CommandError::BadInput(_) | CommandError::Config(_))
    }
}

/// `text` on stdout. A closed pipe (`| head -1`) is not an error of ours,
/// and must not turn a done action into a failure (`print!` panics).
pub fn out(text: impl AsRef<[u8]>) {
    let _ = std::io::stdout().lock().write_all(text.as_ref());
}

/// `text` on stderr, as [`out`].
pub fn err(text: impl AsRef<[u8]>) {
    let _ = std::io::stderr().lock().write_all(text.as_ref());
}

/// One JSON value and a newline on stdout; a closed pipe is not an error.
pub fn print_json(value: &impl serde::Serialize) -> Result<i32, CommandError> {
    let mut line = serde_json::to_string(value).expect("replies serialize");
    line.push('\n');
    out(line);
    Ok(0)
}

/// `openapi [--json]`: the document as written (YAML), or as JSON.
pub fn openapi(json: bool) -> Result<i32, CommandError> {
    let yaml = crate::control::http::OPENAPI;
    if !json {
        out(yaml);
        return Ok(0);
    }
    let doc: serde_json::Value = serde_yaml::from_str(yaml)
        .map_err(|e| CommandError::Failed(format!("the OpenAPI document: {e}")))?;
    print_json(&doc)
}
