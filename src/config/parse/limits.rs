//! A service's `limits:` and the top-level `resources:`.

use super::{Parser, Section};
use crate::config::limits::{ResourcesSpec, parse_cpu, parse_interval, parse_memory};
use crate::config::yaml::Node;
use crate::strategy::limits::Limits;

impl Section for Limits {
    const KEYS: &'static [&'static str] = &["memory", "cpu"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "memory" => self.memory = Some(p.parsed(val, path, parse_memory)?),
            "cpu" => self.cpu = Some(p.parsed(val, path, parse_cpu)?),
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}

impl Section for ResourcesSpec {
    const KEYS: &'static [&'static str] = &["interval"];

    fn read(&mut self, p: &mut Parser<'_>, key: &str, val: &Node, path: &str) -> Option<()> {
        match key {
            "interval" => self.interval = p.parsed(val, path, parse_interval)?,
            _ => unreachable!("fields() returns only allowed keys"),
        }
        Some(())
    }
}
