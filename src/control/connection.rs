//! The daemon's side of one control connection: read request lines, hand
//! them to the supervisor loop, write the replies; for `events -f`, stream
//! events until the peer hangs up.
//!
//! What a connection holds is bounded by what it has sent: no buffer is
//! kept while it is idle, and an unfinished line is at most [`MAX_LINE`]
//! bytes. It is told why it is closed (timed out, too large, evicted) when
//! its socket has room for that line, and never waited for once it is
//! being closed.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::protocol::{self, ErrorKind, EventRecord, MAX_LINE, Request, Response};
use super::server::{Incoming, Reply, Shared};
use crate::strategy::admission::{ConnId, IDLE_TIMEOUT, PARTIAL_TIMEOUT, Phase, REPLY_TIMEOUT};
use crate::timefmt::format_time;

/// One peer: its socket, the bytes it sent that are not a request yet, and
/// its place in the connections' table (left when it is dropped).
pub(super) struct Peer {
    stream: UnixStream,
    id: ConnId,
    shared: Arc<Shared>,
    /// Fires when the accept loop closes this connection to make room.
    evicted: oneshot::Receiver<()>,
    input: Vec<u8>,
    /// `input` holds at least [`BIG`] bytes of capacity (counted in the
    /// table, so the memory is handed back once no peer holds that much).
    big: bool,
    /// The peer shut its side: what is in `input` is all there will be.
    hung_up: bool,
    /// Since when no request has been under way.
    idle_since: Instant,
    /// When the first byte of the unfinished line in `input` arrived.
    line_since: Instant,
}

/// A line buffer this large is a request far beyond what clients send
/// (names and flags): hostile or broken.
const BIG: usize = 16 << 10;

/// Reply bytes all connections together may hold while their peers take
/// them: 64 MiB, ten full `status --json` replies of 10,000 services. A
/// reply past it is answered `busy` instead, so peers that ask and never
/// read cannot make the daemon hold a copy of its state each.
pub const REPLY_BYTES: usize = 64 << 20;
static REPLYING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A reply line counted against [`REPLY_BYTES`] from when it is made
/// until it is written or dropped unsent.
pub struct Reserved(Vec<u8>);

impl Reserved {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Count a big reply line against [`REPLY_BYTES`] as it is made, before
/// any peer reads it; `None`: no room, answer `busy` instead.
pub fn reserve(line: Vec<u8>) -> Option<Reserved> {
    use std::sync::atomic::Ordering::Relaxed;
    let held = REPLYING.fetch_add(line.len(), Relaxed) + line.len();
    let reserved = Reserved(line);
    (held <= REPLY_BYTES || reserved.0.len() <= BIG).then_some(reserved)
}

/// So an HTTP body can hold the line, counted until it is written.
impl AsRef<[u8]> for Reserved {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::Relaxed;
        let len = self.0.len();
        if REPLYING.fetch_sub(len, Relaxed) == len && len > BIG {
            // The last large reply is gone: give its memory back.
            // SAFETY: malloc_trim has no preconditions.
            unsafe { libc::malloc_trim(0) };
        }
    }
}

/// The `busy` answer to a big request when [`REPLY_BYTES`] are taken.
pub fn too_many_replies() -> Response {
    Response::error(
        ErrorKind::Busy,
        "too many large replies are waiting for their readers; try again",
    )
}

/// What a peer said next.
enum Input {
    Line(Vec<u8>),
    /// It hung up with nothing unfinished.
    Closed,
    Stop(Stop),
}

/// Why the daemon closes a connection that is waiting for a request.
enum Stop {
    TooLarge,
    /// No request for [`IDLE_TIMEOUT`].
    Idle,
    /// A line not finished within [`PARTIAL_TIMEOUT`].
    Partial,
    /// Closed to make room for a newer connection.
    Evicted,
}

impl Peer {
    pub(super) fn new(
        stream: UnixStream,
        id: ConnId,
        shared: Arc<Shared>,
        evicted: oneshot::Receiver<()>,
    ) -> Peer {
        let now = Instant::now();
        Peer {
            stream,
            id,
            shared,
            evicted,
            input: Vec::new(),
            big: false,
            hung_up: false,
            idle_since: now,
            line_since: now,
        }
    }

    fn set(&self, phase: Phase) {
        self.shared.table().connections.set(self.id, phase);
    }

    /// The next request line, or why there is none.
    async fn next_input(&mut self) -> Input {
        loop {
            if let Some(end) = self.input.iter().position(|&b| b == b'\n') {
                let rest = self.input.split_off(end + 1);
                // What follows the line is another one begun no later than now.
                self.line_since = Instant::now();
                return Input::Line(std::mem::replace(&mut self.input, rest));
            }
            if self.input.len() > MAX_LINE {
                return Input::Stop(Stop::TooLarge);
            }
            if self.hung_up {
                return match self.input.is_empty() {
                    true => Input::Closed,
                    // A last line without its newline is still a request.
                    false => Input::Line(std::mem::take(&mut self.input)),
                };
            }
            let (phase, late) = match self.input.is_empty() {
                true => (
                    Phase::Idle {
                        since: self.idle_since,
                    },
                    Stop::Idle,
                ),
                false => (
                    Phase::Partial {
                        since: self.line_since,
                    },
                    Stop::Partial,
                ),
            };
            self.set(phase);
            let deadline = phase
                .deadline()
                .expect("a waiting connection has a deadline");
            tokio::select! {
                biased;
                _ = &mut self.evicted => return Input::Stop(Stop::Evicted),
                _ = tokio::time::sleep_until(deadline.into()) => return Input::Stop(late),
                ready = self.stream.readable() => {
                    if ready.is_err() || self.read_some().is_err() {
                        return Input::Closed;
                    }
                }
            }
        }
    }

    /// Move what the peer has sent onto `input`, without waiting, and never
    /// past one line over the cap: the chunk lives on the stack only for
    /// this call, so an idle connection keeps no buffer.
    fn read_some(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 4096];
        let room = (MAX_LINE + 1 - self.input.len()).min(chunk.len());
        match self.stream.try_read(&mut chunk[..room]) {
            Ok(0) => self.hung_up = true,
            Ok(n) => {
                if self.input.is_empty() {
                    self.line_since = Instant::now();
                }
                let need = self.input.len() + n;
                if need > self.input.capacity() {
                    // Doubling, but never past one line over the cap.
                    let cap = (2 * self.input.capacity()).clamp(need, MAX_LINE + 1);
                    self.input.reserve_exact(cap - self.input.len());
                }
                self.input.extend_from_slice(&chunk[..n]);
                self.note_capacity();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Count `input` in the table as large or not; after a line is taken,
    /// call it once that line is dropped, so its memory is free by then.
    fn note_capacity(&mut self) {
        let big = self.input.capacity() >= BIG;
        if big != self.big {
            self.big = big;
            self.shared.big_buffer(big);
        }
    }

    /// Write one response; false if the peer is gone or has not taken it
    /// within [`REPLY_TIMEOUT`].
    async fn send(&mut self, response: &Response) -> bool {
        self.write(&to_line(response)).await
    }

    /// Write a response line made and counted by [`reserve`].
    async fn send_line(&mut self, line: &Reserved) -> bool {
        self.write(&line.0).await
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        let write = self.stream.write_all(bytes);
        matches!(tokio::time::timeout(REPLY_TIMEOUT, write).await, Ok(Ok(())))
    }

    /// Forward a request to the supervisor loop and wait for its reply;
    /// `None` if the loop is gone.
    async fn dispatch(&mut self, request: Request, tx: &mpsc::Sender<Incoming>) -> Option<Reply> {
        let follow = matches!(request, Request::Events { follow: true, .. });
        if follow && !self.shared.table().connections.follow(self.id) {
            let message = "too many followers: every slot for `events -f` is taken; try again";
            return Some(Response::error(ErrorKind::Busy, message).into());
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        tx.send(Incoming { request, reply }).await.ok()?;
        let reply = rx.await.ok()?;
        if follow && reply.stream.is_none() {
            self.set(Phase::Working);
        }
        Some(reply)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.big {
            self.input = Vec::new();
            self.shared.big_buffer(false);
        }
        self.shared.closed(self.id);
    }
}

/// Say why a connection is being closed, if its socket has room for the
/// line; a peer about to be dropped is never waited for.
pub(super) fn parting_word(stream: &UnixStream, kind: ErrorKind, message: impl Into<String>) {
    let _ = stream.try_write(&to_line(&Response::error(kind, message)));
}

pub fn to_line(response: &Response) -> Vec<u8> {
    let mut buf = serde_json::to_vec(response).expect("responses serialize");
    buf.push(b'\n');
    buf
}

/// What a connection closed while it waited for a request is told.
fn closing_word(stop: Stop) -> (ErrorKind, String) {
    match stop {
        Stop::TooLarge => (
            ErrorKind::BadRequest,
            format!("request too large: the limit is {MAX_LINE} bytes per line"),
        ),
        Stop::Partial => (
            ErrorKind::BadRequest,
            format!(
                "request incomplete: a request line must end within {}s of its first byte",
                PARTIAL_TIMEOUT.as_secs()
            ),
        ),
        Stop::Idle => (
            ErrorKind::BadRequest,
            format!(
                "connection closed: no request for {}s",
                IDLE_TIMEOUT.as_secs()
            ),
        ),
        Stop::Evicted => (
            ErrorKind::Busy,
            "connection closed to make room for a newer one: the daemon's connections \
             are all taken and this one had waited longest for a request"
                .into(),
        ),
    }
}

/// Serve one connection until the peer hangs up, goes quiet, or is evicted.
pub(super) async fn serve(mut peer: Peer, tx: mpsc::Sender<Incoming>, me: u32) {
    let peer_uid = peer.stream.peer_cred().map(|c| c.uid()).ok();
    let allowed = peer_uid == Some(me) || peer_uid == Some(0);
    loop {
        let line = match peer.next_input().await {
            Input::Line(line) => line,
            Input::Closed => return,
            Input::Stop(stop) => {
                let (kind, message) = closing_word(stop);
                return parting_word(&peer.stream, kind, message);
            }
        };
        peer.set(Phase::Working);
        if !allowed {
            // Refused after reading the request, so the peer's write does
            // not fail before it can read why.
            let message = format!(
                "permission denied: uid {} may not control a sentineld run by uid {me}",
                peer_uid.map_or("?".into(), |u| u.to_string())
            );
            peer.send(&Response::error(ErrorKind::BadRequest, message))
                .await;
            return;
        }
        let request = protocol::parse_request(&line);
        drop(line);
        peer.note_capacity();
        let reply = match request {
            Err(e) => Reply::from(Response::from(e)),
            Ok(request) => match peer.dispatch(request, &tx).await {
                Some(reply) => reply,
                None => return,
            },
        };
        let sent = match &reply.line {
            Some(line) => peer.send_line(line).await,
            None => peer.send(&reply.response).await,
        };
        if !sent {
            return;
        }
        if let Some((events, only)) = reply.stream {
            return follow(&mut peer.stream, events, only).await;
        }
        peer.idle_since = Instant::now();
    }
}

/// `events -f`: every new event (of one service, if named) until the
/// daemon stops or the peer goes away. A follower holds one of the few
/// follower slots, so its hanging up is noticed at once, not at the next
/// event.
async fn follow(
    stream: &mut UnixStream,
    mut events: broadcast::Receiver<EventRecord>,
    only: Option<String>,
) {
    loop {
        let event = tokio::select! {
            received = events.recv() => match received {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => EventRecord {
                    id: 0,
                    at: format_time(std::time::SystemTime::now()),
                    service: String::new(),
                    kind: "lagged".into(),
                    message: format!("{n} events were dropped: this reader is too slow"),
                    severity: None,
                    action: None,
                },
                Err(broadcast::error::RecvError::Closed) => return,
            },
            ready = stream.readable() => {
                if ready.is_err() || hung_up(stream) {
                    return;
                }
                continue;
            }
        };
        if only.as_ref().is_some_and(|n| *n != event.service) && event.kind != "lagged" {
            continue;
        }
        if stream
            .write_all(&to_line(&Response::Event(event)))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Whether a follower has hung up; anything else it sends is ignored.
fn hung_up(stream: &UnixStream) -> bool {
    let mut discard = [0u8; 256];
    match stream.try_read(&mut discard) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}
