//! The record of live process groups in `state_dir/pgids`, so that the next
//! `up` of the same state dir can kill what a SIGKILLed sentineld left behind.
//!
//! The format, and what a record proves, are decided in
//! [`crate::strategy::leftovers`]: the file is untrusted input, and a group
//! is killed only when its live leader proves it is the one recorded. This
//! module reads and writes the file through the checked state dir, reads
//! /proc, and sends the kills.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::state_dir::{StateDir, Trusted};
pub use crate::strategy::leftovers::Record;
use crate::strategy::leftovers::{self, Parsed};

/// A bigger file was not written by sentineld (10,000 services with their
/// fallbacks take about 1 MiB): it is ignored as a whole.
const MAX_FILE: u64 = 4 << 20;
/// Ignored lines are logged one by one up to this many, then counted.
const MAX_REPORTED: usize = 5;

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

/// This boot's id (/proc/sys/kernel/random/boot_id), read once.
pub fn boot_id() -> Option<&'static str> {
    static ID: OnceLock<Option<String>> = OnceLock::new();
    ID.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_string())
    })
    .as_deref()
}

/// The whole file for `records`, under this boot's id.
fn render(records: &[Record]) -> String {
    // With no boot id to write, the next `up` ties no record to this boot.
    leftovers::render(boot_id().unwrap_or("unknown"), records)
}

/// The live groups as the file says them, kept up to date a line per
/// change: a start or an end costs an append, not a rewrite of every
/// record, whatever the number of services. The writes are a thread's of
/// their own, so a state dir on a disk that hangs stalls the record, never
/// the event loop.
pub struct Recorder {
    /// What the file holds, by name.
    live: std::collections::HashMap<String, Record>,
    /// Lines in the file, the first included.
    lines: usize,
    /// The file was written whole in this run.
    written: bool,
    /// Services whose groups may have changed since the last flush.
    changed: HashSet<usize>,
    writer: std::sync::mpsc::Sender<Op>,
    /// A write failed: the next change rewrites the file whole.
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

enum Op {
    Whole(String),
    Append(String),
    Remove,
    /// Answered once everything before it is done (tests).
    Sync(std::sync::mpsc::Sender<()>),
}

impl Recorder {
    pub fn new(dir: Trusted) -> Recorder {
        let (writer, ops) = std::sync::mpsc::channel();
        let failed = std::sync::Arc::<std::sync::atomic::AtomicBool>::default();
        let flag = failed.clone();
        let spawned = std::thread::Builder::new()
            .name("pgids".into())
            .stack_size(64 << 10)
            .spawn(move || write_ops(&dir, &ops, &flag));
        if let Err(e) = spawned {
            tracing::warn!("pgids will not be recorded: {e}");
        }
        Recorder {
            live: Default::default(),
            lines: 0,
            written: false,
            changed: HashSet::new(),
            writer,
            failed,
        }
    }

    /// Service `i` started or lost a group.
    pub fn touch(&mut self, i: usize) {
        self.changed.insert(i);
    }

    /// The services touched since the last call.
    pub fn take_changed(&mut self) -> Vec<usize> {
        self.changed.drain().collect()
    }

    /// Bring the file to `want` (name → the group it should record, or
    /// none) for the names given; other names stay as they are.
    pub fn apply(&mut self, want: Vec<(String, Option<Record>)>) {
        let mut text = String::new();
        let mut added = 0;
        for (name, record) in want {
            let old = self.live.get(&name);
            if old == record.as_ref() {
                continue;
            }
            if let Some(old) = old {
                text.push_str(&leftovers::gone(old));
                added += 1;
            }
            match record {
                Some(r) => {
                    text.push_str(&leftovers::added(&r));
                    added += 1;
                    self.live.insert(name, r);
                }
                None => {
                    self.live.remove(&name);
                }
            }
        }
        if self
            .failed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            self.written = false;
        }
        if added == 0 && self.written {
            return;
        }
        // Rewritten whole when the gone lines outnumber the live ones.
        if !self.written || self.lines + added > 2 * self.live.len() + 64 {
            let mut records: Vec<Record> = self.live.values().cloned().collect();
            records.sort_by(|a, b| a.name.cmp(&b.name));
            let text = render(&records);
            self.lines = 1 + records.len();
            self.written = true;
            let _ = self.writer.send(Op::Whole(text));
        } else {
            self.lines += added;
            let _ = self.writer.send(Op::Append(text));
        }
    }

    /// Remove the file (at a clean shutdown).
    pub fn remove(&self) {
        let _ = self.writer.send(Op::Remove);
    }

    /// Wait until every write asked for so far is done.
    pub fn sync(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.writer.send(Op::Sync(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

/// The writer thread: each write in order; a failed one is said and makes
/// the next change a whole rewrite (an append to a missing file included).
fn write_ops(
    dir: &Trusted,
    ops: &std::sync::mpsc::Receiver<Op>,
    failed: &std::sync::atomic::AtomicBool,
) {
    while let Ok(op) = ops.recv() {
        let result = match op {
            Op::Whole(text) => dir.replace_pgids(text.as_bytes()),
            Op::Append(text) => dir.append_pgids(text.as_bytes()),
            Op::Remove => {
                dir.remove_pgids();
                Ok(())
            }
            Op::Sync(done) => {
                let _ = done.send(());
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!("pgids not recorded: {e}");
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Kill the groups a previous instance of this plan left behind that
/// provably are its own, and remove the file. Each group killed or left
/// alone, and each line ignored, is logged with the reason.
pub fn kill_leftovers(dir: &Trusted, services: &[&str]) {
    let Some(parsed) = read(dir, services) else {
        return;
    };
    dir.remove_pgids();
    if let Err(why) = leftovers::same_boot(parsed.boot.as_deref(), boot_id()) {
        if !parsed.records.is_empty() {
            let n = parsed.records.len();
            tracing::warn!("pgids: left {n} recorded process group(s) alone: {why}");
        }
        return;
    }
    for r in &parsed.records {
        let (name, pgid) = (&r.name, r.pgid);
        match leftovers::judge(r, start_time(pgid)).why_spared(r) {
            Some(why) => tracing::warn!("{name}: left process group {pgid} alone: {why}"),
            // SAFETY: plain syscall. The leader was alive with the recorded
            // start time a moment ago; its number cannot be reused before
            // it dies, is reaped and its whole group is gone.
            None if unsafe { libc::kill(-pgid, libc::SIGKILL) } == 0 => {
                tracing::warn!("{name}: killed process group {pgid} left by a previous sentineld")
            }
            None => {}
        }
    }
}

/// The file, parsed as untrusted input; `None` if there is none (or none
/// worth reading, said in the log).
fn read(dir: &Trusted, services: &[&str]) -> Option<Parsed> {
    let path = StateDir::new(dir.root()).pgid_registry();
    let text = match dir.read_pgids(MAX_FILE) {
        Ok(None) => return None,
        Ok(Some(text)) if text.len() as u64 <= MAX_FILE => text,
        Ok(Some(_)) => {
            tracing::warn!(
                "{}: over {MAX_FILE} bytes, not written by sentineld: ignored",
                path.display()
            );
            dir.remove_pgids();
            return None;
        }
        Err(e) => {
            tracing::warn!("{e}; no leftover process group is killed");
            dir.remove_pgids();
            return None;
        }
    };
    let services: HashSet<&str> = services.iter().copied().collect();
    // SAFETY: plain syscalls with no preconditions.
    let never = unsafe { [libc::getpid(), libc::getpgrp(), libc::getsid(0)] };
    let parsed = leftovers::parse(&String::from_utf8_lossy(&text), &services, &never);
    for r in parsed.rejected.iter().take(MAX_REPORTED) {
        tracing::warn!("{} line {}: ignored: {}", path.display(), r.line, r.why);
    }
    if let Some(more) = parsed.rejected.len().checked_sub(MAX_REPORTED)
        && more > 0
    {
        tracing::warn!("{}: {more} more lines ignored", path.display());
    }
    Some(parsed)
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
        dir.replace_pgids(render(&recs).as_bytes()).unwrap();
        let parsed = read(&dir, &["web"]).unwrap();
        assert_eq!(parsed.records, recs);
        assert_eq!(parsed.boot.as_deref(), boot_id());
    }

    #[test]
    fn a_change_is_a_line_and_the_file_is_rewritten_when_gone_lines_pile_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Trusted::open(&tmp.path().join("state")).unwrap();
        let rec = |name: &str, pgid: i32| Record {
            name: name.into(),
            pgid,
            start_time: pgid as u64,
        };
        let mut r = Recorder::new(dir.clone());
        r.apply(vec![
            ("a".into(), Some(rec("a", 100))),
            ("b".into(), Some(rec("b", 200))),
        ]);
        r.sync();
        let text =
            |dir: &Trusted| String::from_utf8(dir.read_pgids(1 << 20).unwrap().unwrap()).unwrap();
        assert_eq!(text(&dir).lines().count(), 3);
        // Unchanged names cost nothing; a restart costs two lines.
        r.apply(vec![("b".into(), Some(rec("b", 200)))]);
        r.apply(vec![("a".into(), Some(rec("a", 101)))]);
        r.sync();
        assert!(
            text(&dir).ends_with("- a 100\na 101 101\n"),
            "{}",
            text(&dir)
        );
        for pgid in 102..140 {
            r.apply(vec![("a".into(), Some(rec("a", pgid)))]);
        }
        r.sync();
        // Past 2 × live + 64 lines it was written whole again.
        let lines = text(&dir).lines().count();
        assert!(lines < 2 * 2 + 64 + 2, "{lines} lines");
        let parsed = read(&dir, &["a", "b"]).unwrap();
        assert_eq!(parsed.records, vec![rec("b", 200), rec("a", 139)]);
        r.apply(vec![("b".into(), None)]);
        r.sync();
        assert_eq!(
            read(&dir, &["a", "b"]).unwrap().records,
            vec![rec("a", 139)]
        );
    }

    #[test]
    fn own_process_is_recognised_by_start_time() {
        let me = std::process::id() as i32;
        assert!(start_time(me).is_some());
    }
}
