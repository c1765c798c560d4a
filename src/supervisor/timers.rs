//! The runtime's timer queue: at most one pending timer per service and
//! key, ordered by deadline. The machine's timers plus the runtime's own
//! (an exec probe's time limit).

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::strategy::machine::Timer;
use crate::strategy::probe::ProbeKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Key {
    Machine(Timer),
    ProbeTimeout(ProbeKind),
    /// The `on_event` hook's time limit.
    HookLimit,
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    queue: BTreeSet<(Instant, usize, Key)>,
    armed: HashMap<(usize, Key), Instant>,
}

impl Timers {
    pub(super) fn set(&mut self, service: usize, key: Key, at: Instant) {
        if let Some(old) = self.armed.insert((service, key), at) {
            self.queue.remove(&(old, service, key));
        }
        self.queue.insert((at, service, key));
    }

    pub(super) fn cancel(&mut self, service: usize, key: Key) {
        if let Some(old) = self.armed.remove(&(service, key)) {
            self.queue.remove(&(old, service, key));
        }
    }

    pub(super) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _, _)| *at)
    }

    /// The earliest timer due at `now`, removed.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<(usize, Key)> {
        let &(at, service, key) = self.queue.first()?;
        if at > now {
            return None;
        }
        self.queue.remove(&(at, service, key));
        self.armed.remove(&(service, key));
        Some((service, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_timer_per_key_in_deadline_order() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        t.set(1, Key::Machine(Timer::Start), t0 + Duration::from_secs(5));
        t.set(1, Key::Machine(Timer::Start), t0 + Duration::from_secs(2));
        t.set(0, Key::Machine(Timer::Stop), t0 + Duration::from_secs(3));
        t.set(2, Key::Machine(Timer::Stop), t0 + Duration::from_secs(1));
        t.cancel(2, Key::Machine(Timer::Stop));
        assert_eq!(t.next(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(t.pop_due(t0), None);
        let later = t0 + Duration::from_secs(10);
        assert_eq!(t.pop_due(later), Some((1, Key::Machine(Timer::Start))));
        assert_eq!(t.pop_due(later), Some((0, Key::Machine(Timer::Stop))));
        assert_eq!(t.pop_due(later), None);
    }
}
