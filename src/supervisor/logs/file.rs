//! One service's log file: whole lines appended, rotated by size, and
//! what could not be written kept until it can be.
//!
//! A write error keeps the unwritten lines (and every line after them) in
//! memory; [`LogFile::retry`] writes them later. A file removed while open
//! is noticed after the write that went into it (its link count is 0): that
//! write is done again into a new file, in a recreated directory if the
//! directory went too, so nothing written after a removal is lost.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use super::LogTotals;
use crate::state_dir::rotated;
use crate::strategy::machine::LogTrouble;

/// Why lines could not be written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Failure {
    pub trouble: LogTrouble,
    pub detail: String,
}

impl Failure {
    /// The state dir refused the file (a symlink, a hard link, the wrong
    /// owner) or could not open it.
    fn state_dir(e: &crate::state_dir::StateDirError) -> Failure {
        match e {
            crate::state_dir::StateDirError::Io { source, .. } => Failure::io(source),
            other => Failure {
                trouble: LogTrouble::Failing,
                detail: other.to_string(),
            },
        }
    }

    fn io(e: &std::io::Error) -> Failure {
        let trouble = match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => LogTrouble::DiskFull,
            Some(libc::ENOENT) => LogTrouble::Removed,
            _ => LogTrouble::Failing,
        };
        let detail = match e.raw_os_error() {
            Some(errno) => nix::errno::Errno::from_raw(errno).desc().to_string(),
            None => e.to_string(),
        };
        Failure { trouble, detail }
    }
}

/// Open (creating) a log file to append to. The one place log files are
/// opened.
fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

pub(super) struct LogFile {
    path: PathBuf,
    /// Opens and rotates through the checked state dir (never following a
    /// symlink); `None` opens by path (unit tests).
    opener: Option<crate::state_dir::LogFile>,
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: u32,
    /// The file's last byte is not a newline: a write stopped mid-line.
    mid_line: bool,
    /// Lines not written yet because a write failed.
    pending: Vec<u8>,
    /// Where the bytes written are counted for metrics.
    totals: Option<Arc<LogTotals>>,
}

impl LogFile {
    /// New rotation settings (a reload), from the next write on.
    pub(super) fn set_limits(&mut self, max_size: u64, keep: u32) {
        self.max_size = max_size;
        self.keep = keep;
    }

    pub(super) fn new(path: PathBuf, max_size: u64, keep: u32) -> LogFile {
        LogFile {
            path,
            opener: None,
            file: None,
            size: 0,
            max_size,
            keep,
            mid_line: false,
            pending: Vec::new(),
            totals: None,
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Close the file; the next write opens it again.
    pub(super) fn close(&mut self) {
        self.file = None;
    }

    /// Bytes held back.
    pub(super) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Lines held back (a partial last one counts).
    pub(super) fn pending_lines(&self) -> u64 {
        let newlines = self.pending.iter().filter(|b| **b == b'\n').count() as u64;
        newlines + u64::from(self.pending.last().is_some_and(|b| *b != b'\n'))
    }

    /// Write whole lines; on an error keep what was not written. Behind
    /// lines already held back, they are only added to them.
    pub(super) fn put(&mut self, lines: &[u8]) -> Result<(), Failure> {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(lines);
            return Ok(());
        }
        self.write(lines).map_err(|(done, f)| {
            self.pending.extend_from_slice(&lines[done..]);
            f
        })
    }

    /// Write what was held back.
    pub(super) fn retry(&mut self) -> Result<(), Failure> {
        let pending = std::mem::take(&mut self.pending);
        self.write(&pending).map_err(|(done, f)| {
            self.pending = pending[done..].to_vec();
            f
        })
    }

    /// Append lines, rotating between lines so that no file grows past
    /// `max_size` (a single longer line gets a file of its own). On an
    /// error, how much was written.
    fn write(&mut self, data: &[u8]) -> Result<(), (usize, Failure)> {
        let mut done = 0;
        while done < data.len() {
            if self.file.is_none() {
                self.open().map_err(|f| (done, f))?;
            }
            let rest = &data[done..];
            let Some(take) = self.piece(rest) else {
                self.rotate();
                continue;
            };
            self.append(&rest[..take]).map_err(|(n, f)| (done + n, f))?;
            done += take;
        }
        Ok(())
    }

    /// How much of `rest` goes into the current file; `None`: rotate first.
    fn piece(&self, rest: &[u8]) -> Option<usize> {
        let line_end = |d: &[u8]| {
            d.iter()
                .position(|b| *b == b'\n')
                .map_or(d.len(), |k| k + 1)
        };
        if self.mid_line {
            return Some(line_end(rest));
        }
        let room = self.max_size.saturating_sub(self.size) as usize;
        if rest.len() <= room {
            return Some(rest.len());
        }
        match rest[..room].iter().rposition(|b| *b == b'\n') {
            Some(k) => Some(k + 1),
            None if self.size > 0 => None,
            None => Some(line_end(rest)),
        }
    }

    fn append(&mut self, data: &[u8]) -> Result<(), (usize, Failure)> {
        let file = self.file.as_mut().expect("opened before appending");
        let mut done = 0;
        while done < data.len() {
            match file.write(&data[done..]) {
                Ok(0) => {
                    let detail = "the write took nothing".to_string();
                    let trouble = LogTrouble::Failing;
                    return Err((done, Failure { trouble, detail }));
                }
                // Written into a removed file: lost unless written again.
                Ok(_) if file.metadata().is_ok_and(|m| m.nlink() == 0) => {
                    self.file = None;
                    let detail = "deleted while open".to_string();
                    let trouble = LogTrouble::Removed;
                    return Err((done, Failure { trouble, detail }));
                }
                Ok(n) => {
                    done += n;
                    self.size += n as u64;
                    if let Some(t) = &self.totals {
                        t.bytes.fetch_add(n as u64, Relaxed);
                    }
                    self.mid_line = data[done - 1] != b'\n';
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err((done, Failure::io(&e))),
            }
        }
        Ok(())
    }

    /// Count the bytes written in `totals`.
    pub(super) fn counted_in(mut self, totals: Arc<LogTotals>) -> LogFile {
        self.totals = Some(totals);
        self
    }

    /// Through the checked state dir from now on.
    pub(super) fn through(mut self, opener: crate::state_dir::LogFile) -> LogFile {
        self.opener = Some(opener);
        self
    }

    /// Open the file, recreating the log directory (mode 0700) if it was
    /// removed.
    fn open(&mut self) -> Result<(), Failure> {
        if let Some(opener) = &self.opener {
            // The state dir checks (and remakes) `logs/` at each open.
            let file = opener.open_append().map_err(|e| Failure::state_dir(&e))?;
            self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
            self.file = Some(file);
            self.mid_line = false;
            return Ok(());
        }
        let file = match open_log(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = self.path.parent() {
                    let made = std::fs::DirBuilder::new().mode(0o700).create(dir);
                    match made {
                        Ok(()) => tracing::warn!("recreated {}", dir.display()),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(Failure::io(&e)),
                    }
                }
                open_log(&self.path)
            }
            r => r,
        };
        let file = file.map_err(|e| Failure::io(&e))?;
        self.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.file = Some(file);
        self.mid_line = false;
        Ok(())
    }

    /// NAME.log → NAME.log.1 → … → NAME.log.KEEP (the oldest is removed).
    fn rotate(&mut self) {
        self.file = None;
        self.size = 0;
        if let Some(opener) = &self.opener {
            if let Err(e) = opener.rotate(self.keep) {
                tracing::error!("rotating {}: {e}", self.path.display());
            }
            return;
        }
        if self.keep == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            for i in (1..self.keep).rev() {
                let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
            }
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn lines_written_into_a_removed_file_are_written_again_into_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let path = logs.join("api.log");
        let totals = Arc::new(LogTotals::default());
        let mut log = LogFile::new(path.clone(), 1 << 20, 2).counted_in(totals.clone());
        log.put(b"1\n").unwrap();
        std::fs::remove_dir_all(&logs).unwrap();
        let failure = log.put(b"2\n").unwrap_err();
        assert_eq!(failure.trouble, LogTrouble::Removed);
        // Held back behind the line that failed, in order.
        log.put(b"3\n").unwrap();
        assert_eq!((log.pending(), log.pending_lines()), (4, 2));
        log.retry().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n3\n");
        // The write into the removed file is not counted: it was done again.
        assert_eq!(totals.bytes.load(Relaxed), 6);
        assert_eq!(log.pending_lines(), 0);
        let mode = std::fs::metadata(&logs).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn rotation_keeps_whole_lines_and_a_long_line_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.log");
        let mut log = LogFile::new(path.clone(), 8, 3);
        log.put(b"aaa\nbbb\nccc\n").unwrap();
        log.put(b"a line longer than the limit\nd\n").unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(rotated(&path, 3)), "aaa\nbbb\n");
        assert_eq!(read(rotated(&path, 2)), "ccc\n");
        assert_eq!(read(rotated(&path, 1)), "a line longer than the limit\n");
        assert_eq!(read(path), "d\n");
    }
}
