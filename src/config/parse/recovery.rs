//! What a failure is and what follows it: classify rules, recovery
//! (retry, restart, fallback) and escalation.

use std::time::Duration;

use super::{Parser, join};
use crate::config::units::{self, words};
use crate::config::yaml::Node;
use crate::config::*;
use crate::strategy::policy::Severity;

const RULE_KEYS: &[&str] = &["exit_codes", "signals", "output_matches", "severity"];
const RECOVERY_KEYS: &[&str] = &["retry", "restart", "fallback", "reset_after"];
const RETRY_KEYS: &[&str] = &["attempts", "backoff", "max_backoff", "jitter"];
const RESTART_KEYS: &[&str] = &["attempts", "cleanup", "timeout"];
const FALLBACK_KEYS: &[&str] = &["command", "retry_primary"];
const ESCALATION_KEYS: &[&str] = &["failures", "within"];

impl Parser<'_> {
    pub(super) fn classify(&mut self, node: &Node, path: &str) -> Option<Vec<ClassifyRule>> {
        self.list(node, path, |v, n, p| v.rule(n, p))
    }

    fn rule(&mut self, node: &Node, path: &str) -> Option<ClassifyRule> {
        let severities = words(Severity::ALL, Severity::as_str);
        let fields = self.fields(node, path, RULE_KEYS, &[])?;
        let mut rule = ClassifyRule {
            exit_codes: Vec::new(),
            signals: Vec::new(),
            output_matches: None,
            severity: Severity::Transient,
        };
        let mut ok = true;
        let mut severity = false;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "exit_codes" => self
                    .list(val, &p, |v, n, p| {
                        v.number::<i32>(n, p, "an exit code from 1 to 255", |c| {
                            (1..=255).contains(c)
                        })
                    })
                    .map(|c| rule.exit_codes = c)
                    .is_some(),
                "signals" => self
                    .list(val, &p, |v, n, p| v.parsed(n, p, units::parse_signal))
                    .map(|s| rule.signals = s)
                    .is_some(),
                "output_matches" => self
                    .parsed(val, &p, |s| {
                        regex::bytes::Regex::new(s)
                            .map(|_| s.to_string())
                            .map_err(|e| {
                                // The syntax error's last line says what is wrong;
                                // the lines above draw a caret diagram.
                                let text = e.to_string();
                                let what = text
                                    .lines()
                                    .last()
                                    .unwrap_or("")
                                    .trim_start_matches("error: ");
                                format!("invalid regular expression {s:?}: {what}")
                            })
                    })
                    .map(|r| rule.output_matches = Some(r))
                    .is_some(),
                "severity" => {
                    severity = true;
                    self.choice(val, &p, &severities)
                        .map(|s| rule.severity = s)
                        .is_some()
                }
                _ => unreachable!(),
            };
        }
        if ok && !severity {
            self.err(
                node,
                &join(path, "severity"),
                format!("missing: {}", units::or_list(&severities)),
            );
            ok = false;
        }
        if ok
            && rule.exit_codes.is_empty()
            && rule.signals.is_empty()
            && rule.output_matches.is_none()
        {
            self.err(
                node,
                path,
                "a rule needs at least one of exit_codes, signals, output_matches",
            );
            ok = false;
        }
        if ok && !rule.exit_codes.is_empty() && !rule.signals.is_empty() {
            self.err(
                node,
                path,
                "exit_codes and signals cannot both match one exit; write two rules",
            );
            ok = false;
        }
        ok.then_some(rule)
    }

    pub(super) fn recovery(&mut self, node: &Node, path: &str) -> Option<RecoverySpec> {
        let fields = self.fields(node, path, RECOVERY_KEYS, &[])?;
        let mut spec = RecoverySpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "retry" => self.retry(val, &p, &mut spec.retry),
                "restart" => self.restart_spec(val, &p, &mut spec.restart),
                "fallback" => self.fallback(val, &p, &mut spec),
                "reset_after" => self
                    .duration(val, &p)
                    .map(|d| spec.reset_after = d)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        if ok && spec.retry.backoff > spec.retry.max_backoff {
            self.err(
                node,
                &join(path, "retry.max_backoff"),
                "must not be shorter than retry.backoff",
            );
            ok = false;
        }
        ok.then_some(spec)
    }

    fn retry(&mut self, node: &Node, path: &str, spec: &mut RetrySpec) -> bool {
        let Some(fields) = self.fields(node, path, RETRY_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "attempts" => self
                    .count(val, &p, 0..=1000, "a number of attempts")
                    .map(|n| spec.attempts = n)
                    .is_some(),
                "backoff" => self.duration(val, &p).map(|d| spec.backoff = d).is_some(),
                "max_backoff" => self
                    .duration(val, &p)
                    .map(|d| spec.max_backoff = d)
                    .is_some(),
                "jitter" => self
                    .number::<f64>(val, &p, "a fraction from 0 to 0.9", |j| {
                        (0.0..=0.9).contains(j)
                    })
                    .map(|j| spec.jitter = j)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    fn restart_spec(&mut self, node: &Node, path: &str, spec: &mut RestartSpec) -> bool {
        let Some(fields) = self.fields(node, path, RESTART_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "attempts" => self
                    .count(val, &p, 0..=1000, "a number of attempts")
                    .map(|n| spec.attempts = n)
                    .is_some(),
                "cleanup" => self
                    .command(val, &p)
                    .map(|c| spec.cleanup = Some(c))
                    .is_some(),
                "timeout" => self.duration(val, &p).map(|d| spec.timeout = d).is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    fn fallback(&mut self, node: &Node, path: &str, spec: &mut RecoverySpec) -> bool {
        let Some(fields) = self.fields(node, path, FALLBACK_KEYS, &[]) else {
            return false;
        };
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "command" => self
                    .command(val, &p)
                    .map(|c| spec.fallback = Some(FallbackSpec { command: c }))
                    .is_some(),
                "retry_primary" => self
                    .parsed(val, &p, |s| {
                        let d = units::parse_duration(s)?;
                        if d < Duration::from_millis(100) {
                            return Err(format!("{s} is too short: at least 100ms"));
                        }
                        Ok(d)
                    })
                    .map(|d| spec.retry_primary = d)
                    .is_some(),
                _ => unreachable!(),
            };
        }
        ok
    }

    pub(super) fn escalation(&mut self, node: &Node, path: &str) -> Option<EscalationSpec> {
        let fields = self.fields(node, path, ESCALATION_KEYS, &[])?;
        let mut spec = EscalationSpec::default();
        let mut ok = true;
        for (key, val) in fields {
            let p = join(path, key);
            ok &= match key {
                "failures" => self
                    .count(val, &p, 1..=1000, "a number of failures")
                    .map(|n| spec.failures = n)
                    .is_some(),
                "within" => self.duration(val, &p).map(|d| spec.within = d).is_some(),
                _ => unreachable!(),
            };
        }
        ok.then_some(spec)
    }
}
