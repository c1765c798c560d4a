//! Which control-socket connections the daemon keeps, and for how long.
//!
//! Every connection costs a descriptor and the bytes of its unfinished
//! request line, and descriptors are what the daemon needs to spawn (pipes)
//! and probe (sockets): a crowd of clients must never make a respawn fail
//! with EMFILE. So the number of connections is capped, below what the
//! descriptor limit leaves once the plan's own needs are set aside
//! ([`Limits::for_plan`]); a connection that sends nothing is closed after
//! [`IDLE_TIMEOUT`], one that starts a line and does not finish it after
//! [`PARTIAL_TIMEOUT`].
//!
//! At the cap, a new connection takes the place of the one that has waited
//! longest for a request (idle, or stalled mid-line): clients that connect
//! and then stay silent cannot lock out one that asks something. Only when
//! every connection is working — a request with the daemon, a reply being
//! written, or `events -f` following — is the new one refused as busy.
//! Followers are capped apart, at a quarter of the connections, so they can
//! never take all of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// At most this many connections at once. A supervisor's clients are a few
/// CLI calls and scripts; 256 leaves them plenty while bounding what the
/// connections can hold: 256 descriptors, and 256 × 64 KiB of unfinished
/// request lines.
pub const MAX_CONNECTIONS: usize = 256;
/// Even when the descriptor limit leaves less, clients keep this many (a
/// warning at start says the limit is too low for the plan).
pub const MIN_CONNECTIONS: usize = 8;
/// A connection with no request under way is closed after this long. The
/// CLI writes its request as soon as it connects; this is for clients that
/// keep a connection between requests, and for those that never ask.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request line must end within this long of its first byte, however
/// slowly its bytes trickle in.
pub const PARTIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// A reply the peer has not taken within this long is abandoned with its
/// connection, so a peer that never reads cannot hold a working slot.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Descriptors each service holds: the read end of its output pipe (its
/// processes get write ends of their own; the log file is among
/// [`LOG_FILES_OPEN`]).
pub const FDS_PER_SERVICE: u64 = 1;
/// Descriptors a probe holds while it runs: an exec probe's pipe, a TCP or
/// HTTP probe's socket, with room for one being closed as the next opens.
pub const FDS_PER_PROBE: u64 = 2;
/// At most this many services' log files are open at once; the log file
/// open longest is closed for the next, and opened again when needed.
pub const LOG_FILES_OPEN: u64 = 256;
/// Descriptors the daemon holds whatever the plan (stdio, the state dir's
/// lock, the listener, the notify socket, the runtime's and the log
/// thread's epoll and wake-ups, its log file, /dev/null, files it opens for
/// a moment, the write end and `cgroup.procs` of a process being started)
/// with room to spare, including the one connection accepted past the cap
/// only to be told it is refused.
pub const FDS_FIXED: u64 = 64;

/// Descriptors a plan of `services` with `probes` probes in all needs,
/// before any control connection.
pub fn plan_fds(services: u64, probes: u64) -> u64 {
    FDS_FIXED + LOG_FILES_OPEN.min(services) + FDS_PER_SERVICE * services + FDS_PER_PROBE * probes
}

/// How many connections, and of those followers, the daemon allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connections: usize,
    pub followers: usize,
    /// Descriptors set aside for the plan.
    pub reserve: u64,
    /// Descriptors short of the reserve plus [`MIN_CONNECTIONS`]; zero when
    /// the limit is enough.
    pub shortfall: u64,
}

impl Limits {
    /// From the descriptor limit (`RLIMIT_NOFILE`, as raised) and what the
    /// plan needs ([`plan_fds`]).
    pub fn for_plan(nofile: u64, reserve: u64) -> Limits {
        let spare = nofile.saturating_sub(reserve);
        let connections = spare.min(MAX_CONNECTIONS as u64) as usize;
        let connections = connections.max(MIN_CONNECTIONS);
        Limits {
            connections,
            followers: (connections / 4).max(1),
            reserve,
            shortfall: (reserve + MIN_CONNECTIONS as u64).saturating_sub(nofile),
        }
    }
}

pub type ConnId = u64;

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No request under way since `since` (it connected, or its last reply
    /// was written).
    Idle { since: Instant },
    /// A request line began at `since` and has not ended.
    Partial { since: Instant },
    /// A request is with the daemon, or its reply is being written.
    Working,
    /// `events -f`: every new event, until the peer hangs up.
    Following,
    /// Closed to make room for a newer connection; it still holds its
    /// descriptor until its task lets go.
    Evicted,
}

impl Phase {
    /// When a connection in this phase is closed for not going on.
    pub fn deadline(self) -> Option<Instant> {
        match self {
            Phase::Idle { since } => Some(since + IDLE_TIMEOUT),
            Phase::Partial { since } => Some(since + PARTIAL_TIMEOUT),
            Phase::Working | Phase::Following | Phase::Evicted => None,
        }
    }

    /// Since when it has waited for a request, if it is waiting for one.
    fn waiting_since(self) -> Option<Instant> {
        match self {
            Phase::Idle { since } | Phase::Partial { since } => Some(since),
            _ => None,
        }
    }
}

/// What to do with a connection just accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admit(ConnId),
    /// Admit it, and close `evict`, the one that waited longest for a
    /// request, to make room.
    Replace {
        id: ConnId,
        evict: ConnId,
    },
    /// Every connection is working: answer busy and close it.
    Refuse,
}

/// The open connections and what each is doing.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    open: HashMap<ConnId, Phase>,
    followers: usize,
    next: ConnId,
}

impl Connections {
    pub fn new(limits: Limits) -> Connections {
        Connections {
            limits,
            open: HashMap::new(),
            followers: 0,
            next: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether another connection may be accepted: not while those closed
    /// to make room still hold their descriptors, so at most one more than
    /// the cap is ever open.
    pub fn may_accept(&self) -> bool {
        self.open.len() <= self.limits.connections
    }

    /// A connection was accepted at `now`.
    pub fn admit(&mut self, now: Instant) -> Admission {
        let evict = if self.open.len() < self.limits.connections {
            None
        } else {
            let oldest = self
                .open
                .iter()
                .filter_map(|(id, p)| Some((p.waiting_since()?, *id)))
                .min();
            match oldest {
                Some((_, id)) => Some(id),
                None => return Admission::Refuse,
            }
        };
        let id = self.next;
        self.next += 1;
        self.open.insert(id, Phase::Idle { since: now });
        match evict {
            None => Admission::Admit(id),
            Some(evict) => {
                self.open.insert(evict, Phase::Evicted);
                Admission::Replace { id, evict }
            }
        }
    }

    /// `id` is now in `phase` (not [`Phase::Following`]: see
    /// [`Connections::follow`]). An evicted connection stays evicted.
    pub fn set(&mut self, id: ConnId, phase: Phase) {
        debug_assert!(phase != Phase::Following, "use follow()");
        self.replace(id, phase);
    }

    /// `id` asks to follow events: granted while followers are below their
    /// cap.
    pub fn follow(&mut self, id: ConnId) -> bool {
        if self.open.get(&id) == Some(&Phase::Following) {
            return true;
        }
        if self.followers >= self.limits.followers || !self.open.contains_key(&id) {
            return false;
        }
        self.replace(id, Phase::Following)
    }

    /// `id` has let go of its descriptor.
    pub fn close(&mut self, id: ConnId) {
        if self.open.remove(&id) == Some(Phase::Following) {
            self.followers -= 1;
        }
    }

    fn replace(&mut self, id: ConnId, phase: Phase) -> bool {
        let Some(slot) = self.open.get_mut(&id) else {
            return false;
        };
        if *slot == Phase::Evicted {
            return false;
        }
        match (*slot == Phase::Following, phase == Phase::Following) {
            (true, false) => self.followers -= 1,
            (false, true) => self.followers += 1,
            _ => {}
        }
        *slot = phase;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(connections: usize) -> Limits {
        Limits {
            connections,
            followers: (connections / 4).max(1),
            reserve: 0,
            shortfall: 0,
        }
    }

    fn admitted(a: Admission) -> ConnId {
        match a {
            Admission::Admit(id) | Admission::Replace { id, .. } => id,
            Admission::Refuse => panic!("refused"),
        }
    }

    #[test]
    fn the_cap_leaves_the_plan_its_descriptors() {
        // A roomy limit: the cap itself.
        let l = Limits::for_plan(20_000, plan_fds(500, 0));
        assert_eq!(l.connections, MAX_CONNECTIONS);
        assert_eq!(l.followers, MAX_CONNECTIONS / 4);
        assert_eq!(l.reserve, FDS_FIXED + LOG_FILES_OPEN + 500);
        assert_eq!(l.shortfall, 0);
        // What the plan leaves, when that is less.
        let l = Limits::for_plan(1024, plan_fds(400, 100));
        assert_eq!(l.connections, 1024 - 64 - 256 - 400 - 200);
        assert_eq!(l.shortfall, 0);
        // Never below the floor, and the shortfall says by how much.
        let l = Limits::for_plan(1024, plan_fds(1000, 0));
        assert_eq!(l.connections, MIN_CONNECTIONS);
        assert_eq!(l.followers, 2);
        assert_eq!(l.shortfall, 64 + 256 + 1000 + 8 - 1024);
        // 10,000 services fit the usual hard limit of 20,000, with probes
        // on a third of them.
        let l = Limits::for_plan(20_000, plan_fds(10_000, 3_333));
        assert_eq!(l.shortfall, 0);
        assert_eq!(l.connections, MAX_CONNECTIONS);
    }

    #[test]
    fn idle_and_partial_connections_time_out_working_ones_do_not() {
        let t = Instant::now();
        assert_eq!(Phase::Idle { since: t }.deadline(), Some(t + IDLE_TIMEOUT));
        assert_eq!(
            Phase::Partial { since: t }.deadline(),
            Some(t + PARTIAL_TIMEOUT)
        );
        for p in [Phase::Working, Phase::Following, Phase::Evicted] {
            assert_eq!(p.deadline(), None);
        }
    }

    #[test]
    fn at_the_cap_the_longest_waiting_connection_makes_room() {
        let t = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = Connections::new(limits(3));
        let a = admitted(c.admit(t));
        let b = admitted(c.admit(t + s));
        let w = admitted(c.admit(t + 2 * s));
        c.set(w, Phase::Working);
        // `b` started a line before `a` stopped being idle: `b` waited longest.
        c.set(b, Phase::Partial { since: t + s });
        c.set(a, Phase::Idle { since: t + 3 * s });
        assert!(c.may_accept());
        let Admission::Replace { id, evict } = c.admit(t + 4 * s) else {
            panic!("not a replacement");
        };
        assert_eq!(evict, b);
        // Until `b` lets go of its descriptor, nothing more is accepted.
        assert_eq!(c.len(), 4);
        assert!(!c.may_accept());
        // An evicted connection stays evicted, whatever its task says.
        c.set(b, Phase::Idle { since: t + 5 * s });
        c.close(b);
        assert!(c.may_accept());
        assert_eq!(
            c.admit(t + 6 * s),
            Admission::Replace {
                id: id + 1,
                evict: a
            }
        );
    }

    #[test]
    fn when_every_connection_works_a_new_one_is_refused() {
        let t = Instant::now();
        let mut c = Connections::new(limits(4));
        let ids: Vec<_> = (0..4).map(|_| admitted(c.admit(t))).collect();
        c.set(ids[0], Phase::Working);
        c.set(ids[1], Phase::Working);
        assert!(c.follow(ids[2]));
        c.set(ids[3], Phase::Working);
        assert_eq!(c.admit(t), Admission::Refuse);
        assert_eq!(c.len(), 4);
        c.set(ids[3], Phase::Idle { since: t });
        assert!(matches!(c.admit(t), Admission::Replace { evict, .. } if evict == ids[3]));
    }

    #[test]
    fn followers_are_capped_and_free_their_slot() {
        let t = Instant::now();
        let mut c = Connections::new(limits(8));
        let ids: Vec<_> = (0..4).map(|_| admitted(c.admit(t))).collect();
        assert!(c.follow(ids[0]));
        assert!(c.follow(ids[1]));
        assert!(c.follow(ids[1]), "already following");
        assert!(!c.follow(ids[2]), "two followers of eight connections");
        // A follow request the daemon refused goes back to working.
        c.set(ids[1], Phase::Working);
        assert!(c.follow(ids[2]));
        c.close(ids[0]);
        assert!(c.follow(ids[3]));
        assert!(!c.follow(99), "not open");
    }
}
