//! Validation: the spanned YAML tree → [`Plan`], collecting every error.
//!
//! [`Parser`] holds what every check needs (the file, the collected errors)
//! and the readers of plain values: strings, numbers, durations, words
//! from a fixed set. A [`Section`] is a mapping of known keys read over its
//! type's `Default`, so defaults are never restated here. Each submodule
//! validates one part of the file: the document and groups, a service,
//! probes, recovery, the dependency graph. Beyond the services file, it only
//! reads `env_file`s, checks that `cwd` exists and looks up users.

mod api;
mod document;
mod graph;
mod limits;
mod probe;
mod recovery;
pub mod schema;
mod service;
#[cfg(test)]
mod tests;
mod webhook;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use super::units::{self, did_you_mean};
use super::yaml::{self, Node, NodeKind};
use super::{ConfigError, Context, Plan};

pub(super) fn plan_from_str(
    text: &str,
    file: &Path,
    ctx: &Context<'_>,
) -> Result<Plan, Vec<ConfigError>> {
    let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut v = Parser {
        file,
        base: &base,
        ctx,
        errors: Vec::new(),
        positions: HashMap::new(),
    };
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(vec![ConfigError {
                file: file.to_path_buf(),
                line: e.line,
                col: e.col,
                path: String::new(),
                message: format!("invalid YAML: {}", e.message),
            }]);
        }
    };
    let plan = v.plan(&doc);
    match plan {
        Some(plan) if v.errors.is_empty() => Ok(plan),
        _ => Err(v.errors),
    }
}

/// Validation's context; a check that fails records its error here and
/// returns none, so that the rest of the file is still checked.
struct Parser<'a> {
    file: &'a Path,
    base: &'a Path,
    ctx: &'a Context<'a>,
    errors: Vec<ConfigError>,
    /// Nodes of names checked only once the whole file is read (group
    /// children, depends_on keys), by YAML path.
    positions: HashMap<String, Node>,
}

/// A mapping in the file whose keys fill in a value one at a time.
trait Section {
    /// The keys it may have, in the order messages list them.
    const KEYS: &'static [&'static str];

    /// Reads the value of one of `KEYS` into `self`; none: the value was
    /// bad, and the error is recorded.
    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()>;
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl Parser<'_> {
    fn err(&mut self, node: &Node, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line: node.line,
            col: node.col,
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The entries of a mapping whose keys are all known, after reporting
    /// unknown, duplicate and not-yet-supported keys.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: &[&str],
        later: &[&str],
    ) -> Option<Vec<(&'n str, &'n Node)>> {
        let entries = match &node.kind {
            NodeKind::Map(entries) => entries,
            _ if node.is_null() => return Some(Vec::new()),
            _ => {
                let found = node.describe();
                self.err(node, path, format!("expected a mapping, found {found}"));
                return None;
            }
        };
        let mut out: Vec<(&'n str, &'n Node)> = Vec::new();
        for (k, val) in entries {
            let NodeKind::Scalar { value: key, .. } = &k.kind else {
                self.err(k, path, "keys must be plain strings");
                continue;
            };
            let here = join(path, key);
            if allowed.contains(&key.as_str()) {
                if out.iter().any(|(seen, _)| seen == key) {
                    self.err(k, &here, "duplicate key");
                    continue;
                }
                out.push((key.as_str(), val));
            } else if later.contains(&key.as_str()) {
                self.err(k, &here, "not supported yet");
            } else {
                let hint = did_you_mean(key, allowed.iter().chain(later).copied());
                self.err(
                    k,
                    &here,
                    format!(
                        "unknown key {key:?}{hint}; allowed keys: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Some(out)
    }

    /// Each known key of the mapping at `node`, in file order, read into
    /// `spec` by `key` (none: a bad value, already reported); whether all
    /// were good. None: not a mapping.
    fn each_key<S>(
        &mut self,
        node: &Node,
        path: &str,
        allowed: &[&str],
        spec: &mut S,
        mut key: impl FnMut(&mut Self, &mut S, &str, &Node, &str) -> Option<()>,
    ) -> Option<bool> {
        let fields = self.fields(node, path, allowed, &[])?;
        let mut ok = true;
        for (name, val) in fields {
            ok &= key(self, spec, name, val, &join(path, name)).is_some();
        }
        Some(ok)
    }

    /// The mapping at `node` read into `spec`; whether every key was good.
    /// None: not a mapping.
    fn read_into<S: Section>(&mut self, node: &Node, path: &str, spec: &mut S) -> Option<bool> {
        self.each_key(node, path, S::KEYS, spec, |p, spec, key, val, path| {
            spec.read(p, key, val, path)
        })
    }

    /// The mapping at `node` read over the section's defaults; none if any
    /// key was bad.
    fn section<S: Section + Default>(&mut self, node: &Node, path: &str) -> Option<S> {
        let mut spec = S::default();
        self.read_into(node, path, &mut spec)?.then_some(spec)
    }

    /// The entries of a mapping of names to values, which `what` describes
    /// in the error ("service names to services").
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        what: &str,
    ) -> Option<&'n [(Node, Node)]> {
        if let NodeKind::Map(entries) = &node.kind {
            return Some(entries);
        }
        let found = node.describe();
        self.err(
            node,
            path,
            format!("expected a mapping of {what}, found {found}"),
        );
        None
    }

    /// The name a mapping key gives; `what` says what it names ("service").
    fn name<'n>(&mut self, key: &'n Node, path: &str, what: &str) -> Option<&'n String> {
        if let NodeKind::Scalar { value, .. } = &key.kind {
            return Some(value);
        }
        self.err(key, path, format!("{what} names must be strings"));
        None
    }

    /// A scalar as a string, with `${VAR}` expanded.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Scalar { value, .. } if !node.is_null() => {
                match units::expand_env(value, self.ctx.env) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.err(node, path, e);
                        None
                    }
                }
            }
            _ => {
                let found = node.describe();
                self.err(node, path, format!("expected a string, found {found}"));
                None
            }
        }
    }

    fn parsed<T>(
        &mut self,
        node: &Node,
        path: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(node, path)?;
        match f(&s) {
            Ok(v) => Some(v),
            Err(e) => {
                self.err(node, path, e);
                None
            }
        }
    }

    /// A key with a fixed set of values, such as a restart policy.
    fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        self.parsed(node, path, |s| units::one_of(s, options))
    }

    fn duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.parsed(node, path, units::parse_duration)
    }

    /// A duration long enough to act on: a timer or a probe interval.
    fn positive_duration(&mut self, node: &Node, path: &str) -> Option<Duration> {
        self.duration_at_least(node, path, Duration::from_millis(10))
    }

    fn duration_at_least(&mut self, node: &Node, path: &str, min: Duration) -> Option<Duration> {
        self.parsed(node, path, |s| {
            let d = units::parse_duration(s)?;
            if d < min {
                let min = humantime::format_duration(min);
                return Err(format!("{s} is too short: at least {min}"));
            }
            Ok(d)
        })
    }

    fn number<T: std::str::FromStr>(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        ok: impl Fn(&T) -> bool,
    ) -> Option<T> {
        self.parsed(node, path, |s| {
            s.parse::<T>()
                .ok()
                .filter(|v| ok(v))
                .ok_or_else(|| format!("expected {what}, found {s:?}"))
        })
    }

    /// A whole number in `range`, described as `what` in the error
    /// ("a count from 1 to 1000").
    fn count(
        &mut self,
        node: &Node,
        path: &str,
        range: std::ops::RangeInclusive<u32>,
        what: &str,
    ) -> Option<u32> {
        let what = format!("{what} from {} to {}", range.start(), range.end());
        self.number::<u32>(node, path, &what, |n| range.contains(n))
    }

    fn list<T>(
        &mut self,
        node: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        let NodeKind::Seq(items) = &node.kind else {
            let found = node.describe();
            self.err(node, path, format!("expected a list, found {found}"));
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, it) in items.iter().enumerate() {
            match item(self, it, &format!("{path}[{i}]")) {
                Some(v) => out.push(v),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn at(&self, path: &str, fallback: &Node) -> Node {
        self.positions
            .get(path)
            .cloned()
            .unwrap_or_else(|| fallback.clone())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid service name {name:?}: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit"
        ))
    }
}
