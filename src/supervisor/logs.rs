//! The log thread: drains every service's stdout and stderr pipes into
//! `state_dir/logs/NAME.log`, with size rotation.
//!
//! It owns the read ends of the pipes and is the only writer of log files.
//! It runs apart from the supervisor loop so a slow disk never delays a
//! restart; a slow disk instead stalls this thread, the pipes fill, and the
//! children block in write(2): back-pressure, never a dropped line. Only
//! whole lines are written, so stdout and stderr lines never interleave
//! mid-line; order within each stream is kept.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::state_dir::LogFile;

/// A partial line longer than this is written out as a line of its own.
const MAX_LINE: usize = 1 << 20;
const WAKE: u64 = u64::MAX;

pub struct LogSink {
    pub id: usize,
    pub path: PathBuf,
    /// Opened and rotated through the checked state dir.
    pub file: LogFile,
    pub max_size: u64,
    pub keep: u32,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Keep the last [`TAIL`] bytes in memory, for `output_matches` rules.
    pub keep_tail: bool,
}

/// How much recent output `classify` rules can see.
pub const TAIL: usize = 64 << 10;

enum Cmd {
    Add(LogSink),
    /// Drain the service's pipes, then send back its recent output.
    Tail(usize, mpsc::Sender<Vec<u8>>),
    /// Drain what is buffered and stop.
    Shutdown(mpsc::Sender<()>),
}

/// The supervisor's handle on the log thread.
pub struct LogHub {
    tx: mpsc::Sender<Cmd>,
    wake: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl LogHub {
    pub fn start() -> std::io::Result<LogHub> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(wake.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, WAKE))?;
        let thread_wake = wake.as_fd().try_clone_to_owned()?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("logs".into())
            .stack_size(256 << 10)
            .spawn(move || Pump::new(epoll, thread_wake, rx).run())?;
        Ok(LogHub {
            tx,
            wake,
            thread: Some(thread),
        })
    }

    pub fn add(&self, sink: LogSink) {
        if self.tx.send(Cmd::Add(sink)).is_ok() {
            let _ = self.wake.write(1);
        }
    }

    /// The last [`TAIL`] bytes the service wrote, including what is still in
    /// its pipes (so output written just before an exit is seen). Empty if
    /// the log thread does not answer within `timeout`.
    pub fn tail(&self, id: usize, timeout: Duration) -> Vec<u8> {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Cmd::Tail(id, tx)).is_err() {
            return Vec::new();
        }
        let _ = self.wake.write(1);
        rx.recv_timeout(timeout).unwrap_or_default()
    }

    /// Read what is left in the pipes, write it, and stop the thread.
    pub fn shutdown(mut self, timeout: Duration) {
        let (done_tx, done_rx) = mpsc::channel();
        if self.tx.send(Cmd::Shutdown(done_tx)).is_ok() {
            let _ = self.wake.write(1);
            let _ = done_rx.recv_timeout(timeout);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Stream {
    fd: OwnedFd,
    /// Bytes after the last newline read so far.
    partial: Vec<u8>,
    open: bool,
}

struct Target {
    path: PathBuf,
    log: LogFile,
    file: Option<File>,
    size: u64,
    max_size: u64,
    keep: u32,
    tail: Option<Vec<u8>>,
    streams: [Stream; 2],
}

struct Pump {
    epoll: Epoll,
    wake: OwnedFd,
    rx: mpsc::Receiver<Cmd>,
    targets: HashMap<usize, Target>,
    buf: Box<[u8]>,
}

impl Pump {
    fn new(epoll: Epoll, wake: OwnedFd, rx: mpsc::Receiver<Cmd>) -> Pump {
        Pump {
            epoll,
            wake,
            rx,
            targets: HashMap::new(),
            buf: vec![0u8; 64 << 10].into_boxed_slice(),
        }
    }

    fn run(mut self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => {
                    tracing::error!("log thread: epoll_wait failed: {e}");
                    return;
                }
            };
            for ev in &events[..n] {
                let token = ev.data();
                if token == WAKE {
                    let mut b = [0u8; 8];
                    let _ = nix::unistd::read(&self.wake, &mut b);
                    while let Ok(cmd) = self.rx.try_recv() {
                        match cmd {
                            Cmd::Add(sink) => self.add(sink),
                            Cmd::Tail(id, reply) => {
                                self.drain(id, 0);
                                self.drain(id, 1);
                                let tail = self.targets.get(&id).map(|t| {
                                    let mut v = t.tail.clone().unwrap_or_default();
                                    for s in &t.streams {
                                        v.extend_from_slice(&s.partial);
                                    }
                                    let cut = v.len().saturating_sub(TAIL);
                                    v.split_off(cut)
                                });
                                let _ = reply.send(tail.unwrap_or_default());
                            }
                            Cmd::Shutdown(done) => {
                                self.drain_all();
                                let _ = done.send(());
                                return;
                            }
                        }
                    }
                } else {
                    self.drain((token >> 1) as usize, (token & 1) as usize);
                }
            }
        }
    }

    fn add(&mut self, sink: LogSink) {
        for (i, fd) in [&sink.stdout, &sink.stderr].into_iter().enumerate() {
            let flags = fcntl(fd, FcntlArg::F_GETFL).unwrap_or(0);
            let _ = fcntl(
                fd,
                FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
            );
            let token = ((sink.id as u64) << 1) | i as u64;
            if let Err(e) = self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))
            {
                tracing::error!("log thread: cannot watch {}: {e}", sink.path.display());
            }
        }
        let stream = |fd| Stream {
            fd,
            partial: Vec::new(),
            open: true,
        };
        self.targets.insert(
            sink.id,
            Target {
                path: sink.path,
                log: sink.file,
                file: None,
                size: 0,
                max_size: sink.max_size,
                keep: sink.keep,
                tail: sink.keep_tail.then(Vec::new),
                streams: [stream(sink.stdout), stream(sink.stderr)],
            },
        );
    }

    fn drain_all(&mut self) {
        let ids: Vec<usize> = self.targets.keys().copied().collect();
        for id in ids {
            for s in 0..2 {
                self.drain(id, s);
            }
            if let Some(t) = self.targets.get_mut(&id) {
                for s in 0..2 {
                    if !t.streams[s].partial.is_empty() {
                        let mut rest = std::mem::take(&mut t.streams[s].partial);
                        rest.push(b'\n');
                        t.write(&rest);
                    }
                }
            }
        }
    }

    /// Read until the pipe is empty, writing whole lines.
    fn drain(&mut self, id: usize, s: usize) {
        let Some(t) = self.targets.get_mut(&id) else {
            return;
        };
        loop {
            if !t.streams[s].open {
                return;
            }
            let n = match nix::unistd::read(&t.streams[s].fd, &mut self.buf) {
                Ok(0) => {
                    t.streams[s].open = false;
                    let _ = self.epoll.delete(&t.streams[s].fd);
                    return;
                }
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return,
            };
            let chunk = &self.buf[..n];
            let stream = &mut t.streams[s];
            match chunk.iter().rposition(|b| *b == b'\n') {
                Some(last) if stream.partial.is_empty() => t.write(&chunk[..=last]),
                Some(last) => {
                    let mut lines = std::mem::take(&mut stream.partial);
                    lines.extend_from_slice(&chunk[..=last]);
                    t.write(&lines);
                }
                None => {}
            }
            let stream = &mut t.streams[s];
            let tail_start = chunk.iter().rposition(|b| *b == b'\n').map_or(0, |l| l + 1);
            stream.partial.extend_from_slice(&chunk[tail_start..]);
            if stream.partial.len() >= MAX_LINE {
                let mut long = std::mem::take(&mut stream.partial);
                long.push(b'\n');
                t.write(&long);
            }
        }
    }
}

impl Target {
    /// Append whole lines, rotating between lines so that no file grows past
    /// `max_size` (a single line longer than that gets a file of its own).
    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.file.is_none() && !self.open() {
                return;
            }
            let room = self.max_size.saturating_sub(self.size) as usize;
            let take = if data.len() <= room {
                data.len()
            } else {
                match data[..room].iter().rposition(|b| *b == b'\n') {
                    Some(k) => k + 1,
                    None if self.size > 0 => {
                        self.rotate();
                        continue;
                    }
                    None => data
                        .iter()
                        .position(|b| *b == b'\n')
                        .map_or(data.len(), |k| k + 1),
                }
            };
            self.append(&data[..take]);
            data = &data[take..];
            if !data.is_empty() {
                self.rotate();
            }
        }
    }

    fn open(&mut self) -> bool {
        match self.log.open_append() {
            Ok(f) => {
                self.size = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.file = Some(f);
                true
            }
            Err(e) => {
                tracing::error!("{e}; output lost");
                false
            }
        }
    }

    fn append(&mut self, mut data: &[u8]) {
        if let Some(tail) = &mut self.tail {
            tail.extend_from_slice(data);
            if tail.len() > 2 * TAIL {
                tail.drain(..tail.len() - TAIL);
            }
        }
        let Some(file) = self.file.as_mut() else {
            return;
        };
        self.size += data.len() as u64;
        while !data.is_empty() {
            match file.write(data) {
                Ok(0) => break,
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("writing {}: {e}", self.path.display());
                    break;
                }
            }
        }
    }

    /// NAME.log → NAME.log.1 → … → NAME.log.KEEP (the oldest is removed).
    fn rotate(&mut self) {
        self.file = None;
        self.size = 0;
        if let Err(e) = self.log.rotate(self.keep) {
            tracing::error!("rotating {}: {e}", self.path.display());
        }
        self.open();
    }
}
