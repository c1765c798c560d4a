//! `/api/v1/events`: the journal's events as server-sent events, each with
//! its id, so a client that reconnects with `Last-Event-ID` gets what it
//! missed while the journal still holds it. When it holds no longer (or
//! the id is from an earlier run of the daemon), an `event: missed` says
//! so before what is kept; a reader too slow for the live events gets one
//! too, and the stream ends so it can resume from the journal.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::StatusCode;
use hyper::body::{Body, Bytes, Frame};
use hyper::header::{self, HeaderValue};
use tokio::sync::{broadcast, mpsc};

use super::slots::Busy;
use super::{Api, HttpResponse, MAX_FOLLOWERS, ask, error, from_response};
use crate::control::protocol::{EventRecord, Request, Response};

/// A comment this often keeps proxies from closing a quiet stream, and
/// finds out that a client has gone.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Chunks waiting for a slow client; past them it lags.
const QUEUE: usize = 64;

pub(super) async fn events(api: &Api, busy: &Busy, since: Option<u64>) -> HttpResponse {
    if !busy.follow() {
        let message = format!("too many event streams: all {MAX_FOLLOWERS} are open; try again");
        return error(StatusCode::SERVICE_UNAVAILABLE, "busy", &message);
    };
    let request = Request::Events {
        name: None,
        follow: true,
        since,
    };
    let reply = match ask(api, request).await {
        Ok(reply) => reply,
        Err(refusal) => return *refusal,
    };
    let (Response::Events { events, missed }, Some((live, _))) = (&reply.response, reply.stream)
    else {
        return from_response(&reply.response);
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    let mut first = String::from("retry: 1000\n\n");
    if *missed {
        first.push_str(&missed_event(since.unwrap_or(0)));
    }
    for e in events {
        first.push_str(&frame(e));
    }
    let _ = tx.try_send(Bytes::from(first));
    tokio::spawn(stream(live, tx));
    let mut response = hyper::Response::new(Stream { rx }.boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Live events until the daemon stops, the client goes, or it lags.
async fn stream(mut live: broadcast::Receiver<EventRecord>, tx: mpsc::Sender<Bytes>) {
    loop {
        let chunk = tokio::select! {
            received = live.recv() => match received {
                Ok(e) => frame(&e),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx.try_send(Bytes::from(lagged_event()));
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(KEEP_ALIVE) => ": keep-alive\n\n".to_string(),
            _ = tx.closed() => return,
        };
        if tx.try_send(Bytes::from(chunk)).is_err() {
            // Full: the client does not keep up; closed: it is gone.
            let _ = tx.try_send(Bytes::from(lagged_event()));
            return;
        }
    }
}

fn frame(e: &EventRecord) -> String {
    let data = serde_json::to_string(e).expect("events serialize");
    format!("id: {}\ndata: {data}\n\n", e.id)
}

fn missed_event(since: u64) -> String {
    let data = serde_json::json!({
        "after": since,
        "message": format!(
            "events after {since} are no longer kept (or that id is from an earlier run \
             of the daemon): what follows is every event still kept"
        ),
    });
    format!("event: missed\ndata: {data}\n\n")
}

fn lagged_event() -> String {
    let data = serde_json::json!({
        "message": "this reader fell behind the live events: reconnect with Last-Event-ID \
                    to get the rest from the journal",
    });
    format!("event: missed\ndata: {data}\n\n")
}

/// The response body: chunks from the streaming task.
struct Stream {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}
