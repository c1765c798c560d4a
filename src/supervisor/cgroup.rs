//! A cgroup (v2) per service where the unified hierarchy is writable —
//! systemd's answer to "which processes are this service's?". Every process
//! a service's primary or fallback starts stays in its cgroup, including one
//! that calls `setsid()` and so leaves the process group; stopping the
//! service reaches all of them (`cgroup.kill`), and the next `up` of the
//! same state dir finds whatever a killed sentineld left behind, with no
//! pid or pgid that could have been reused.
//!
//! Layout: `<our cgroup>/sentineld-<hash of the state dir>/<service>@<part>`,
//! one per part of a service that runs processes: `main`, `fallback`,
//! `cleanup`, `hook`, `liveness`, `readiness`, `startup`. `@` is in no
//! service name and in no cgroup interface file, so no service's cgroup is
//! another's or a file of the kernel's. No controllers are enabled, so
//! nothing is limited; membership is all that is used. Without a writable v2
//! hierarchy this module is off and process groups (with the pgid
//! registry) are what there is.

use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Cgroups emptied through `cgroup.kill` since they were made (see
/// [`Cgroups::dir`]).
static KILLED: LazyLock<Mutex<HashSet<PathBuf>>> = LazyLock::new(Mutex::default);

fn lock_killed() -> MutexGuard<'static, HashSet<PathBuf>> {
    KILLED.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Cgroups {
    root: PathBuf,
    /// `root`, open: a service's cgroup is made and opened relative to it,
    /// with no walk of the hierarchy's path at each start.
    root_fd: OwnedFd,
}

/// Where the cgroup v2 hierarchy is mounted and which cgroup we are in.
fn own_cgroup() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // mountinfo: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS... - FSTYPE SOURCE SUPER
    let mount = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(PathBuf::from))?
    })?;
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(mount.join(path.trim().trim_start_matches('/')))
}

/// `path` (relative to the directory `at`) opened as a directory.
fn open_dir(at: libc::c_int, path: &Path) -> Option<OwnedFd> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: plain syscall on a NUL-terminated path; the fd is ours.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    // SAFETY: a new descriptor, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl Cgroups {
    /// The cgroups of the state dir `state_dir`, made if need be; `None`
    /// where cgroup v2 is not mounted or not writable.
    pub fn open(state_dir: &Path) -> Option<Cgroups> {
        let mut h = DefaultHasher::new();
        state_dir.hash(&mut h);
        let root = own_cgroup()?.join(format!("sentineld-{:016x}", h.finish()));
        match std::fs::create_dir(&root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!("no cgroup per service ({}: {e})", root.display());
                return None;
            }
        }
        let root_fd = open_dir(libc::AT_FDCWD, &root)?;
        // Cgroups a previous sentineld of this state dir made may have been
        // emptied through `cgroup.kill` (a killed daemon's last stop): a
        // child born in one would be SIGKILLed at birth (see `dir`), so
        // each is made anew before its first use.
        if let Ok(dir) = std::fs::read_dir(&root) {
            let mut killed = lock_killed();
            killed.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        Some(Cgroups { root, root_fd })
    }

    /// The cgroup of one part of a service: `main` (its primary),
    /// `fallback`, `cleanup`, `hook`, or a probe kind's name.
    pub fn path(&self, service: &str, part: &str) -> PathBuf {
        self.root.join(format!("{service}@{part}"))
    }

    /// The cgroup at `path` (made if missing), opened as a directory for a
    /// child to be born in (clone3's CLONE_INTO_CGROUP) or to move itself
    /// in through its `cgroup.procs`; true: it may be born there.
    ///
    /// Linux 6.18 (at least) SIGKILLs a child born in a cgroup that was
    /// ever emptied through `cgroup.kill` (its kill count is compared with
    /// the parent's cgroup's), so such a cgroup is made anew first; if it
    /// cannot be (not empty), the child moves itself in.
    pub fn dir(&self, path: &Path) -> Option<(OwnedFd, bool)> {
        let name = std::ffi::CString::new(path.file_name()?.as_bytes()).ok()?;
        let at = self.root_fd.as_raw_fd();
        let mut born_in = true;
        if lock_killed().contains(path) {
            // SAFETY: plain syscall on a NUL-terminated name.
            if unsafe { libc::unlinkat(at, name.as_ptr(), libc::AT_REMOVEDIR) } == 0 {
                lock_killed().remove(path);
            } else {
                born_in = false;
            }
        }
        // SAFETY: as above.
        if unsafe { libc::mkdirat(at, name.as_ptr(), 0o755) } != 0
            && std::io::Error::last_os_error().kind() != std::io::ErrorKind::AlreadyExists
        {
            return None;
        }
        Some((open_dir(at, Path::new(path.file_name()?))?, born_in))
    }

    /// The processes in the cgroup at `path`.
    pub fn pids(path: &Path) -> Vec<i32> {
        read(&path.join("cgroup.procs"))
            .lines()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// How many processes are in the cgroup at `path`.
    pub fn count(path: &Path) -> u32 {
        read(&path.join("cgroup.procs")).lines().count() as u32
    }

    /// Whether any process is left in the cgroup at `path`.
    pub fn populated(path: &Path) -> bool {
        read(&path.join("cgroup.events"))
            .lines()
            .any(|l| l == "populated 1")
    }

    /// Signal every process in the cgroup at `path`; SIGKILL through
    /// `cgroup.kill`, which also reaches processes forked meanwhile.
    pub fn signal(path: &Path, sig: libc::c_int) {
        Cgroups::signal_outside(path, sig, 0);
    }

    /// Signal the processes of the cgroup at `path` that are not in process
    /// group `pgid` (which was signalled already; 0: none was): each gets
    /// the signal once.
    pub fn signal_outside(path: &Path, sig: libc::c_int, pgid: i32) {
        if sig == libc::SIGKILL && std::fs::write(path.join("cgroup.kill"), "1").is_ok() {
            lock_killed().insert(path.to_path_buf());
            return;
        }
        for pid in read(&path.join("cgroup.procs"))
            .lines()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain syscalls; a process in our cgroup is ours (its
            // membership ends only when it is reaped).
            unsafe {
                if pgid == 0 || libc::getpgid(pid) != pgid {
                    libc::kill(pid, sig);
                }
            }
        }
    }

    /// Kill what a previous sentineld of this state dir left in its
    /// cgroups; returns their names. Waits (at most a second) for them to
    /// be gone, so nothing of theirs runs beside the new services.
    pub fn kill_leftovers(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let left: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && Cgroups::populated(p))
            .collect();
        for p in &left {
            Cgroups::signal(p, libc::SIGKILL);
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        while left.iter().any(|p| Cgroups::populated(p)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        left.iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .collect()
    }

    /// Remove the (empty) cgroups at shutdown.
    pub fn remove(&self) {
        if let Ok(dir) = std::fs::read_dir(&self.root) {
            for e in dir.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&self.root);
    }
}
