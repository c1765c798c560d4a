//! The daemon's side of the control socket.
//!
//! Order matters: take the state dir's lock (a live daemon holds it), remove
//! a stale socket, bind, chmod 0600, and only then listen, so no peer can
//! connect before the mode is right. Peers of another uid are refused unless
//! they are root.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use super::connection::{self, Peer};
use super::protocol::{ErrorKind, EventRecord, Request, Response};
use crate::state_dir::{Socket, StateDir, StateDirError, Trusted};
use crate::strategy::admission::{Admission, ConnId, Connections, Limits};

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("sentineld is already running for {} (pid {pid})", dir.display())]
    AlreadyRunning { dir: PathBuf, pid: String },
    #[error("{0}")]
    StateDir(#[from] StateDirError),
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
    /// The checked state dir the socket and the lock are in.
    pub state_dir: Trusted,
    _lock: File,
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> BindError + 'a {
    move |source| BindError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub fn bind(state_dir: Trusted) -> Result<ControlSocket, BindError> {
    let lock = lock(&state_dir)?;
    let path = StateDir::new(state_dir.root()).control_socket();
    // Checked before binding elsewhere: clients connect by this path.
    UnixAddr::new(&path).map_err(|e| io("bad socket path", &path)(e.into()))?;
    if state_dir.clear_socket(Socket::Control)? {
        tracing::info!("replaced a stale socket at {}", path.display());
    }
    let fd = nix::sys::socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| io("cannot create socket", &path)(e.into()))?;
    let at = state_dir.bind_path(Socket::Control);
    let addr = UnixAddr::new(&at).map_err(|e| io("bad socket path", &path)(e.into()))?;
    nix::sys::socket::bind(fd.as_raw_fd(), &addr)
        .map_err(|e| io("cannot bind", &path)(e.into()))?;
    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(0o600))
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
        state_dir,
        _lock: lock,
    })
}

/// Take the state dir's lock and write our pid in it; a live daemon holds
/// it already.
fn lock(state_dir: &Trusted) -> Result<File, BindError> {
    let lock_path = StateDir::new(state_dir.root()).lock_file();
    let mut lock = state_dir.open_lock()?;
    // SAFETY: flock on a valid, owned fd.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut pid = String::new();
        let _ = lock.read_to_string(&mut pid);
        return Err(BindError::AlreadyRunning {
            dir: state_dir.root().to_path_buf(),
            pid: pid.trim().to_string(),
        });
    }
    lock.set_len(0).map_err(io("cannot write", &lock_path))?;
    write!(lock, "{}", std::process::id()).map_err(io("cannot write", &lock_path))?;
    Ok(lock)
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
    /// The response already written as its line (a big `status`), sent
    /// instead of `response`.
    pub line: Option<super::connection::Reserved>,
    pub stream: Option<(broadcast::Receiver<EventRecord>, Option<String>)>,
}

impl Reply {
    /// The response, read back from its line if it was sent as one (a
    /// `status`): for an inbox that is a channel rather than a socket.
    pub fn into_response(self) -> Response {
        match &self.line {
            Some(line) => serde_json::from_slice(line.bytes()).unwrap_or_else(|e| {
                Response::error(
                    super::protocol::ErrorKind::Internal,
                    format!("a reply that is only a line (a brief status): {e}"),
                )
            }),
            None => self.response,
        }
    }
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply {
            response,
            line: None,
            stream: None,
        }
    }
}

/// Accept connections until the listener fails; each connection is served
/// by a task that forwards requests to the supervisor loop. How many stay
/// open, and for how long, is [`admission`](crate::strategy::admission)'s to say: at most one past the
/// cap is ever open, so clients cannot take the descriptors the services
/// need.
pub async fn serve(listener: tokio::net::UnixListener, tx: mpsc::Sender<Incoming>, limits: Limits) {
    let me = nix::unistd::geteuid().as_raw();
    let shared = Shared::new(limits);
    loop {
        while !shared.table().connections.may_accept() {
            shared.closed.notified().await;
        }
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let mut table = shared.table();
        let id = match table.connections.admit(Instant::now()) {
            Admission::Admit(id) => id,
            Admission::Replace { id, evict } => {
                if let Some(tell) = table.evict.remove(&evict) {
                    let _ = tell.send(());
                }
                id
            }
            Admission::Refuse => {
                let message = format!(
                    "too many connections: all {} that this daemon allows are busy \
                     (requests under way, or following events); try again",
                    limits.connections
                );
                connection::parting_word(&stream, ErrorKind::Busy, message);
                continue;
            }
        };
        let (tell, evicted) = oneshot::channel();
        table.evict.insert(id, tell);
        drop(table);
        let peer = Peer::new(stream, id, shared.clone(), evicted);
        tokio::spawn(connection::serve(peer, tx.clone(), me));
    }
}

/// The connections' table, shared by the accept loop and the connection
/// tasks; all run on the daemon's one thread and none holds the lock across
/// an await.
pub(super) struct Shared {
    table: Mutex<Table>,
    /// Signalled each time a connection lets go of its descriptor.
    closed: Notify,
}

pub(super) struct Table {
    pub connections: Connections,
    /// How to tell each waiting connection that it was closed to make room.
    pub evict: HashMap<ConnId, oneshot::Sender<()>>,
    /// Connections holding a large unfinished line.
    big_buffers: usize,
}

impl Shared {
    fn new(limits: Limits) -> Arc<Shared> {
        Arc::new(Shared {
            table: Mutex::new(Table {
                connections: Connections::new(limits),
                evict: HashMap::new(),
                big_buffers: 0,
            }),
            closed: Notify::new(),
        })
    }

    pub(super) fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A connection's line buffer became large, or stopped being. Once none
    /// is, the allocator is asked to hand freed memory back to the system:
    /// a flood of clients holding near-[`MAX_LINE`] lines must not leave
    /// the daemon's RSS raised after they are gone.
    ///
    /// [`MAX_LINE`]: super::protocol::MAX_LINE
    pub(super) fn big_buffer(&self, big: bool) {
        let mut table = self.table();
        match big {
            true => table.big_buffers += 1,
            false => table.big_buffers -= 1,
        }
        if table.big_buffers == 0 {
            drop(table);
            // SAFETY: malloc_trim only returns free memory to the system.
            #[cfg(target_env = "gnu")]
            unsafe {
                libc::malloc_trim(0)
            };
        }
    }

    /// Connection `id` has let go of its descriptor.
    pub(super) fn closed(&self, id: ConnId) {
        let mut table = self.table();
        table.connections.close(id);
        table.evict.remove(&id);
        drop(table);
        self.closed.notify_one();
    }
}
