//! The `status` table's rows as they travel: arrays, borrowed where they
//! can be, for 10,000 rows with no string copied on either side.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Health, State};

/// One row of the `status` table. Its text borrows where it can: the
/// daemon writes 10,000 rows from its own names, the client reads them
/// from the reply line, neither copying each. On the wire a row is an
/// array, `[name, group, state, health, pid, uptime_s, restarts, risk,
/// last]`: half the bytes of an object, for a reply that is all rows.
#[derive(Debug, Clone, PartialEq)]
pub struct BriefRow<'a> {
    pub name: Cow<'a, str>,
    pub group: Option<Cow<'a, str>>,
    pub state: State,
    pub health: Health,
    pub pid: Option<i32>,
    pub uptime_s: Option<f64>,
    pub restarts: u64,
    pub risk: f64,
    /// The LAST column, already worded.
    pub last: Cow<'a, str>,
    /// The CPU and MEM columns: the last resource sample, if any.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// [`BriefRow`] as it travels.
#[derive(Serialize, Deserialize)]
struct BriefWire<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    State,
    Health,
    Option<i32>,
    Option<f64>,
    u64,
    f64,
    #[serde(borrow)] Cow<'a, str>,
    Option<f64>,
    Option<u64>,
);

impl Serialize for BriefRow<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        BriefWire(
            Cow::Borrowed(&self.name),
            self.group.as_deref().map(Cow::Borrowed),
            self.state,
            self.health,
            self.pid,
            self.uptime_s,
            self.restarts,
            self.risk,
            Cow::Borrowed(&self.last),
            self.cpu_percent,
            self.rss_bytes,
        )
        .serialize(s)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for BriefRow<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let BriefWire(name, group, state, health, pid, uptime_s, restarts, risk, last, cpu, rss) =
            BriefWire::deserialize(d)?;
        Ok(BriefRow {
            name,
            group,
            state,
            health,
            pid,
            uptime_s,
            restarts,
            risk,
            last,
            cpu_percent: cpu,
            rss_bytes: rss,
        })
    }
}

/// The reply to a `brief` status request, `{"type":"brief", ...}`: the
/// daemon writes it and the client reads it without an owned copy of
/// every row.
#[derive(Debug, Serialize, Deserialize)]
pub struct BriefLine<'a> {
    /// Always "brief".
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    pub version: u32,
    #[serde(borrow)]
    pub services: Vec<BriefRow<'a>>,
    /// The last reload that failed, until one succeeds: its time and
    /// first error.
    #[serde(default, skip_serializing_if = "Option::is_none", borrow)]
    pub reload_error: Option<Cow<'a, str>>,
}
