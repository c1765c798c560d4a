//! Resource sampling: CPU, resident memory, threads and descriptors of each
//! running service's whole process tree, measured by one thread in one pass
//! for all services and sent back to the event loop over a channel, like
//! probe results. Whether a sample breaches a limit is the machine's
//! business ([`crate::strategy::limits`]); this module only measures.
//!
//! A service's processes are the members of its primary's cgroup where
//! there are cgroups (a double-forked daemon stays in it), else the members
//! of its process group. With a cgroup, CPU is the growth of the cgroup's
//! `cpu.stat` and each member is read directly ([`procstat`]: one read of
//! `/proc/PID/stat`, one `statx` of `/proc/PID/fd`); a cgroup in which
//! nothing ran keeps its figures unread ([`sampling`]). Without one, the
//! figures come from sysinfo, refreshed for those pids only, and CPU is the
//! growth of each process's utime + stime (a process that appeared
//! meanwhile counts from zero). CPU is over the wall time between two
//! passes, so 100 % is one core busy, as in top. The loop never waits on
//! the sampler: a tick that finds the last pass still running is skipped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;

use super::cgroup::Cgroups;
use super::procstat;
use crate::strategy::limits::Usage;
use crate::strategy::sampling;

/// One running primary to measure.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub service: usize,
    pub generation: u64,
    /// The primary's pid, which leads its process group.
    pub leader: i32,
    /// Its cgroup, where there are cgroups.
    pub cgroup: Option<PathBuf>,
}

/// One pass's figures, by service index.
pub(super) type Batch = Vec<(usize, Usage)>;
pub(super) type Samples = mpsc::UnboundedReceiver<Batch>;

/// The loop's handle on the sampler thread.
pub(super) struct Sampler {
    tx: SyncSender<Vec<Target>>,
}

impl Sampler {
    /// Start the sampler thread; its batches come out of [`Samples`].
    pub(super) fn start() -> std::io::Result<(Sampler, Samples)> {
        // One pass queued at most: a tick that finds it full is skipped.
        let (tx, rx) = sync_channel::<Vec<Target>>(1);
        let (out, samples) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("resources".into())
            .stack_size(256 << 10)
            .spawn(move || run(rx, out))?;
        Ok((Sampler { tx }, samples))
    }

    /// Ask for a pass over `targets`; false if the last one is not done.
    pub(super) fn sample(&self, targets: Vec<Target>) -> bool {
        match self.tx.try_send(targets) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }
}

fn run(rx: Receiver<Vec<Target>>, out: mpsc::UnboundedSender<Batch>) {
    let mut meter = Meter::new();
    while let Ok(targets) = rx.recv() {
        let batch = meter.pass(&targets, Instant::now());
        if out.send(batch).is_err() {
            return;
        }
    }
}

/// What one pass remembers for the next.
struct Meter {
    sys: Option<System>,
    /// Each process's start time (to tell a reused pid) and CPU time in
    /// ms, for services whose CPU is counted process by process.
    cpu: HashMap<i32, (u64, u64)>,
    /// Each service's last pass.
    seen: HashMap<usize, Seen>,
    /// The CPU time in µs of each cgroup holding services' cgroups, at the
    /// last pass.
    parents: HashMap<PathBuf, u64>,
}

/// A service's last pass, for its next.
#[derive(Debug, Clone, Copy)]
struct Seen {
    generation: u64,
    at: Instant,
    /// Its cgroup's CPU time in µs, where its CPU came from there.
    usec: Option<u64>,
    usage: Usage,
    /// Passes in a row that kept the figures ([`sampling::Read::Reuse`]).
    reused: u32,
}

/// What this pass reads for one service.
enum Plan {
    /// Nothing ran in its cgroup: the last figures hold.
    Reuse,
    /// The members of its cgroup, read directly; CPU from the cgroup.
    Cgroup { pids: Vec<i32>, usec: Option<u64> },
    /// The members of its process group, read through sysinfo.
    Group,
}

/// A process's figures from one refresh.
#[derive(Default, Clone, Copy)]
struct Figures {
    start: u64,
    cpu_ms: u64,
    rss: u64,
    threads: u32,
    fds: u32,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            sys: None,
            cpu: HashMap::new(),
            seen: HashMap::new(),
            parents: HashMap::new(),
        }
    }

    /// The last pass of `t`'s current run, if any.
    fn before(&self, t: &Target) -> Option<&Seen> {
        (self.seen.get(&t.service)).filter(|s| s.generation == t.generation)
    }

    /// The cgroups holding targets' cgroups in which nothing ran since the
    /// last pass (one read each; the CPU time of a cgroup is that of all
    /// below it), and their figures now, for the next pass.
    fn quiet_parents(&self, targets: &[Target]) -> (Vec<PathBuf>, HashMap<PathBuf, u64>) {
        let mut now = HashMap::new();
        for parent in targets.iter().filter_map(|t| t.cgroup.as_deref()?.parent()) {
            if !now.contains_key(parent)
                && let Some(usec) = procstat::cgroup_usage_usec(parent)
            {
                now.insert(parent.to_path_buf(), usec);
            }
        }
        let quiet = (now.iter())
            .filter(|(p, usec)| sampling::quiet(self.parents.get(*p).copied(), Some(**usec)))
            .map(|(p, _)| p.clone())
            .collect();
        (quiet, now)
    }

    fn plan(&self, t: &Target, quiet: &[PathBuf]) -> Plan {
        let Some(cg) = &t.cgroup else {
            return Plan::Group;
        };
        let before = self.before(t);
        let (previous, reused) = before.map_or((None, 0), |s| (s.usec, s.reused));
        // Nothing ran under the parent: nor in this cgroup.
        let usec = match cg.parent() {
            Some(p) if previous.is_some() && quiet.iter().any(|q| q == p) => previous,
            _ => procstat::cgroup_usage_usec(cg),
        };
        if sampling::read(previous, usec, reused) == sampling::Read::Reuse {
            return Plan::Reuse;
        }
        let pids = Cgroups::pids(cg);
        if pids.is_empty() {
            Plan::Group
        } else {
            Plan::Cgroup { pids, usec }
        }
    }

    fn pass(&mut self, targets: &[Target], now: Instant) -> Batch {
        let (quiet, parents) = self.quiet_parents(targets);
        let plans: Vec<Plan> = targets.iter().map(|t| self.plan(t, &quiet)).collect();
        self.parents = parents;
        let grouped: Vec<&Target> = (targets.iter().zip(&plans))
            .filter_map(|(t, p)| matches!(p, Plan::Group).then_some(t))
            .collect();
        let groups = process_groups(&grouped);
        let members = |t: &Target| match groups.get(&t.leader) {
            Some(m) if !m.is_empty() => m.clone(),
            _ => vec![t.leader],
        };
        let figures = self.refresh(grouped.iter().flat_map(|t| members(t)));
        let mut cpu = HashMap::with_capacity(figures.len());
        let mut seen = HashMap::with_capacity(targets.len());
        let mut batch = Vec::with_capacity(targets.len());
        for (t, plan) in targets.iter().zip(plans) {
            let before = self.before(t).copied();
            let next = match plan {
                Plan::Reuse => before.map(|b| reuse(b, now)),
                Plan::Cgroup { pids, usec } => {
                    let read: HashMap<i32, Figures> = pids
                        .iter()
                        .filter_map(|p| Some((*p, direct(*p)?)))
                        .collect();
                    Some(self.measure(t, &pids, &read, usec, before, now, &mut cpu))
                }
                Plan::Group => {
                    let pids = members(t);
                    Some(self.measure(t, &pids, &figures, None, before, now, &mut cpu))
                }
            };
            let Some(next) = next else { continue };
            seen.insert(t.service, next);
            batch.push((t.service, next.usage));
        }
        self.cpu = cpu;
        self.seen = seen;
        batch
    }

    /// A service's figures from its processes' `figures`; CPU from its
    /// cgroup's `usec` where there is one, else process by process (the
    /// baselines for the next pass go into `cpu`).
    #[allow(clippy::too_many_arguments)]
    fn measure(
        &self,
        t: &Target,
        pids: &[i32],
        figures: &HashMap<i32, Figures>,
        usec: Option<u64>,
        before: Option<Seen>,
        now: Instant,
        cpu: &mut HashMap<i32, (u64, u64)>,
    ) -> Seen {
        let mut u = Usage {
            generation: t.generation,
            cpu_percent: None,
            interval: Duration::ZERO,
            rss_bytes: 0,
            threads: 0,
            fds: 0,
            processes: 0,
        };
        let mut cpu_ms = 0u64;
        for pid in pids {
            let Some(f) = figures.get(pid) else { continue };
            u.processes += 1;
            u.rss_bytes += f.rss;
            u.threads += f.threads;
            u.fds += f.fds;
            if usec.is_none() {
                cpu_ms += match self.cpu.get(pid) {
                    Some((start, ms)) if *start == f.start => f.cpu_ms.saturating_sub(*ms),
                    _ => f.cpu_ms,
                };
                cpu.insert(*pid, (f.start, f.cpu_ms));
            }
        }
        if let Some(b) = before {
            u.interval = now.saturating_duration_since(b.at);
            let busy = match (usec, b.usec) {
                (Some(now), Some(then)) => Some(Duration::from_micros(now.saturating_sub(then))),
                // Counted another way last time: no baseline yet.
                (Some(_), None) | (None, Some(_)) => None,
                (None, None) => Some(Duration::from_millis(cpu_ms)),
            };
            u.cpu_percent = busy.and_then(|b| sampling::cpu_percent(b, u.interval));
        }
        Seen {
            generation: t.generation,
            at: now,
            usec,
            usage: u,
            reused: 0,
        }
    }

    /// sysinfo's figures for `pids`, refreshed for those pids only; threads
    /// and descriptors read directly ([`procstat`]), cheaper than sysinfo's
    /// listing of every thread's and every descriptor's directory entry.
    fn refresh(&mut self, pids: impl Iterator<Item = i32>) -> HashMap<i32, Figures> {
        let pids: Vec<Pid> = pids.map(|p| Pid::from(p as usize)).collect();
        if pids.is_empty() {
            return HashMap::new();
        }
        // sysinfo keeps every process it was asked about; a new System
        // now and then forgets those that are not ours any more (the CPU
        // baselines are this module's own, so nothing is lost).
        if self
            .sys
            .as_ref()
            .is_some_and(|s| s.processes().len() > 2 * pids.len() + 64)
        {
            self.sys = None;
        }
        if self.sys.is_none() {
            self.sys = System::new().ok();
        }
        let Some(sys) = self.sys.as_mut() else {
            return HashMap::new();
        };
        let kind = ProcessRefreshKind::nothing().with_cpu().with_memory();
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        let mut out = HashMap::with_capacity(pids.len());
        for pid in &pids {
            let Some(p) = sys.process(*pid) else { continue };
            let raw = pid.as_u32() as i32;
            out.insert(
                raw,
                Figures {
                    start: p.start_time(),
                    cpu_ms: p.accumulated_cpu_time(),
                    rss: p.memory(),
                    threads: procstat::stat(raw).map_or(1, |s| s.threads),
                    fds: procstat::fds(raw).unwrap_or(0),
                },
            );
        }
        out
    }
}

/// The last figures again, `now`: no CPU used meanwhile.
fn reuse(before: Seen, now: Instant) -> Seen {
    let interval = now.saturating_duration_since(before.at);
    Seen {
        at: now,
        reused: before.reused + 1,
        usage: Usage {
            interval,
            cpu_percent: sampling::cpu_percent(Duration::ZERO, interval),
            ..before.usage
        },
        ..before
    }
}

/// `pid`'s figures read directly: one read of its `stat`, one `statx` of
/// its descriptor directory.
fn direct(pid: i32) -> Option<Figures> {
    let s = procstat::stat(pid)?;
    Some(Figures {
        start: s.start,
        cpu_ms: s.cpu_ms,
        rss: s.rss_bytes,
        threads: s.threads,
        fds: procstat::fds(pid).unwrap_or(0),
    })
}

/// Members of each process group led by `targets` (one read of `/proc`
/// for all of them); empty when there are none.
fn process_groups(targets: &[&Target]) -> HashMap<i32, Vec<i32>> {
    let mut groups: HashMap<i32, Vec<i32>> = HashMap::new();
    if targets.is_empty() {
        return groups;
    }
    for t in targets {
        groups.insert(t.leader, Vec::new());
    }
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        // One open, read, close each (field 5 is the process group).
        let pgrp = procstat::pgrp(pid);
        if let Some(members) = pgrp.and_then(|g| groups.get_mut(&g)) {
            members.push(pid);
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_process_group_is_measured_and_cpu_needs_two_passes() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let leader = child.id() as i32;
        let target = Target {
            service: 7,
            generation: 1,
            leader,
            cgroup: None,
        };
        let mut meter = Meter::new();
        let t0 = Instant::now();
        let first = meter.pass(std::slice::from_ref(&target), t0);
        let second = meter.pass(std::slice::from_ref(&target), t0 + Duration::from_secs(1));
        let next_run = Target {
            generation: 2,
            ..target
        };
        let third = meter.pass(&[next_run], t0 + Duration::from_secs(2));
        let _ = child.kill();
        let _ = child.wait();
        let (service, u) = first[0];
        assert_eq!(service, 7);
        assert_eq!((u.processes, u.threads, u.cpu_percent), (1, 1, None));
        assert!(u.rss_bytes > 0 && u.fds >= 3, "{u:?}");
        let u = second[0].1;
        assert_eq!(u.interval, Duration::from_secs(1));
        assert!(u.cpu_percent.is_some_and(|c| c < 5.0), "{u:?}");
        // A new run of the service starts again with no CPU figure.
        assert_eq!(third[0].1.cpu_percent, None);
    }
}
