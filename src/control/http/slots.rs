//! Which HTTP connections are kept: the control socket's admission
//! ([`crate::strategy::admission`]), with the HTTP API's own cap.
//!
//! A connection waits for a request from when it is accepted, or from the
//! end of the last response it was served; sending bytes of a request head
//! (however slowly) does not end the wait, completing the head does. At the
//! cap, a new connection takes the place of the one that has waited
//! longest, so clients that connect and then stay silent or trickle their
//! headers cannot lock out one that sends its request promptly: it could
//! be displaced only by [`MAX_CONNECTIONS`] − 1 newer connections arriving
//! before its head is complete. Only when every connection is busy (a
//! request being answered, or an event stream, which are capped apart at
//! [`MAX_FOLLOWERS`]) is the new one answered 503. A request refused for
//! its token (or, without one, for where it comes from) does not count as
//! served: its connection goes on waiting from when it began to.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Instant;

use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, SizeHint};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::{HttpResponse, MAX_CONNECTIONS, MAX_FOLLOWERS};
use crate::strategy::admission::{Admission, ConnId, Connections, Limits, Phase};

/// The open connections, and how to close each.
pub(super) struct Slots {
    state: Mutex<State>,
    /// A connection let go of its descriptor.
    closed: Notify,
}

struct State {
    connections: Connections,
    tasks: HashMap<ConnId, AbortHandle>,
}

impl Slots {
    pub(super) fn new() -> Slots {
        let limits = Limits {
            connections: MAX_CONNECTIONS,
            followers: MAX_FOLLOWERS,
            reserve: 0,
            shortfall: 0,
        };
        Slots {
            state: Mutex::new(State {
                connections: Connections::new(limits),
                tasks: HashMap::new(),
            }),
            closed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Until another connection may be accepted: not while one closed to
    /// make room still holds its descriptor.
    pub(super) async fn room(&self) {
        loop {
            let closed = self.closed.notified();
            if self.lock().connections.may_accept() {
                return;
            }
            closed.await;
        }
    }

    /// A connection accepted at `now`: `spawn` runs it with its id (and is
    /// not called when it is refused). Returns whether it was admitted.
    pub(super) fn admit<F>(&self, now: Instant, spawn: F) -> bool
    where
        F: FnOnce(ConnId) -> AbortHandle,
    {
        let mut state = self.lock();
        let (id, evict) = match state.connections.admit(now) {
            Admission::Refuse => return false,
            Admission::Admit(id) => (id, None),
            Admission::Replace { id, evict } => (id, Some(evict)),
        };
        // Spawned under the lock: the task cannot close before its
        // handle is kept.
        let task = spawn(id);
        state.tasks.insert(id, task);
        if let Some(task) = evict.and_then(|evict| state.tasks.get(&evict)) {
            tracing::debug!("HTTP API: at the cap, closed the connection that waited longest");
            task.abort();
        }
        true
    }

    /// The connection's task has ended: its descriptor is free.
    pub(super) fn close(&self, id: ConnId) {
        let mut state = self.lock();
        state.connections.close(id);
        state.tasks.remove(&id);
        drop(state);
        self.closed.notify_one();
    }

    fn set(&self, id: ConnId, phase: Phase) {
        self.lock().connections.set(id, phase);
    }

    fn follow(&self, id: ConnId) -> bool {
        self.lock().connections.follow(id)
    }
}

/// One connection's place among the [`Slots`].
pub(super) struct Slot {
    slots: Arc<Slots>,
    id: ConnId,
    /// Since when it has waited for a request it is served.
    waiting: Mutex<Instant>,
}

impl Slot {
    pub(super) fn new(slots: Arc<Slots>, id: ConnId, accepted: Instant) -> Slot {
        Slot {
            slots,
            id,
            waiting: Mutex::new(accepted),
        }
    }

    /// A request head is complete: busy until [`Busy`] is dropped with
    /// its response.
    pub(super) fn busy(self: &Arc<Self>) -> Busy {
        self.slots.set(self.id, Phase::Working);
        Busy {
            slot: self.clone(),
            served: false,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.close(self.id);
    }
}

/// A request under way; when its response is written (or abandoned) the
/// connection waits for the next one: from now if it was served, else
/// from when it began to wait.
pub(super) struct Busy {
    slot: Arc<Slot>,
    served: bool,
}

impl Busy {
    /// The request passed the token (or the loopback check).
    pub(super) fn served(&mut self) {
        self.served = true;
    }

    /// Turn it into an event stream, while those are below their cap.
    pub(super) fn follow(&self) -> bool {
        self.slot.slots.follow(self.slot.id)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut waiting = self.slot.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if self.served {
            *waiting = Instant::now();
        }
        let since = *waiting;
        drop(waiting);
        self.slot.slots.set(self.slot.id, Phase::Idle { since });
    }
}

/// A response's body that keeps its request [`Busy`] until hyper is done
/// with it.
struct Tracked {
    inner: BoxBody<Bytes, Infallible>,
    _busy: Busy,
}

/// `response`, its connection busy until it is written.
pub(super) fn tracked(response: HttpResponse, busy: Busy) -> HttpResponse {
    response.map(|inner| Tracked { inner, _busy: busy }.boxed())
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
