//! Reading one request line: what makes it malformed, and how the error
//! reply says so. Every rejection names what is wrong (an empty line, not
//! JSON, a missing or mistyped field, an unknown type) with a kind, so a
//! client can tell a bad request from a version it does not speak.

use super::protocol::{ErrorKind, Request, Response, VERSION};

/// A request line that could not be parsed, as the reply will say it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub kind: ErrorKind,
    pub message: String,
}

impl RequestError {
    fn bad(message: impl Into<String>) -> RequestError {
        RequestError {
            kind: ErrorKind::BadRequest,
            message: message.into(),
        }
    }
}

impl From<RequestError> for Response {
    fn from(e: RequestError) -> Response {
        Response::error(e.kind, e.message)
    }
}

/// Parse one request line.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.trim_ascii().is_empty() {
        return Err(RequestError::bad(
            "invalid request: empty line (expected a JSON object with \"version\" and \"type\")",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| RequestError::bad(format!("invalid request: not JSON ({e})")))?;
    // JSON readers disagree on a key given twice (serde keeps the last):
    // a request that says two things is refused, not half obeyed.
    if let Ok(TopKeys(Some(key))) = serde_json::from_slice::<TopKeys>(line) {
        return Err(RequestError::bad(format!(
            "invalid request: {key:?} given twice"
        )));
    }
    let Some(obj) = value.as_object() else {
        return Err(RequestError::bad("invalid request: expected a JSON object"));
    };
    check_version(obj.get("version"))?;
    let mut obj = obj.clone();
    obj.remove("version");
    let ty = match obj.get("type") {
        None => return Err(RequestError::bad("invalid request: missing \"type\"")),
        Some(serde_json::Value::String(t)) => t.clone(),
        Some(other) => {
            return Err(RequestError::bad(format!(
                "invalid request: \"type\" must be a string, got {}",
                describe(other)
            )));
        }
    };
    const KNOWN: &[&str] = &[
        "ping", "status", "start", "stop", "restart", "reset", "signal", "events", "health",
        "metrics", "reload", "down",
    ];
    if !KNOWN.contains(&ty.as_str()) {
        return Err(RequestError::bad(format!(
            "unknown request type {ty:?}; known: {}",
            KNOWN.join(", ")
        )));
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| RequestError::bad(format!("invalid {ty:?} request: {e}")))
}

/// The first key a JSON object gives twice, if any.
struct TopKeys(Option<String>);

impl<'de> serde::Deserialize<'de> for TopKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = TopKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TopKeys, A::Error> {
                let mut seen = std::collections::HashSet::new();
                let mut twice = None;
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !seen.insert(key.clone()) && twice.is_none() {
                        twice = Some(key);
                    }
                }
                Ok(TopKeys(twice))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `version` must be there, be an unsigned 64-bit integer, and be
/// ours; a mistyped one is a bad request, not a missing one.
fn check_version(version: Option<&serde_json::Value>) -> Result<(), RequestError> {
    let Some(version) = version else {
        return Err(RequestError::bad("invalid request: missing \"version\""));
    };
    match version.as_u64() {
        Some(v) if v == u64::from(VERSION) => Ok(()),
        Some(v) => Err(RequestError {
            kind: ErrorKind::Version,
            message: format!(
                "protocol version {v} is not supported: this daemon speaks version {VERSION}"
            ),
        }),
        None => Err(RequestError::bad(format!(
            "invalid request: \"version\" must be an unsigned 64-bit integer \
             (this daemon speaks {VERSION}), got {}",
            describe(version)
        ))),
    }
}

/// A JSON value as an error message names it: its type, and the value when
/// it is short.
fn describe(v: &serde_json::Value) -> String {
    use serde_json::Value;
    let shown = |text: String| {
        if text.len() <= 40 {
            text
        } else {
            format!("{}…", text.chars().take(40).collect::<String>())
        }
    };
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("a boolean ({b})"),
        Value::Number(n) => format!("the number {}", shown(n.to_string())),
        Value::String(s) => format!("a string ({})", shown(format!("{s:?}"))),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::EventRecord;

    #[test]
    fn events_since_and_health_travel_and_stay_off_the_wire_when_unset() {
        let plain = Request::Events {
            name: None,
            follow: true,
            since: None,
        };
        assert!(!plain.to_line().contains("since"), "{}", plain.to_line());
        let resumed = Request::Events {
            name: None,
            follow: true,
            since: Some(41),
        };
        assert_eq!(parse_request(resumed.to_line().as_bytes()), Ok(resumed));
        assert_eq!(
            parse_request(Request::Health.to_line().as_bytes()),
            Ok(Request::Health)
        );
        let reply = Response::Events {
            events: Vec::new(),
            missed: false,
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"type":"events","events":[]}"#
        );
        // An event of a daemon without ids reads as id 0.
        let old = r#"{"at":"t","service":"web","kind":"started","message":"m"}"#;
        assert_eq!(serde_json::from_str::<EventRecord>(old).unwrap().id, 0);
    }

    #[test]
    fn round_trip() {
        for r in [
            Request::Ping,
            Request::Status {
                name: None,
                brief: false,
            },
            Request::Stop { name: "web".into() },
            Request::Metrics,
            Request::Down,
        ] {
            assert_eq!(parse_request(r.to_line().as_bytes()).unwrap(), r);
        }
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        use ErrorKind::*;
        for (line, kind, says) in [
            (&b"garbage"[..], BadRequest, "not JSON"),
            (b"[1]", BadRequest, "JSON object"),
            (br#"{"type":"ping"}"#, BadRequest, "missing \"version\""),
            (br#"{"version":1}"#, BadRequest, "missing \"type\""),
            (
                br#"{"version":7,"type":"ping"}"#,
                Version,
                "protocol version 7 is not supported",
            ),
            (
                br#"{"version":1,"type":"explode"}"#,
                BadRequest,
                "unknown request type \"explode\"",
            ),
            (
                br#"{"version":1,"type":"stop"}"#,
                BadRequest,
                "missing field `name`",
            ),
            (
                br#"{"version":1,"type":"ping","type":"down"}"#,
                BadRequest,
                "\"type\" given twice",
            ),
            (
                br#"{"version":1,"type":"stop","name":"a","name":"b"}"#,
                BadRequest,
                "\"name\" given twice",
            ),
            (b"", BadRequest, "empty line"),
            (b" \t\r", BadRequest, "empty line"),
        ] {
            let e = parse_request(line).unwrap_err();
            assert_eq!(e.kind, kind, "{e}");
            assert!(e.message.contains(says), "{e}");
        }
    }

    #[test]
    fn a_mistyped_field_is_named_as_mistyped_not_missing() {
        let version = |got: &str| {
            format!(
                "invalid request: \"version\" must be an unsigned 64-bit integer \
                 (this daemon speaks 1), got {got}"
            )
        };
        let ty = |got: &str| format!("invalid request: \"type\" must be a string, got {got}");
        for (line, message) in [
            (
                r#"{"version":"1","type":"ping"}"#,
                version(r#"a string ("1")"#),
            ),
            (
                r#"{"version":1.0,"type":"ping"}"#,
                version("the number 1.0"),
            ),
            (r#"{"version":-1,"type":"ping"}"#, version("the number -1")),
            (r#"{"version":null,"type":"ping"}"#, version("null")),
            (r#"{"version":[1],"type":"ping"}"#, version("an array")),
            (r#"{"version":1,"type":7}"#, ty("the number 7")),
            (r#"{"version":1,"type":{}}"#, ty("an object")),
            (r#"{"version":1,"type":true}"#, ty("a boolean (true)")),
        ] {
            let e = parse_request(line.as_bytes()).unwrap_err();
            assert_eq!((e.kind, e.message), (ErrorKind::BadRequest, message));
        }
        // Past 2^64, JSON numbers arrive as floats.
        let e = parse_request(br#"{"version":18446744073709551616,"type":"ping"}"#).unwrap_err();
        assert_eq!(e.message, version("the number 1.8446744073709552e+19"));
        let long = format!(r#"{{"version":"{}","type":"ping"}}"#, "v".repeat(100));
        let e = parse_request(long.as_bytes()).unwrap_err();
        assert!(
            e.message.ends_with(&format!("\"{}…)", "v".repeat(39))),
            "{e}"
        );
    }
}
