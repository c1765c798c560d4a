//! How much the resource sampler reads for one service in one pass.
//!
//! Where a service has a cgroup, the cgroup's `cpu.stat` (`usage_usec`,
//! every process that ran in it, one small read) comes first. If it has
//! not moved since the last pass, no process of the service ran: none
//! forked, exited, opened a file or grew, so the last pass's figures still
//! hold and its processes are not read again. Only the kernel can change
//! them meanwhile (reclaim shrinking resident memory, a process moved in
//! from outside), so every [`FULL_EVERY`]th pass reads them anyway.
//!
//! A cgroup's CPU time includes that of every cgroup below it, and never
//! goes back, so one read of the cgroup holding all the services' cgroups
//! answers for all of them when it has not moved ([`quiet`]).

use std::time::Duration;

/// A quiet service's processes are read again at least every this many
/// passes (a minute at the default 5 s interval).
pub const FULL_EVERY: u32 = 12;

/// What to do for one service in this pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Keep the last figures: nothing of the service ran since.
    Reuse,
    /// Read every process of the service.
    Processes,
}

/// `previous`: the cgroup's CPU time at the last pass of this run, `now`:
/// at this one (`None` where there is no cgroup figure); `reused`: passes
/// in a row that kept the figures.
pub fn read(previous: Option<u64>, now: Option<u64>, reused: u32) -> Read {
    if quiet(previous, now) && reused + 1 < FULL_EVERY {
        Read::Reuse
    } else {
        Read::Processes
    }
}

/// Whether nothing ran in a cgroup between two readings of its CPU time.
pub fn quiet(previous: Option<u64>, now: Option<u64>) -> bool {
    matches!((previous, now), (Some(p), Some(n)) if p == n)
}

/// Percent of one core: `busy` CPU time over `interval` of wall time;
/// `None` for an empty interval.
pub fn cpu_percent(busy: Duration, interval: Duration) -> Option<f64> {
    let wall = interval.as_secs_f64();
    (wall > 0.0).then(|| busy.as_secs_f64() / wall * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_cgroup_is_reused_until_every_twelfth_pass() {
        assert_eq!(read(Some(5), Some(5), 0), Read::Reuse);
        assert_eq!(read(Some(5), Some(5), FULL_EVERY - 2), Read::Reuse);
        assert_eq!(read(Some(5), Some(5), FULL_EVERY - 1), Read::Processes);
    }

    #[test]
    fn cpu_used_or_no_figure_means_reading_the_processes() {
        assert_eq!(read(Some(5), Some(6), 0), Read::Processes);
        assert_eq!(read(None, Some(5), 0), Read::Processes);
        assert_eq!(read(Some(5), None, 0), Read::Processes);
        assert_eq!(read(None, None, 0), Read::Processes);
    }

    #[test]
    fn a_cgroup_is_quiet_when_its_cpu_time_is_known_and_unchanged() {
        assert!(quiet(Some(7), Some(7)));
        assert!(!quiet(Some(7), Some(8)));
        assert!(!quiet(None, Some(7)));
        assert!(!quiet(Some(7), None));
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let s = Duration::from_secs;
        assert_eq!(cpu_percent(s(1), s(2)), Some(50.0));
        assert_eq!(cpu_percent(s(4), s(2)), Some(200.0));
        assert_eq!(cpu_percent(s(1), Duration::ZERO), None);
    }
}
