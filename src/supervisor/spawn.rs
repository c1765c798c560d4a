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

/// The environment every child starts from (sentineld's own, and the
/// notify socket), made once and shared: 10,000 services do not carry
/// 10,000 copies of it.
#[derive(Clone, Default)]
pub struct BaseEnv(std::sync::Arc<[CString]>);

impl BaseEnv {
    pub fn new(vars: Vec<(Vec<u8>, Vec<u8>)>) -> BaseEnv {
        let vars: Vec<CString> = (vars.into_iter())
            .filter_map(|(mut k, v)| {
                k.push(b'=');
                k.extend_from_slice(&v);
                CString::new(k).ok()
            })
            .collect();
        BaseEnv(vars.into())
    }

    /// Each variable's name and value.
    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.0.iter().map(|c| {
            let b = c.as_bytes();
            let eq = b.iter().position(|x| *x == b'=').unwrap_or(b.len());
            (&b[..eq], b.get(eq + 1..).unwrap_or_default())
        })
    }
}

/// A service's process image, prepared once per service.
pub struct SpawnSpec {
    program: ProgramRef,
    argv: Vec<CString>,
    /// The shared environment, but for the variables at `hidden`, which
    /// the service's own (`own`) replace.
    base: BaseEnv,
    hidden: Vec<usize>,
    own: Vec<CString>,
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
    pub fn new(spec: &ServiceSpec, base_env: &BaseEnv) -> SpawnSpec {
        SpawnSpec::for_command(&spec.command, spec, base_env, &[])
    }

    /// Another command of the service (fallback, cleanup, hook): same cwd,
    /// user and environment, plus `extra` variables (the failure context).
    pub fn for_command(
        command: &Command,
        spec: &ServiceSpec,
        base_env: &BaseEnv,
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
        let hidden: Vec<usize> = (base_env.pairs().enumerate())
            .filter(|(_, (k, _))| overridden(k))
            .map(|(i, _)| i)
            .collect();
        let mut env: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for (k, v) in spec.env.iter().chain(extra.iter().map(|(k, v)| (k, v))) {
            env.push((k.as_bytes().to_vec(), v.as_bytes().to_vec()));
        }
        env.push((b"SENTINELD_SERVICE".to_vec(), spec.name.as_bytes().to_vec()));
        let path_var = (env.iter())
            .find(|(k, _)| k == b"PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| {
                (base_env.pairs())
                    .find(|(k, _)| *k == b"PATH")
                    .map(|(_, v)| v.to_vec())
            })
            .unwrap_or_else(|| DEFAULT_PATH.as_bytes().to_vec());
        let own = BaseEnv::new(env).0.to_vec();
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
            base: base_env.clone(),
            hidden,
            own,
            cwd: CString::new(spec.cwd.as_os_str().as_bytes()).expect("paths have no NUL"),
            user,
            path_var,
        }
    }

    fn resolve(&self) -> Result<CString, SpawnError> {
        match &self.program {
            ProgramRef::Path(p) => Ok(p.clone()),
            ProgramRef::Search(name) => {
                search_path(&self.path_var, name).ok_or_else(|| SpawnError::NotFound {
                    program: String::from_utf8_lossy(name).into_owned(),
                })
            }
        }
    }
}

/// What a spawn searches when neither the service nor sentineld has a
/// `PATH`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The program a spawn runs for a bare `name`: the first `DIR/name` of
/// `path_var` (an empty entry is the current directory) that this user may
/// execute and that is not a directory. `check` asks the same.
pub fn search_path(path_var: &[u8], name: &[u8]) -> Option<CString> {
    for dir in path_var.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(name);
        let c = CString::new(full).ok()?;
        // SAFETY: c is a valid NUL-terminated string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            let p = Path::new(OsStr::from_bytes(c.as_bytes()));
            if !p.is_dir() {
                return Some(c);
            }
        }
    }
    None
}

/// The steps of a child between clone and exec that can fail.
#[derive(Debug, Clone, Copy)]
enum Step {
    Descriptors,
    Cgroup,
    Stdio,
    Cwd,
    Limit,
    User,
    DeathSignal,
    Exec,
}

mod clone3;
pub mod slots;

/// A freshly started child.
pub struct Spawned {
    pub pid: i32,
    /// Why it did not get to run the program (it exits 127): the errno and
    /// the step that failed, worded; None: it runs the program.
    pub failed: Option<(i32, String)>,
}

/// The descriptors a child gets as 0, 1 and 2, and the cgroup directory it
/// moves itself into, if any.
pub struct Stdio<'a> {
    pub stdin: &'a OwnedFd,
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
    /// The cgroup's directory, and whether the child may be created in it
    /// (see [`super::cgroup::Cgroups::dir`]).
    pub cgroup: Option<(&'a OwnedFd, bool)>,
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
    /// The service's cgroup directory, or -1.
    cgroup: RawFd,
    /// The child was created in the cgroup (clone3); else it moves itself
    /// there through `cgroup.procs`.
    born_in_cgroup: std::cell::Cell<bool>,
    /// The child shares sentineld's descriptor table and keeps only those
    /// below this number (see [`slots`]); -1: it has a copy of its own.
    keep_below: RawFd,
    /// Where the child leaves the errno of the step that failed, and the
    /// step: it shares sentineld's memory until it execs or exits.
    errno: std::cell::Cell<i32>,
    step: std::cell::Cell<Step>,
}

/// The child's stack: it runs on its own, in sentineld's memory, until
/// exec; what it does needs little.
const CHILD_STACK: usize = 64 << 10;

/// Start `spec` as a child with `stdio`, the way posix_spawn does: the
/// child shares sentineld's memory (CLONE_VM) and sentineld waits until it
/// has exec'd or failed (CLONE_VFORK), so a start costs the same whatever
/// sentineld's size — no page tables are copied, none torn down at exec —
/// and an exec failure is known here, with its errno.
pub fn spawn(spec: &SpawnSpec, stdio: &Stdio<'_>) -> Result<Spawned, SpawnError> {
    let program = spec.resolve()?;
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = (spec.base.0.iter().enumerate())
        .filter(|(i, _)| !spec.hidden.contains(i))
        .map(|(_, v)| v.as_ptr())
        .chain(spec.own.iter().map(|v| v.as_ptr()))
        .collect();
    envp.push(std::ptr::null());
    let given = [
        Some(stdio.stdin.as_raw_fd()),
        Some(stdio.stdout.as_raw_fd()),
        Some(stdio.stderr.as_raw_fd()),
        stdio.cgroup.map(|(fd, _)| fd.as_raw_fd()),
    ];
    let slots = slots::lock();
    let (fds, keep_below) = match &slots {
        Some(s) => {
            let at = s.fill(given).map_err(|e| {
                SpawnError::Pipe(nix::Error::from_raw(
                    e.raw_os_error().unwrap_or(libc::EBADF),
                ))
            })?;
            (at, if s.close_range { s.end() } else { -1 })
        }
        None => (given.map(|fd| fd.unwrap_or(-1)), -1),
    };
    let setup = ChildSetup {
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        program: &program,
        argv: &argv,
        envp: &envp,
        cwd: &spec.cwd,
        user: spec.user.as_ref(),
        nofile: CHILD_NOFILE.get().copied(),
        fds: [fds[0], fds[1], fds[2]],
        cgroup: fds[3],
        born_in_cgroup: std::cell::Cell::new(stdio.cgroup.is_some_and(|(_, born)| born)),
        keep_below,
        errno: std::cell::Cell::new(0),
        step: std::cell::Cell::new(Step::Exec),
    };
    let share = if keep_below >= 0 {
        libc::CLONE_FILES
    } else {
        0
    };
    let started = start(&setup, share);
    if let Some(s) = &slots {
        s.clear();
    }
    drop(slots);
    let pid = started.map_err(SpawnError::Fork)?;
    let errno = setup.errno.get();
    let failed = (errno != 0).then(|| {
        let what = match setup.step.get() {
            Step::Descriptors => "taking its descriptors".to_string(),
            Step::Cgroup => "joining its cgroup".to_string(),
            Step::Stdio => "setting up stdin, stdout and stderr".to_string(),
            Step::Cwd => format!("chdir to {}", setup.cwd.to_string_lossy()),
            Step::Limit => "restoring RLIMIT_NOFILE".to_string(),
            Step::User => "switching user".to_string(),
            Step::DeathSignal => "setting PR_SET_PDEATHSIG".to_string(),
            Step::Exec => format!("exec {}", program.to_string_lossy()),
        };
        // The C library's words ("Resource temporarily unavailable"),
        // without std's " (os error 11)".
        let why = std::io::Error::from_raw_os_error(errno).to_string();
        let why = why
            .rsplit_once(" (os error")
            .map_or(why.as_str(), |(w, _)| w);
        (errno, format!("{what}: {why}"))
    });
    Ok(Spawned { pid, failed })
}

/// Clone the child that runs `setup`, born in its cgroup where the kernel
/// can, and wait for it to exec or fail.
fn start(setup: &ChildSetup<'_>, share: libc::c_int) -> Result<i32, nix::Error> {
    // One stack for every child, allocated once: a child is done with it
    // when the clone returns (CLONE_VFORK). Locked, for daemons run side
    // by side in one process.
    static STACK: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());
    let mut stack = STACK.lock().unwrap_or_else(|e| e.into_inner());
    if stack.len() < CHILD_STACK {
        stack.resize(CHILD_STACK, 0);
    }
    // 16-byte aligned both ends (it grows down from the top).
    let base = (stack.as_mut_ptr() as usize + 15) & !15;
    let size = (CHILD_STACK - 16) & !15;
    let arg = (setup as *const ChildSetup<'_>).cast_mut().cast();
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | share;
    // Block every signal across the clone: a handler of sentineld's run in
    // the child would run on sentineld's memory (and a stop signal would be
    // swallowed). The child defaults every handler, then unblocks, so such
    // a signal is delivered to it with its default action.
    // SAFETY: sigset_t is plain data, initialised by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut saved: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointers to sigset_t.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut saved);
    }
    // SAFETY: the child runs `child_main` on its own stack, makes only
    // raw system calls on data prepared before (see child_after_fork),
    // then execs or _exits; until then this thread is suspended
    // (CLONE_VFORK), so `setup` and `stack` outlive it.
    let born_in = (setup.cgroup >= 0 && setup.born_in_cgroup.get())
        .then(|| unsafe {
            clone3::spawn_into(
                child_main,
                arg,
                (base as *mut u8, size),
                flags,
                setup.cgroup,
            )
        })
        .flatten();
    let result = match born_in {
        Some(r) => r.map_err(nix::Error::from_raw),
        None => {
            setup.born_in_cgroup.set(false);
            // SAFETY: as above.
            let pid = unsafe {
                libc::clone(
                    child_main,
                    (base + size) as *mut libc::c_void,
                    flags | libc::SIGCHLD,
                    arg,
                )
            };
            if pid < 0 {
                Err(nix::Error::last())
            } else {
                Ok(pid)
            }
        }
    };
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, std::ptr::null_mut()) };
    drop(stack);
    result
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the ChildSetup spawn passed, alive while we run.
    unsafe { child_after_fork(&*arg.cast::<ChildSetup<'_>>()) }
}

/// Runs in the child, in sentineld's memory until exec: only system
/// calls and async-signal-safe libc calls that touch no shared state, no
/// allocation. Credentials change through raw system calls: glibc's
/// setuid() would signal every thread of sentineld (its setxid broadcast),
/// since the child sees sentineld's thread list.
unsafe fn child_after_fork(setup: &ChildSetup<'_>) -> ! {
    unsafe {
        let fail = |step: Step| fail(setup, step);
        // A table of our own with the low descriptors only, before any
        // change to it (it is sentineld's until then).
        if setup.keep_below >= 0
            && libc::syscall(
                libc::SYS_close_range,
                setup.keep_below as libc::c_uint,
                !0u32,
                libc::CLOSE_RANGE_UNSHARE,
            ) != 0
        {
            fail(Step::Descriptors);
        }
        // Its own session and process group: no controlling terminal, and a
        // group id (= pid) that signals the whole service.
        libc::setsid();
        // Into the service's cgroup before anything else can fork ("0" is
        // the writing process), and while still root.
        if setup.cgroup >= 0 && !setup.born_in_cgroup.get() {
            let procs = libc::openat(
                setup.cgroup,
                c"cgroup.procs".as_ptr(),
                libc::O_WRONLY | libc::O_CLOEXEC,
            );
            if procs < 0 || libc::write(procs, c"0".as_ptr().cast(), 1) != 1 {
                fail(Step::Cgroup);
            }
            libc::close(procs);
        }
        // All signals are blocked (see spawn). Handlers would reset on exec
        // by themselves, but one pending now must not run sentineld's
        // handler, and ignored signals (SIGPIPE, by Rust's runtime) would
        // stay ignored: default them all; unblock just before exec.
        default_every_signal();
        for (target, fd) in setup.fds.iter().enumerate() {
            if libc::dup2(*fd, target as libc::c_int) < 0 {
                fail(Step::Stdio);
            }
        }
        become_the_program(setup)
    }
}

/// The kernel's `struct sigaction` (x86_64, aarch64), for the raw
/// `rt_sigaction`, which unlike glibc's wrapper takes every signal.
#[repr(C)]
pub(super) struct KernelSigaction {
    pub handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

impl KernelSigaction {
    /// `handler` (SIG_DFL, SIG_IGN) with no flags and an empty mask.
    pub(super) const fn of(handler: usize) -> KernelSigaction {
        KernelSigaction {
            handler,
            flags: 0,
            restorer: 0,
            mask: 0,
        }
    }
}

/// Every signal's disposition back to its default, by the raw system call:
/// glibc's `signal()` refuses the two realtime signals it keeps for itself
/// (32 and 33), and one of them ignored by whoever started sentineld would
/// otherwise stay ignored in every service. Async-signal-safe.
unsafe fn default_every_signal() {
    let dfl = KernelSigaction::of(libc::SIG_DFL);
    const KERNEL_NSIG: i32 = 64;
    for sig in 1..=KERNEL_NSIG {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: a valid sigaction, no old one asked for, the kernel's
            // sigset size.
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        }
    }
}

/// The second half of [`child_after_fork`]: its directory, limits and
/// user, the parent-death signal, then exec.
unsafe fn become_the_program(setup: &ChildSetup<'_>) -> ! {
    unsafe {
        let fail = |step: Step| fail(setup, step);
        if libc::chdir(setup.cwd.as_ptr()) != 0 {
            fail(Step::Cwd);
        }
        if let Some(limit) = &setup.nofile
            && libc::setrlimit(libc::RLIMIT_NOFILE, limit) != 0
        {
            fail(Step::Limit);
        }
        if let Some((uid, gid, groups)) = setup.user
            && (libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setgid, *gid) != 0
                || libc::syscall(libc::SYS_setuid, *uid) != 0)
        {
            fail(Step::User);
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
            fail(Step::DeathSignal);
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
        fail(Step::Exec)
    }
}

/// A step failed: leave its errno and name where spawn reads them, exit.
unsafe fn fail(setup: &ChildSetup<'_>, step: Step) -> ! {
    unsafe {
        setup.errno.set(*libc::__errno_location());
        setup.step.set(step);
        libc::_exit(127)
    }
}
