//! The log thread: drains every service's output pipe into
//! `state_dir/logs/NAME.log`, with size rotation.
//!
//! It owns the reading of the pipes and is the only writer of log files
//! ([`pump`], [`file`]). It runs apart from the supervisor loop so a slow
//! disk never delays a restart, and the loop never waits on it: what the
//! loop needs — a service's recent output for `classify` rules, the point
//! where a process's output ends — it takes from [`Pipe`], under a lock
//! that is held only while bytes are copied, never across a file write.
//!
//! A service's stdout and stderr are one pipe, as journald's stream is: its
//! lines are logged in the order it wrote them, and sentineld holds one
//! descriptor per service — the read end. Each process gets a write end
//! opened anew from it (`/proc/self/fd`), so nothing of sentineld's keeps
//! the pipe open: once a service's processes are gone the log thread sees
//! the end of their output.
//!
//! A write that fails (disk full, a removed file) holds that service's
//! output back: its pipe is no longer read, so the child blocks in
//! write(2) once the pipe is full — back-pressure, never a dropped line —
//! until a retry succeeds. A write that does not return stalls this thread
//! (and, through their pipes, every service's output) but nothing else; a
//! watchdog ([`watch`]) reports it. Each trouble and its end goes to the
//! event loop as a [`LogCondition`]. Only whole lines are written, and a
//! partial last line is written as a line when its process ends.

mod file;
mod pump;
mod watch;

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::strategy::machine::LogReport;
use pump::{Cmd, Pump};
use watch::Watch;

/// How much recent output `classify` rules can see.
pub const TAIL: usize = 64 << 10;

/// How much is kept of a service without `output_matches` rules: its last
/// lines, for the default table's plainly transient phrases.
pub const SHORT_TAIL: usize = 1 << 10;

pub struct LogSink {
    pub id: usize,
    pub path: PathBuf,
    /// Opened and rotated through the checked state dir.
    pub file: crate::state_dir::LogFile,
    pub max_size: u64,
    pub keep: u32,
    /// The read end of the service's pipe.
    pub pipe: OwnedFd,
    /// Its write end: given to the service's first process, and kept
    /// only where a new one cannot be opened from the read end (no /proc).
    pub writer: OwnedFd,
    /// How many of the last bytes to keep in memory: [`TAIL`] for
    /// `output_matches` rules, else [`SHORT_TAIL`].
    pub keep_tail: usize,
}

/// What the log thread wrote and lost, for metrics: counted by the log
/// thread, read by the event loop without waiting on it.
#[derive(Debug, Default)]
pub struct LogTotals {
    /// Bytes of output written to log files.
    pub bytes: AtomicU64,
    /// Lines of output that could not be written when the log thread
    /// stopped: the only place a line is ever given up on.
    pub lines_lost: AtomicU64,
}

/// A trouble with a service's log, or its end, for the event loop.
#[derive(Debug)]
pub struct LogCondition {
    pub service: usize,
    pub report: LogReport,
}

/// Where the event loop hears of log troubles.
pub type Conditions = tokio::sync::mpsc::UnboundedReceiver<LogCondition>;
type Reporter = tokio::sync::mpsc::UnboundedSender<LogCondition>;

/// A service's pipe: read by the log thread, looked into by the event loop.
struct Pipe {
    fd: OwnedFd,
    reads: Mutex<Reads>,
}

#[derive(Default)]
struct Reads {
    /// Bytes taken from the pipe so far.
    taken: u64,
    /// The last byte taken was not a newline.
    mid_line: bool,
    /// Where a process of the service ended, as a count of the pipe's
    /// bytes: a partial line there is written as a line of its own.
    cuts: VecDeque<u64>,
    /// A [`Cmd::Cut`] is on its way to the log thread: one is enough, so a
    /// crash loop during a hung write does not pile them up.
    cut_sent: bool,
    /// The last `tail_max` bytes (at least) taken, for `classify`.
    tail: Vec<u8>,
    tail_max: usize,
    /// Where the primary's current run began, as a count of the pipe's
    /// bytes: what came before is not its output.
    run_from: u64,
}

/// What one read of a pipe gave.
enum Read {
    Data(usize),
    /// A process ended here: end the partial line.
    Cut,
    Empty,
    Eof,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bytes in a pipe not read yet.
fn unread(fd: &OwnedFd) -> u64 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on a pipe we own writes one int.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    if r == 0 { n.max(0) as u64 } else { 0 }
}

impl Pipe {
    /// Take what is in the pipe, up to its next cut, into `buf`. The lock
    /// is held across the (non-blocking) read, so the event loop sees every
    /// byte either as taken or as still in the pipe.
    fn read(&self, buf: &mut [u8]) -> Read {
        let mut r = lock(&self.reads);
        let room = match r.cuts.front() {
            Some(&cut) if cut <= r.taken => {
                r.cuts.pop_front();
                r.mid_line = false;
                return Read::Cut;
            }
            Some(&cut) => buf.len().min((cut - r.taken) as usize),
            None => buf.len(),
        };
        loop {
            return match nix::unistd::read(&self.fd, &mut buf[..room]) {
                Ok(0) => Read::Eof,
                Ok(n) => {
                    r.taken += n as u64;
                    r.mid_line = buf[n - 1] != b'\n';
                    let max = r.tail_max;
                    r.tail.extend_from_slice(&buf[..n]);
                    if r.tail.len() > 2 * max {
                        let cut = r.tail.len() - max;
                        r.tail.drain(..cut);
                    }
                    Read::Data(n)
                }
                Err(nix::Error::EINTR) => continue,
                Err(_) => Read::Empty,
            };
        }
    }

    /// A process of the service ended: its output ends where the pipe's
    /// unread bytes end now. True: the log thread needs telling — it holds
    /// a partial line and no new bytes will wake it.
    fn cut(&self) -> bool {
        let mut r = lock(&self.reads);
        let unread = unread(&self.fd);
        if unread == 0 && !r.mid_line {
            return false;
        }
        let at = r.taken + unread;
        if r.cuts.back() != Some(&at) {
            r.cuts.push_back(at);
        }
        unread == 0 && !std::mem::replace(&mut r.cut_sent, true)
    }

    /// The log thread got the [`Cmd::Cut`] and looks at the cuts now.
    fn cut_received(&self) {
        lock(&self.reads).cut_sent = false;
    }

    /// The last `tail_max` bytes since the primary's run began: what the
    /// log thread took
    /// and, copied with tee(2) without taking it, what is still in the
    /// pipe.
    fn recent(&self) -> Vec<u8> {
        let r = lock(&self.reads);
        let mut out = r.tail.clone();
        peek(&self.fd, &mut out);
        let first = r.taken - r.tail.len() as u64;
        let run = (r.run_from.saturating_sub(first) as usize).min(out.len());
        let keep = out.len().saturating_sub(r.tail_max).max(run);
        out.split_off(keep)
    }

    /// The primary starts a run: its output begins after what the pipe
    /// holds now.
    fn mark(&self) {
        let mut r = lock(&self.reads);
        r.run_from = r.taken + unread(&self.fd);
    }
}

/// A new write end of the pipe whose read end is `fd`, opened through
/// /proc like a FIFO's: the pipe then stays open only as long as some
/// process holds a write end.
fn reopen_for_writing(fd: &OwnedFd) -> std::io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    Ok(file.into())
}

/// Append up to [`TAIL`] unread bytes of pipe `fd` to `out`, leaving them
/// in the pipe.
fn peek(fd: &OwnedFd, out: &mut Vec<u8>) {
    let Ok((r, w)) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) else {
        return;
    };
    // SAFETY: tee between two pipes we own; it never blocks with
    // SPLICE_F_NONBLOCK.
    let n = unsafe { libc::tee(fd.as_raw_fd(), w.as_raw_fd(), TAIL, libc::SPLICE_F_NONBLOCK) };
    drop(w);
    if n <= 0 {
        return;
    }
    let mut buf = vec![0u8; n as usize];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(&r, &mut buf[got..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => got += k,
        }
    }
    out.extend_from_slice(&buf[..got]);
}

/// The supervisor's handle on the log thread.
pub struct LogHub {
    tx: mpsc::Sender<Cmd>,
    wake: EventFd,
    pipes: HashMap<usize, Arc<Pipe>>,
    /// Write ends kept where none can be opened anew (no /proc).
    writers: HashMap<usize, OwnedFd>,
    /// A write end can be opened anew from a read end; None: not tried.
    reopens: Option<bool>,
    watch: Arc<Watch>,
    thread: Option<JoinHandle<()>>,
    totals: Arc<LogTotals>,
}

impl LogHub {
    pub fn start() -> std::io::Result<(LogHub, Conditions)> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let thread_wake = wake.as_fd().try_clone_to_owned()?;
        let (report, conditions) = tokio::sync::mpsc::unbounded_channel();
        let watch = Arc::new(Watch::new(report.clone()));
        let (tx, rx) = mpsc::channel();
        let totals = Arc::new(LogTotals::default());
        let pump = Pump::new(thread_wake, rx, report, watch.clone(), totals.clone())?;
        let thread = std::thread::Builder::new()
            .name("logs".into())
            .stack_size(256 << 10)
            .spawn(move || pump.run())?;
        let watchdog = watch.clone();
        std::thread::Builder::new()
            .name("logs-watchdog".into())
            .stack_size(64 << 10)
            .spawn(move || watchdog.run())?;
        let hub = LogHub {
            tx,
            wake,
            pipes: HashMap::new(),
            writers: HashMap::new(),
            reopens: None,
            watch,
            thread: Some(thread),
            totals,
        };
        Ok((hub, conditions))
    }

    fn send(&self, cmd: Cmd) {
        if self.tx.send(cmd).is_ok() {
            let _ = self.wake.write(1);
        }
    }

    /// Hand service `sink.id`'s pipe to the log thread; the write end
    /// for its first process.
    pub fn add(&mut self, sink: LogSink) -> std::io::Result<OwnedFd> {
        let pipe = Arc::new(Pipe {
            fd: sink.pipe,
            reads: Mutex::new(Reads {
                tail_max: sink.keep_tail,
                ..Reads::default()
            }),
        });
        // Whether /proc can give a write end back, tried on the first pipe.
        let reopens = *self
            .reopens
            .get_or_insert_with(|| reopen_for_writing(&pipe.fd).is_ok());
        let first = if reopens {
            sink.writer
        } else {
            let first = sink.writer.try_clone();
            self.writers.insert(sink.id, sink.writer);
            first?
        };
        self.pipes.insert(sink.id, pipe.clone());
        let target = pump::Target {
            id: sink.id,
            path: sink.path,
            file: sink.file,
            max_size: sink.max_size,
            keep: sink.keep,
        };
        self.send(Cmd::Add(target, pipe));
        Ok(first)
    }

    /// New rotation settings for service `id`'s log (a reload); one that
    /// has no pipe yet gets them when it has.
    pub fn set_limits(&self, id: usize, max_size: u64, keep: u32) {
        if self.has(id) {
            self.send(Cmd::Limits(id, max_size, keep));
        }
    }

    /// What the log thread has written and lost so far.
    pub fn totals(&self) -> &LogTotals {
        &self.totals
    }

    /// Whether service `id` has its pipe.
    pub fn has(&self, id: usize) -> bool {
        self.pipes.contains_key(&id)
    }

    /// A write end of service `id`'s pipe, for a process about to start;
    /// the caller closes it once the process has it.
    pub fn writer(&self, id: usize) -> std::io::Result<OwnedFd> {
        if let Some(w) = self.writers.get(&id) {
            return w.try_clone();
        }
        match self.pipes.get(&id) {
            Some(p) => reopen_for_writing(&p.fd),
            None => Err(std::io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// A process of service `id` ended: what it wrote last, even without a
    /// newline, is a line of its own, written without waiting for more.
    pub fn process_ended(&self, id: usize) {
        if let Some(p) = self.pipes.get(&id)
            && p.cut()
        {
            self.send(Cmd::Cut(id));
        }
    }

    /// Service `id`'s primary starts a run: [`Self::recent_output`] is
    /// of this run only.
    pub fn mark_run(&self, id: usize) {
        if let Some(p) = self.pipes.get(&id) {
            p.mark();
        }
    }

    /// The last bytes (at most [`TAIL`]) of service `id`'s output since
    /// its primary's current run began, including what is still in its
    /// pipe. Never waits for the log thread.
    pub fn recent_output(&self, id: usize) -> Vec<u8> {
        self.pipes.get(&id).map(|p| p.recent()).unwrap_or_default()
    }

    /// Ask the thread to write what is left in the pipes and stop; wait for
    /// it while it gets on with it, at most `limit`, and no longer once a
    /// write of its is stalled.
    pub fn shutdown(mut self, limit: Duration) {
        let (done_tx, done_rx) = mpsc::channel();
        self.send(Cmd::Shutdown(done_tx));
        let deadline = Instant::now() + limit;
        let done = loop {
            match done_rx.recv_timeout(Duration::from_millis(100)) {
                Err(mpsc::RecvTimeoutError::Timeout)
                    if !self.watch.stalled() && Instant::now() < deadline => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break false,
                Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => break true,
            }
        };
        self.watch.stop();
        match self.thread.take() {
            Some(t) if done => {
                let _ = t.join();
            }
            _ => tracing::error!("the log thread is stuck writing; output not yet written is lost"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service's pipe with its write end.
    fn pipe(keep_tail: bool) -> (Pipe, OwnedFd) {
        let keep_tail = if keep_tail { TAIL } else { 0 };
        let flags = OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let (r, w) = nix::unistd::pipe2(flags).unwrap();
        let reads = Reads {
            tail_max: keep_tail,
            ..Reads::default()
        };
        let p = Pipe {
            fd: r,
            reads: Mutex::new(reads),
        };
        (p, w)
    }

    /// Read the pipe until it is empty: what each read gave.
    fn drain(p: &Pipe) -> Vec<String> {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        loop {
            got.push(match p.read(&mut buf) {
                Read::Data(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Read::Cut => "<cut>".into(),
                Read::Empty => return got,
                Read::Eof => {
                    got.push("<eof>".into());
                    return got;
                }
            });
        }
    }

    fn write(fd: &OwnedFd, text: &str) {
        nix::unistd::write(fd, text.as_bytes()).unwrap();
    }

    #[test]
    fn output_ends_where_the_pipe_stood_when_the_process_exited() {
        let (p, w) = pipe(false);
        write(&w, "no newline");
        // Still in the pipe: the bytes themselves wake the log thread.
        assert!(!p.cut());
        write(&w, "second\n");
        assert_eq!(drain(&p), ["no newline", "<cut>", "second\n"]);
        // Nothing unread, nothing partial: no cut at all.
        assert!(!p.cut());
        assert!(drain(&p).is_empty());
    }

    #[test]
    fn a_partial_line_already_taken_needs_the_log_thread_told_once() {
        let (p, w) = pipe(false);
        write(&w, "half");
        assert_eq!(drain(&p), ["half"]);
        assert!(p.cut());
        assert!(!p.cut(), "one command on its way is enough");
        p.cut_received();
        assert_eq!(drain(&p), ["<cut>"]);
    }

    #[test]
    fn recent_output_is_of_the_current_run_only() {
        let (p, w) = pipe(true);
        write(&w, "connection refused\n");
        assert_eq!(drain(&p), ["connection refused\n"]);
        write(&w, "still in the pipe from the last run\n");
        p.mark();
        assert_eq!(String::from_utf8_lossy(&p.recent()), "");
        write(&w, "this run\n");
        assert_eq!(String::from_utf8_lossy(&p.recent()), "this run\n");
        drain(&p);
        assert_eq!(String::from_utf8_lossy(&p.recent()), "this run\n");
    }

    #[test]
    fn recent_output_includes_what_is_still_in_the_pipe_and_leaves_it_there() {
        let (p, w) = pipe(true);
        write(&w, "taken\n");
        assert_eq!(drain(&p), ["taken\n"]);
        write(&w, "still there\n");
        write(&w, "error: address already in use\n");
        assert_eq!(
            String::from_utf8_lossy(&p.recent()),
            "taken\nstill there\nerror: address already in use\n"
        );
        assert_eq!(drain(&p), ["still there\nerror: address already in use\n"]);
    }

    #[test]
    fn a_write_end_opened_anew_feeds_the_same_pipe_and_its_close_is_the_end() {
        let (p, w) = pipe(false);
        let again = reopen_for_writing(&p.fd).unwrap();
        drop(w);
        write(&again, "after\n");
        assert_eq!(drain(&p), ["after\n"]);
        drop(again);
        assert_eq!(drain(&p), ["<eof>"]);
        // A later process gets a write end of the same pipe again.
        let third = reopen_for_writing(&p.fd).unwrap();
        write(&third, "next run\n");
        assert_eq!(drain(&p), ["next run\n"]);
    }
}
