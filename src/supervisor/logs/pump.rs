//! The log thread's loop: epoll over every service's pipes, whole lines
//! to each service's [`LogFile`], and the holding back of a service whose
//! writes fail, retried every [`RETRY`].

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};

use super::file::{Failure, LogFile};
use super::watch::Watch;
use super::{LogCondition, Pipes, Read, Reporter};
use crate::strategy::machine::{LogReport, LogTrouble};

/// A partial line longer than this is written out as a line of its own.
const MAX_LINE: usize = 1 << 20;
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
    Add(Target, Arc<Pipes>),
    /// A process of the service ended: read up to where its output ends.
    Cut(usize),
    /// Write what is left and stop.
    Shutdown(mpsc::Sender<()>),
}

struct Service {
    pipes: Arc<Pipes>,
    /// Bytes after the last newline read so far, per stream.
    partial: [Vec<u8>; 2],
    open: [bool; 2],
    log: LogFile,
    /// The trouble last reported, until it clears.
    trouble: Option<LogTrouble>,
}

impl Service {
    /// Lines to the log, under the watchdog.
    fn put(&mut self, id: usize, watch: &Watch, lines: &[u8]) -> Result<(), Failure> {
        watch.during(id, || self.log.put(lines))
    }

    /// A chunk read from stream `s`: its whole lines are written, the rest
    /// waits for its newline.
    fn take(&mut self, id: usize, watch: &Watch, s: usize, chunk: &[u8]) -> Result<(), Failure> {
        let Some(last) = chunk.iter().rposition(|b| *b == b'\n') else {
            self.partial[s].extend_from_slice(chunk);
            if self.partial[s].len() >= MAX_LINE {
                return self.end_line(id, watch, s);
            }
            return Ok(());
        };
        let written = if self.partial[s].is_empty() {
            self.put(id, watch, &chunk[..=last])
        } else {
            let mut lines = std::mem::take(&mut self.partial[s]);
            lines.extend_from_slice(&chunk[..=last]);
            self.put(id, watch, &lines)
        };
        self.partial[s].extend_from_slice(&chunk[last + 1..]);
        written
    }

    /// The partial line of stream `s`, if any, as a line.
    fn end_line(&mut self, id: usize, watch: &Watch, s: usize) -> Result<(), Failure> {
        if self.partial[s].is_empty() {
            return Ok(());
        }
        let mut line = std::mem::take(&mut self.partial[s]);
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
    buf: Box<[u8]>,
}

impl Pump {
    pub(super) fn new(
        wake: OwnedFd,
        rx: mpsc::Receiver<Cmd>,
        report: Reporter,
        watch: Arc<Watch>,
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
            buf: vec![0u8; 64 << 10].into_boxed_slice(),
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
                    token => self.drain((token >> 1) as usize, (token & 1) as usize),
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
                        svc.pipes.cut_received();
                    }
                    self.drain(id, 0);
                    self.drain(id, 1);
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

    fn add(&mut self, t: Target, pipes: Arc<Pipes>) {
        for fd in &pipes.fds {
            let flags = fcntl(fd, FcntlArg::F_GETFL).unwrap_or(0);
            let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
            let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
        }
        let svc = Service {
            pipes,
            partial: [Vec::new(), Vec::new()],
            open: [true; 2],
            log: LogFile::new(t.path, t.max_size, t.keep).through(t.file),
            trouble: None,
        };
        self.watch_pipes(t.id, &svc);
        self.services.insert(t.id, svc);
    }

    fn watch_pipes(&self, id: usize, svc: &Service) {
        for (s, fd) in svc.pipes.fds.iter().enumerate() {
            let token = ((id as u64) << 1) | s as u64;
            if svc.open[s]
                && let Err(e) = self
                    .epoll
                    .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                tracing::error!("log thread: cannot watch {}: {e}", svc.log.path().display());
            }
        }
    }

    /// Read stream `s` of service `id` until its pipe is empty, writing
    /// whole lines, unless its output is held back.
    fn drain(&mut self, id: usize, s: usize) {
        let Some(svc) = self.services.get_mut(&id) else {
            return;
        };
        while svc.open[s] && !self.held.contains_key(&id) {
            let written = match svc.pipes.read(s, &mut self.buf) {
                Read::Data(n) => svc.take(id, &self.watch, s, &self.buf[..n]),
                Read::Cut => svc.end_line(id, &self.watch, s),
                Read::Eof => {
                    svc.open[s] = false;
                    let _ = self.epoll.delete(&svc.pipes.fds[s]);
                    svc.end_line(id, &self.watch, s)
                }
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
            for s in (0..2).filter(|s| svc.open[*s]) {
                let _ = self.epoll.delete(&svc.pipes.fds[s]);
            }
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
        }
    }

    /// Write what `id` held back; on success read its pipes again.
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
        self.watch_pipes(id, svc);
        self.drain(id, 0);
        self.drain(id, 1);
    }

    /// At shutdown (the write ends are closed): write what is left, partial
    /// lines included; say what could not be written.
    fn finish(&mut self) {
        let now = Instant::now();
        let ids: Vec<usize> = self.services.keys().copied().collect();
        for id in ids {
            if self.held.contains_key(&id) {
                self.retry(id, now);
            }
            self.drain(id, 0);
            self.drain(id, 1);
            let svc = self.services.get_mut(&id).expect("listed above");
            for s in 0..2 {
                let _ = svc.end_line(id, &self.watch, s);
            }
            if svc.log.pending() > 0 {
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
