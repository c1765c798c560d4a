//! `limits:` of a service and the top-level `resources:` section: their
//! values, how they read in YAML and how `check` prints them.

use std::time::Duration;

use crate::strategy::limits::{CpuLimit, Limits, Resource};

/// `resources:` — how often the sampler measures every service.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct ResourcesSpec {
    /// `None`: `interval: off`, nothing is sampled (and no limit applies).
    #[serde(serialize_with = "ser_interval")]
    pub interval: Option<Duration>,
}

impl Default for ResourcesSpec {
    fn default() -> Self {
        ResourcesSpec {
            interval: Some(Duration::from_secs(5)),
        }
    }
}

fn ser_interval<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&humantime::format_duration(*d).to_string()),
        None => s.serialize_str("off"),
    }
}

/// The shortest sampling interval: CPU figures over less are mostly noise.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// `5s`, or `off`.
pub fn parse_interval(text: &str) -> Result<Option<Duration>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    let d = super::units::parse_duration(text).map_err(|e| format!("{e}, or off"))?;
    if d < MIN_INTERVAL {
        return Err(format!("{} is too short: at least 100ms", text.trim()));
    }
    Ok(Some(d))
}

/// `512MiB`: more than nothing.
pub fn parse_memory(text: &str) -> Result<u64, String> {
    match super::units::parse_size(text)? {
        0 => Err("a memory limit of 0 would stop the service at once".into()),
        n => Ok(n),
    }
}

/// `90%` (one sample over it is enough) or `90% for 1m` (every sample over
/// a whole minute); percent of one core, so `250%` is two and a half.
pub fn parse_cpu(text: &str) -> Result<CpuLimit, String> {
    let t = text.trim();
    let bad = || format!("expected a CPU limit like 90% or 90% for 1m, found {t:?}");
    let (pct, window) = match t.split_once(" for ") {
        Some((p, w)) => (p.trim(), Some(w.trim())),
        None => (t, None),
    };
    let percent: f64 = pct
        .strip_suffix('%')
        .and_then(|n| n.trim().parse().ok())
        .filter(|p: &f64| p.is_finite())
        .ok_or_else(bad)?;
    if percent <= 0.0 || percent > 100_000.0 {
        return Err(format!(
            "{pct} is out of range: more than 0% (100% is one core busy)"
        ));
    }
    let window = match window {
        Some(w) => super::units::parse_duration(w)?,
        None => Duration::ZERO,
    };
    Ok(CpuLimit { percent, window })
}

/// `memory` or `cpu`, for a `classify` rule's `limits:`.
pub const RESOURCES: [(&str, Resource); 2] = [("memory", Resource::Memory), ("cpu", Resource::Cpu)];

pub(super) fn ser_limits<S: serde::Serializer>(l: &Limits, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    if let Some(bytes) = l.memory {
        m.serialize_entry("memory", &bytes)?;
    }
    if let Some(c) = l.cpu {
        let text = match c.window.is_zero() {
            true => format!("{}%", c.percent),
            false => format!(
                "{}% for {}",
                c.percent,
                humantime::format_duration(c.window)
            ),
        };
        m.serialize_entry("cpu", &text)?;
    }
    m.end()
}

pub(super) fn ser_resources<S: serde::Serializer>(r: &[Resource], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(r.iter().map(|x| x.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_limits() {
        let c = parse_cpu("90% for 1m").unwrap();
        assert_eq!((c.percent, c.window), (90.0, Duration::from_secs(60)));
        let c = parse_cpu(" 250 % ").unwrap();
        assert_eq!((c.percent, c.window), (250.0, Duration::ZERO));
        assert!(
            parse_cpu("90")
                .unwrap_err()
                .contains("like 90% or 90% for 1m")
        );
        assert!(parse_cpu("0%").unwrap_err().contains("out of range"));
        assert!(parse_cpu("-5%").unwrap_err().contains("out of range"));
        assert!(parse_cpu("90% for ever").unwrap_err().contains("duration"));
        assert!(parse_cpu("NaN%").is_err());
    }

    #[test]
    fn memory_and_interval() {
        assert_eq!(parse_memory("512MiB"), Ok(512 << 20));
        assert!(parse_memory("0").unwrap_err().contains("at once"));
        assert!(parse_memory("lots").unwrap_err().contains("like 10MiB"));
        assert_eq!(parse_interval("off"), Ok(None));
        assert_eq!(parse_interval("2s"), Ok(Some(Duration::from_secs(2))));
        assert!(parse_interval("5ms").unwrap_err().contains("too short"));
        assert!(parse_interval("soon").unwrap_err().ends_with("or off"));
    }
}
