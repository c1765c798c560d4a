//! The event journal: the last events of every service, for `events` and
//! `status NAME`, and a broadcast for `events -f`. Recording has no side
//! effects beyond that; hooks are run by the effects executor.

use std::collections::VecDeque;

use tokio::sync::broadcast;

use crate::control::protocol::EventRecord;

const CAPACITY: usize = 1000;

pub(super) struct Journal {
    events: VecDeque<EventRecord>,
    /// The id of the last event recorded; 0: none yet.
    last_id: u64,
    tx: broadcast::Sender<EventRecord>,
}

impl Journal {
    pub(super) fn new() -> Journal {
        Journal {
            events: VecDeque::with_capacity(64),
            last_id: 0,
            tx: broadcast::channel(1024).0,
        }
    }

    /// Keep `record`, numbered after the last one, and tell followers.
    pub(super) fn push(&mut self, mut record: EventRecord) {
        self.last_id += 1;
        record.id = self.last_id;
        if self.events.len() == CAPACITY {
            self.events.pop_front();
        }
        let _ = self.tx.send(record.clone());
        self.events.push_back(record);
    }

    /// Every kept event, of one service if named, oldest first.
    pub(super) fn of<'a>(&'a self, name: Option<&'a str>) -> impl Iterator<Item = &'a EventRecord> {
        self.events
            .iter()
            .filter(move |e| name.is_none_or(|n| e.service == n))
    }

    /// Whether events after `id` were dropped before a reader that saw
    /// `id` could see them: it is older than what is kept, or from an
    /// earlier run (ids start again at 1).
    pub(super) fn missed_after(&self, id: u64) -> bool {
        let oldest = self.events.front().map_or(self.last_id + 1, |e| e.id);
        id.saturating_add(1) < oldest || id > self.last_id
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(service: &str) -> EventRecord {
        EventRecord {
            id: 0,
            at: String::new(),
            service: service.into(),
            kind: "started".into(),
            message: String::new(),
            severity: None,
            action: None,
        }
    }

    #[test]
    fn events_are_numbered_and_a_reader_too_far_behind_is_told() {
        let mut j = Journal::new();
        assert!(!j.missed_after(0), "nothing recorded, nothing missed");
        for _ in 0..CAPACITY + 5 {
            j.push(record("web"));
        }
        let ids: Vec<u64> = j.of(None).map(|e| e.id).collect();
        assert_eq!(ids.first(), Some(&6));
        assert_eq!(ids.last(), Some(&(CAPACITY as u64 + 5)));
        assert!(j.missed_after(4), "event 5 is gone");
        assert!(!j.missed_after(5), "event 6 is the oldest kept");
        assert!(!j.missed_after(CAPACITY as u64 + 5), "up to date");
        assert!(
            j.missed_after(CAPACITY as u64 + 6),
            "an id from an earlier run"
        );
        assert!(j.missed_after(u64::MAX), "the largest id a client may send");
    }
}
