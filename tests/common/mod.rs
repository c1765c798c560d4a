//! Test harness: runs the real `sentineld` binary in a temp dir and ends
//! everything it started, by pid or process group, even when a test fails.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_sentineld");

/// Fixes the daemon's random source. Its first eight retry-lottery draws are
/// all below 0.27 (a unit test in src/strategy/rng.rs pins them), so a
/// retry whose probability is above that goes through, deterministically.
pub const SEED: &str = "37649";

/// `GET /` on 127.0.0.1:`port`: the whole answer, or None.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Poll `cond` until it holds or `timeout` passes; panics with `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Field `n` (1-based) of /proc/PID/stat.
pub fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = stat.rfind(')')?;
    stat[close + 1..]
        .split_whitespace()
        .nth(n - 3)
        .map(str::to_string)
}

/// A process exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    matches!(stat_field(pid, 3).as_deref(), Some(s) if s != "Z")
}

pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// Live members of process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|p| stat_field(*p, 5).and_then(|g| g.parse().ok()) == Some(pgid) && alive(*p))
        .collect()
}

pub fn children_of(ppid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|p| stat_field(*p, 4).and_then(|g| g.parse().ok()) == Some(ppid))
        .collect()
}

/// A directory of ours in /tmp that any user can read, for copies of the
/// binary and of fixtures (the build dir of a CI clone need not be readable
/// by `nobody`), for tests that act as another uid.
fn dir_for_anyone() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join("sentineld-test-bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A shared name in /tmp: only run from a dir that is ours alone.
    let m = std::fs::symlink_metadata(&dir).unwrap();
    assert!(
        m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == unsafe { libc::geteuid() },
        "{} is not a directory of ours",
        dir.display()
    );
    dir
}

/// A copy of `source` in [`dir_for_anyone`], named `name`, mode 0755; made
/// once under that name and shared by every test process.
fn copy_for_anyone(source: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir_for_anyone();
    let copy = dir.join(name);
    if !copy.exists() {
        let tmp = dir.join(format!("partial-{}-{name}", std::process::id()));
        std::fs::copy(source, &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &copy).unwrap();
    }
    copy
}

/// A copy of the binary that any user can run.
pub fn bin_for_anyone() -> PathBuf {
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        // One copy per build of the binary.
        let meta = std::fs::metadata(BIN).unwrap();
        let stamp = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        copy_for_anyone(Path::new(BIN), &format!("sentineld-{stamp}-{}", meta.len()))
    })
    .clone()
}

/// A copy of a fixture that any user can read and run; one per content.
pub fn fixture_for_anyone(name: &str) -> PathBuf {
    let source = fixture(name);
    let text = std::fs::read(&source).unwrap();
    let sum = text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    copy_for_anyone(&source, &format!("{sum:016x}-{name}"))
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn kill(pid: i32, sig: i32) {
    unsafe { libc::kill(pid, sig) };
}

/// A resource limit sentineld is started with: (resource, soft, hard).
pub type Limit = (libc::__rlimit_resource_t, libc::rlim_t, libc::rlim_t);

pub struct Instance {
    pub dir: tempfile::TempDir,
    /// Set in sentineld's process before exec, at every launch.
    pub limits: Vec<Limit>,
    pub child: Option<Child>,
    /// Process groups seen in status, killed on drop if still there.
    pub groups: std::cell::RefCell<Vec<i32>>,
}

impl Instance {
    /// Write `yaml` as services.yaml in a fresh temp dir and run
    /// `sentineld up services.yaml` there until its socket answers.
    pub fn start(yaml: &str) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml)
    }

    pub fn start_in(dir: tempfile::TempDir, yaml: &str) -> Instance {
        Self::start_limited(dir, yaml, &[])
    }

    /// As [`Instance::start_in`], with sentineld's resource limits set to
    /// `limits` (as a shell's `ulimit` or `prlimit` would), at every launch.
    pub fn start_limited(dir: tempfile::TempDir, yaml: &str, limits: &[Limit]) -> Instance {
        Self::start_with_limits(dir, yaml, limits, |_| {})
    }

    /// Like [`Instance::start_in`], with `configure` applied to the `up`
    /// command (an environment variable, a limit for this launch only).
    pub fn start_with(
        dir: tempfile::TempDir,
        yaml: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Instance {
        Self::start_with_limits(dir, yaml, &[], configure)
    }

    fn start_with_limits(
        dir: tempfile::TempDir,
        yaml: &str,
        limits: &[Limit],
        configure: impl FnOnce(&mut Command),
    ) -> Instance {
        std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
        let mut inst = Instance {
            dir,
            limits: limits.to_vec(),
            child: None,
            groups: Default::default(),
        };
        inst.launch_with(configure);
        inst
    }

    pub fn launch(&mut self) {
        self.launch_with(|_| {});
    }

    pub fn launch_with(&mut self, configure: impl FnOnce(&mut Command)) {
        let mut up = Command::new(BIN);
        let limits = self.limits.clone();
        // SAFETY: only setrlimit between fork and exec, on data made before.
        unsafe {
            up.pre_exec(move || {
                for (resource, soft, hard) in &limits {
                    let limit = libc::rlimit {
                        rlim_cur: *soft,
                        rlim_max: *hard,
                    };
                    if libc::setrlimit(*resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        };
        as_test_daemon(up.args(["up", "services.yaml"]), self.dir.path());
        configure(&mut up);
        self.child = Some(up.spawn().unwrap());
        wait_until(Duration::from_secs(10), "the control socket", || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.path("up.log")).unwrap_or_default();
                panic!("sentineld up exited ({st}) before serving:\n{log}");
            }
            self.cli(&["status", "--json"]).status.success()
        });
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Run a client command; it is killed (and the test fails) if it has not
    /// finished within 30 s, so a hanging client cannot hang the suite.
    pub fn cli(&self, args: &[&str]) -> Output {
        let child = Command::new(BIN)
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SENTINELD_STATE_DIR")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                kill(pid, libc::SIGKILL);
                panic!("`sentineld {}` did not finish within 30 s", args.join(" "));
            }
        }
    }

    pub fn status(&self) -> Value {
        let out = self.cli(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        for s in v["services"].as_array().unwrap() {
            if let Some(pid) = s["pid"].as_i64() {
                let mut g = self.groups.borrow_mut();
                if !g.contains(&(pid as i32)) {
                    g.push(pid as i32);
                }
            }
        }
        v
    }

    pub fn service(&self, name: &str) -> Value {
        self.status()["services"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.service(name)["pid"].as_i64().map(|p| p as i32)
    }

    /// Wait until `name` runs with a pid other than `not`; return it.
    pub fn wait_running(&self, name: &str, not: Option<i32>) -> i32 {
        let mut pid = None;
        wait_until(Duration::from_secs(10), &format!("{name} running"), || {
            let s = self.service(name);
            pid = s["pid"].as_i64().map(|p| p as i32);
            s["state"] == "running" && pid.is_some() && pid != not
        });
        pid.unwrap()
    }

    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        let mut last = Value::Null;
        wait_until(Duration::from_secs(10), &format!("{name} {state}"), || {
            last = self.service(name);
            last["state"] == state
        });
        last
    }

    /// The daemon's events for one service, oldest first.
    pub fn events(&self, name: &str) -> Vec<Value> {
        let out = self.cli(&["events", name, "--json"]);
        assert!(out.status.success(), "events failed: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// When the last event of `kind` happened to `name` (RFC 3339, so the
    /// strings compare in time order).
    pub fn last_event_at(&self, name: &str, kind: &str) -> String {
        self.events(name)
            .iter()
            .rev()
            .find(|e| e["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} event for {name}"))["at"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The messages of `name`'s events of one kind, oldest first.
    pub fn messages_of(&self, name: &str, kind: &str) -> Vec<String> {
        let events = self.events(name).into_iter();
        let of_kind = events.filter(|e| e["kind"] == kind);
        of_kind
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    /// Just the messages of `events`.
    pub fn messages(&self, name: &str) -> Vec<String> {
        self.events(name)
            .iter()
            .map(|e| e["message"].as_str().unwrap().to_string())
            .collect()
    }

    pub fn log(&self, name: &str) -> String {
        let state_dir = self.path(sentineld::state_dir::DEFAULT_NAME);
        std::fs::read_to_string(sentineld::state_dir::StateDir::new(&state_dir).log_file(name))
            .unwrap_or_default()
    }

    /// `down`, and wait for the daemon to exit; returns its exit status.
    pub fn down(&mut self) -> std::process::ExitStatus {
        let out = self.cli(&["down"]);
        assert!(out.status.success(), "down failed: {out:?}");
        self.wait_exit()
    }

    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st;
            }
            assert!(Instant::now() < deadline, "sentineld did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(child.id() as i32, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for g in self.groups.borrow().iter() {
            if !group_members(*g).is_empty() {
                kill(-*g, libc::SIGKILL);
            }
        }
    }
}

/// `cmd` (an `up`, or what runs one) as the tests run a daemon: in `dir`,
/// its output appended to `dir/up.log`, the seed fixed, no colour, no
/// state dir from the environment, in a process group of its own.
pub fn as_test_daemon(cmd: &mut Command, dir: &Path) {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("up.log"))
        .unwrap();
    cmd.current_dir(dir)
        .env_remove("SENTINELD_STATE_DIR")
        .env("NO_COLOR", "1")
        .env("SENTINELD_SEED", SEED)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .process_group(0);
}

/// Where a cgroup of our own could be made, if cgroup v2 is writable here.
pub fn cgroups_writable() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mount = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        right
            .starts_with("cgroup2 ")
            .then(|| left.split(' ').nth(4).map(std::path::PathBuf::from))?
    });
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let (Some(mount), Some(path)) = (mount, own.lines().find_map(|l| l.strip_prefix("0::"))) else {
        return false;
    };
    let probe = mount
        .join(path.trim().trim_start_matches('/'))
        .join(format!("sentineld-test-{}", std::process::id()));
    let ok = std::fs::create_dir(&probe).is_ok();
    let _ = std::fs::remove_dir(&probe);
    ok
}
