//! Probes: liveness, readiness and startup checks and their timing.

use super::{Parser, join, node_has_key};
use crate::config::units;
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

const PROBE_KEYS: &[&str] = &[
    "exec",
    "http",
    "tcp",
    "interval",
    "timeout",
    "initial_delay",
    "failure_threshold",
    "success_threshold",
];
const HTTP_KEYS: &[&str] = &["url", "method", "expect", "headers"];
/// Matched in upper case: `get` is GET.
const HTTP_METHODS: &[(&str, &str)] = &[("GET", "GET"), ("HEAD", "HEAD")];
const PROBE_TIMEOUT: &[(&str, ProbeTimeout)] = &[("adaptive", ProbeTimeout::Adaptive)];

impl Parser<'_> {
    /// A probe: exactly one of exec / http / tcp, or the string `notify`
    /// (readiness only).
    pub(super) fn probe(&mut self, node: &Node, path: &str, readiness: bool) -> Option<ProbeSpec> {
        let mut spec = ProbeSpec::default();
        if let NodeKind::Scalar { value, .. } = &node.kind {
            if value == "notify" && readiness {
                return Some(spec);
            }
            let allowed = if readiness {
                "`notify` or a mapping"
            } else {
                "a mapping"
            };
            self.err(
                node,
                path,
                format!("expected {allowed} with one of exec, http, tcp, found {value:?}"),
            );
            return None;
        }
        let fields = self.fields(node, path, PROBE_KEYS, &[])?;
        let mut ok = true;
        let mut checks = Vec::new();
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "exec" => self
                    .command(val, &p)
                    .map(|c| checks.push(Check::Exec(c)))
                    .is_some(),
                "http" => self
                    .http(val, &p)
                    .map(|h| checks.push(Check::Http(h)))
                    .is_some(),
                "tcp" => self
                    .parsed(val, &p, parse_tcp)
                    .map(|t| checks.push(Check::Tcp(t)))
                    .is_some(),
                "interval" => self
                    .positive_duration(val, &p)
                    .map(|d| spec.interval = d)
                    .is_some(),
                "timeout" => {
                    if let NodeKind::Scalar { value, .. } = &val.kind
                        && let Some(t) = units::lookup(value, PROBE_TIMEOUT)
                    {
                        spec.timeout = t;
                        true
                    } else {
                        self.positive_duration(val, &p)
                            .map(|d| spec.timeout = ProbeTimeout::Fixed(d))
                            .is_some()
                    }
                }
                "initial_delay" => self
                    .duration(val, &p)
                    .map(|d| spec.initial_delay = d)
                    .is_some(),
                "failure_threshold" => self
                    .count(val, &p, 1..=1000, "a count")
                    .map(|n| spec.failure_threshold = n)
                    .is_some(),
                "success_threshold" => self
                    .count(val, &p, 1..=1000, "a count")
                    .map(|n| spec.success_threshold = n)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        if !ok {
            return None;
        }
        match checks.len() {
            1 => spec.check = checks.pop().expect("one"),
            0 => {
                self.err(node, path, "a probe needs one of exec, http, tcp");
                return None;
            }
            _ => {
                self.err(node, path, "a probe has exactly one of exec, http, tcp");
                return None;
            }
        }
        let timeout_set = node_has_key(node, "timeout");
        if let ProbeTimeout::Fixed(t) = spec.timeout
            && t > spec.interval
            && !timeout_set
        {
            // The default (1s) follows a shorter interval.
            spec.timeout = ProbeTimeout::Fixed(spec.interval);
        }
        if let ProbeTimeout::Fixed(t) = spec.timeout
            && t > spec.interval
        {
            self.err(
                node,
                &join(path, "timeout"),
                "must not be longer than interval",
            );
            return None;
        }
        Some(spec)
    }

    fn http(&mut self, node: &Node, path: &str) -> Option<HttpCheck> {
        let mut check = HttpCheck::default();
        let (url_node, url_path) = if let NodeKind::Scalar { .. } = node.kind {
            (node.clone(), path.to_string())
        } else {
            let fields = self.fields(node, path, HTTP_KEYS, &[])?;
            let mut ok = true;
            let mut url = None;
            for (key, val) in fields {
                let p = join(path, key);
                ok &= match key {
                    "url" => {
                        url = Some(val.clone());
                        true
                    }
                    "method" => self
                        .parsed(val, &p, |s| {
                            units::lookup(&s.to_ascii_uppercase(), HTTP_METHODS)
                                .map(str::to_string)
                                .ok_or_else(|| units::not_one_of(s, HTTP_METHODS))
                        })
                        .map(|m| check.method = m)
                        .is_some(),
                    "expect" => self
                        .parsed(val, &p, parse_status_range)
                        .map(|r| check.expect = r)
                        .is_some(),
                    "headers" => self.headers(val, &p).map(|h| check.headers = h).is_some(),
                    _ => unreachable!(),
                };
            }
            if !ok {
                return None;
            }
            match url {
                Some(u) => (u, join(path, "url")),
                None => {
                    self.err(node, &join(path, "url"), "missing: the URL to request");
                    return None;
                }
            }
        };
        let (url, authority, target) = self.parsed(&url_node, &url_path, parse_http_url)?;
        check.url = url;
        check.authority = authority;
        check.path = target;
        Some(check)
    }

    /// A mapping of header names to string values.
    fn headers(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let NodeKind::Map(entries) = &node.kind else {
            let found = node.describe();
            self.err(
                node,
                path,
                format!("expected a mapping of Name: value, found {found}"),
            );
            return None;
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let NodeKind::Scalar { value: key, .. } = &k.kind else {
                self.err(k, path, "header names must be strings");
                return None;
            };
            let p = join(path, key);
            if key.is_empty()
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                self.err(k, &p, format!("invalid header name {key:?}"));
                return None;
            }
            let value = self.string(v, &p)?;
            if value.contains(['\r', '\n']) {
                self.err(v, &p, "header values cannot contain line breaks");
                return None;
            }
            out.push((key.clone(), value));
        }
        Some(out)
    }
}

/// `host:port`, port 1–65535.
fn parse_tcp(s: &str) -> Result<String, String> {
    let bad = || format!("expected host:port with a port from 1 to 65535, found {s:?}");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() => Ok(s.to_string()),
        _ => Err(bad()),
    }
}

/// `200`, `200-399`.
fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("expected a status code or a range like 200-399, found {s:?}");
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&a) || !(100..=599).contains(&b) || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

/// `http://host[:port][/path]` → (url, "host:port", "/path").
fn parse_http_url(s: &str) -> Result<(String, String, String), String> {
    let bad = || format!("expected a URL like http://127.0.0.1:8080/health, found {s:?}");
    if s.starts_with("https://") {
        return Err(format!(
            "{s:?}: https is not supported by probes; use http:// or a tcp probe"
        ));
    }
    let rest = s.strip_prefix("http://").ok_or_else(bad)?;
    let (hostport, target) = match rest.find('/') {
        Some(k) => (&rest[..k], &rest[k..]),
        None => (rest, "/"),
    };
    if hostport.is_empty() || hostport.contains(['@', ' ', '?', '#']) || target.contains(' ') {
        return Err(bad());
    }
    let authority = match hostport.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match port.parse::<u16>() {
            Ok(p) if p > 0 => hostport.to_string(),
            _ => return Err(bad()),
        },
        Some(_) => return Err(bad()),
        None => format!("{hostport}:80"),
    };
    Ok((s.to_string(), authority, target.to_string()))
}
