//! Probes: liveness, readiness and startup checks and their timing.

use super::{Parser, Section, join};
use crate::config::units;
use crate::config::yaml::{Node, NodeKind};
use crate::config::*;

/// The keys that say what a probe checks; a probe has exactly one.
pub(super) const PROBE_KINDS: &[&str] = &["exec", "http", "tcp"];
/// Matched in upper case: `get` is GET.
pub(super) const HTTP_METHODS: &[(&str, &str)] = &[("GET", "GET"), ("HEAD", "HEAD")];
const PROBE_TIMEOUT: &[(&str, ProbeTimeout)] = &[("adaptive", ProbeTimeout::Adaptive)];

impl Parser<'_> {
    /// A probe: exactly one of exec / http / tcp, or the string `notify`
    /// (readiness only).
    pub(super) fn probe(&mut self, node: &Node, path: &str, readiness: bool) -> Option<ProbeSpec> {
        let kinds = PROBE_KINDS.join(", ");
        if let NodeKind::Scalar { value, .. } = &node.kind {
            if value == "notify" && readiness {
                return Some(ProbeSpec::default());
            }
            let allowed = if readiness {
                "`notify` or a mapping"
            } else {
                "a mapping"
            };
            self.err(
                node,
                path,
                format!("expected {allowed} with one of {kinds}, found {value:?}"),
            );
            return None;
        }
        let mut spec: ProbeSpec = self.section(node, path)?;
        match PROBE_KINDS.iter().filter(|k| node.get(k).is_some()).count() {
            1 => {}
            0 => {
                self.err(node, path, format!("a probe needs one of {kinds}"));
                return None;
            }
            _ => {
                self.err(node, path, format!("a probe has exactly one of {kinds}"));
                return None;
            }
        }
        if let ProbeTimeout::Fixed(t) = spec.timeout
            && t > spec.interval
            && node.get("timeout").is_none()
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

    /// `adaptive`, or a duration.
    fn probe_timeout(&mut self, node: &Node, path: &str) -> Option<ProbeTimeout> {
        if let NodeKind::Scalar { value, .. } = &node.kind
            && let Some(t) = units::lookup(value, PROBE_TIMEOUT)
        {
            return Some(t);
        }
        self.positive_duration(node, path).map(ProbeTimeout::Fixed)
    }

    fn threshold(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.count(node, path, 1..=1000, "a count")
    }

    /// A URL, or a mapping with one; the URL is read once the other keys
    /// are good.
    fn http(&mut self, node: &Node, path: &str) -> Option<HttpCheck> {
        let (mut check, url_node, url_path) = if let NodeKind::Scalar { .. } = node.kind {
            (HttpCheck::default(), node, path.to_string())
        } else {
            let check: HttpCheck = self.section(node, path)?;
            let url_path = join(path, "url");
            let Some(url) = node.get("url") else {
                self.err(node, &url_path, "missing: the URL to request");
                return None;
            };
            (check, url, url_path)
        };
        let (url, authority, target) = self.parsed(url_node, &url_path, parse_http_url)?;
        check.url = url;
        check.authority = authority;
        check.path = target;
        Some(check)
    }

    /// A mapping of header names to string values.
    pub(super) fn headers(&mut self, node: &Node, path: &str) -> Option<Vec<(String, String)>> {
        let entries = self.entries(node, path, "Name: value")?;
        let mut out = Vec::new();
        for (k, v) in entries {
            let key = self.name(k, path, "header")?;
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
pub(super) fn parse_tcp(s: &str) -> Result<String, String> {
    let bad = || format!("expected host:port with a port from 1 to 65535, found {s:?}");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 && !host.is_empty() => Ok(s.to_string()),
        _ => Err(bad()),
    }
}

/// `200`, `200-399`.
pub(super) fn parse_status_range(s: &str) -> Result<(u16, u16), String> {
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
pub(super) fn parse_http_url(s: &str) -> Result<(String, String, String), String> {
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

impl Section for ProbeSpec {
    const KEYS: &'static [&'static str] = &[
        "exec",
        "http",
        "tcp",
        "interval",
        "timeout",
        "initial_delay",
        "failure_threshold",
        "success_threshold",
    ];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "exec" => self.check = Check::Exec(p.command(val, path)?),
            "http" => self.check = Check::Http(p.http(val, path)?),
            "tcp" => self.check = Check::Tcp(p.parsed(val, path, parse_tcp)?),
            "interval" => self.interval = p.positive_duration(val, path)?,
            "timeout" => self.timeout = p.probe_timeout(val, path)?,
            "initial_delay" => self.initial_delay = p.duration(val, path)?,
            "failure_threshold" => self.failure_threshold = p.threshold(val, path)?,
            "success_threshold" => self.success_threshold = p.threshold(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

/// The `url` is read after the other keys.
impl Section for HttpCheck {
    const KEYS: &'static [&'static str] = &["url", "method", "expect", "headers"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "url" => {}
            "method" => {
                self.method = p.parsed(val, path, |s| {
                    units::lookup(&s.to_ascii_uppercase(), HTTP_METHODS)
                        .map(str::to_string)
                        .ok_or_else(|| units::not_one_of(s, HTTP_METHODS))
                })?;
            }
            "expect" => self.expect = p.parsed(val, path, parse_status_range)?,
            "headers" => self.headers = p.headers(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}
