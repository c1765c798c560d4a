//! The CLI's side of the control socket: blocking I/O, no async runtime, so
//! `sentineld status` costs a connect, one write and one read.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};
use crate::state_dir::StateDir;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "no sentineld is running for {} (start one with `sentineld up services.yaml`, or pass --state-dir)",
        .0.display()
    )]
    NotRunning(PathBuf),
    #[error("control socket {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unexpected reply from the daemon: {0}")]
    Protocol(String),
}

pub fn request(
    state_dir: &Path,
    request: &Request,
    timeout: Option<Duration>,
) -> Result<Response, ClientError> {
    parse(&exchange(state_dir, request, timeout, false)?)
}

/// The reply line itself, for a caller that reads it in its own form (a
/// `brief` status, borrowed from the line).
pub fn request_line(state_dir: &Path, request: &Request) -> Result<Vec<u8>, ClientError> {
    exchange(state_dir, request, None, false)
}

/// A reply line as a [`Response`].
pub fn parse(line: &[u8]) -> Result<Response, ClientError> {
    serde_json::from_slice(line).map_err(|e| {
        ClientError::Protocol(format!(
            "{e}: {}",
            String::from_utf8_lossy(&line[..line.len().min(200)])
        ))
    })
}

/// For `down`: the reply, then wait until the daemon closes the connection,
/// which it does only by exiting, so the state dir is free on return.
pub fn request_until_closed(state_dir: &Path, request: &Request) -> Result<Response, ClientError> {
    parse(&exchange(state_dir, request, None, true)?)
}

/// Connect to the daemon of `state_dir`; no socket, or nobody listening on
/// it, is "not running".
fn connect(state_dir: &Path) -> Result<(UnixStream, PathBuf), ClientError> {
    let path = StateDir::new(state_dir).control_socket();
    match UnixStream::connect(&path) {
        Ok(s) => Ok((s, path)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            Err(ClientError::NotRunning(state_dir.to_path_buf()))
        }
        Err(source) => Err(ClientError::Io { path, source }),
    }
}

fn exchange(
    state_dir: &Path,
    request: &Request,
    timeout: Option<Duration>,
    until_closed: bool,
) -> Result<Vec<u8>, ClientError> {
    let (mut stream, path) = connect(state_dir)?;
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    stream.set_read_timeout(timeout).map_err(io)?;
    // A daemon that refuses us may close early; its reply is still readable.
    if let Err(e) = stream.write_all(request.to_line().as_bytes())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(io(e));
    }
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut line = Vec::with_capacity(64 << 10);
    reader.read_until(b'\n', &mut line).map_err(io)?;
    if line.is_empty() {
        return Err(ClientError::Protocol(
            "the daemon closed the connection".into(),
        ));
    }
    if until_closed {
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut reader, &mut rest);
    }
    Ok(line)
}

/// Send `request`, then hand every response line to `each` until it returns
/// `Ok(false)` or an error, or the daemon closes the connection.
pub fn stream<E: From<ClientError>>(
    state_dir: &Path,
    request: &Request,
    mut each: impl FnMut(Response) -> Result<bool, E>,
) -> Result<(), E> {
    let (mut stream, path) = connect(state_dir)?;
    let io = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    stream.write_all(request.to_line().as_bytes()).map_err(io)?;
    let reader = BufReader::with_capacity(64 << 10, stream);
    for line in reader.split(b'\n') {
        let line = line.map_err(io)?;
        let response: Response =
            serde_json::from_slice(&line).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if !each(response)? {
            break;
        }
    }
    Ok(())
}
