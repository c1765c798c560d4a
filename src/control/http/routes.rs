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
    if path.contains('%') {
        // Service names are `A-Za-z0-9_.-`: nothing needs encoding, and
        // what is encoded is refused rather than decoded.
        let message = format!("percent-encoded path {path:?}: service names need no encoding");
        return Err(bad_request(&message));
    }
    // One leading slash: `//api/v1/status` is no endpoint.
    let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
    let name = |n: &str| n.to_string();
    let found = match segments.as_slice() {
        ["healthz"] => get(method, Route::Healthz),
        ["readyz"] => get(method, Route::Readyz),
        ["metrics"] => get(method, Route::Forward(Request::Metrics)),
        ["api", "v1", "reload"] => {
            let dry_run = dry_run(query)?;
            post(method, Request::Reload { dry_run })
        }
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
    };
    if found.is_ok() && segments.as_slice() != ["api", "v1", "reload"] {
        no_query(query)?;
    }
    found
}

/// `?dry_run=true` (or `1`): only say what a reload would change;
/// `false` (or `0`), or no query, reloads. Anything else is refused, so
/// that a misspelt dry run never reloads for real.
fn dry_run(query: Option<&str>) -> Result<bool, Refusal> {
    let mut dry_run = None;
    for pair in params(query) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = match (key, value) {
            ("dry_run", "true" | "1") => true,
            ("dry_run", "false" | "0") => false,
            ("dry_run", _) => {
                let message = format!(
                    "query parameter dry_run: {value:?} is not true, false, 1 or 0; \
                     nothing was reloaded"
                );
                return Err(bad_request(&message));
            }
            _ => return Err(unknown_param(key)),
        };
        if dry_run.replace(value).is_some() {
            let message = "query parameter dry_run given twice; nothing was reloaded";
            return Err(bad_request(message));
        }
    }
    Ok(dry_run.unwrap_or(false))
}

/// An endpoint that takes no query parameter is refused any.
fn no_query(query: Option<&str>) -> Result<(), Refusal> {
    match params(query).next() {
        Some(pair) => Err(unknown_param(pair.split_once('=').map_or(pair, |(k, _)| k))),
        None => Ok(()),
    }
}

/// The `&`-separated parts of a query, empty ones left out.
fn params(query: Option<&str>) -> impl Iterator<Item = &str> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
}

fn unknown_param(key: &str) -> Refusal {
    let message = format!("unknown query parameter {key:?}: nothing was done");
    bad_request(&message)
}

pub(super) fn bad_request(message: &str) -> Refusal {
    Box::new(error(StatusCode::BAD_REQUEST, "bad_request", message))
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
        Route::Readyz => report.ready(),
        _ => report.alive(),
    };
    let mut answer = from_response(&response);
    if !up {
        *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    answer
}

/// `/healthz` or `/readyz` in brief, for a probe without the token under
/// `api.public_health`: the status code and `{"type":"health","status":
/// "ok"}` (or `"unavailable"`), no names.
pub(super) fn brief_health(route: &Route, alive: bool, ready: bool) -> HttpResponse {
    let up = match route {
        Route::Readyz => ready,
        _ => alive,
    };
    let status = if up { "ok" } else { "unavailable" };
    let body = format!("{{\"type\":\"health\",\"status\":\"{status}\"}}\n");
    let mut answer = json(StatusCode::OK, Bytes::from(body));
    if !up {
        *answer.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dry_run_is_true_false_1_or_0_and_nothing_else() {
        for (query, expected) in [
            (None, false),
            (Some(""), false),
            (Some("dry_run=true"), true),
            (Some("dry_run=1"), true),
            (Some("dry_run=false"), false),
            (Some("dry_run=0"), false),
        ] {
            assert_eq!(dry_run(query).ok(), Some(expected), "{query:?}");
        }
        for query in [
            "dry_run=yes",
            "dry_run=TRUE",
            "dry_run",
            "dry_run=",
            "dry-run=true",
            "dry_run=true&dry_run=false",
            "dry_run=true&x=1",
        ] {
            let refused = dry_run(Some(query)).expect_err(query);
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query}");
        }
    }

    #[test]
    fn endpoints_without_parameters_refuse_any() {
        for path in ["/healthz", "/api/v1/status", "/api/v1/services/web/stop"] {
            let method = if path.ends_with("stop") {
                Method::POST
            } else {
                Method::GET
            };
            assert!(route(&method, path, None, None).is_ok(), "{path}");
            assert!(route(&method, path, Some(""), None).is_ok(), "{path}");
            let refused = route(&method, path, Some("force=1"), None).err();
            assert_eq!(refused.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        }
    }

    #[test]
    fn paths_are_taken_as_sent_and_encoded_ones_refused() {
        let status = |path: &str| match route(&Method::GET, path, None, None) {
            Ok(_) => StatusCode::OK,
            Err(refusal) => refusal.status(),
        };
        assert_eq!(status("/api/v1/status"), StatusCode::OK);
        assert_eq!(status("//api/v1/status"), StatusCode::NOT_FOUND);
        assert_eq!(status("/api//v1/status"), StatusCode::NOT_FOUND);
        assert_eq!(status("/api/v1/status/"), StatusCode::NOT_FOUND);
        assert_eq!(status("/api/v1/services/%61"), StatusCode::BAD_REQUEST);
        assert_eq!(status("/%61pi/v1/status"), StatusCode::BAD_REQUEST);
    }
}
