//! The descriptors a plan needs, against what this process may open.
//!
//! Per service the daemon holds the read end of its output pipe, and a
//! descriptor for each probe while it runs; beyond the services, a fixed
//! part, the log files open at once, and the fewest connections the
//! control socket keeps (the same count it sizes its connections by), and
//! the HTTP API's listener and connections when it has one. A plan that does not
//! fit is said up front — with the numbers and how to raise the limit —
//! instead of services failing one by one with EMFILE.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::Plan;
use crate::strategy::admission::{MIN_CONNECTIONS, plan_fds};

/// The descriptors `plan` needs before any control connection.
pub fn reserve(plan: &Plan) -> u64 {
    let probes = (plan.services.iter())
        .map(|s| {
            [&s.liveness, &s.readiness, &s.startup]
                .iter()
                .filter(|p| p.is_some())
                .count() as u64
        })
        .sum();
    // The HTTP API's listener, every connection it may serve, and one
    // past them (closed to make room, or being told it is refused).
    let http = match plan.api {
        Some(_) => 2 + crate::control::http::MAX_CONNECTIONS as u64,
        None => 0,
    };
    plan_fds(plan.services.len() as u64, probes) + http
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub needed: u64,
    /// The hard limit: what the soft limit can be raised to.
    pub limit: u64,
}

impl Budget {
    /// The same count the control socket sizes its connections by
    /// ([`crate::strategy::admission::Limits`]): a fixed part, a part per
    /// service, and the fewest connections clients keep.
    pub fn of(plan: &Plan) -> Budget {
        let needed = reserve(plan) + MIN_CONNECTIONS as u64;
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
