//! The descriptors a plan needs, against what this process may open.
//!
//! Per service the daemon holds both ends of two log pipes (the write ends
//! are kept for respawns, the read ends are the log thread's); a spawn, an
//! exec probe or a hook briefly needs a few more. Beyond the services, a
//! fixed reserve covers the control socket and its connections, the notify
//! socket, the log thread's epoll and files, and the loop's own. A plan
//! that does not fit is said up front — with the numbers and how to raise
//! the limit — instead of services failing one by one with EMFILE.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::{Check, Plan};

/// Descriptors kept per service.
const PER_SERVICE: u64 = 4;
/// Held briefly per exec probe run and per spawn.
const PER_EXEC_PROBE: u64 = 2;
/// Everything else: the control socket's connections (capped), the
/// notify socket, epoll, the state dir's files, spawns in flight.
const RESERVE: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub needed: u64,
    /// The hard limit: what the soft limit can be raised to.
    pub limit: u64,
}

impl Budget {
    pub fn of(plan: &Plan) -> Budget {
        let exec_probes = plan
            .services
            .iter()
            .flat_map(|s| [&s.liveness, &s.readiness, &s.startup])
            .flatten()
            .filter(|p| matches!(p.check, Check::Exec(_)))
            .count() as u64;
        let needed =
            plan.services.len() as u64 * PER_SERVICE + exec_probes * PER_EXEC_PROBE + RESERVE;
        let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(0, |(_, hard)| hard);
        Budget { needed, limit }
    }

    /// Raise the hard limit to what the plan needs where allowed (root with
    /// CAP_SYS_RESOURCE); true if the plan fits.
    pub fn fit(&mut self) -> bool {
        if self.needed > self.limit
            && let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        {
            // Children get the limits sentineld was started with.
            super::spawn::keep_nofile_for_children(soft, hard);
            if setrlimit(Resource::RLIMIT_NOFILE, soft, self.needed).is_ok() {
                self.limit = self.needed;
            }
        }
        self.needed <= self.limit
    }

    /// What to tell the operator when the plan does not fit.
    pub fn shortfall(&self, services: usize) -> String {
        format!(
            "{services} services need about {} file descriptors, but this process may open at most {} \
             (RLIMIT_NOFILE hard limit): raise it before `up` — `ulimit -Hn {}` as root, \
             `LimitNOFILE={}` in a systemd unit, or `--ulimit nofile={}` for a container",
            self.needed, self.limit, self.needed, self.needed, self.needed
        )
    }
}
