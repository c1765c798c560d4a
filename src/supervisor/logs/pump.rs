//! The log thread's loop: epoll over every service's pipe, whole lines to
//! each service's [`LogFile`], and the holding back of a service whose
//! writes fail, retried every [`RETRY`].
//!
//! Pipes are watched edge-triggered and read until empty: a pipe whose
//! writers are all gone reads as its end, then wakes the thread again only
//! when a new process of the service writes to it.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::file::{Failure, LogFile};
use super::watch::Watch;
use super::{LogCondition, LogTotals, Pipe, Read, Reporter};
use crate::strategy::machine::{LogReport, LogTrouble};

/// A partial line longer than this is written out as a line of its own.
const MAX_LINE: usize = 1 << 20;
/// At most this many log files are open at once: the one open longest is
/// closed for the next (and reopens when its service writes again), so
/// 10,000 services cost 10,000 pipes, not 20,000 descriptors.
const OPEN_FILES: usize = crate::strategy::admission::LOG_FILES_OPEN as usize;
/// How often writes that failed are tried again.
const RETRY: Duration = Duration::from_secs(1);
const WAKE: u64 = u64::MAX;

/// Where a service's output goes.
pub(super) struct Target {
    pub id: usize,
    pub path: PathBuf,
    pub file: crate::state_dir::LogFile,
    pub max_size: u64,
    pub keep: u32,
}

pub(super) enum Cmd {
    Add(Target, Arc<Pipe>),
    /// A process of the service ended: read up to where its output ends.
    Cut(usize),
    /// New rotation settings for a service's log: (id, max_size, keep).
    Limits(usize, u64, u32),
    /// Write what is left and stop.
    Shutdown(mpsc::Sender<()>),
}

struct Service {
    pipe: Arc<Pipe>,
    /// Bytes after the last newline read so far.
    partial: Vec<u8>,
    log: LogFile,
    /// The trouble last reported, until it clears.
    trouble: Option<LogTrouble>,
    /// Counted among the open files ([`Pump::opened`]).
    counted: bool,
}

impl Service {
    /// Lines to the log, under the watchdog.
    fn put(&mut self, id: usize, watch: &Watch, lines: &[u8]) -> Result<(), Failure> {
        watch.during(id, || self.log.put(lines))
    }

    /// A chunk read from the pipe: its whole lines are written, the rest
    /// waits for its newline.
    fn take(&mut self, id: usize, watch: &Watch, chunk: &[u8]) -> Result<(), Failure> {
        let Some(last) = chunk.iter().rposition(|b| *b == b'\n') else {
            self.partial.extend_from_slice(chunk);
            if self.partial.len() >= MAX_LINE {
                return self.end_line(id, watch);
            }
            return Ok(());
        };
        let written = if self.partial.is_empty() {
            self.put(id, watch, &chunk[..=last])
        } else {
            let mut lines = std::mem::take(&mut self.partial);
            lines.extend_from_slice(&chunk[..=last]);
            self.put(id, watch, &lines)
        };
        self.partial.extend_from_slice(&chunk[last + 1..]);
        written
    }

    /// The partial line, if any, as a line.
    fn end_line(&mut self, id: usize, watch: &Watch) -> Result<(), Failure> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.partial);
        line.push(b'\n');
        self.put(id, watch, &line)
    }
}

pub(super) struct Pump {
    epoll: Epoll,
    wake: OwnedFd,
    rx: mpsc::Receiver<Cmd>,
    report: Reporter,
    watch: Arc<Watch>,
    services: HashMap<usize, Service>,
    /// Services whose output is held back, and when to try again.
    held: HashMap<usize, Instant>,
    /// Services whose log file is open, longest open first.
    opened: VecDeque<usize>,
    buf: Box<[u8]>,
    totals: Arc<LogTotals>,
}

impl Pump {
    pub(super) fn new(
        wake: OwnedFd,
        rx: mpsc::Receiver<Cmd>,
        report: Reporter,
        watch: Arc<Watch>,
        totals: Arc<LogTotals>,
    ) -> std::io::Result<Pump> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        Ok(Pump {
            epoll,
            wake,
            rx,
            report,
            watch,
            services: HashMap::new(),
            held: HashMap::new(),
            opened: VecDeque::new(),
            buf: vec![0u8; 64 << 10].into_boxed_slice(),
            totals,
        })
    }

    pub(super) fn run(mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, self.timeout()) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::error!("log thread: epoll_wait failed: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                match ev.data() {
                    WAKE if self.commands() => return,
                    WAKE => {}
                    token => self.drain(token as usize),
                }
            }
            self.retry_due(Instant::now());
        }
    }

    /// Until the next retry is due; forever if none is.
    fn timeout(&self) -> EpollTimeout {
        let Some(next) = self.held.values().min() else {
            return EpollTimeout::NONE;
        };
        // Rounded up, so a retry is not polled for in a loop.
        let wait = next.saturating_duration_since(Instant::now()) + Duration::from_micros(999);
        EpollTimeout::try_from(wait).unwrap_or(EpollTimeout::MAX)
    }

    /// Carry out the queued commands; true: shut down.
    fn commands(&mut self) -> bool {
        let mut b = [0u8; 8];
        let _ = nix::unistd::read(&self.wake, &mut b);
        while let Ok(cmd) = self.rx.try_recv() {
            match cmd {
                Cmd::Add(target, pipes) => self.add(target, pipes),
                Cmd::Cut(id) => {
                    if let Some(svc) = self.services.get(&id) {
                        svc.pipe.cut_received();
                    }
                    self.drain(id);
                }
                Cmd::Limits(id, max_size, keep) => {
                    if let Some(svc) = self.services.get_mut(&id) {
                        svc.log.set_limits(max_size, keep);
                    }
                }
                Cmd::Shutdown(done) => {
                    self.finish();
                    let _ = done.send(());
                    return true;
                }
            }
        }
        false
    }

    fn add(&mut self, t: Target, pipe: Arc<Pipe>) {
        let flags = fcntl(&pipe.fd, FcntlArg::F_GETFL).unwrap_or(0);
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(&pipe.fd, FcntlArg::F_SETFL(flags));
        let svc = Service {
            pipe,
            partial: Vec::new(),
            log: LogFile::new(t.path, t.max_size, t.keep)
                .through(t.file)
                .counted_in(self.totals.clone()),
            trouble: None,
            counted: false,
        };
        self.watch_pipe(t.id, &svc);
        self.services.insert(t.id, svc);
        self.drain(t.id);
    }

    fn watch_pipe(&self, id: usize, svc: &Service) {
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLET;
        if let Err(e) = self
            .epoll
            .add(&svc.pipe.fd, EpollEvent::new(flags, id as u64))
        {
            tracing::error!("log thread: cannot watch {}: {e}", svc.log.path().display());
        }
    }

    /// Read service `id`'s pipe until it is empty, writing whole lines,
    /// unless its output is held back. At the pipe's end (no process holds
    /// it) the partial line is a line; a later process writes to it anew.
    fn drain(&mut self, id: usize) {
        self.drain_pipe(id);
        self.count_open(id);
    }

    /// A service's file may have been opened: count it, and close the one
    /// open longest if that makes too many.
    fn count_open(&mut self, id: usize) {
        let Some(svc) = self.services.get_mut(&id) else {
            return;
        };
        if svc.counted || !svc.log.is_open() {
            return;
        }
        svc.counted = true;
        self.opened.push_back(id);
        while self.opened.len() > OPEN_FILES {
            let Some(old) = self.opened.pop_front() else {
                break;
            };
            if let Some(svc) = self.services.get_mut(&old) {
                svc.log.close();
                svc.counted = false;
            }
        }
    }

    fn drain_pipe(&mut self, id: usize) {
        let Some(svc) = self.services.get_mut(&id) else {
            return;
        };
        while !self.held.contains_key(&id) {
            let written = match svc.pipe.read(&mut self.buf) {
                Read::Data(n) => svc.take(id, &self.watch, &self.buf[..n]),
                Read::Cut => svc.end_line(id, &self.watch),
                Read::Eof => match svc.end_line(id, &self.watch) {
                    Ok(()) => return,
                    Err(f) => Err(f),
                },
                Read::Empty => return,
            };
            if let Err(f) = written {
                self.hold(id, f, Instant::now());
                return;
            }
        }
    }

    /// Writes for `id` fail: stop reading its pipes (its processes block
    /// once they are full), say so, and try again later.
    fn hold(&mut self, id: usize, f: Failure, now: Instant) {
        let Some(svc) = self.services.get_mut(&id) else {
            return;
        };
        let first = !self.held.contains_key(&id);
        if first {
            let _ = self.epoll.delete(&svc.pipe.fd);
        }
        // A removed file is recreated at once; if that fails, or for
        // anything else, the cause has to clear first.
        let now_or_later = first && f.trouble == LogTrouble::Removed;
        let wait = if now_or_later { Duration::ZERO } else { RETRY };
        self.held.insert(id, now + wait);
        if svc.trouble != Some(f.trouble) {
            svc.trouble = Some(f.trouble);
            send(&self.report, id, f.trouble, f.detail, false);
        }
    }

    fn retry_due(&mut self, now: Instant) {
        let due: Vec<usize> = (self.held.iter())
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.retry(id, now);
            self.count_open(id);
        }
    }

    /// Write what `id` held back; on success read its pipe again.
    fn retry(&mut self, id: usize, now: Instant) {
        let Some(svc) = self.services.get_mut(&id) else {
            return;
        };
        if let Err(f) = self.watch.during(id, || svc.log.retry()) {
            return self.hold(id, f, now);
        }
        self.held.remove(&id);
        if let Some(t) = svc.trouble.take() {
            send(&self.report, id, t, String::new(), true);
        }
        let svc = &self.services[&id];
        self.watch_pipe(id, svc);
        self.drain(id);
    }

    /// At shutdown (the services' processes are gone): write what is left,
    /// partial lines included; say what could not be written.
    fn finish(&mut self) {
        let now = Instant::now();
        let ids: Vec<usize> = self.services.keys().copied().collect();
        for id in ids {
            if self.held.contains_key(&id) {
                self.retry(id, now);
            }
            self.drain(id);
            let svc = self.services.get_mut(&id).expect("listed above");
            let _ = svc.end_line(id, &self.watch);
            if svc.log.pending() > 0 {
                let lost = svc.log.pending_lines();
                self.totals.lines_lost.fetch_add(lost, Relaxed);
                let (n, path) = (svc.log.pending(), svc.log.path().display());
                tracing::error!("{n} bytes of output could not be written to {path}");
            }
        }
    }
}

fn send(to: &Reporter, service: usize, trouble: LogTrouble, detail: String, cleared: bool) {
    let report = LogReport {
        trouble,
        detail,
        cleared,
    };
    let _ = to.send(LogCondition { service, report });
}
