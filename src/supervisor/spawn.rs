//! fork + exec of a service's process.
//!
//! Everything the child needs (argv, envp, paths, ids) is built before the
//! fork; between fork and exec the child makes only async-signal-safe calls.
//! Must be called from the main thread: `PR_SET_PDEATHSIG` fires when the
//! thread that forked dies, and the main thread lives as long as sentineld.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::config::{Command, ServiceSpec};

/// A service's process image, prepared once per service.
pub struct SpawnSpec {
    program: ProgramRef,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    path_var: Vec<u8>,
}

enum ProgramRef {
    /// Contains a `/`: exec'd as given (relative to `cwd`).
    Path(CString),
    /// Looked up in `PATH` at each spawn, so a binary installed later is found.
    Search(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{program}: not found in PATH")]
    NotFound { program: String },
    #[error("fork failed: {0}")]
    Fork(nix::Error),
    #[error("pipe failed: {0}")]
    Pipe(nix::Error),
}

impl SpawnSpec {
    /// The service's own command.
    pub fn new(spec: &ServiceSpec, base_env: &[(Vec<u8>, Vec<u8>)]) -> SpawnSpec {
        SpawnSpec::for_command(&spec.command, spec, base_env, &[])
    }

    /// Another command of the service (fallback, cleanup, hook): same cwd,
    /// user and environment, plus `extra` variables (the failure context).
    pub fn for_command(
        command: &Command,
        spec: &ServiceSpec,
        base_env: &[(Vec<u8>, Vec<u8>)],
        extra: &[(String, String)],
    ) -> SpawnSpec {
        let argv_s = command.argv();
        let argv: Vec<CString> = argv_s
            .iter()
            .map(|a| CString::new(a.as_bytes()).expect("validated: no NUL"))
            .collect();
        let program = if command.searches_path() {
            ProgramRef::Search(argv[0].as_bytes().to_vec())
        } else {
            ProgramRef::Path(argv[0].clone())
        };
        let overridden = |k: &[u8]| {
            let k = std::str::from_utf8(k).unwrap_or("");
            spec.env.contains_key(k)
                || k == "SENTINELD_SERVICE"
                || extra.iter().any(|(e, _)| e == k)
        };
        let mut env: Vec<(Vec<u8>, Vec<u8>)> = base_env
            .iter()
            .filter(|(k, _)| !overridden(k))
            .cloned()
            .collect();
        for (k, v) in spec.env.iter().chain(extra.iter().map(|(k, v)| (k, v))) {
            env.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        env.push((b"SENTINELD_SERVICE".to_vec(), spec.name.as_bytes().to_vec()));
        let path_var = env
            .iter()
            .find(|(k, _)| k == b"PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_vec()
            });
        let envp = env
            .into_iter()
            .filter_map(|(mut k, v)| {
                k.push(b'=');
                k.extend_from_slice(&v);
                CString::new(k).ok()
            })
            .collect();
        let user = spec.user.as_ref().map(|u| {
            let name = CString::new(u.name.as_bytes()).unwrap_or_default();
            let groups = nix::unistd::getgrouplist(&name, nix::unistd::Gid::from_raw(u.gid))
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_else(|_| vec![u.gid]);
            (u.uid, u.gid, groups)
        });
        SpawnSpec {
            program,
            argv,
            envp,
            cwd: CString::new(spec.cwd.as_os_str().as_bytes()).expect("paths have no NUL"),
            user,
            path_var,
        }
    }

    fn resolve(&self) -> Result<CString, SpawnError> {
        match &self.program {
            ProgramRef::Path(p) => Ok(p.clone()),
            ProgramRef::Search(name) => {
                for dir in self.path_var.split(|b| *b == b':') {
                    let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
                    let mut full = dir.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(name);
                    let c = CString::new(full).expect("no NUL");
                    // SAFETY: c is a valid NUL-terminated string.
                    if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                        let p = Path::new(OsStr::from_bytes(c.as_bytes()));
                        if !p.is_dir() {
                            return Ok(c);
                        }
                    }
                }
                Err(SpawnError::NotFound {
                    program: String::from_utf8_lossy(name).into_owned(),
                })
            }
        }
    }
}

/// A freshly forked child.
pub struct Spawned {
    pub pid: i32,
    /// Read end of a CLOEXEC pipe: empty at EOF when exec succeeded, else the
    /// child wrote its `errno` before exiting 127.
    pub exec_status: OwnedFd,
}

/// The descriptors a child gets as 0, 1 and 2, and the `cgroup.procs` it
/// moves itself into, if any.
pub struct Stdio<'a> {
    pub stdin: &'a OwnedFd,
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
    pub cgroup: Option<&'a OwnedFd>,
}

/// RLIMIT_NOFILE as sentineld was started with: sentineld raises its own
/// soft limit, its children get this one back. Set once, before any fork.
static CHILD_NOFILE: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Record the RLIMIT_NOFILE every child is to get, before sentineld raises
/// its own. Only the first call counts: a later run in the same process
/// would see the raised limit.
pub fn keep_nofile_for_children(soft: libc::rlim_t, hard: libc::rlim_t) {
    let _ = CHILD_NOFILE.set(libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    });
}

/// What the forked child works from, every piece prepared before the fork.
struct ChildSetup<'a> {
    parent: libc::pid_t,
    program: &'a CString,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    cwd: &'a CString,
    user: Option<&'a (libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    nofile: Option<libc::rlimit>,
    fds: [RawFd; 3],
    /// `cgroup.procs` of the service's cgroup, or -1.
    cgroup: RawFd,
    err_w: RawFd,
}

pub fn spawn(spec: &SpawnSpec, stdio: &Stdio<'_>) -> Result<Spawned, SpawnError> {
    let program = spec.resolve()?;
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)?;
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|a| a.as_ptr()).collect();
    envp.push(std::ptr::null());
    let setup = ChildSetup {
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        program: &program,
        argv: &argv,
        envp: &envp,
        cwd: &spec.cwd,
        user: spec.user.as_ref(),
        nofile: CHILD_NOFILE.get().copied(),
        fds: [
            stdio.stdin.as_raw_fd(),
            stdio.stdout.as_raw_fd(),
            stdio.stderr.as_raw_fd(),
        ],
        cgroup: stdio.cgroup.map_or(-1, |fd| fd.as_raw_fd()),
        err_w: err_w.as_raw_fd(),
    };
    // Block every signal across the fork: a signal that reached the child
    // before it reset its handlers would run sentineld's handler there (a
    // stop signal swallowed, and reported to sentineld's own loop). The
    // child resets the handlers, then unblocks, so such a signal is
    // delivered to it with its default action.
    // SAFETY: sigset_t is plain data, initialised by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
    }
    // SAFETY: the child only runs `child_after_fork`, which makes
    // async-signal-safe calls on data prepared above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        // SAFETY: restores the mask saved above.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut()) };
    }
    if pid < 0 {
        return Err(SpawnError::Fork(nix::Error::last()));
    }
    if pid == 0 {
        // SAFETY: we are the child of a fork; see child_after_fork.
        unsafe { child_after_fork(&setup) }
    }
    drop(err_w);
    Ok(Spawned {
        pid,
        exec_status: err_r,
    })
}

/// Runs in the forked child. Only async-signal-safe libc calls, no
/// allocation.
unsafe fn child_after_fork(setup: &ChildSetup<'_>) -> ! {
    unsafe {
        let err_w = setup.err_w;
        let fail = || -> ! {
            let bytes = (*libc::__errno_location()).to_ne_bytes();
            libc::write(err_w, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        };
        // Its own session and process group: no controlling terminal, and a
        // group id (= pid) that signals the whole service.
        libc::setsid();
        // Into the service's cgroup before anything else can fork ("0" is
        // the writing process), and while still root.
        if setup.cgroup >= 0 && libc::write(setup.cgroup, c"0".as_ptr().cast(), 1) != 1 {
            fail();
        }
        // All signals are blocked (see spawn). Handlers would reset on exec
        // by themselves, but one pending now must not run sentineld's
        // handler, and ignored signals (SIGPIPE, by Rust's runtime) would
        // stay ignored: default them all; unblock just before exec.
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        for (target, fd) in setup.fds.iter().enumerate() {
            if libc::dup2(*fd, target as libc::c_int) < 0 {
                fail();
            }
        }
        if libc::chdir(setup.cwd.as_ptr()) != 0 {
            fail();
        }
        if let Some(limit) = &setup.nofile
            && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
        {
            fail();
        }
        if let Some((uid, gid, groups)) = setup.user
            && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                || libc::setgid(*gid) != 0
                || libc::setuid(*uid) != 0)
        {
            fail();
        }
        // After the change of ids: the kernel clears the parent-death
        // signal when the effective uid or gid changes.
        if libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            fail();
        }
        // The parent may have died before the prctl.
        if libc::getppid() != setup.parent {
            libc::_exit(1);
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(
            setup.program.as_ptr(),
            setup.argv.as_ptr(),
            setup.envp.as_ptr(),
        );
        fail()
    }
}

/// After the child is reaped: the errno it reported if exec failed.
pub fn exec_error(exec_status: &OwnedFd) -> Option<std::io::Error> {
    let mut buf = [0u8; 4];
    match nix::unistd::read(exec_status, &mut buf) {
        Ok(4) => Some(std::io::Error::from_raw_os_error(i32::from_ne_bytes(buf))),
        _ => None,
    }
}
