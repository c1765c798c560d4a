//! The record of live process groups in `state_dir/pgids`, so that the next
//! `up` of the same state dir can kill what a SIGKILLed sentineld left behind.
//!
//! A record is `NAME PGID STARTTIME`: the start time (clock ticks since boot,
//! from /proc) tells a leftover group from an unrelated one that reuses the
//! number.

use crate::state_dir::{StateDirError, Trusted};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub pgid: i32,
    pub start_time: u64,
}

/// Field 22 of /proc/PID/stat: when the process started, in ticks since boot.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_field(&stat, 22)?.parse().ok()
}

/// Field `n` (1-based, as in proc(5)) of a /proc/PID/stat line. The command
/// name (field 2) may contain spaces and parentheses; it ends at the last ')'.
pub fn stat_field(stat: &str, n: usize) -> Option<&str> {
    let close = stat.rfind(')')?;
    stat[close + 1..].split_whitespace().nth(n.checked_sub(3)?)
}

pub fn write(dir: &Trusted, records: &[Record]) -> Result<(), StateDirError> {
    let mut text = String::with_capacity(records.len() * 32);
    for r in records {
        text.push_str(&format!("{} {} {}\n", r.name, r.pgid, r.start_time));
    }
    dir.replace_pgids(text.as_bytes())
}

pub fn read(dir: &Trusted) -> Vec<Record> {
    let text = match dir.read_pgids(u32::MAX.into()) {
        Ok(Some(text)) => text,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!("{e}");
            return Vec::new();
        }
    };
    String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some(Record {
                name: it.next()?.to_string(),
                pgid: it.next()?.parse().ok()?,
                start_time: it.next()?.parse().ok()?,
            })
        })
        .filter(|r| r.pgid > 1)
        .collect()
}

/// Kill the groups a previous instance recorded, and return what was killed.
///
/// While any member of a group lives, its number cannot be reused as a pid,
/// so: if a process with pid == pgid exists and started at the recorded time,
/// it is the old leader; if it exists with another start time, the old group
/// died out and the number was reused — leave it alone; if no such process
/// exists, whatever is still in group `pgid` is the old group's remains.
pub fn kill_leftovers(dir: &Trusted) -> Vec<Record> {
    let mut killed = Vec::new();
    for r in read(dir) {
        if let Some(t) = start_time(r.pgid)
            && t != r.start_time
        {
            continue;
        }
        // SAFETY: plain syscall.
        if unsafe { libc::kill(-r.pgid, libc::SIGKILL) } == 0 {
            killed.push(r);
        }
    }
    dir.remove_pgids();
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_survive_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0";
        assert_eq!(stat_field(line, 3), Some("S"));
        assert_eq!(stat_field(line, 5), Some("42"));
        assert_eq!(stat_field(line, 22), Some("12345"));
    }

    #[test]
    fn records_round_trip_through_the_state_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Trusted::open(&tmp.path().join("state")).unwrap();
        let recs = vec![Record {
            name: "web".into(),
            pgid: 1234,
            start_time: 99,
        }];
        write(&dir, &recs).unwrap();
        assert_eq!(read(&dir), recs);
    }

    #[test]
    fn own_process_is_recognised_by_start_time() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
    }
}
