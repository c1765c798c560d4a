//! What the `pgids` file an earlier sentineld left proves, and so which
//! process groups the next `up` may kill.
//!
//! The file is untrusted input: whatever it says, a group is killed only
//! when a live process proves it is the one recorded. Under a first line
//! `boot BOOT_ID` it is a journal, so that a change costs a line, not a
//! rewrite of every service's record: `NAME PGID STARTTIME` records a
//! group (a later one of the same name replaces it), `- NAME PGID` says the
//! group is gone. The writer rewrites it whole (atomically) when the gone
//! lines outnumber the live ones. A pid is unique among live
//! processes and a (pid, start time) pair is unique within one boot, so a
//! live process whose pid is the group's number and whose start time is the
//! recorded one, in the boot the file was written in, is the old leader,
//! and the group is the old group. Anything less proves nothing: a group
//! whose leader is gone may be the old group's remains, or a group of
//! someone else's that got the number after the old group died out.

use std::collections::HashSet;

/// A process group of a service (`NAME`) or of its fallback (`NAME@fallback`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub pgid: i32,
    /// The leader's start time, in clock ticks since boot (/proc/PID/stat).
    pub start_time: u64,
}

/// A line that is not a record we would act on, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// 1-based.
    pub line: usize,
    pub why: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub boot: Option<String>,
    pub records: Vec<Record>,
    pub rejected: Vec<Rejected>,
}

/// Why a file's records are not tied to this boot, so none is acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untied {
    /// The file names no boot (or an older sentineld wrote it).
    NoBootId,
    /// This boot's id cannot be read.
    BootUnknown,
    /// Written in another boot: every pid in it means something else now.
    OtherBoot,
}

/// What to do with a record of this boot's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Kill,
    /// No process has the group's number as its pid.
    LeaderGone,
    /// The process with that pid started at another time.
    Reused {
        now: u64,
    },
}

/// The longest service name a record may carry (a sanity bound: names in
/// a plan are far shorter).
const MAX_NAME: usize = 256;

pub fn render(boot: &str, records: &[Record]) -> String {
    let mut text = String::with_capacity(48 + records.len() * 32);
    text.push_str(&format!("boot {boot}\n"));
    for r in records {
        text.push_str(&added(r));
    }
    text
}

/// The journal line recording `r`.
pub fn added(r: &Record) -> String {
    format!("{} {} {}\n", r.name, r.pgid, r.start_time)
}

/// The journal line saying `r`'s group is gone.
pub fn gone(r: &Record) -> String {
    format!("- {} {}\n", r.name, r.pgid)
}

/// Read the file's lines as untrusted input and replay them. A record
/// counts only if it names a service of this plan (or its fallback), its
/// group number is a real group (> 1) that is not in `never` (our own pid,
/// group, session), it is not said gone later, and no earlier live record
/// has its group.
pub fn parse(text: &str, services: &HashSet<&str>, never: &[i32]) -> Parsed {
    let mut parsed = Parsed::default();
    // Live records by name, with the line that made each.
    let mut live: Vec<(usize, Record)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let reject = |why: String| Rejected { line: i + 1, why };
        match parse_line(line, services, never) {
            Ok(Line::Boot(id)) if parsed.boot.is_none() && i == 0 => parsed.boot = Some(id),
            Ok(Line::Boot(_)) => parsed
                .rejected
                .push(reject("a boot id that is not on the first line".into())),
            Ok(Line::Record(r)) => {
                live.retain(|(_, old)| old.name != r.name);
                live.push((i + 1, r));
            }
            Ok(Line::Gone(name, pgid)) => {
                let before = live.len();
                live.retain(|(_, r)| r.name != name || r.pgid != pgid);
                if live.len() == before {
                    parsed
                        .rejected
                        .push(reject(format!("no live record of {} {pgid}", short(&name))));
                }
            }
            Err(why) => parsed.rejected.push(reject(why)),
        }
    }
    live.sort_by_key(|(line, _)| *line);
    let mut seen = HashSet::new();
    for (line, r) in live {
        if seen.insert(r.pgid) {
            parsed.records.push(r);
        } else {
            let why = format!("a second record of group {}", r.pgid);
            parsed.rejected.push(Rejected { line, why });
        }
    }
    parsed.rejected.sort_by_key(|r| r.line);
    parsed
}

enum Line {
    Boot(String),
    Record(Record),
    Gone(String, i32),
}

/// A `NAME` of this plan, and a group number that may be a service's.
fn name_and_group<'a>(
    name: &'a str,
    pgid: &str,
    services: &HashSet<&str>,
    never: &[i32],
) -> Result<(&'a str, i32), String> {
    let service = name.strip_suffix("@fallback").unwrap_or(name);
    if name.len() > MAX_NAME || !services.contains(service) {
        return Err(format!("{:?} is not a service of this plan", short(name)));
    }
    let pgid: i32 = pgid
        .parse()
        .map_err(|_| format!("{:?} is not a group number", short(pgid)))?;
    if pgid <= 1 || never.contains(&pgid) {
        return Err(format!("group {pgid} is never a service's"));
    }
    Ok((name, pgid))
}

fn parse_line(line: &str, services: &HashSet<&str>, never: &[i32]) -> Result<Line, String> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    match fields[..] {
        ["boot", id] if is_boot_id(id) => Ok(Line::Boot(id.to_string())),
        ["boot", _] => Err("a malformed boot id".into()),
        ["-", name, pgid] => {
            let (name, pgid) = name_and_group(name, pgid, services, never)?;
            Ok(Line::Gone(name.to_string(), pgid))
        }
        [name, pgid, start_time] => {
            let (name, pgid) = name_and_group(name, pgid, services, never)?;
            let start_time = start_time
                .parse()
                .map_err(|_| format!("{:?} is not a start time", short(start_time)))?;
            Ok(Line::Record(Record {
                name: name.to_string(),
                pgid,
                start_time,
            }))
        }
        _ => Err("not NAME PGID STARTTIME or - NAME PGID".into()),
    }
}

/// As /proc/sys/kernel/random/boot_id writes it: a UUID.
fn is_boot_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn short(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether the file's records belong to this boot at all.
pub fn same_boot(recorded: Option<&str>, current: Option<&str>) -> Result<(), Untied> {
    match (recorded, current) {
        (None, _) => Err(Untied::NoBootId),
        (Some(_), None) => Err(Untied::BootUnknown),
        (Some(a), Some(b)) if a == b => Ok(()),
        _ => Err(Untied::OtherBoot),
    }
}

/// A record of this boot's file, given the start time of the live process
/// whose pid is the group's number, if there is one.
pub fn judge(record: &Record, leader_start: Option<u64>) -> Verdict {
    match leader_start {
        None => Verdict::LeaderGone,
        Some(t) if t == record.start_time => Verdict::Kill,
        Some(now) => Verdict::Reused { now },
    }
}

impl std::fmt::Display for Untied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Untied::NoBootId => "the file names no boot, so nothing ties them to this one",
            Untied::BootUnknown => "this boot's id cannot be read, so nothing ties them to it",
            Untied::OtherBoot => "they were recorded in another boot",
        })
    }
}

impl Verdict {
    /// Why `record`'s group is left alone, for the log; `None` for a kill.
    pub fn why_spared(&self, record: &Record) -> Option<String> {
        let pgid = record.pgid;
        match self {
            Verdict::Kill => None,
            Verdict::LeaderGone => Some(format!(
                "its leader (pid {pgid}) is gone, so nothing proves the group is the one recorded"
            )),
            Verdict::Reused { now } => Some(format!(
                "pid {pgid} is now another process (started at tick {now}, not {})",
                record.start_time
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: &str = "0b7e3f4c-1f0a-4c56-9d7e-2a1b3c4d5e6f";

    fn plan() -> HashSet<&'static str> {
        ["web", "db"].into_iter().collect()
    }

    fn rec(name: &str, pgid: i32, start_time: u64) -> Record {
        Record {
            name: name.into(),
            pgid,
            start_time,
        }
    }

    #[test]
    fn what_is_written_is_read_back() {
        let records = vec![rec("web", 1234, 99), rec("db@fallback", 1240, 101)];
        let parsed = parse(&render(BOOT, &records), &plan(), &[]);
        assert_eq!(parsed.boot.as_deref(), Some(BOOT));
        assert_eq!(parsed.records, records);
        assert!(parsed.rejected.is_empty());
    }

    #[test]
    fn only_records_of_this_plan_with_real_foreign_groups_count() {
        let text = format!(
            "boot {BOOT}\nweb 100 5\nintruder 101 5\nweb@fallback@fallback 102 5\nweb 1 5\nweb 0 5\n\
             db -7 5\ndb 42 5\ndb 77 5\ndb x 5\ndb 103 -1\ndb 104\ngarbage\n\nboot {BOOT}\n\
             web@fallback 77 6\n"
        );
        let parsed = parse(&text, &plan(), &[42]);
        assert_eq!(parsed.records, vec![rec("web", 100, 5), rec("db", 77, 5)]);
        let lines: Vec<usize> = parsed.rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(
            parsed.rejected[0].why,
            "\"intruder\" is not a service of this plan"
        );
        assert_eq!(parsed.rejected[5].why, "group 42 is never a service's");
        assert_eq!(parsed.rejected[12].why, "a second record of group 77");
    }

    #[test]
    fn the_journal_replays_to_the_groups_still_live() {
        let text = format!(
            "boot {BOOT}\nweb 100 5\ndb 200 6\n- web 100\nweb 300 7\n- db 999\n\
             web@fallback 400 8\n- web@fallback 400\ndb 500 9\n- nobody 5\n"
        );
        let parsed = parse(&text, &plan(), &[]);
        // db's later record replaces its first; web's first is gone.
        assert_eq!(parsed.records, vec![rec("web", 300, 7), rec("db", 500, 9)]);
        let why: Vec<(usize, &str)> = (parsed.rejected.iter())
            .map(|r| (r.line, r.why.as_str()))
            .collect();
        assert_eq!(
            why,
            [
                (6, "no live record of db 999"),
                (10, "\"nobody\" is not a service of this plan")
            ]
        );
        // What render and the change lines write reads back the same.
        let mut text = render(BOOT, &[rec("web", 100, 5)]);
        text.push_str(&gone(&rec("web", 100, 5)));
        text.push_str(&added(&rec("web", 101, 6)));
        assert_eq!(parse(&text, &plan(), &[]).records, vec![rec("web", 101, 6)]);
    }

    #[test]
    fn a_boot_id_counts_only_on_the_first_line_and_well_formed() {
        let late = format!("web 100 5\nboot {BOOT}\n");
        assert_eq!(parse(&late, &plan(), &[]).boot, None);
        assert_eq!(parse("boot nonsense\nweb 100 5\n", &plan(), &[]).boot, None);
    }

    #[test]
    fn huge_garbage_is_quoted_short() {
        let long = "x".repeat(10_000);
        let parsed = parse(&format!("{long} 100 5\n"), &plan(), &[]);
        assert!(
            parsed.rejected[0].why.len() < 100,
            "{:?}",
            parsed.rejected[0]
        );
    }

    #[test]
    fn only_a_record_of_this_boot_can_lead_to_a_kill() {
        let other = "ffffffff-1f0a-4c56-9d7e-2a1b3c4d5e6f";
        assert_eq!(same_boot(Some(BOOT), Some(BOOT)), Ok(()));
        assert_eq!(same_boot(Some(BOOT), Some(other)), Err(Untied::OtherBoot));
        assert_eq!(same_boot(None, Some(BOOT)), Err(Untied::NoBootId));
        assert_eq!(same_boot(Some(BOOT), None), Err(Untied::BootUnknown));
    }

    #[test]
    fn only_the_live_recorded_leader_proves_the_group() {
        let r = rec("web", 100, 5);
        assert_eq!(judge(&r, Some(5)), Verdict::Kill);
        assert_eq!(judge(&r, None), Verdict::LeaderGone);
        assert_eq!(judge(&r, Some(6)), Verdict::Reused { now: 6 });
        assert_eq!(Verdict::Kill.why_spared(&r), None);
        let why = Verdict::LeaderGone.why_spared(&r).unwrap();
        assert!(why.contains("leader (pid 100) is gone"), "{why}");
    }
}
