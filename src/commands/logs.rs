//! `sentineld logs NAME [-n N] [-f] [--json]`: read the log files
//! directly, so logs stay readable after the daemon has gone. By path, but
//! never through a symlink: a log that is one is refused, not followed.
//!
//! With `--json`, each line is `{"service":NAME,"line":TEXT}`: a service's
//! stdout and stderr are one pipe, written as they come, so a line has no
//! stream or time to give.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use super::CommandError;
use crate::control::client;
use crate::control::protocol::{ErrorKind, Request, Response};
use crate::state_dir::{StateDir, open_read_nofollow, rotated};

pub fn logs(
    state_dir: &Path,
    name: &str,
    lines: usize,
    follow: bool,
    json: bool,
) -> Result<i32, CommandError> {
    let path = StateDir::new(state_dir).log_file(name);
    if open_log(&path)?.is_none() {
        // Let the daemon say whether the name is wrong (with a suggestion).
        let asked = client::request(
            state_dir,
            &Request::Status {
                name: Some(name.into()),
                brief: false,
            },
            None,
        );
        match asked {
            Ok(Response::Error { message, .. }) => {
                return Err(CommandError::Daemon(ErrorKind::UnknownService, message));
            }
            // A service of the daemon's that has printed nothing yet.
            Ok(_) if !follow => return Ok(0),
            _ => {}
        }
        if !follow {
            return Err(CommandError::Failed(format!(
                "no log for {name:?} in {}",
                StateDir::new(state_dir).log_dir().display()
            )));
        }
    }
    let stdout = std::io::stdout().lock();
    let mut out = match json {
        true => Lines::Json(JsonLines::new(name, stdout)),
        false => Lines::Raw(stdout),
    };
    let _ = out.write_all(&tail(&path, lines)?);
    if !follow && let Lines::Json(j) = &mut out {
        j.finish();
    }
    let _ = out.flush();
    if follow {
        follow_file(&path, &mut out)?;
    }
    Ok(0)
}

/// Where the log's bytes go: as they are, or as JSON lines.
enum Lines<W: Write> {
    Raw(W),
    Json(JsonLines<W>),
}

impl<W: Write> Write for Lines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Lines::Raw(w) => w.write(buf),
            Lines::Json(j) => j.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Lines::Raw(w) => w.flush(),
            Lines::Json(j) => j.flush(),
        }
    }
}

/// Log bytes in, one `{"service","line"}` object per whole line out; a
/// line not yet ended waits for its end (or [`JsonLines::finish`]).
pub struct JsonLines<W: Write> {
    service: String,
    partial: Vec<u8>,
    out: W,
}

impl<W: Write> JsonLines<W> {
    pub fn new(service: &str, out: W) -> JsonLines<W> {
        JsonLines {
            service: service.to_string(),
            partial: Vec::new(),
            out,
        }
    }

    fn emit(&mut self, line: &[u8]) -> std::io::Result<()> {
        let record = serde_json::json!({
            "service": self.service,
            "line": String::from_utf8_lossy(line),
        });
        writeln!(self.out, "{record}")
    }

    /// The last line, though it has no newline (the end of a `tail`).
    pub fn finish(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            let _ = self.emit(&line);
        }
    }
}

impl<W: Write> Write for JsonLines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&rest[..end]);
            self.emit(&line)?;
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The last `n` lines of the log, reaching into `NAME.log.1` if the current
/// file is shorter.
pub fn tail(path: &Path, n: usize) -> Result<Vec<u8>, CommandError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let mut data = read_log(path)?;
    if count_lines(&data) < n {
        let mut older = read_log(&rotated(path, 1))?;
        older.extend_from_slice(&data);
        data = older;
    }
    let end = if data.last() == Some(&b'\n') {
        data.len() - 1
    } else {
        data.len()
    };
    let mut seen = 0;
    for i in (0..end).rev() {
        if data[i] == b'\n' {
            seen += 1;
            if seen == n {
                return Ok(data[i + 1..].to_vec());
            }
        }
    }
    Ok(data)
}

/// The log at `path`, `None` if there is none; a symlink or anything but a
/// regular file is an error.
fn open_log(path: &Path) -> Result<Option<File>, CommandError> {
    match open_read_nofollow(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(CommandError::Failed(e.to_string())),
    }
}

fn read_log(path: &Path) -> Result<Vec<u8>, CommandError> {
    let mut data = Vec::new();
    if let Some(mut f) = open_log(path)? {
        f.read_to_end(&mut data)
            .map_err(|e| CommandError::Failed(format!("cannot read {}: {e}", path.display())))?;
    }
    Ok(data)
}

fn count_lines(data: &[u8]) -> usize {
    data.iter().filter(|b| **b == b'\n').count()
}

fn follow_file(path: &Path, out: &mut impl Write) -> Result<(), CommandError> {
    let fail =
        |e: nix::Error| CommandError::Failed(format!("cannot follow {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC).map_err(fail)?;
    inotify
        .add_watch(
            dir,
            AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
        )
        .map_err(fail)?;
    let mut file = open_log(path)?;
    let mut ino = file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map(|m| m.ino());
    if let Some(f) = file.as_mut() {
        let _ = f.seek(SeekFrom::End(0));
    }
    let mut buf = vec![0u8; 64 << 10];
    loop {
        // Rotation renames the file away and a new one appears: finish the
        // old one, then any that were rotated after it while we slept
        // (NAME.log.k-1 … NAME.log.1, if ours is now NAME.log.k), then
        // read the current one from its start.
        let now_ino = std::fs::metadata(path).ok().map(|m| m.ino());
        if now_ino != ino {
            if let Some(f) = file.as_mut() {
                copy_rest(f, &mut buf, out);
            }
            if let Some(old) = ino {
                let at = (1u32..)
                    .map_while(|k| Some((k, std::fs::metadata(rotated(path, k)).ok()?.ino())))
                    .find(|(_, i)| *i == old)
                    .map_or(1, |(k, _)| k);
                for k in (1..at).rev() {
                    if let Some(mut f) = open_log(&rotated(path, k))? {
                        copy_rest(&mut f, &mut buf, out);
                    }
                }
            }
            file = open_log(path)?;
            ino = file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
        }
        if let Some(f) = file.as_mut() {
            copy_rest(f, &mut buf, out);
        }
        let _ = out.flush();
        inotify.read_events().map_err(fail)?;
    }
}

fn copy_rest(f: &mut File, buf: &mut [u8], out: &mut impl Write) {
    while let Ok(n) = f.read(buf) {
        if n == 0 {
            break;
        }
        if out.write_all(&buf[..n]).is_err() {
            // The reader went away (`logs -f | head`).
            std::process::exit(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::JsonLines;
    use std::io::Write;

    #[test]
    fn json_lines_join_split_writes_and_finish_the_last_line() {
        let mut out = Vec::new();
        let mut j = JsonLines::new("web", &mut out);
        j.write_all(b"one\ntw").unwrap();
        j.write_all(b"o \"q\"\n\xffthree").unwrap();
        j.finish();
        drop(j);
        let lines: Vec<serde_json::Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let texts: Vec<&str> = lines.iter().map(|l| l["line"].as_str().unwrap()).collect();
        assert_eq!(texts, ["one", "two \"q\"", "\u{fffd}three"]);
        assert!(lines.iter().all(|l| l["service"] == "web"));
    }
}
