//! `sentineld up [-d] FILE`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};

use super::CommandError;
use crate::color::ColorChoice;
use crate::control::{http, server};
use crate::state_dir::StateDir;
use crate::supervisor::{self, Inbox, Options};

pub fn up(
    file: &Path,
    state_dir: Option<PathBuf>,
    detach: bool,
    init: bool,
    color: ColorChoice,
) -> Result<i32, CommandError> {
    // Before anything: a stop signal while the file is read must not be
    // lost (PID 1) nor end sentineld unannounced.
    supervisor::hold_signals();
    if detach && std::process::id() == 1 {
        // The launcher's exit would end the container with everything in it.
        let msg = "-d cannot be used as PID 1: the container ends when PID 1 exits; \
                   run `sentineld up` in the foreground";
        return Err(CommandError::BadInput(format!("sentineld: {msg}")));
    }
    let mut plan = crate::config::load(file)?;
    if let Some(dir) = state_dir {
        plan.place_state_dir(dir);
    }
    let mut budget = supervisor::budget::Budget::of(&plan);
    if !budget.fit() {
        return Err(CommandError::Failed(budget.shortfall(plan.services.len())));
    }
    // Detached, the log is a file: colour only if asked for `always`.
    init_tracing(match detach {
        false => color.enabled_for(&std::io::stderr()),
        true => color == ColorChoice::Always,
    });
    // Checked before anything starts: a state dir we cannot trust is an
    // error, not something to work around.
    let state_dir = supervisor::open_state_dir(&plan).map_err(failed)?;
    let log = match detach {
        true => Some(state_dir.open_daemon_log().map_err(failed)?),
        false => None,
    };
    let control = server::bind(state_dir).map_err(failed)?;
    // After the state dir's lock: a second `up` is "already running", not
    // "address in use".
    let http = plan
        .api
        .as_ref()
        .map(http::bind)
        .transpose()
        .map_err(failed)?;
    let http_line = http.as_ref().map_or(String::new(), |h| {
        format!("\n  HTTP API:       http://{}", h.addr)
    });
    if init || std::process::id() == 1 {
        tracing::info!("running as init (pid {})", std::process::id());
    }
    let options = Options {
        http,
        ..Options::from_env()
    };
    let Some(log) = log else {
        return supervisor::run(plan, Inbox::Socket(control), options).map_err(failed);
    };
    detach_daemon(plan, control, log, &http_line, options)
}

/// `up -d`: fork the daemon, wait until it says it is ready, print where
/// things are.
fn detach_daemon(
    plan: crate::config::Plan,
    control: server::ControlSocket,
    log: File,
    http_line: &str,
    options: Options,
) -> Result<i32, CommandError> {
    let log_path = StateDir::new(&plan.state_dir).daemon_log();
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| CommandError::Failed(format!("pipe: {e}")))?;
    // SAFETY: no other thread exists yet (no runtime, no log thread), so the
    // child may do anything after fork.
    match unsafe { nix::unistd::fork() } {
        Err(e) => Err(CommandError::Failed(format!("fork: {e}"))),
        Ok(nix::unistd::ForkResult::Parent { child }) => {
            supervisor::release_signals();
            drop(ready_w);
            // SAFETY: ready_r is an owned pipe read end.
            let reader = unsafe { File::from_raw_fd(ready_r.into_raw_fd()) };
            let mut line = String::new();
            let _ = BufReader::new(reader).read_line(&mut line);
            if line.starts_with("ready") {
                // A closed stdout (`| head -1`) is not an error of ours.
                let _ = writeln!(
                    std::io::stdout(),
                    "sentineld running (pid {child}), {} service{}\n  control socket: {}{http_line}\n  service logs:   {}\n  daemon log:     {}",
                    plan.services.len(),
                    if plan.services.len() == 1 { "" } else { "s" },
                    control.path.display(),
                    StateDir::new(&plan.state_dir).log_dir().display(),
                    log_path.display()
                );
                Ok(0)
            } else {
                Err(CommandError::Failed(format!(
                    "sentineld failed to start; see {}",
                    log_path.display()
                )))
            }
        }
        Ok(nix::unistd::ForkResult::Child) => {
            drop(ready_r);
            run_detached(plan, control, log, ready_w, options)
        }
    }
}

/// The detached daemon: its own session, /dev/null in, the daemon log out.
fn run_detached(
    plan: crate::config::Plan,
    control: server::ControlSocket,
    log: File,
    ready_w: std::os::fd::OwnedFd,
    options: Options,
) -> ! {
    let _ = nix::unistd::setsid();
    if let Ok(null) = File::open("/dev/null") {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    // SAFETY: as above.
    unsafe {
        libc::dup2(log.as_raw_fd(), 1);
        libc::dup2(log.as_raw_fd(), 2);
    }
    drop(log);
    // SAFETY: ready_w is an owned pipe write end.
    let ready = unsafe { File::from_raw_fd(ready_w.into_raw_fd()) };
    let options = Options {
        ready: Some(ready),
        ..options
    };
    let code = match supervisor::run(plan, Inbox::Socket(control), options) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    };
    std::process::exit(code);
}

fn failed(e: impl ToString) -> CommandError {
    CommandError::Failed(e.to_string())
}

fn init_tracing(ansi: bool) {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(ansi)
        .try_init();
}
