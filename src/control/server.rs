//! The daemon's side of the control socket.
//!
//! Order matters: take the state dir's lock (a live daemon holds it), remove
//! a stale socket, bind, chmod 0600, and only then listen, so no peer can
//! connect before the mode is right. Peers of another uid are refused unless
//! they are root.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::protocol::{self, ErrorKind, EventRecord, MAX_LINE, Request, Response};
use crate::state_dir::StateDir;
use crate::timefmt::format_time;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("sentineld is already running for {} (pid {pid})", dir.display())]
    AlreadyRunning { dir: PathBuf, pid: String },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A bound, listening control socket plus the lock that proves we own the
/// state dir. Both live as long as the daemon.
pub struct ControlSocket {
    pub listener: std::os::unix::net::UnixListener,
    pub path: PathBuf,
    _lock: File,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub fn bind(state_dir: &Path) -> Result<ControlSocket, BindError> {
    if !state_dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io("cannot create", state_dir))?;
    }
    let lock_path = StateDir::new(state_dir).lock_file();
    let mut lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io("cannot open", &lock_path))?;
    // SAFETY: flock on a valid, owned fd.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut pid = String::new();
        let _ = lock.read_to_string(&mut pid);
        return Err(BindError::AlreadyRunning {
            dir: state_dir.to_path_buf(),
            pid: pid.trim().to_string(),
        });
    }
    lock.set_len(0).map_err(io("cannot write", &lock_path))?;
    write!(lock, "{}", std::process::id()).map_err(io("cannot write", &lock_path))?;

    let path = StateDir::new(state_dir).control_socket();
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!("replaced a stale socket at {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("cannot remove stale socket", &path)(e)),
    }
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| io("cannot create socket", &path)(e.into()))?;
    let addr = UnixAddr::new(&path).map_err(|e| io("bad socket path", &path)(e.into()))?;
    nix::sys::socket::bind(fd.as_raw_fd(), &addr)
        .map_err(|e| io("cannot bind", &path)(e.into()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot chmod", &path))?;
    nix::sys::socket::listen(
        &fd,
        nix::sys::socket::Backlog::new(1024).expect("valid backlog"),
    )
    .map_err(|e| io("cannot listen on", &path)(e.into()))?;
    // SAFETY: fd is a listening Unix stream socket we own.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd.into_raw_fd()) };
    Ok(ControlSocket {
        listener,
        path,
        _lock: lock,
    })
}

/// A request from a peer, with the way back.
pub struct Incoming {
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// The daemon's answer: one response line, then, for a following `events`
/// request, every new event (of one service, if named).
pub struct Reply {
    pub response: Response,
    pub stream: Option<(broadcast::Receiver<EventRecord>, Option<String>)>,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply {
            response,
            stream: None,
        }
    }
}

/// Accept connections until the listener fails; each connection is served
/// by a task that forwards requests to the supervisor loop.
pub async fn serve(listener: tokio::net::UnixListener, tx: mpsc::Sender<Incoming>) {
    let me = nix::unistd::geteuid().as_raw();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(connection(stream, tx.clone(), me));
            }
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn connection(stream: tokio::net::UnixStream, tx: mpsc::Sender<Incoming>, me: u32) {
    let (r, mut w) = stream.into_split();
    let peer_uid = w.as_ref().peer_cred().map(|c| c.uid()).ok();
    let allowed = peer_uid == Some(me) || peer_uid == Some(0);
    let mut reader = BufReader::new(r);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(n) => n,
            Err(_) => return,
        };
        if n == 0 {
            return;
        }
        if line.last() != Some(&b'\n') && line.len() > MAX_LINE {
            let message = format!("request too large: the limit is {MAX_LINE} bytes per line");
            let _ = write_response(&mut w, &Response::error(ErrorKind::BadRequest, message)).await;
            return;
        }
        let trimmed = line.trim_ascii();
        if !allowed {
            // Refused after reading the request, so the peer's write does
            // not fail before it can read why.
            let message = format!(
                "permission denied: uid {} may not control a sentineld run by uid {me}",
                peer_uid.map_or("?".into(), |u| u.to_string())
            );
            let _ = write_response(&mut w, &Response::error(ErrorKind::BadRequest, message)).await;
            return;
        }
        let reply = match protocol::parse_request(trimmed) {
            Err(e) => Reply::from(Response::from(e)),
            Ok(request) => {
                let (reply, rx) = oneshot::channel();
                if tx.send(Incoming { request, reply }).await.is_err() {
                    return;
                }
                match rx.await {
                    Ok(r) => r,
                    Err(_) => return,
                }
            }
        };
        if write_response(&mut w, &reply.response).await.is_err() {
            return;
        }
        if let Some((events, only)) = reply.stream {
            follow(&mut w, events, only).await;
            return;
        }
    }
}

/// `events -f`: every new event (of one service, if named) until the
/// daemon stops or the peer goes away.
async fn follow(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    mut events: broadcast::Receiver<EventRecord>,
    only: Option<String>,
) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => EventRecord {
                at: format_time(std::time::SystemTime::now()),
                service: String::new(),
                kind: "lagged".into(),
                message: format!("{n} events were dropped: this reader is too slow"),
                severity: None,
                action: None,
            },
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if only.as_ref().is_some_and(|n| *n != event.service) && event.kind != "lagged" {
            continue;
        }
        if write_response(w, &Response::Event(event)).await.is_err() {
            return;
        }
    }
}

async fn write_response(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    response: &Response,
) -> std::io::Result<()> {
    let mut buf = serde_json::to_vec(response).expect("responses serialize");
    buf.push(b'\n');
    w.write_all(&buf).await
}
