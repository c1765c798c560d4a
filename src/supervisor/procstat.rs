//! Small direct reads of /proc and cgroup files for the resource sampler:
//! one `read` of `/proc/PID/stat` gives a process's start time, CPU time,
//! threads (field 20) and resident pages (field 24), and one `statx` of
//! `/proc/PID/fd` its open descriptors (Linux ≥ 6.2 reports the count as
//! the directory's size; older kernels report 0 and the directory is
//! listed instead). Each file is opened, read once into a stack buffer and
//! closed: three syscalls, where reading a whole file through std adds a
//! `statx` for its size and a second `read` for the end.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// A process's figures from one read of its `stat`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Start time in clock ticks after boot (field 22): tells a reused pid.
    pub start: u64,
    /// utime + stime in ms.
    pub cpu_ms: u64,
    pub threads: u32,
    pub rss_bytes: u64,
}

/// `path`'s first bytes (up to 4 KiB), read with one `read`.
fn read_small(path: &Path, buf: &mut [u8; 4096]) -> Option<usize> {
    let mut f = File::open(path).ok()?;
    f.read(buf).ok()
}

fn ticks_per_s() -> u64 {
    static HZ: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *HZ.get_or_init(|| (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64)
}

fn page_size() -> u64 {
    static PAGE: OnceLock<u64> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64)
}

/// `/proc/PID/stat`, parsed; `None` once the process is gone.
pub fn stat(pid: i32) -> Option<Stat> {
    let mut buf = [0u8; 4096];
    let n = read_small(Path::new(&format!("/proc/{pid}/stat")), &mut buf)?;
    parse_stat(
        std::str::from_utf8(&buf[..n]).ok()?,
        ticks_per_s(),
        page_size(),
    )
}

/// `pid`'s process group (field 5 of its `stat`).
pub fn pgrp(pid: i32) -> Option<i32> {
    let mut buf = [0u8; 4096];
    let n = read_small(Path::new(&format!("/proc/{pid}/stat")), &mut buf)?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    super::registry::stat_field(text, 5)?.parse().ok()
}

fn parse_stat(text: &str, hz: u64, page: u64) -> Option<Stat> {
    // Fields after the command (which may hold spaces and parentheses),
    // numbered from 3 as in proc(5).
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().take(22).collect();
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        start: num(22)?,
        cpu_ms: (num(14)? + num(15)?) * 1000 / hz,
        threads: num(20)? as u32,
        rss_bytes: num(24)? * page,
    })
}

/// How many descriptors `pid` has open.
pub fn fds(pid: i32) -> Option<u32> {
    let dir = format!("/proc/{pid}/fd");
    let size = std::fs::metadata(&dir).ok()?.len();
    if size > 0 {
        return Some(size as u32);
    }
    Some(std::fs::read_dir(&dir).ok()?.count() as u32)
}

/// The CPU time of everything that ran in the cgroup at `path`, in µs
/// (`usage_usec` of `cpu.stat`, there with or without the cpu controller).
pub fn cgroup_usage_usec(path: &Path) -> Option<u64> {
    let mut buf = [0u8; 4096];
    let n = read_small(&path.join("cpu.stat"), &mut buf)?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command() {
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 12345 \
                    1000000 77 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        let s = parse_stat(line, 100, 4096).unwrap();
        assert_eq!(
            s,
            Stat {
                start: 12345,
                cpu_ms: 3000,
                threads: 3,
                rss_bytes: 77 * 4096,
            }
        );
        assert_eq!(parse_stat("42 (x) S 1", 100, 4096), None);
    }

    #[test]
    fn our_own_figures_are_read() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(s.threads >= 1 && s.rss_bytes > 0 && s.start > 0, "{s:?}");
        assert!(fds(me).unwrap() >= 3);
        // SAFETY: getpgrp has no preconditions.
        assert_eq!(pgrp(me), Some(unsafe { libc::getpgrp() }));
        assert_eq!(stat(i32::MAX), None);
    }
}
