//! Low descriptor numbers reserved for what a child takes with it, so that
//! starting a child costs the same however many descriptors sentineld holds.
//!
//! sentineld holds a descriptor per service (its output pipe). A child
//! made the usual way copies the whole table and closes every CLOEXEC
//! descriptor at exec: with 10,000 services that is 10,000 closes per
//! start, the larger part of a start's cost. Instead the child shares the
//! table (CLONE_FILES) and its first act is `close_range(N, ~0,
//! CLOSE_RANGE_UNSHARE)`, which gives it a table of its own holding only
//! the descriptors below N — the few low ones, among them these slots, into
//! which sentineld has just put the child's stdin, stdout, stderr and
//! `cgroup.procs`. Where close_range is missing (Linux before 5.9) the
//! child unshares the whole table instead, as a copy would have.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// How many slots: stdin, stdout, stderr, `cgroup.procs`.
pub const COUNT: usize = 4;

pub struct Slots {
    /// /dev/null, what a slot holds between starts.
    null: OwnedFd,
    fds: [RawFd; COUNT],
    /// close_range(2) with CLOSE_RANGE_UNSHARE is there.
    pub close_range: bool,
}

static SLOTS: OnceLock<Option<Mutex<Slots>>> = OnceLock::new();

/// The slots, reserved on first use at the lowest free numbers; `None` if
/// they could not be (the child then copies the table, as fork does).
/// Held across a start: daemons run side by side in one process (tests)
/// must not fill each other's slots.
pub fn lock() -> Option<MutexGuard<'static, Slots>> {
    let slots = SLOTS.get_or_init(|| Slots::reserve().ok().map(Mutex::new));
    slots
        .as_ref()
        .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
}

impl Slots {
    fn reserve() -> std::io::Result<Slots> {
        let null: OwnedFd = std::fs::File::open("/dev/null")?.into();
        let mut fds = [-1; COUNT];
        for slot in &mut fds {
            // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own: the lowest
            // free number at or above 3, never closed (a reserved slot).
            let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            *slot = fd;
        }
        // Closing nothing tells whether the call exists; without the
        // UNSHARE flag it leaves the (shared) table of this thread alone.
        // SAFETY: closes no descriptor (~0 is never open).
        let close_range = unsafe { libc::syscall(libc::SYS_close_range, !0u32, !0u32, 0) } == 0;
        Ok(Slots {
            null,
            fds,
            close_range,
        })
    }

    /// Put `fds` (stdin, stdout, stderr, cgroup.procs or none) into the
    /// slots; the numbers the child finds them at.
    pub fn fill(&self, fds: [Option<RawFd>; COUNT]) -> std::io::Result<[RawFd; COUNT]> {
        let mut at = [-1; COUNT];
        for (k, fd) in fds.iter().enumerate() {
            if let Some(fd) = fd {
                // SAFETY: dup3 onto a slot we reserved, replacing what it held.
                if unsafe { libc::dup3(*fd, self.fds[k], libc::O_CLOEXEC) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                at[k] = self.fds[k];
            }
        }
        Ok(at)
    }

    /// Back to /dev/null: sentineld keeps no write end of a pipe, no
    /// `cgroup.procs`, once the child has its own.
    pub fn clear(&self) {
        for slot in self.fds {
            // SAFETY: dup3 onto a slot we reserved.
            unsafe { libc::dup3(self.null.as_raw_fd(), slot, libc::O_CLOEXEC) };
        }
    }

    /// The lowest number the child need not keep.
    pub fn end(&self) -> RawFd {
        self.fds.iter().max().copied().unwrap_or(2) + 1
    }
}
