//! `api:`: the HTTP API's address and token. Off loopback a token is
//! required, so a typo in `listen` cannot open the daemon to the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::Parser;
use crate::config::yaml::Node;
use crate::config::{ApiSpec, Secret};

pub(super) const KEYS: &[&str] = &["listen", "token", "token_file", "public_health"];

/// The shortest token accepted: a guessable one is no protection.
const MIN_TOKEN: usize = 16;

impl Parser<'_> {
    pub(super) fn api(&mut self, node: &Node) -> Option<ApiSpec> {
        let fields = self.fields(node, "api", KEYS, &[])?;
        if let (Some(_), Some(file)) = (node.get("token"), node.get("token_file")) {
            self.err(
                file,
                "api.token_file",
                "give `token` or `token_file`, not both",
            );
            return None;
        }
        let mut listen = None;
        let mut public_health = false;
        let mut token_vars = Vec::new();
        let (mut token, mut token_node, mut file_node) = (None, None, None);
        let mut ok = true;
        for (key, val) in fields {
            let path = format!("api.{key}");
            let value = match key {
                "listen" => self.listen(val, &path).map(|a| listen = Some((a, val))),
                "token" => {
                    token_node = Some(val);
                    token_vars = referenced_vars(val);
                    self.string(val, &path).map(|t| token = Some(t))
                }
                "public_health" => {
                    let b = self.choice(val, &path, super::document::BOOLEAN);
                    b.map(|b| public_health = b)
                }
                _ => {
                    file_node = Some(val);
                    self.token_file(val, &path).map(|t| token = Some(t))
                }
            };
            ok &= value.is_some();
        }
        let token = token.map(|t| t.trim().to_string());
        if let (Some(t), Some(at)) = (&token, token_node.or(file_node))
            && t.chars().count() < MIN_TOKEN
        {
            let key = match token_node {
                Some(_) => "api.token",
                None => "api.token_file",
            };
            let n = t.chars().count();
            let msg = format!("a token of {n} characters is too short: at least {MIN_TOKEN}");
            self.err(at, key, msg);
            ok = false;
        }
        let (listen, listen_node) = match listen {
            Some((addr, node)) => (addr, Some(node)),
            None => (default_listen(), None),
        };
        if token.is_none() && !listen.ip().is_loopback() {
            let msg = format!(
                "{listen} is not a loopback address: set api.token (or api.token_file) \
                 so that only clients that know it are served"
            );
            self.err(listen_node.unwrap_or(node), "api.listen", msg);
            ok = false;
        }
        ok.then(|| ApiSpec {
            listen,
            token: token.map(Secret::new),
            public_health,
            token_vars,
        })
    }

    /// `HOST:PORT` with an IP address, or a bare port on 127.0.0.1.
    fn listen(&mut self, node: &Node, path: &str) -> Option<SocketAddr> {
        self.parsed(node, path, |s| {
            if let Ok(port) = s.parse::<u16>() {
                return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
            }
            s.parse::<SocketAddr>().map_err(|_| {
                format!(
                    "expected an address such as {} or [::1]:9700 (an IP address and a \
                     port), or a port, found {s:?}",
                    ApiSpec::DEFAULT_LISTEN
                )
            })
        })
    }

    fn token_file(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string(node, path)?;
        let file = self.base.join(&s);
        match crate::config::read::read_text(&file) {
            Ok(t) => Some(t),
            Err(e) => {
                self.err(node, path, format!("cannot read {}: {e}", file.display()));
                None
            }
        }
    }
}

fn default_listen() -> SocketAddr {
    ApiSpec::DEFAULT_LISTEN.parse().expect("a valid address")
}

/// The names of the `${NAME}` and `${NAME:-default}` references in a
/// scalar (`$$` is a literal dollar).
fn referenced_vars(node: &Node) -> Vec<String> {
    let crate::config::yaml::NodeKind::Scalar { value, .. } = &node.kind else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut rest = value.as_str();
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            rest = after;
            continue;
        };
        let end = inner.find('}').unwrap_or(inner.len());
        let name = inner[..end].split(":-").next().unwrap_or_default();
        if !name.is_empty() {
            out.push(name.to_string());
        }
        rest = &inner[end..];
    }
    out
}
