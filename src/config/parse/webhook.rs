//! `webhook: { url, events, timeout, headers, queue }`, top-level or in a
//! service.

use super::probe::parse_http_url;
use super::{Parser, Section, join};
use crate::config::units;
use crate::config::webhook::WebhookSpec;
use crate::config::yaml::Node;
use crate::strategy::webhook::EVENT_KINDS;

impl Parser<'_> {
    /// A webhook; the `url` is required.
    pub(super) fn webhook(&mut self, node: &Node, path: &str) -> Option<WebhookSpec> {
        let mut spec: WebhookSpec = self.section(node, path)?;
        let url_path = join(path, "url");
        let Some(url) = node.get("url") else {
            self.err(
                node,
                &url_path,
                "missing: the http:// URL to POST events to",
            );
            return None;
        };
        let (url, authority, target) = self.parsed(url, &url_path, webhook_url)?;
        spec.url = url;
        spec.authority = authority;
        spec.path = target;
        Some(spec)
    }

    /// Headers a request may carry besides those sentineld sets itself;
    /// their values must be sendable (visible ASCII, tabs and spaces).
    fn webhook_headers(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let headers = self.headers(node, path)?;
        for (name, value) in &headers {
            let here = join(path, name);
            let at = node.get(name).unwrap_or(node);
            if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                let set = RESERVED.join(", ");
                self.err(at, &here, format!("sentineld sets {set} itself"));
                return None;
            }
            if !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                // Never echoed: it may be a secret.
                self.err(at, &here, "header values must be printable ASCII");
                return None;
            }
        }
        Some(headers)
    }

    fn event_kinds(&mut self, node: &Node, path: &str) -> Option<Vec<String>> {
        let kinds: Vec<(&str, &str)> = EVENT_KINDS.iter().map(|k| (*k, *k)).collect();
        let mut events = self.list(node, path, |this, n, p| {
            this.parsed(n, p, |s| units::one_of(s, &kinds).map(str::to_string))
        })?;
        if events.is_empty() {
            let all = EVENT_KINDS.join(", ");
            self.err(node, path, format!("list at least one event kind: {all}"));
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        events.retain(|e| seen.insert(e.clone()));
        Some(events)
    }
}

/// Headers every request has, set by sentineld.
pub(super) const RESERVED: &[&str] = &[
    "Host",
    "Content-Type",
    "Content-Length",
    "Transfer-Encoding",
    "Connection",
    "User-Agent",
];

/// An `http://` URL; https is refused by name, since sentineld has no TLS.
/// Errors never repeat the URL: its path or user part may be a secret.
fn webhook_url(s: &str) -> Result<(String, String, String), String> {
    if s.starts_with("https://") {
        return Err(
            "https is not supported (sentineld has no TLS stack); use http://, e.g. to a local relay"
                .into(),
        );
    }
    let bad = || {
        "expected a URL like http://127.0.0.1:9000/hooks (http://, a host, an optional port \
         from 1 to 65535, an optional path; no user part, no spaces, no #fragment); \
         the value is not repeated here, as it may hold a secret"
            .to_string()
    };
    if s.contains('#') {
        return Err(bad());
    }
    parse_http_url(s).map_err(|_| bad())
}

/// The `url` is read after the other keys.
impl Section for WebhookSpec {
    const KEYS: &'static [&'static str] = &["url", "events", "timeout", "headers", "queue"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "url" => {}
            "events" => self.events = p.event_kinds(val, path)?,
            "timeout" => self.timeout = p.positive_duration(val, path)?,
            "headers" => self.headers = p.webhook_headers(val, path)?,
            "queue" => {
                let n = p.count(val, path, 1..=100_000, "a number of notifications")?;
                self.queue = n as usize;
            }
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}
