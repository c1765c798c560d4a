//! The HTTP API (`api.listen`): each request becomes one control
//! [`Request`] sent to the supervisor loop through the same channel as the
//! control socket's, so the daemon's handlers stay the one place that
//! decides; this module only translates, authenticates and bounds.
//!
//! hyper parses HTTP; this server bounds what a client can hold: header
//! size ([`MAX_HEADER`]), time to send the headers ([`HEADER_TIMEOUT`],
//! which also closes idle keep-alive connections), body size ([`MAX_BODY`],
//! POSTs take none), open connections ([`MAX_CONNECTIONS`]: at the cap the
//! one that waited longest for a request makes room, a canned 503 when all
//! are busy; see `http/slots.rs`), event streams ([`MAX_FOLLOWERS`]),
//! time for the daemon's answer ([`REQUEST_TIMEOUT`]) and for a connection
//! to make any progress
//! ([`STALL_TIMEOUT`]). It runs as tasks on the daemon's loop and never
//! blocks it. What it serves is described by the OpenAPI document
//! [`OPENAPI`] (`sentineld openapi`).

mod routes;
mod slots;
mod sse;
mod watched;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::StatusCode;
use hyper::body::{Bytes, Incoming as Body};
use hyper::header::{self, HeaderValue};
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;

use super::protocol::{ErrorKind, Request, Response};
use super::server::{Incoming, Reply};
use crate::config::{ApiSpec, Secret};
use routes::Route;
use slots::{Busy, Slot, Slots};

pub use routes::ROUTES;

/// The OpenAPI 3 document of what this server serves.
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// Connections served at once. At the cap a new one takes the place of
/// the one that has waited longest for a request (see `http/slots.rs`); only
/// when every one is busy is it answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 64;
/// Event streams (`/api/v1/events`) open at once, a quarter of the
/// connections; more are answered 503.
pub const MAX_FOLLOWERS: usize = 16;
/// Request line and headers together.
pub const MAX_HEADER: usize = 8 << 10;
/// Bodies are not read; one larger than this is answered 413.
pub const MAX_BODY: usize = 1 << 10;
/// From a connection's first byte (or its last response) to the end of
/// the next request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// For the daemon's answer; the action it was asked for goes on.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// A connection that neither sends nor takes a byte for this long while a
/// response is due (a client that does not read) is closed.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(75);

/// The bound listener and the token it asks for, made by `up` before
/// anything starts so that a port in use starts nothing.
#[derive(Debug)]
pub struct Listener {
    listener: std::net::TcpListener,
    pub addr: SocketAddr,
    token: Option<Secret>,
    public_health: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} (api.listen): {source}")]
pub struct BindError {
    addr: SocketAddr,
    source: std::io::Error,
}

pub fn bind(spec: &ApiSpec) -> Result<Listener, BindError> {
    let error = |source| BindError {
        addr: spec.listen,
        source,
    };
    let listener = std::net::TcpListener::bind(spec.listen).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    let addr = listener.local_addr().map_err(error)?;
    Ok(Listener {
        listener,
        addr,
        token: spec.token.clone(),
        public_health: spec.public_health,
    })
}

/// What every connection task shares.
struct Api {
    tx: mpsc::Sender<Incoming>,
    token: Option<Secret>,
    /// `/healthz` and `/readyz` answered without the token, in brief.
    public_health: bool,
    /// The last brief answer: when, alive, ready.
    brief: std::sync::Mutex<Option<(Instant, bool, bool)>>,
    slots: Arc<Slots>,
}

pub(crate) type HttpResponse = hyper::Response<BoxBody<Bytes, Infallible>>;
/// The response that refuses a request, from a check that passes it on
/// success.
type Refusal = Box<HttpResponse>;

/// Accept connections until the daemon stops (the task is aborted).
pub async fn serve(listener: Listener, tx: mpsc::Sender<Incoming>) {
    let std = listener.listener;
    let tcp = match tokio::net::TcpListener::from_std(std) {
        Ok(tcp) => tcp,
        Err(e) => return tracing::error!("HTTP API: {e}"),
    };
    let api = Arc::new(Api {
        tx,
        token: listener.token,
        public_health: listener.public_health,
        brief: std::sync::Mutex::new(None),
        slots: Arc::new(Slots::new()),
    });
    loop {
        api.slots.room().await;
        let stream = match tcp.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: wait for some to close.
                tracing::warn!("HTTP API: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let now = Instant::now();
        let mut stream = Some(stream);
        let admitted = api.slots.admit(now, |id| {
            let slot = Arc::new(Slot::new(api.slots.clone(), id, now));
            let stream = stream.take().expect("spawned once");
            tokio::spawn(connection(stream, api.clone(), slot)).abort_handle()
        });
        if let (false, Some(stream)) = (admitted, &stream) {
            refuse(stream);
        }
    }
}

/// A connection past [`MAX_CONNECTIONS`]: told so if its socket has room,
/// never waited for.
fn refuse(stream: &tokio::net::TcpStream) {
    let body = error_body(
        "busy",
        &format!("too many connections: all {MAX_CONNECTIONS} are busy with requests; try again"),
    );
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n",
        body.len()
    );
    // What the client sent already is read first: closing on unread bytes
    // would reset the connection and lose the answer.
    let _ = stream.try_read(&mut [0u8; 4096]);
    let _ = stream.try_write(&[head.as_bytes(), &body].concat());
}

async fn connection(stream: tokio::net::TcpStream, api: Arc<Api>, slot: Arc<Slot>) {
    let _ = stream.set_nodelay(true);
    let (io, stalled) = watched::Watched::new(stream, STALL_TIMEOUT);
    let service = hyper::service::service_fn(move |req| {
        let api = api.clone();
        let mut busy = slot.busy();
        async move {
            let response = handle(req, &api, &mut busy).await;
            Ok::<_, Infallible>(slots::tracked(response, busy))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEADER)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = stalled => {}
    }
}

async fn handle(req: hyper::Request<Body>, api: &Arc<Api>, busy: &mut Busy) -> HttpResponse {
    let mut refused = match &api.token {
        Some(token) => unauthorized(&req, token),
        None => from_elsewhere(&req),
    };
    // A probe without the token, where that is allowed: its status only.
    let brief = refused.is_some() && api.token.is_some() && api.public_health && is_probe(&req);
    if brief {
        refused = None;
    }
    if let Some(refusal) = ambiguous(&req).or(refused) {
        return refusal;
    }
    // A probe without the token is answered, but neither counts as
    // served nor holds its connection: a crowd of them cannot keep their
    // connections from being the first to make room for a new one (the
    // kubelet's next probe).
    if !brief {
        busy.served();
    }
    let last_event_id = match req.headers().get("last-event-id") {
        None => None,
        Some(id) => match id.to_str().ok().and_then(|v| v.trim().parse().ok()) {
            Some(id) => Some(id),
            None => {
                let message = format!("Last-Event-ID {id:?} is not an event id (0 to 2^64-1)");
                return error(StatusCode::BAD_REQUEST, "bad_request", &message);
            }
        },
    };
    let route = match routes::route(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        last_event_id,
    ) {
        Ok(route) => route,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = no_body(req).await {
        return *refusal;
    }
    match route {
        Route::Forward(request) => match ask(api, request).await {
            Ok(reply) => routes::reply(reply),
            Err(refusal) => *refusal,
        },
        Route::Healthz | Route::Readyz if brief => match brief_health(api).await {
            Ok((alive, ready)) => routes::brief_health(&route, alive, ready),
            Err(refusal) => *refusal,
        },
        Route::Healthz | Route::Readyz => match ask(api, Request::Health).await {
            Ok(reply) => routes::health(&route, reply.into_response()),
            Err(refusal) => *refusal,
        },
        Route::Events { since } => sse::events(api, busy, since).await,
    }
}

/// How long a brief health answer is reused for requests without the
/// token: a flood of them costs the daemon one question per this long, and
/// each is answered at once, so its connection is busy for no time.
const BRIEF_HEALTH_TTL: Duration = Duration::from_millis(500);

/// (alive, ready) for a request without the token: the daemon's last
/// answer if it is fresh, else a new one.
async fn brief_health(api: &Api) -> Result<(bool, bool), Refusal> {
    let cached = *api.brief.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((at, alive, ready)) = cached
        && at.elapsed() < BRIEF_HEALTH_TTL
    {
        return Ok((alive, ready));
    }
    let reply = ask(api, Request::Health).await?;
    let Response::Health(report) = reply.into_response() else {
        let message = "the daemon gave no health report";
        return Err(Box::new(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message,
        )));
    };
    let (alive, ready) = (report.alive(), report.ready());
    *api.brief.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), alive, ready));
    Ok((alive, ready))
}

/// The daemon's answer to `request`, or the response that says why none
/// came.
async fn ask(api: &Api, request: Request) -> Result<Reply, Refusal> {
    let gone = || {
        let message = "sentineld is shutting down";
        Box::new(error(StatusCode::SERVICE_UNAVAILABLE, "conflict", message))
    };
    let (reply, rx) = tokio::sync::oneshot::channel();
    api.tx
        .send(Incoming { request, reply })
        .await
        .map_err(|_| gone())?;
    match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(_)) => Err(gone()),
        Err(_) => {
            let secs = REQUEST_TIMEOUT.as_secs();
            let message =
                format!("no answer within {secs}s; what was asked goes on: see the status");
            Err(Box::new(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                &message,
            )))
        }
    }
}

/// `GET /healthz` or `GET /readyz`, exactly.
fn is_probe(req: &hyper::Request<Body>) -> bool {
    let path = req.uri().path();
    req.method() == hyper::Method::GET && (path == "/healthz" || path == "/readyz")
}

/// With a token set, every request must bring it as `Authorization:
/// Bearer TOKEN`; compared in constant time.
fn unauthorized(req: &hyper::Request<Body>, token: &Secret) -> Option<HttpResponse> {
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| {
        let (scheme, token) = v.as_bytes().split_at_checked(7)?;
        scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
    });
    if given.is_some_and(|given| same(token.expose().as_bytes(), given)) {
        return None;
    }
    let message = match given {
        None => "missing token: send `Authorization: Bearer TOKEN` (api.token)",
        Some(_) => "wrong token",
    };
    let mut refusal = error(StatusCode::UNAUTHORIZED, "unauthorized", message);
    let bearer = HeaderValue::from_static("Bearer");
    refusal
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, bearer);
    Some(refusal)
}

/// A request whose meaning depends on which of two readings is taken:
/// more than one `Host` or `Origin`, or HTTP/1.1 without `Host` (RFC 9112
/// requires one), is refused rather than guessed at.
fn ambiguous(req: &hyper::Request<Body>) -> Option<HttpResponse> {
    let headers = req.headers();
    let message = if let Some(name) = [header::HOST, header::ORIGIN]
        .into_iter()
        .find(|name| headers.get_all(name).iter().count() > 1)
    {
        format!("more than one {name} header")
    } else if req.version() == hyper::Version::HTTP_11 && !headers.contains_key(header::HOST) {
        "no Host header: HTTP/1.1 requires one".to_string()
    } else {
        return None;
    };
    Some(error(StatusCode::BAD_REQUEST, "bad_request", &message))
}

/// Without a token only local programs are served: a request that names
/// another host (`Host`, or an absolute-form target), or comes from a page of another site (`Origin`),
/// is refused, so that no web page a local browser shows can make the
/// daemon stop a service (cross-site request forgery) or read its status
/// through a name that resolves to 127.0.0.1 (DNS rebinding).
fn from_elsewhere(req: &hyper::Request<Body>) -> Option<HttpResponse> {
    let headers = req.headers();
    // An absolute-form target (`GET http://host/path`) names the host in
    // place of `Host`.
    let host = match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => headers.get(header::HOST).map(|h| h.to_str().unwrap_or("")),
    };
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or(""));
    let origin_host = origin.map(|o| o.split_once("://").map_or("", |(_, rest)| rest));
    if host.is_none_or(loopback) && origin_host.is_none_or(loopback) {
        return None;
    }
    let (what, name) = match origin {
        Some(o) if !origin_host.is_some_and(loopback) => ("Origin", o),
        _ => ("Host", host.unwrap_or("")),
    };
    let message = format!(
        "refused: {what} {name:?} is not this machine's loopback; without api.token only \
         local clients are served"
    );
    Some(error(StatusCode::FORBIDDEN, "unauthorized", &message))
}

/// `localhost`, `127.0.0.1`, `[::1]`, each with a port or not.
fn loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `given == expected` in a time that depends only on `expected`'s length.
fn same(expected: &[u8], given: &[u8]) -> bool {
    let lengths = (expected.len() as u64).ct_eq(&(given.len() as u64));
    let bytes = expected.iter().enumerate().fold(lengths, |acc, (i, b)| {
        acc & b.ct_eq(given.get(i).unwrap_or(&!b))
    });
    bytes.into()
}

/// Read and drop a body of at most [`MAX_BODY`] bytes; no request takes
/// one, but `{}` from a generic client is no reason to refuse.
async fn no_body(req: hyper::Request<Body>) -> Result<(), Refusal> {
    let too_large = || {
        let message = format!("request body too large: at most {MAX_BODY} bytes, and none is read");
        Box::new(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request",
            &message,
        ))
    };
    let declared = req.headers().get(header::CONTENT_LENGTH);
    let length = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if length.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    let read = Limited::new(req.into_body(), MAX_BODY).collect();
    match tokio::time::timeout(HEADER_TIMEOUT, read).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => {
            let message = format!("cannot read the request body: {e}");
            Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &message,
            )))
        }
        Err(_) => {
            let message = format!("request body not sent within {}s", HEADER_TIMEOUT.as_secs());
            Err(Box::new(error(
                StatusCode::REQUEST_TIMEOUT,
                "bad_request",
                &message,
            )))
        }
    }
}

/// The HTTP status for an error of `kind`.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::UnknownService => StatusCode::NOT_FOUND,
        ErrorKind::BadRequest | ErrorKind::Version => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::InvalidConfig => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// `{"type":"error","kind":KIND,"message":MESSAGE}`, as the control
/// socket's errors; `kind` is an [`ErrorKind`] or `unauthorized`.
fn error_body(kind: &str, message: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Error<'a> {
        r#type: &'a str,
        kind: &'a str,
        message: &'a str,
    }
    let error = Error {
        r#type: "error",
        kind,
        message,
    };
    serde_json::to_vec(&error).expect("errors serialize")
}

fn error(status: StatusCode, kind: &str, message: &str) -> HttpResponse {
    json(status, error_body(kind, message))
}

fn json(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = hyper::Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    let json = HeaderValue::from_static("application/json");
    response.headers_mut().insert(header::CONTENT_TYPE, json);
    response
}

/// A control response as JSON, with its error kind's status.
fn from_response(response: &Response) -> HttpResponse {
    if let Response::Metrics { text } = response {
        let mut answer = hyper::Response::new(Full::new(Bytes::from(text.clone())).boxed());
        let prometheus = HeaderValue::from_static(crate::report::metrics::CONTENT_TYPE);
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, prometheus);
        return answer;
    }
    let status = match response {
        Response::Error { kind, .. } => status_of(*kind),
        _ => StatusCode::OK,
    };
    json(
        status,
        serde_json::to_vec(response).expect("responses serialize"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdeF"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same(b"0123456789abcdef", b"0123456789abcdef0"));
        assert!(!same(b"0123456789abcdef", b""));
    }

    #[test]
    fn loopback_names_with_or_without_a_port() {
        for yes in [
            "localhost",
            "LOCALHOST:9700",
            "127.0.0.1",
            "127.0.0.2:80",
            "[::1]",
            "[::1]:9700",
        ] {
            assert!(loopback(yes), "{yes}");
        }
        for no in [
            "",
            "evil.example",
            "evil.example:9700",
            "10.0.0.1:9700",
            "[::2]:1",
            "localhost.evil",
        ] {
            assert!(!loopback(no), "{no}");
        }
    }

    #[test]
    fn error_kinds_have_their_statuses() {
        assert_eq!(status_of(ErrorKind::UnknownService), 404);
        assert_eq!(status_of(ErrorKind::BadRequest), 400);
        assert_eq!(status_of(ErrorKind::Version), 400);
        assert_eq!(status_of(ErrorKind::Conflict), 409);
        assert_eq!(status_of(ErrorKind::Busy), 503);
        assert_eq!(status_of(ErrorKind::Internal), 500);
    }
}
