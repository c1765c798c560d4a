//! Resource sampling: CPU, resident memory, threads and descriptors of each
//! running service's whole process tree, measured by one thread in one pass
//! for all services and sent back to the event loop over a channel, like
//! probe results. Whether a sample breaches a limit is the machine's
//! business ([`crate::strategy::limits`]); this module only measures.
//!
//! A service's processes are the members of its primary's cgroup where
//! there are cgroups (a double-forked daemon stays in it), else the members
//! of its process group. Per-process figures come from sysinfo, refreshed
//! for those pids only; CPU is the growth of each process's utime + stime
//! since the previous pass (a process that appeared meanwhile counts from
//! zero) over the wall time between the two, so 100 % is one core busy, as
//! in top. The loop never waits on the sampler: a tick that finds the last
//! pass still running is skipped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc;

use super::cgroup::Cgroups;
use crate::strategy::limits::Usage;

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
    /// Each process's start time (to tell a reused pid) and CPU time in ms.
    cpu: HashMap<i32, (u64, u64)>,
    /// Each service's generation and when it was last measured.
    seen: HashMap<usize, (u64, Instant)>,
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
        }
    }

    fn pass(&mut self, targets: &[Target], now: Instant) -> Batch {
        let groups = process_groups(targets);
        let members: Vec<Vec<i32>> = (targets.iter())
            .map(|t| match &t.cgroup {
                Some(cg) => {
                    let pids = Cgroups::pids(cg);
                    if pids.is_empty() {
                        groups
                            .get(&t.leader)
                            .cloned()
                            .unwrap_or_else(|| vec![t.leader])
                    } else {
                        pids
                    }
                }
                None => groups
                    .get(&t.leader)
                    .cloned()
                    .unwrap_or_else(|| vec![t.leader]),
            })
            .collect();
        let figures = self.refresh(members.iter().flatten().copied());
        let mut cpu = HashMap::with_capacity(figures.len());
        let mut seen = HashMap::with_capacity(targets.len());
        let mut batch = Vec::with_capacity(targets.len());
        for (t, pids) in targets.iter().zip(&members) {
            let before = self
                .seen
                .get(&t.service)
                .filter(|(g, _)| *g == t.generation);
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
                cpu_ms += match self.cpu.get(pid) {
                    Some((start, ms)) if *start == f.start => f.cpu_ms.saturating_sub(*ms),
                    _ => f.cpu_ms,
                };
                cpu.insert(*pid, (f.start, f.cpu_ms));
            }
            if let Some((_, at)) = before {
                u.interval = now.saturating_duration_since(*at);
                let ms = u.interval.as_secs_f64() * 1000.0;
                u.cpu_percent = (ms > 0.0).then(|| cpu_ms as f64 / ms * 100.0);
            }
            seen.insert(t.service, (t.generation, now));
            batch.push((t.service, u));
        }
        self.cpu = cpu;
        self.seen = seen;
        batch
    }

    /// sysinfo's figures for `pids`, refreshed for those pids only.
    fn refresh(&mut self, pids: impl Iterator<Item = i32>) -> HashMap<i32, Figures> {
        let pids: Vec<Pid> = pids.map(|p| Pid::from(p as usize)).collect();
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
        let kind = ProcessRefreshKind::nothing()
            .with_cpu()
            .with_memory()
            .with_tasks();
        sys.refresh_processes_specifics(ProcessesToUpdate::Some(&pids), true, kind);
        let mut out = HashMap::with_capacity(pids.len());
        for pid in &pids {
            let Some(p) = sys.process(*pid) else { continue };
            if p.thread_kind().is_some() {
                continue;
            }
            out.insert(
                pid.as_u32() as i32,
                Figures {
                    start: p.start_time(),
                    cpu_ms: p.accumulated_cpu_time(),
                    rss: p.memory(),
                    threads: p.tasks().map_or(1, |t| t.len() as u32 + 1),
                    fds: p.open_files().unwrap_or(0) as u32,
                },
            );
        }
        out
    }
}

/// Members of each process group led by a target without a cgroup (one
/// read of `/proc` for all of them); empty when every target has one.
fn process_groups(targets: &[Target]) -> HashMap<i32, Vec<i32>> {
    let mut groups: HashMap<i32, Vec<i32>> = HashMap::new();
    if targets.iter().all(|t| t.cgroup.is_some()) {
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
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Field 5 is the process group.
        let pgrp = super::registry::stat_field(&stat, 5).and_then(|f| f.parse::<i32>().ok());
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
