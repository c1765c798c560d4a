//! Resource health and `limits:`: what a service's process tree uses (the
//! runtime's sampler measures it), its memory trend, and whether a sample
//! breaches a limit — `memory: 512MiB` on any one sample, `cpu: 90% for 1m`
//! when every sample over a whole window is above the limit.
//!
//! Pure: the sample's time comes in with it, so every rule is tested
//! without sleeping or a process to measure.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What a limit is on; also what a `classify` rule's `limits:` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    Memory,
    Cpu,
}

impl Resource {
    pub const ALL: [Resource; 2] = [Resource::Memory, Resource::Cpu];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Cpu => "cpu",
        }
    }
}

/// `cpu: 90% for 1m`: percent of one core (100 = one core busy), over a
/// window (zero: a single sample over the limit is enough).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuLimit {
    pub percent: f64,
    pub window: Duration,
}

/// A service's `limits:`; none set: nothing is ever a breach.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Limits {
    /// Resident memory of the whole process tree, in bytes.
    pub memory: Option<u64>,
    pub cpu: Option<CpuLimit>,
}

/// One measurement of a service's process tree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// The primary's spawn count it was measured for.
    pub generation: u64,
    /// Percent of one core since the previous sample; `None` on the first
    /// sample of a run (there is nothing to compare with yet).
    pub cpu_percent: Option<f64>,
    /// The time `cpu_percent` covers.
    pub interval: Duration,
    pub rss_bytes: u64,
    pub threads: u32,
    pub fds: u32,
    pub processes: u32,
}

/// A limit exceeded, with the figures the event names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Breach {
    Memory {
        rss: u64,
        limit: u64,
        /// MiB per minute, when there are samples enough to say.
        trend: Option<f64>,
    },
    Cpu {
        /// The mean over the window.
        percent: f64,
        limit: f64,
        window: Duration,
    },
}

impl Breach {
    pub fn resource(&self) -> Resource {
        match self {
            Breach::Memory { .. } => Resource::Memory,
            Breach::Cpu { .. } => Resource::Cpu,
        }
    }

    /// `540 MiB > 512 MiB (+30 MiB/min)`, `97% > 90% for 1m`.
    pub fn detail(&self) -> String {
        match *self {
            Breach::Memory { rss, limit, trend } => {
                let trend = trend.map_or(String::new(), |t| format!(" ({})", fmt_trend(t)));
                format!("{} > {}{trend}", fmt_mib(rss), fmt_mib(limit))
            }
            Breach::Cpu {
                percent,
                limit,
                window,
            } => {
                let over = if window.is_zero() {
                    String::new()
                } else {
                    format!(" for {}", humantime::format_duration(window))
                };
                format!("{percent:.0}% > {limit:.0}%{over}")
            }
        }
    }
}

const MIB: f64 = (1 << 20) as f64;

/// `540 MiB`; under 10 MiB with one decimal.
pub fn fmt_mib(bytes: u64) -> String {
    let mib = bytes as f64 / MIB;
    if mib < 10.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{mib:.0} MiB")
    }
}

/// `+30 MiB/min`, `-1.5 MiB/min`.
pub fn fmt_trend(mib_per_min: f64) -> String {
    if mib_per_min.abs() < 10.0 {
        format!("{mib_per_min:+.1} MiB/min")
    } else {
        format!("{mib_per_min:+.0} MiB/min")
    }
}

/// How far back the memory trend looks, and how many samples it keeps.
pub const TREND_SPAN: Duration = Duration::from_secs(300);
pub const TREND_SAMPLES: usize = 64;

/// One run's samples: the last one (for status), a small ring of memory
/// figures (for the trend) and how long the CPU has been over its limit.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    pub last: Option<Usage>,
    /// When `last` was taken.
    pub last_at: Option<Instant>,
    ring: VecDeque<(Instant, u64)>,
    /// Since when every sample was over the CPU limit, and the sum and
    /// count of those samples (for the mean the event names).
    cpu_over: Option<(Instant, f64, u32)>,
}

impl Watch {
    /// A new run: nothing measured yet.
    pub fn reset(&mut self) {
        *self = Watch::default();
    }

    /// Take a sample taken at `now`; a limit it breaches, if any (memory
    /// first: it is the one that takes the machine down).
    pub fn observe(&mut self, limits: &Limits, now: Instant, usage: Usage) -> Option<Breach> {
        self.last = Some(usage);
        self.last_at = Some(now);
        while self.ring.len() >= TREND_SAMPLES
            || self
                .ring
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > TREND_SPAN)
        {
            self.ring.pop_front();
        }
        self.ring.push_back((now, usage.rss_bytes));
        if let Some(limit) = limits.memory
            && usage.rss_bytes > limit
        {
            let trend = self.trend();
            return Some(Breach::Memory {
                rss: usage.rss_bytes,
                limit,
                trend,
            });
        }
        let (cpu, limit) = match (usage.cpu_percent, limits.cpu) {
            (Some(cpu), Some(limit)) => (cpu, limit),
            _ => return None,
        };
        if cpu <= limit.percent {
            self.cpu_over = None;
            return None;
        }
        // The sample covers the interval before it: over since its start.
        let began = now.checked_sub(usage.interval).unwrap_or(now);
        let (since, sum, n) = self.cpu_over.get_or_insert((began, 0.0, 0));
        *sum += cpu;
        *n += 1;
        let since = *since;
        let mean = *sum / f64::from(*n);
        if now.saturating_duration_since(since) >= limit.window {
            return Some(Breach::Cpu {
                percent: mean,
                limit: limit.percent,
                window: limit.window,
            });
        }
        None
    }

    /// Resident memory's slope in MiB per minute over the ring (least
    /// squares); `None` with fewer than two samples or under a second.
    pub fn trend(&self) -> Option<f64> {
        let (t0, _) = *self.ring.front()?;
        let (t1, _) = *self.ring.back()?;
        if self.ring.len() < 2 || t1.saturating_duration_since(t0) < Duration::from_secs(1) {
            return None;
        }
        let n = self.ring.len() as f64;
        let xs = || {
            self.ring
                .iter()
                .map(|(t, m)| (t.duration_since(t0).as_secs_f64(), *m as f64 / MIB))
        };
        let (sx, sy) = xs().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let (num, den) = xs().fold((0.0, 0.0), |(a, b), (x, y)| {
            (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
        });
        (den > 0.0).then(|| num / den * 60.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    fn usage(cpu: Option<f64>, rss: u64) -> Usage {
        Usage {
            generation: 1,
            cpu_percent: cpu,
            interval: Duration::from_secs(5),
            rss_bytes: rss,
            threads: 1,
            fds: 3,
            processes: 1,
        }
    }

    fn limits(memory: Option<u64>, cpu: Option<(f64, u64)>) -> Limits {
        Limits {
            memory,
            cpu: cpu.map(|(percent, secs)| CpuLimit {
                percent,
                window: Duration::from_secs(secs),
            }),
        }
    }

    #[test]
    fn memory_over_the_limit_on_one_sample_is_a_breach_with_the_trend() {
        let l = limits(Some(512 * MB), None);
        let t0 = Instant::now();
        let mut w = Watch::default();
        // 30 MiB per minute: 2.5 MiB every 5 s.
        for k in 0..12u64 {
            let rss = 480 * MB + k * 5 * MB / 2;
            assert_eq!(
                w.observe(&l, t0 + Duration::from_secs(5 * k), usage(None, rss)),
                None
            );
        }
        let at = t0 + Duration::from_secs(60);
        let b = w.observe(&l, at, usage(None, 540 * MB)).expect("a breach");
        let Breach::Memory { rss, limit, trend } = b else {
            panic!("{b:?}")
        };
        assert_eq!((rss, limit), (540 * MB, 512 * MB));
        assert!(trend.unwrap() > 29.0, "{trend:?}");
        assert_eq!(b.resource(), Resource::Memory);
        assert!(
            b.detail().starts_with("540 MiB > 512 MiB (+"),
            "{}",
            b.detail()
        );
    }

    #[test]
    fn at_the_limit_is_not_over_it() {
        let l = limits(Some(512 * MB), None);
        let mut w = Watch::default();
        assert_eq!(w.observe(&l, Instant::now(), usage(None, 512 * MB)), None);
        assert_eq!(w.observe(&l, Instant::now(), usage(Some(400.0), 1)), None);
    }

    #[test]
    fn cpu_must_stay_over_for_the_whole_window() {
        let l = limits(None, Some((90.0, 60)));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = Watch::default();
        // Over from 0 s (the first sample at 5 s covers 0–5 s) ...
        for s in (5..60).step_by(5) {
            assert_eq!(w.observe(&l, at(s), usage(Some(97.0), MB)), None, "{s}");
        }
        // ... a dip starts the window again ...
        assert_eq!(w.observe(&l, at(60), usage(Some(50.0), MB)), None);
        for s in (65..120).step_by(5) {
            assert_eq!(w.observe(&l, at(s), usage(Some(97.0), MB)), None, "{s}");
        }
        // ... and a full minute over it is a breach, with the mean.
        let b = w.observe(&l, at(120), usage(Some(99.0), MB)).unwrap();
        let Breach::Cpu { percent, .. } = b else {
            panic!("{b:?}")
        };
        assert!((percent - (97.0 * 11.0 + 99.0) / 12.0).abs() < 1e-9);
        assert_eq!(b.detail(), "97% > 90% for 1m");
    }

    #[test]
    fn a_cpu_limit_without_a_window_takes_one_sample() {
        let l = limits(None, Some((50.0, 0)));
        let mut w = Watch::default();
        // The first sample of a run has no CPU figure: never a breach.
        assert_eq!(w.observe(&l, Instant::now(), usage(None, MB)), None);
        let b = w.observe(&l, Instant::now(), usage(Some(80.0), MB));
        assert_eq!(b.map(|b| b.detail()), Some("80% > 50%".into()));
    }

    #[test]
    fn no_limits_no_breach() {
        let mut w = Watch::default();
        let b = w.observe(
            &Limits::default(),
            Instant::now(),
            usage(Some(800.0), 1 << 40),
        );
        assert_eq!(b, None);
        assert!(w.last.is_some());
        w.reset();
        assert!(w.last.is_none());
    }

    #[test]
    fn trend_is_the_slope_over_the_ring() {
        let t0 = Instant::now();
        let mut w = Watch::default();
        let l = Limits::default();
        assert_eq!(w.trend(), None);
        w.observe(&l, t0, usage(None, 100 * MB));
        assert_eq!(w.trend(), None);
        // Down 10 MiB in 30 s: -20 MiB/min.
        w.observe(&l, t0 + Duration::from_secs(30), usage(None, 90 * MB));
        assert!((w.trend().unwrap() + 20.0).abs() < 1e-9);
        // Old samples leave the ring: only the last TREND_SPAN counts.
        let late = t0 + TREND_SPAN + Duration::from_secs(60);
        w.observe(&l, late, usage(None, 90 * MB));
        w.observe(&l, late + Duration::from_secs(60), usage(None, 90 * MB));
        assert_eq!(w.trend(), Some(0.0));
        // The ring holds at most TREND_SAMPLES.
        for k in 0..200u64 {
            w.observe(&l, late + Duration::from_millis(k), usage(None, MB));
        }
        assert_eq!(w.ring.len(), TREND_SAMPLES);
    }

    #[test]
    fn words() {
        assert_eq!(fmt_mib(5 * MB / 2), "2.5 MiB");
        assert_eq!(fmt_mib(540 * MB), "540 MiB");
        assert_eq!(fmt_trend(30.2), "+30 MiB/min");
        assert_eq!(fmt_trend(-1.25), "-1.2 MiB/min");
        assert_eq!(fmt_trend(0.0), "+0.0 MiB/min");
    }
}
