//! Which route a request takes, and how a control reply becomes a
//! response. A route that forwards one control request is one line in
//! [`route`] (and one in [`ROUTES`]); its reply is sent as JSON with the
//! status its error kind has.

use hyper::body::Bytes;
use hyper::{Method, StatusCode};

use super::{HttpResponse, Refusal, error, from_response, json};
use crate::control::protocol::{ErrorKind, Request, Response};
use crate::control::server::Reply;

pub(super) enum Route {
    /// One control request; its reply is the response.
    Forward(Request),
    /// 200 unless the system is CRITICAL.
    Healthz,
    /// 200 when every service with a readiness check is ready.
    Readyz,
    /// Server-sent events after the one with id `since`.
    Events { since: Option<u64> },
}

/// Every route served, as the OpenAPI document names it: method, path.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/services/{name}"),
    ("POST", "/api/v1/services/{name}/start"),
    ("POST", "/api/v1/services/{name}/stop"),
    ("POST", "/api/v1/services/{name}/restart"),
    ("POST", "/api/v1/services/{name}/reset"),
    ("GET", "/api/v1/events"),
    ("GET", "/metrics"),
    ("POST", "/api/v1/reload"),
];

/// The route for `method` and `path`, or the response that refuses it.
pub(super) fn route(
    method: &Method,
    path: &str,
    query: Option<&str>,
    last_event_id: Option<u64>,
) -> Result<Route, Refusal> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = |n: &str| n.to_string();
    match segments.as_slice() {
        ["healthz"] => get(method, Route::Healthz),
        ["readyz"] => get(method, Route::Readyz),
        ["metrics"] => get(method, Route::Forward(Request::Metrics)),
        ["api", "v1", "reload"] => post(
            method,
            Request::Reload {
                dry_run: dry_run(query),
            },
        ),
        ["api", "v1", "status"] => get(method, status(None)),
        ["api", "v1", "services", n] => get(method, status(Some(name(n)))),
        ["api", "v1", "services", n, "start"] => post(method, Request::Start { name: name(n) }),
        ["api", "v1", "services", n, "stop"] => post(method, Request::Stop { name: name(n) }),
        ["api", "v1", "services", n, "restart"] => post(method, Request::Restart { name: name(n) }),
        ["api", "v1", "services", n, "reset"] => post(method, Request::Reset { name: name(n) }),
        ["api", "v1", "events"] => get(
            method,
            Route::Events {
                since: last_event_id,
            },
        ),
        _ => {
            let message = format!("no such endpoint: {path}; see `sentineld openapi`");
            Err(Box::new(error(
                StatusCode::NOT_FOUND,
                "bad_request",
                &message,
            )))
        }
    }
}

/// `?dry_run=true` (or `1`): only say what a reload would change.
fn dry_run(query: Option<&str>) -> bool {
    let pairs = query.unwrap_or_default().split('&');
    pairs
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == "dry_run" && (v == "true" || v == "1"))
}

fn status(name: Option<String>) -> Route {
    Route::Forward(Request::Status { name, brief: false })
}

fn get(method: &Method, route: Route) -> Result<Route, Refusal> {
    match *method {
        Method::GET | Method::HEAD => Ok(route),
        _ => Err(not_allowed(method, "GET")),
    }
}

fn post(method: &Method, request: Request) -> Result<Route, Refusal> {
    match *method {
        Method::POST => Ok(Route::Forward(request)),
        _ => Err(not_allowed(method, "POST")),
    }
}

fn not_allowed(method: &Method, allow: &'static str) -> Refusal {
    let message = format!("method {method} not allowed here: use {allow}");
    let mut refusal = error(StatusCode::METHOD_NOT_ALLOWED, "bad_request", &message);
    let allow = hyper::header::HeaderValue::from_static(allow);
    refusal.headers_mut().insert(hyper::header::ALLOW, allow);
    Box::new(refusal)
}

/// A forwarded request's reply: its line as it is (a status: not copied,
/// and counted against the daemon's bound on replies waiting for their
/// readers until it is written), or the response as JSON.
pub(super) fn reply(reply: Reply) -> HttpResponse {
    match reply.line {
        // Metrics come as the socket's JSON line: HTTP gets the text.
        Some(line) if line.as_ref().starts_with(br#"{"type":"metrics""#) => {
            match serde_json::from_slice::<Response>(line.as_ref()) {
                Ok(response) => from_response(&response),
                Err(e) => from_response(&Response::error(ErrorKind::Internal, e.to_string())),
            }
        }
        Some(line) => json(StatusCode::OK, Bytes::from_owner(line)),
        None => from_response(&reply.response),
    }
}

/// `/healthz` or `/readyz` from a `health` reply.
pub(super) fn health(route: &Route, response: Response) -> HttpResponse {
    let Response::Health(report) = &response else {
        return from_response(&response);
    };
    let up = match route {
        Route::Readyz => report.not_ready.is_empty(),
        _ => report.system.health != "critical",
    };
    let mut answer = from_response(&response);
    if !up {
        *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    answer
}
