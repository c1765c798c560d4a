//! A state dir that passed its checks, held open by fd: the one place that
//! opens, creates, replaces and removes the files in it.
//!
//! Trusted means owned by the running user and writable by nobody else, and
//! the same for `logs/`: nobody else can plant or swap an entry once the
//! directory is checked. What was there before is still suspect, so every
//! entry is opened relative to the directory's fd with `O_NOFOLLOW` and must
//! be what it claims to be (a regular file with one link, a socket): a
//! `sentineld.lock` that is a symlink to /etc/shadow is refused, not
//! followed. New files are created exclusively and replaced by rename.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{
    CONTROL_SOCKET, DAEMON_LOG, LOCK, LOG_DIR, PGID_REGISTRY, PGID_REGISTRY_TMP, log_name,
};

#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("{what} {} is owned by uid {owner}, not {me}: refusing to use it", path.display())]
    NotOwned {
        what: &'static str,
        path: PathBuf,
        owner: u32,
        me: u32,
    },
    #[error("{what} {} is writable by {by} (mode {mode:04o}): refusing to use it", path.display())]
    Writable {
        what: &'static str,
        path: PathBuf,
        by: &'static str,
        mode: u32,
    },
    #[error("{} is a symlink: refusing to follow it", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a {expected}: refusing to use it", path.display())]
    WrongType {
        path: PathBuf,
        expected: &'static str,
    },
    #[error("{} has {links} links: refusing to write through a hard link", path.display())]
    HardLinked { path: PathBuf, links: libc::nlink_t },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StateDirError {
    fn io(op: &'static str, path: &Path, errno: Errno) -> StateDirError {
        StateDirError::Io {
            op,
            path: path.to_path_buf(),
            source: errno.into(),
        }
    }

    /// Nothing is there (as opposed to something we refuse).
    pub fn is_not_found(&self) -> bool {
        matches!(self, StateDirError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
    }
}

type Result<T> = std::result::Result<T, StateDirError>;

/// The sockets sentineld binds in its state dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Socket {
    Control,
}

impl Socket {
    fn name(self) -> &'static str {
        match self {
            Socket::Control => CONTROL_SOCKET,
        }
    }
}

/// A checked state dir. Cheap to clone: the directory fd is shared.
#[derive(Debug, Clone)]
pub struct Trusted {
    dir: Dir,
}

impl Trusted {
    /// Open the state dir at `root`, creating it (mode 0700) if it is not
    /// there, and check it and its `logs/`; a symlink in their place, or a
    /// directory of another user's or one others may write to, is refused.
    pub fn open(root: &Path) -> Result<Trusted> {
        let open = || Dir::open(AT_FDCWD, root, root.to_path_buf(), "state dir");
        let dir = match open() {
            Err(e) if e.is_not_found() => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(root)
                    .map_err(|source| StateDirError::Io {
                        op: "create",
                        path: root.to_path_buf(),
                        source,
                    })?;
                open()?
            }
            r => r?,
        };
        dir.subdir(LOG_DIR, "log dir")?;
        Ok(Trusted { dir })
    }

    pub fn root(&self) -> &Path {
        &self.dir.path
    }

    /// `sentineld.lock`, kept from run to run: opened for reading (the pid
    /// of a live owner) and writing, created if missing.
    pub fn open_lock(&self) -> Result<File> {
        self.dir.file(LOCK, OFlag::O_RDWR | OFlag::O_CREAT)
    }

    /// `sentineld.log`, the detached daemon's stdout and stderr.
    pub fn open_daemon_log(&self) -> Result<File> {
        self.dir.file(DAEMON_LOG, APPEND)
    }

    /// The `pgids` file, or `None` if there is none; at most `limit` + 1
    /// bytes of it, so the caller can tell an oversized one.
    pub fn read_pgids(&self, limit: u64) -> Result<Option<Vec<u8>>> {
        let file = match self.dir.file(PGID_REGISTRY, OFlag::O_RDONLY) {
            Err(e) if e.is_not_found() => return Ok(None),
            r => r?,
        };
        let mut text = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut text)
            .map_err(|source| StateDirError::Io {
                op: "read",
                path: self.dir.path.join(PGID_REGISTRY),
                source,
            })?;
        Ok(Some(text))
    }

    /// Replace `pgids` at once: readers see the old file or the new one.
    ///
    /// Not fsynced: the file only means something in the boot that wrote it
    /// (its records carry the boot id), and a crash of sentineld alone
    /// leaves the page cache intact; a sync here would put a disk flush on
    /// every loop turn that started or ended a process.
    pub fn replace_pgids(&self, text: &[u8]) -> Result<()> {
        let tmp = PGID_REGISTRY_TMP;
        let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let mut file = match self.dir.file(tmp, create) {
            // Left by a crash, or planted: the name is ours, its target is not.
            Err(StateDirError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists =>
            {
                self.dir.remove(tmp)?;
                self.dir.file(tmp, create)?
            }
            r => r?,
        };
        file.write_all(text).map_err(|source| StateDirError::Io {
            op: "write",
            path: self.dir.path.join(tmp),
            source,
        })?;
        self.dir.rename(tmp, PGID_REGISTRY)
    }

    /// Append journal lines to the `pgids` file, which must be there (a
    /// missing one is rewritten whole instead).
    pub fn append_pgids(&self, text: &[u8]) -> Result<()> {
        let mut file = self
            .dir
            .file(PGID_REGISTRY, OFlag::O_WRONLY | OFlag::O_APPEND)?;
        file.write_all(text).map_err(|source| StateDirError::Io {
            op: "write",
            path: self.dir.path.join(PGID_REGISTRY),
            source,
        })
    }

    pub fn remove_pgids(&self) {
        let _ = self.dir.remove(PGID_REGISTRY);
    }

    /// Make way for binding `socket`: a stale socket is removed (`true`);
    /// a symlink or anything else in its place is an error, left as it is.
    pub fn clear_socket(&self, socket: Socket) -> Result<bool> {
        let name = socket.name();
        match self.dir.stat(name)? {
            None => Ok(false),
            Some(st) => {
                expect(&st, SFlag::S_IFSOCK, &self.dir.path.join(name))?;
                self.dir.remove(name)?;
                Ok(true)
            }
        }
    }

    /// The path to bind `socket` at so that it lands in this directory,
    /// whatever became of the directory's path: through the fd in /proc.
    pub fn bind_path(&self, socket: Socket) -> PathBuf {
        let via_fd = PathBuf::from(format!("/proc/self/fd/{}", self.dir.fd.as_raw_fd()));
        match via_fd.is_dir() {
            true => via_fd.join(socket.name()),
            false => self.dir.path.join(socket.name()),
        }
    }

    pub fn remove_socket(&self, socket: Socket) {
        if let Ok(Some(st)) = self.dir.stat(socket.name())
            && expect(&st, SFlag::S_IFSOCK, &self.dir.path).is_ok()
        {
            let _ = self.dir.remove(socket.name());
        }
    }

    /// Before anything starts: each service's log, if it exists, is a
    /// regular file of one link, so the log thread will not refuse it later.
    pub fn check_logs<'a>(&self, services: impl IntoIterator<Item = &'a str>) -> Result<()> {
        let logs = self.dir.subdir(LOG_DIR, "log dir")?;
        for service in services {
            let name = log_name(service);
            if let Some(st) = logs.stat(&name)? {
                expect(&st, SFlag::S_IFREG, &logs.path.join(&name))?;
            }
        }
        Ok(())
    }

    pub fn log_file(&self, service: &str) -> LogFile {
        LogFile {
            root: self.dir.clone(),
            name: log_name(service),
        }
    }
}

/// A service's log, `logs/NAME.log`, and its rotated copies. `logs/` is
/// opened and checked again each time, so a log dir that was removed is
/// made anew and one that was swapped for a symlink is refused.
#[derive(Debug, Clone)]
pub struct LogFile {
    root: Dir,
    name: String,
}

impl LogFile {
    pub fn path(&self) -> PathBuf {
        self.root.path.join(LOG_DIR).join(&self.name)
    }

    /// Open for appending, created if missing.
    pub fn open_append(&self) -> Result<File> {
        self.logs()?.file(&self.name, APPEND)
    }

    /// NAME.log → NAME.log.1 → … → NAME.log.KEEP, the oldest replaced; with
    /// `keep` 0 the log is removed.
    pub fn rotate(&self, keep: u32) -> Result<()> {
        let logs = self.logs()?;
        if keep == 0 {
            return logs.remove(&self.name);
        }
        let name = |i: u32| match i {
            0 => self.name.clone(),
            i => format!("{}.{i}", self.name),
        };
        for i in (0..keep).rev() {
            match logs.rename(&name(i), &name(i + 1)) {
                Err(e) if e.is_not_found() => {}
                r => r?,
            }
        }
        Ok(())
    }

    fn logs(&self) -> Result<Dir> {
        self.root.subdir(LOG_DIR, "log dir")
    }
}

/// Open a file by path for reading, refusing a symlink as its last
/// component (for readers that work by path: `sentineld logs`).
pub fn open_read_nofollow(path: &Path) -> Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => StateDirError::Symlink {
                path: path.to_path_buf(),
            },
            _ => StateDirError::Io {
                op: "open",
                path: path.to_path_buf(),
                source,
            },
        })?;
    let st = fstat(&file).map_err(|e| StateDirError::io("stat", path, e))?;
    if kind(&st) != SFlag::S_IFREG {
        return Err(StateDirError::WrongType {
            path: path.to_path_buf(),
            expected: "regular file",
        });
    }
    Ok(file)
}

const APPEND: OFlag = OFlag::O_WRONLY.union(OFlag::O_APPEND).union(OFlag::O_CREAT);

/// A directory of ours, open.
#[derive(Debug, Clone)]
struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl Dir {
    /// Open directory `name` in `at` and check that it is ours alone.
    fn open(at: impl AsFd, name: &Path, path: PathBuf, what: &'static str) -> Result<Dir> {
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&at, name, flags, Mode::empty()).map_err(|e| match e {
            // O_DIRECTORY reports a symlink as "not a directory".
            Errno::ELOOP | Errno::ENOTDIR => {
                match fstatat(&at, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) if kind(&st) == SFlag::S_IFLNK => {
                        StateDirError::Symlink { path: path.clone() }
                    }
                    _ => StateDirError::WrongType {
                        path: path.clone(),
                        expected: "directory",
                    },
                }
            }
            e => StateDirError::io("open", &path, e),
        })?;
        let st = fstat(&fd).map_err(|e| StateDirError::io("stat", &path, e))?;
        let me = nix::unistd::geteuid().as_raw();
        let mode = st.st_mode & 0o7777;
        let by = match mode {
            m if m & 0o002 != 0 => Some("others"),
            m if m & 0o020 != 0 => Some("its group"),
            _ => None,
        };
        if st.st_uid != me {
            let owner = st.st_uid;
            return Err(StateDirError::NotOwned {
                what,
                path,
                owner,
                me,
            });
        }
        if let Some(by) = by {
            return Err(StateDirError::Writable {
                what,
                path,
                by,
                mode,
            });
        }
        Ok(Dir {
            fd: Arc::new(fd),
            path,
        })
    }

    /// Directory `name` in this one, made (mode 0700) if missing.
    fn subdir(&self, name: &str, what: &'static str) -> Result<Dir> {
        let path = self.path.join(name);
        match mkdirat(self.fd.as_fd(), name, Mode::S_IRWXU) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(StateDirError::io("create", &path, e)),
        }
        Dir::open(self.fd.as_fd(), Path::new(name), path, what)
    }

    /// Open the regular file `name`, never through a symlink; mode 0600
    /// if `flags` create it.
    fn file(&self, name: &str, flags: OFlag) -> Result<File> {
        let path = self.path.join(name);
        // O_NONBLOCK: a FIFO in a file's place must not hang the open.
        let flags = flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let mode = Mode::S_IRUSR | Mode::S_IWUSR;
        let fd = openat(self.fd.as_fd(), name, flags, mode).map_err(|e| match e {
            Errno::ELOOP => StateDirError::Symlink { path: path.clone() },
            Errno::ENXIO => StateDirError::WrongType {
                path: path.clone(),
                expected: "regular file",
            },
            e => StateDirError::io("open", &path, e),
        })?;
        let st = fstat(&fd).map_err(|e| StateDirError::io("stat", &path, e))?;
        expect(&st, SFlag::S_IFREG, &path)?;
        Ok(File::from(fd))
    }

    /// What `name` is, without following it; `None` if there is nothing.
    fn stat(&self, name: &str) -> Result<Option<FileStat>> {
        match fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(StateDirError::io("stat", &self.path.join(name), e)),
        }
    }

    fn remove(&self, name: &str) -> Result<()> {
        match unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(StateDirError::io("remove", &self.path.join(name), e)),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Result<()> {
        renameat(self.fd.as_fd(), from, self.fd.as_fd(), to)
            .map_err(|e| StateDirError::io("rename", &self.path.join(from), e))
    }
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT
}

/// `st` (of `path`, not followed) is a `want`, and a file has one link.
fn expect(st: &FileStat, want: SFlag, path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    let got = kind(st);
    if got == SFlag::S_IFLNK {
        return Err(StateDirError::Symlink { path });
    }
    if got != want {
        let expected = match want {
            SFlag::S_IFSOCK => "socket",
            _ => "regular file",
        };
        return Err(StateDirError::WrongType { path, expected });
    }
    if got == SFlag::S_IFREG && st.st_nlink > 1 {
        let links = st.st_nlink;
        return Err(StateDirError::HardLinked { path, links });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> (tempfile::TempDir, Trusted) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Trusted::open(&tmp.path().join("state")).unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_new_state_dir_and_its_logs_are_made_0700() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, dir) = fresh();
        for d in [dir.root().to_path_buf(), dir.root().join(LOG_DIR)] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode();
            assert_eq!(mode & 0o7777, 0o700, "{}", d.display());
        }
    }

    #[test]
    fn pgids_replace_a_planted_tmp_link_without_following_it() {
        let (tmp, dir) = fresh();
        let target = tmp.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, dir.root().join(PGID_REGISTRY_TMP)).unwrap();
        dir.replace_pgids(b"boot x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(dir.read_pgids(100).unwrap().unwrap(), b"boot x\n");
        assert!(!dir.root().join(PGID_REGISTRY_TMP).exists());
    }

    #[test]
    fn rotation_shifts_the_copies_and_drops_the_oldest() {
        let (_tmp, dir) = fresh();
        let log = dir.log_file("web");
        let logs = dir.root().join(LOG_DIR);
        for round in 1..=4 {
            log.open_append()
                .unwrap()
                .write_all(format!("{round}\n").as_bytes())
                .unwrap();
            log.rotate(2).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(logs.join(name)).ok();
        assert_eq!(read("web.log"), None);
        assert_eq!(read("web.log.1").as_deref(), Some("4\n"));
        assert_eq!(read("web.log.2").as_deref(), Some("3\n"));
        assert_eq!(read("web.log.3"), None);
    }

    #[test]
    fn a_removed_log_dir_is_made_anew() {
        let (_tmp, dir) = fresh();
        std::fs::remove_dir(dir.root().join(LOG_DIR)).unwrap();
        dir.log_file("web").open_append().unwrap();
        assert!(dir.root().join(LOG_DIR).join("web.log").is_file());
    }

    #[test]
    fn only_a_stale_socket_is_cleared() {
        let (_tmp, dir) = fresh();
        assert!(!dir.clear_socket(Socket::Control).unwrap());
        let path = dir.root().join(CONTROL_SOCKET);
        let _sock = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert!(dir.clear_socket(Socket::Control).unwrap());
        assert!(!path.exists());
        std::fs::create_dir(&path).unwrap();
        let e = dir.clear_socket(Socket::Control).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("is not a socket: refusing to use it"),
            "{e}"
        );
    }
}
