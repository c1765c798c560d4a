//! What a failure is and what follows it: classify rules, recovery
//! (retry, restart, fallback) and escalation.

use std::time::Duration;

use super::{Parser, Section, join};
use crate::config::units::{self, words};
use crate::config::yaml::Node;
use crate::config::*;
use crate::strategy::policy::Severity;

pub(super) const RULE_KEYS: &[&str] = &[
    "exit_codes",
    "signals",
    "output_matches",
    "limits",
    "severity",
];
/// The keys of `recovery.fallback`, which fill in the `RecoverySpec`.
pub(super) const FALLBACK_KEYS: &[&str] = &["command", "retry_primary", "overlap"];

impl Parser<'_> {
    pub(super) fn classify(&mut self, node: &Node, path: &str) -> Option<Vec<ClassifyRule>> {
        self.list(node, path, |v, n, p| v.rule(n, p))
    }

    fn rule(&mut self, node: &Node, path: &str) -> Option<ClassifyRule> {
        let severities = words(Severity::ALL, Severity::as_str);
        // Stands in until the severity is read; a rule without one is an error.
        let mut rule = ClassifyRule {
            exit_codes: Vec::new(),
            signals: Vec::new(),
            output_matches: None,
            limits: Vec::new(),
            severity: Severity::Transient,
        };
        let read = self.each_key(
            node,
            path,
            RULE_KEYS,
            &mut rule,
            |this, rule, key, val, p| {
                match key {
                    "exit_codes" => rule.exit_codes = this.list(val, p, Self::exit_code)?,
                    "signals" => {
                        rule.signals =
                            this.list(val, p, |v, n, p| v.parsed(n, p, units::parse_signal))?;
                    }
                    "output_matches" => rule.output_matches = Some(this.parsed(val, p, regex)?),
                    "limits" => {
                        let words = crate::config::limits::RESOURCES;
                        rule.limits = this.list(val, p, |v, n, p| v.choice(n, p, &words))?;
                    }
                    "severity" => rule.severity = this.choice(val, p, &severities)?,
                    _ => unreachable!("fields() returns only allowed keys"),
                }
                Some(())
            },
        );
        if read != Some(true) {
            return None;
        }
        if node.get("severity").is_none() {
            let missing = format!("missing: {}", units::or_list(&severities));
            self.err(node, &join(path, "severity"), missing);
            return None;
        }
        let kinds = [
            !rule.exit_codes.is_empty(),
            !rule.signals.is_empty(),
            !rule.limits.is_empty(),
        ];
        if !kinds.contains(&true) && rule.output_matches.is_none() {
            let why = "a rule needs at least one of exit_codes, signals, output_matches, limits";
            self.err(node, path, why);
            return None;
        }
        if kinds.iter().filter(|k| **k).count() > 1 {
            let why =
                "exit_codes, signals and limits cannot both match one failure; write two rules";
            self.err(node, path, why);
            return None;
        }
        Some(rule)
    }

    fn exit_code(&mut self, node: &Node, path: &str) -> Option<i32> {
        self.number::<i32>(node, path, "an exit code from 1 to 255", |c| {
            (1..=255).contains(c)
        })
    }

    pub(super) fn recovery(&mut self, node: &Node, path: &str) -> Option<RecoverySpec> {
        let spec: RecoverySpec = self.section(node, path)?;
        if spec.retry.backoff > spec.retry.max_backoff {
            self.err(
                node,
                &join(path, "retry.max_backoff"),
                "must not be shorter than retry.backoff",
            );
            return None;
        }
        Some(spec)
    }

    fn attempts(&mut self, node: &Node, path: &str) -> Option<u32> {
        self.count(node, path, 0..=1000, "a number of attempts")
    }

    /// The fallback command, and the cooldown before the primary is tried
    /// again (a key of `recovery` written under `fallback`).
    fn fallback(&mut self, node: &Node, path: &str, spec: &mut RecoverySpec) -> Option<()> {
        let ok = self.each_key(
            node,
            path,
            FALLBACK_KEYS,
            spec,
            |p, spec, key, val, path| {
                match key {
                    "command" => {
                        let command = p.command(val, path)?;
                        spec.fallback = Some(FallbackSpec { command });
                    }
                    "retry_primary" => {
                        let min = Duration::from_millis(100);
                        spec.retry_primary = p.duration_at_least(val, path, min)?;
                    }
                    "overlap" => spec.overlap = p.choice(val, path, super::document::BOOLEAN)?,
                    _ => unreachable!("fields() returns only allowed keys"),
                }
                Some(())
            },
        )?;
        if ok && spec.overlap && spec.fallback.is_none() {
            let at = join(path, "overlap");
            let node = self.at(&at, node);
            self.err(
                &node,
                &at,
                "overlap needs a fallback command to run beside the primary",
            );
            return None;
        }
        ok.then_some(())
    }
}

impl Section for RecoverySpec {
    const KEYS: &'static [&'static str] = &["retry", "restart", "fallback", "reset_after"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "retry" => self.retry = p.section(val, path)?,
            "restart" => self.restart = p.section(val, path)?,
            "fallback" => p.fallback(val, path, self)?,
            "reset_after" => self.reset_after = p.duration(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for RetrySpec {
    const KEYS: &'static [&'static str] = &["attempts", "backoff", "max_backoff", "jitter"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "attempts" => self.attempts = p.attempts(val, path)?,
            "backoff" => self.backoff = p.duration(val, path)?,
            "max_backoff" => self.max_backoff = p.duration(val, path)?,
            "jitter" => {
                self.jitter = p.number(val, path, "a fraction from 0 to 0.9", |j| {
                    (0.0..=0.9).contains(j)
                })?;
            }
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for RestartSpec {
    const KEYS: &'static [&'static str] = &["attempts", "cleanup", "timeout"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "attempts" => self.attempts = p.attempts(val, path)?,
            "cleanup" => self.cleanup = Some(p.command(val, path)?),
            "timeout" => self.timeout = p.duration(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for EscalationSpec {
    const KEYS: &'static [&'static str] = &["failures", "within"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "failures" => self.failures = p.count(val, path, 1..=1000, "a number of failures")?,
            "within" => self.within = p.duration(val, path)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for SlaSpec {
    const KEYS: &'static [&'static str] = &["availability"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "availability" => self.availability = Some(p.parsed(val, path, percent)?),
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

/// `99.9%` → 0.999: a share above 0 and at most 100 %.
pub(super) fn percent(s: &str) -> Result<f64, String> {
    let bad = || format!("expected a percentage above 0 and at most 100, like 99.9%, found {s:?}");
    let number = s.trim().strip_suffix('%').ok_or_else(bad)?;
    let value: f64 = number.trim().parse().map_err(|_| bad())?;
    if value.is_finite() && value > 0.0 && value <= 100.0 {
        Ok(value / 100.0)
    } else {
        Err(bad())
    }
}

/// A regular expression, as written.
fn regex(s: &str) -> Result<String, String> {
    regex::bytes::Regex::new(s)
        .map(|_| s.to_string())
        .map_err(|e| {
            // The syntax error's last line says what is wrong; the lines
            // above draw a caret diagram.
            let text = e.to_string();
            let what = text
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ");
            format!("invalid regular expression {s:?}: {what}")
        })
}
