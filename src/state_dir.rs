//! The layout of the state dir: every file and directory sentineld keeps
//! there is named here and nowhere else, so the daemon that writes a file
//! and the client that reads it cannot disagree about its name.
//!
//! [`StateDir`] only computes paths, for readers that work by path (the
//! CLI). The daemon works through [`Trusted`], which checks the directory
//! and is the only code that creates, opens or removes anything in it.
//! Nothing here imports the rest of the crate.

mod trusted;

use std::path::{Path, PathBuf};

pub use trusted::{LogFile, Socket, StateDirError, Trusted, open_read_nofollow};

/// The state dir's name when neither `state_dir:`, `--state-dir` nor
/// `SENTINELD_STATE_DIR` gives one: beside services.yaml for `up`, in the
/// current directory for the client commands.
pub const DEFAULT_NAME: &str = ".sentineld";

const CONTROL_SOCKET: &str = "control.sock";
const LOCK: &str = "sentineld.lock";
const PGID_REGISTRY: &str = "pgids";
const PGID_REGISTRY_TMP: &str = "pgids.tmp";
const LOG_DIR: &str = "logs";
const DAEMON_LOG: &str = "sentineld.log";

/// A state dir, by its root. Borrowed: callers keep the path they already
/// hold (a plan's `state_dir`, a client's `--state-dir`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateDir<'a> {
    root: &'a Path,
}

impl<'a> StateDir<'a> {
    pub fn new(root: &'a Path) -> StateDir<'a> {
        StateDir { root }
    }

    pub fn root(&self) -> &'a Path {
        self.root
    }

    /// The control socket the CLI talks to.
    pub fn control_socket(&self) -> PathBuf {
        self.root.join(CONTROL_SOCKET)
    }

    /// Held with flock by the live daemon; holds its pid.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(LOCK)
    }

    /// The record of live process groups, for the next `up` to clean up.
    pub fn pgid_registry(&self) -> PathBuf {
        self.root.join(PGID_REGISTRY)
    }

    /// Written first, then renamed over [`StateDir::pgid_registry`].
    pub fn pgid_registry_tmp(&self) -> PathBuf {
        self.root.join(PGID_REGISTRY_TMP)
    }

    /// Where the services' captured output goes.
    pub fn log_dir(&self) -> PathBuf {
        self.root.join(LOG_DIR)
    }

    /// `logs/NAME.log`: a service's stdout and stderr.
    pub fn log_file(&self, service: &str) -> PathBuf {
        self.log_dir().join(log_name(service))
    }

    /// The detached daemon's own stdout and stderr (`up -d`).
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join(DAEMON_LOG)
    }
}

fn log_name(service: &str) -> String {
    format!("{service}.log")
}

/// The `i`-th rotated copy of a log file: `NAME.log.1` is the newest.
pub fn rotated(log_file: &Path, i: u32) -> PathBuf {
    let mut s = log_file.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_users_and_scripts_see() {
        let sd = StateDir::new(Path::new("/srv/app/.sentineld"));
        let names = [
            (sd.control_socket(), "/srv/app/.sentineld/control.sock"),
            (sd.lock_file(), "/srv/app/.sentineld/sentineld.lock"),
            (sd.pgid_registry(), "/srv/app/.sentineld/pgids"),
            (sd.pgid_registry_tmp(), "/srv/app/.sentineld/pgids.tmp"),
            (sd.log_dir(), "/srv/app/.sentineld/logs"),
            (sd.log_file("web"), "/srv/app/.sentineld/logs/web.log"),
            (sd.daemon_log(), "/srv/app/.sentineld/sentineld.log"),
            (
                rotated(&sd.log_file("web"), 3),
                "/srv/app/.sentineld/logs/web.log.3",
            ),
        ];
        for (got, want) in names {
            assert_eq!(got, Path::new(want));
        }
    }
}
