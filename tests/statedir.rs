//! The state dir is trusted only if it is ours alone, nothing in it is
//! followed through a symlink, and the `pgids` file kills only groups a
//! live leader proves are the recorded ones. Run as root (as CI does): a
//! directory of uid 65534 stands for another user's.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use common::*;

/// Says hello (so a log is written at once) and leaves a mark when started.
const WEB: &str = "services:\n  web:\n    command: echo hello; touch started; exec sleep 1000\n";
const NOBODY: u32 = 65534;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A project dir: services.yaml, and a state dir `.sentineld` with `logs/`,
/// both 0700 and ours, as sentineld makes them.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), WEB).unwrap();
    let logs = dir.path().join(".sentineld/logs");
    std::fs::create_dir_all(&logs).unwrap();
    for d in [logs.parent().unwrap(), &logs] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    dir
}

fn state(dir: &Path) -> PathBuf {
    dir.join(".sentineld")
}

/// What `up` says of a symlink where a file or directory of its own should be.
fn symlink_refused(path: &Path) -> String {
    format!(
        "sentineld: {} is a symlink: refusing to follow it",
        path.display()
    )
}

fn chown(path: &Path, uid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
}

/// A file that must come out of the test as it went in.
struct Victim {
    path: PathBuf,
    mtime: SystemTime,
    _dir: tempfile::TempDir,
}

impl Victim {
    fn new() -> Victim {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim");
        std::fs::write(&path, "precious\n").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        Victim {
            path,
            mtime,
            _dir: dir,
        }
    }

    fn plant(&self, link: &Path) {
        std::os::unix::fs::symlink(&self.path, link).unwrap();
    }

    fn assert_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.path).unwrap(), "precious\n");
        let mtime = std::fs::metadata(&self.path).unwrap().modified().unwrap();
        assert_eq!(mtime, self.mtime, "{} was written", self.path.display());
    }
}

/// Runs `sentineld down` in a dir on drop: stops a daemon `up -d` started
/// when a test fails before it can.
struct DownOnDrop<'a>(&'a Path);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("down")
            .current_dir(self.0)
            .env_remove("SENTINELD_STATE_DIR")
            .output();
    }
}

/// Run `sentineld up [-d] services.yaml` in `dir`, expecting a refusal:
/// returns its exit code and stderr, once it has exited with nothing
/// started. A daemon that starts its service instead is stopped, and the
/// test fails.
fn up_refused(dir: &Path, detach: bool) -> (Option<i32>, String) {
    let _down = DownOnDrop(dir);
    let log = dir.join("up.log");
    let mut up = Command::new(BIN);
    up.arg("up")
        .args(detach.then_some("-d"))
        .arg("services.yaml")
        .current_dir(dir)
        .env_remove("SENTINELD_STATE_DIR")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0);
    let mut child = up.spawn().unwrap();
    let mut status = None;
    wait_until(Duration::from_secs(10), "up to exit or start", || {
        status = child.try_wait().unwrap();
        status.is_some() || dir.join("started").exists()
    });
    if status.is_none() {
        kill(child.id() as i32, libc::SIGTERM);
        let _ = child.wait();
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(
        !dir.join("started").exists(),
        "up started a service instead of refusing:\n{stderr}"
    );
    (status.unwrap().code(), stderr.trim_end().to_string())
}

/// In a fresh project whose state dir `spoil` makes unfit, `up` refuses
/// with "sentineld: " and `message(the state dir)`.
fn refuses(detach: bool, spoil: impl FnOnce(&Path), message: impl FnOnce(String) -> String) {
    let dir = project();
    let sd = state(dir.path());
    spoil(&sd);
    let expected = format!("sentineld: {}", message(sd.display().to_string()));
    assert_eq!(up_refused(dir.path(), detach), (Some(1), expected));
}

#[test]
fn a_state_dir_of_another_user_is_refused_and_nothing_starts() {
    if !root() {
        return;
    }
    for detach in [false, true] {
        refuses(
            detach,
            |sd| chown(sd, NOBODY),
            |sd| format!("state dir {sd} is owned by uid 65534, not 0: refusing to use it"),
        );
    }
}

#[test]
fn a_state_dir_others_may_write_to_is_refused() {
    for (mode, by) in [(0o777, "others"), (0o1777, "others"), (0o770, "its group")] {
        let chmod = |sd: &Path| {
            std::fs::set_permissions(sd, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        refuses(false, chmod, |sd| {
            format!("state dir {sd} is writable by {by} (mode {mode:04o}): refusing to use it")
        });
    }
}

#[test]
fn a_state_dir_that_is_a_symlink_is_refused() {
    symlinked_dir_is_refused(".sentineld");
}

/// With the project's directory `rel` swapped for a symlink to an empty
/// directory elsewhere, `up` refuses and writes nothing there.
fn symlinked_dir_is_refused(rel: &str) {
    let dir = project();
    let link = dir.path().join(rel);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::remove_dir_all(&link).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &link).unwrap();
    let expected = symlink_refused(&link);
    assert_eq!(up_refused(dir.path(), false), (Some(1), expected));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}

#[test]
fn a_log_dir_of_another_user_or_a_symlink_is_refused() {
    if !root() {
        return;
    }
    refuses(
        false,
        |sd| chown(&sd.join("logs"), NOBODY),
        |sd| format!("log dir {sd}/logs is owned by uid 65534, not 0: refusing to use it"),
    );
    symlinked_dir_is_refused(".sentineld/logs");
}

#[test]
fn a_planted_log_symlink_or_hard_link_is_refused_and_its_target_untouched() {
    let (dir, victim) = planted_symlink_is_refused("logs/web.log", false);
    let log = state(dir.path()).join("logs/web.log");
    std::fs::remove_file(&log).unwrap();
    std::fs::hard_link(&victim.path, &log).unwrap();
    let expected = format!(
        "sentineld: {} has 2 links: refusing to write through a hard link",
        log.display()
    );
    assert_eq!(up_refused(dir.path(), false), (Some(1), expected));
    victim.assert_untouched();
}

#[test]
fn the_logs_command_refuses_a_symlinked_log_rather_than_print_its_target() {
    let dir = project();
    let log = state(dir.path()).join("logs/web.log");
    let victim = Victim::new();
    victim.plant(&log);
    for args in [&["logs", "web"][..], &["logs", "web", "-n", "5"]] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--state-dir")
            .arg(state(dir.path()))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim_end(),
            symlink_refused(&log)
        );
        assert!(out.stdout.is_empty(), "{out:?}");
    }
}

#[test]
fn a_planted_lock_or_daemon_log_symlink_is_refused_and_its_target_untouched() {
    for (name, detach) in [("sentineld.lock", false), ("sentineld.log", true)] {
        planted_symlink_is_refused(name, detach);
    }
}

/// With a symlink planted at `rel` in a project's state dir, `up` refuses,
/// and the symlink's target comes out as it went in.
fn planted_symlink_is_refused(rel: &str, detach: bool) -> (tempfile::TempDir, Victim) {
    let dir = project();
    let link = state(dir.path()).join(rel);
    let victim = Victim::new();
    victim.plant(&link);
    let expected = symlink_refused(&link);
    assert_eq!(up_refused(dir.path(), detach), (Some(1), expected));
    victim.assert_untouched();
    assert!(link.symlink_metadata().unwrap().is_symlink());
    (dir, victim)
}

#[test]
fn a_stale_control_socket_that_is_not_a_socket_is_left_and_refused() {
    let dir = project();
    let sock = state(dir.path()).join("control.sock");
    std::fs::write(&sock, "not a socket\n").unwrap();
    let expected = format!(
        "sentineld: {} is not a socket: refusing to use it",
        sock.display()
    );
    assert_eq!(up_refused(dir.path(), false), (Some(1), expected));
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "not a socket\n");

    planted_symlink_is_refused("control.sock", false);
}

#[test]
fn planted_pgids_and_pgids_tmp_symlinks_leave_their_targets_untouched() {
    let dir = project();
    let sd = state(dir.path());
    let (tmp_victim, pgids_victim) = (Victim::new(), Victim::new());
    tmp_victim.plant(&sd.join("pgids.tmp"));
    pgids_victim.plant(&sd.join("pgids"));
    let inst = Instance::start_in(dir, WEB);
    inst.wait_running("web", None);
    // The record of web's group replaced both links.
    wait_until(Duration::from_secs(5), "pgids to be written", || {
        std::fs::symlink_metadata(sd.join("pgids")).is_ok_and(|m| m.is_file())
    });
    assert!(!sd.join("pgids.tmp").exists());
    tmp_victim.assert_untouched();
    pgids_victim.assert_untouched();
    let log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    let refused = format!(
        "{} is a symlink: refusing to follow it",
        sd.join("pgids").display()
    );
    assert!(log.contains(&refused), "{log}");
}

/// A process group of the test's own, in its own session, that `up` must
/// leave alone (or kill, when it is a real leftover); killed by its number
/// on drop if anything of it is left.
struct Group {
    leader: Child,
    pgid: i32,
}

impl Group {
    /// `sh -c script` as leader of a new session.
    fn start(script: &str) -> Group {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            })
        };
        let leader = cmd.spawn().unwrap();
        let pgid = leader.id() as i32;
        Group { leader, pgid }
    }

    fn sleeper() -> Group {
        let g = Group::start("exec sleep 1000");
        wait_until(Duration::from_secs(5), "sleep to run", || {
            std::fs::read_to_string(format!("/proc/{}/comm", g.pgid))
                .is_ok_and(|c| c.trim() == "sleep")
        });
        g
    }

    fn start_time(&self) -> String {
        stat_field(self.pgid, 22).unwrap()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if !group_members(self.pgid).is_empty() {
            kill(-self.pgid, libc::SIGKILL);
        }
        let _ = self.leader.kill();
        let _ = self.leader.wait();
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap()
        .trim()
        .to_string()
}

/// `up` in a project whose state dir holds `pgids`; returns the instance
/// once it serves (the leftovers have been dealt with by then) and its log.
fn up_with_pgids(pgids: &str) -> (Instance, String) {
    let dir = project();
    std::fs::write(state(dir.path()).join("pgids"), pgids).unwrap();
    let inst = Instance::start_in(dir, WEB);
    inst.wait_running("web", None);
    let log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    (inst, log)
}

#[test]
fn a_pgids_record_of_no_service_of_this_plan_kills_nothing() {
    let other = Group::sleeper();
    let line = format!("intruder {} {}", other.pgid, other.start_time());
    let (_inst, log) = up_with_pgids(&format!("boot {}\n{line}\n", boot_id()));
    assert!(alive(other.pgid), "{log}");
    assert!(
        log.contains("pgids line 2: ignored: \"intruder\" is not a service of this plan"),
        "{log}"
    );
}

#[test]
fn a_group_whose_recorded_leader_is_dead_is_left_alone() {
    // The leader exits and leaves a member behind: group `pgid` lives on
    // with nobody whose pid is its number.
    let mut group = Group::start("sleep 1000 & echo $!");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(group.leader.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let member: i32 = line.trim().parse().unwrap();
    group.leader.wait().unwrap();
    assert_eq!(group_members(group.pgid), [member]);
    let record = format!("web {} {}", group.pgid, stat_field(member, 22).unwrap());
    let (_inst, log) = up_with_pgids(&format!("boot {}\n{record}\n", boot_id()));
    assert!(alive(member), "{log}");
    let why = format!(
        "web: left process group {0} alone: its leader (pid {0}) is gone",
        group.pgid
    );
    assert!(log.contains(&why), "{log}");
}

#[test]
fn a_record_of_another_boot_kills_nothing_even_with_the_right_start_time() {
    let other = Group::sleeper();
    let record = format!("web {} {}", other.pgid, other.start_time());
    let boot = "00000000-0000-4000-8000-000000000000";
    let (_inst, log) = up_with_pgids(&format!("boot {boot}\n{record}\n"));
    assert!(alive(other.pgid), "{log}");
    assert!(
        log.contains(
            "pgids: left 1 recorded process group(s) alone: they were recorded in another boot"
        ),
        "{log}"
    );
}

#[test]
fn garbage_in_pgids_is_ignored_with_a_warning_and_a_real_leftover_still_killed() {
    let mut leftover = Group::sleeper();
    let record = format!("web {} {}", leftover.pgid, leftover.start_time());
    let garbage = "web\n\u{0}\u{1}binary\u{ff}junk\nweb 1 1\nweb -5 1\nweb 99999999999 1\n";
    let (_inst, log) = up_with_pgids(&format!("boot {}\n{garbage}{record}\n", boot_id()));
    // Killed: it is our child, so it waits as a zombie until reaped here.
    let status = leftover.leader.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    for line in [
        "pgids line 2: ignored: not NAME PGID STARTTIME",
        "pgids line 4: ignored: group 1 is never a service's",
        "pgids line 6: ignored: \"99999999999\" is not a group number",
    ] {
        assert!(log.contains(line), "{line}\n{log}");
    }
    let killed = format!(
        "web: killed process group {} left by a previous sentineld",
        leftover.pgid
    );
    assert!(log.contains(&killed), "{log}");
}

#[test]
fn sentineld_state_dir_places_the_daemon_and_finds_it_for_the_clients() {
    let project = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = elsewhere.path().join("state");
    std::fs::write(
        project.path().join("services.yaml"),
        "services:\n  a:\n    command: exec sleep 300\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(project.path())
            .env("SENTINELD_STATE_DIR", &dir)
            .output()
            .unwrap()
    };
    let up = run(&["up", "-d", "services.yaml"]);
    assert!(up.status.success(), "{up:?}");
    let status = run(&["status", "--json"]);
    let down = run(&["down"]);
    assert!(status.status.success(), "{status:?}");
    assert!(down.status.success(), "{down:?}");
    assert!(!state(project.path()).exists(), "nothing beside the file");
    assert!(
        dir.join("logs").is_dir(),
        "the state dir the variable names"
    );
}
