//! The event journal: the last events of every service, for `events` and
//! `status NAME`, and a broadcast for `events -f`. Recording has no side
//! effects beyond that; hooks are run by the effects executor.

use std::collections::VecDeque;

use tokio::sync::broadcast;

use crate::control::protocol::EventRecord;

const CAPACITY: usize = 1000;

pub(super) struct Journal {
    events: VecDeque<EventRecord>,
    tx: broadcast::Sender<EventRecord>,
}

impl Journal {
    pub(super) fn new() -> Journal {
        Journal {
            events: VecDeque::with_capacity(64),
            tx: broadcast::channel(1024).0,
        }
    }

    pub(super) fn push(&mut self, record: EventRecord) {
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

    pub(super) fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.tx.subscribe()
    }
}
