//! The log thread's watchdog: a write (or open, rename) that has not
//! returned after [`STALL`] is reported as stalled, and its return as the
//! end of it. The log thread cannot say so itself — it is the one stuck.
//!
//! The watchdog sleeps while no file operation runs; while they run it
//! looks once per [`TICK`]. Marking an operation costs the log thread an
//! uncontended lock, and a wake-up only when the watchdog was asleep.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::{LogCondition, Reporter, lock};
use crate::strategy::machine::{LogReport, LogTrouble};

/// How long a file operation may take before it counts as stalled.
pub(super) const STALL: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_secs(1);

pub(super) struct Watch {
    state: Mutex<State>,
    wake: Condvar,
    report: Reporter,
}

#[derive(Default)]
struct State {
    /// The file operation in progress: for which service, since when, its
    /// number.
    busy: Option<(usize, Instant, u64)>,
    ops: u64,
    /// The operation reported as stalled, while it lasts.
    stalled: Option<u64>,
    /// Operations began since the watchdog last looked.
    active: bool,
    /// The watchdog sleeps until an operation begins.
    idle: bool,
    stop: bool,
}

impl Watch {
    pub(super) fn new(report: Reporter) -> Watch {
        Watch {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            report,
        }
    }

    /// Run `op`, a file operation for service `id`, under watch.
    pub(super) fn during<R>(&self, id: usize, op: impl FnOnce() -> R) -> R {
        {
            let mut st = lock(&self.state);
            st.ops += 1;
            st.busy = Some((id, Instant::now(), st.ops));
            st.active = true;
            if st.idle {
                self.wake.notify_one();
            }
        }
        let r = op();
        let mut st = lock(&self.state);
        if let Some((id, _, op)) = st.busy.take()
            && st.stalled == Some(op)
        {
            st.stalled = None;
            self.send(id, String::new(), true);
        }
        r
    }

    /// A file operation has hung for [`STALL`] or more, right now.
    pub(super) fn stalled(&self) -> bool {
        lock(&self.state).stalled.is_some()
    }

    pub(super) fn stop(&self) {
        lock(&self.state).stop = true;
        self.wake.notify_one();
    }

    fn send(&self, service: usize, detail: String, cleared: bool) {
        let report = LogReport {
            trouble: LogTrouble::Stalled,
            detail,
            cleared,
        };
        let _ = self.report.send(LogCondition { service, report });
    }

    /// The watchdog thread's body.
    pub(super) fn run(&self) {
        let mut st = lock(&self.state);
        while !st.stop {
            if let Some((id, since, op)) = st.busy
                && st.stalled != Some(op)
                && since.elapsed() >= STALL
            {
                st.stalled = Some(op);
                self.send(id, format!("{}s", STALL.as_secs()), false);
            }
            let watching = st.active || (st.busy.is_some() && st.stalled.is_none());
            if watching {
                st.active = false;
                st = self
                    .wake
                    .wait_timeout(st, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            } else {
                st.idle = true;
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                st.idle = false;
            }
        }
    }
}
