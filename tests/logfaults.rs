//! Captured output under faults: a full disk, a removed log directory, a
//! last line without a newline, a log write that never returns. Each is an
//! event and a visible condition, nothing is dropped on the way (the child
//! is held back through its pipe instead), and it is recovered from when
//! the cause clears. Real mechanisms: a small tmpfs, `rm -rf`, a frozen
//! (`fsfreeze`) ext4 filesystem as `logs/`.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs mounted on a test's directory, unmounted when dropped (after the
/// instance that lives in it, which is declared later), even if the test
/// failed.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        let opts = format!("size={size},mode=0755");
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &opts, "tmpfs"])
            .arg(dir));
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let opts = format!("remount,size={size}");
        run(Command::new("mount").args(["-o", &opts]).arg(&self.dir));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
}

/// The `logs` events of `name`, oldest first.
fn log_events(inst: &Instance, name: &str) -> Vec<String> {
    inst.messages_of(name, "logs")
}

fn wait_log_event(inst: &Instance, name: &str, what: &str, pat: &str) -> String {
    let mut found = String::new();
    wait_until(Duration::from_secs(15), what, || {
        match log_events(inst, name).into_iter().find(|m| m.contains(pat)) {
            Some(m) => {
                found = m;
                true
            }
            None => false,
        }
    });
    found
}

/// The numbers after `prefix` on each line, in order.
fn numbers(text: &str, prefix: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|n| n.parse().unwrap_or_else(|_| panic!("mangled line {n:?}")))
        .collect()
}

fn assert_consecutive(nums: &[u64], from: u64, what: &str) {
    assert_eq!(
        nums.first(),
        Some(&from),
        "{what}: starts at {:?}",
        nums.first()
    );
    if let Some(w) = nums.windows(2).find(|w| w[1] != w[0] + 1) {
        panic!("{what}: {} is followed by {}", w[0], w[1]);
    }
}

#[test]
fn a_full_disk_holds_output_back_and_writes_it_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(dir.path(), "256k");
    // ~600 KiB of numbered lines into a 256 KiB filesystem.
    let inst = Instance::start_in(
        dir,
        "services:\n  filler:\n    command: seq -f 'line %g' 1 50000; exec sleep 1000\n",
    );
    let msg = wait_log_event(&inst, "filler", "a disk-full event", "No space left");
    assert!(msg.contains("held back"), "{msg}");
    let s = inst.service("filler");
    assert_eq!(s["log_condition"]["kind"], "disk_full", "{s}");
    assert_eq!(s["health"], "degraded", "{s}");
    // Held back through its pipe, not killed and not dropped.
    assert_eq!(s["state"], "running", "{s}");

    tmpfs.resize("4m");
    wait_log_event(&inst, "filler", "the all-clear", "resumed");
    wait_until(Duration::from_secs(15), "the last line", || {
        inst.log("filler").ends_with("line 50000\n")
    });
    let nums = numbers(&inst.log("filler"), "line ");
    assert_consecutive(&nums, 1, "filler.log");
    assert_eq!(nums.len(), 50000);
    let s = inst.service("filler");
    assert!(s["log_condition"].is_null(), "{s}");
    assert_eq!(s["health"], "healthy", "{s}");
}

#[test]
fn a_removed_log_dir_is_recreated_and_no_line_is_lost() {
    let inst = Instance::start(
        "services:\n  ticker:\n    command: i=0; while :; do i=$$((i+1)); echo \"tick $$i\"; sleep 0.005; done\n",
    );
    let logs = inst.path(".sentineld/logs");
    let file = logs.join("ticker.log");
    wait_until(Duration::from_secs(10), "some ticks", || {
        inst.log("ticker").contains("tick 50\n")
    });
    // Keep the old file readable: what went into it after the removal
    // must still reach the new one.
    let old = std::fs::File::open(&file).unwrap();
    let old_dir = std::fs::metadata(&logs).unwrap().ino();
    let _ = std::fs::remove_dir_all(&logs);

    wait_log_event(&inst, "ticker", "an event about the removal", "removed");
    wait_until(Duration::from_secs(10), "later ticks in a new file", || {
        let nums = numbers(&std::fs::read_to_string(&file).unwrap_or_default(), "tick ");
        nums.len() > 100
    });
    let meta = std::fs::metadata(&logs).unwrap();
    if meta.ino() != old_dir {
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    }
    let before = numbers(&std::io::read_to_string(old).unwrap(), "tick ");
    let after = numbers(&std::fs::read_to_string(&file).unwrap(), "tick ");
    let last_old = *before.last().unwrap();
    // The new file goes on where the old one stopped (it may repeat what
    // was written to the removed file just before the removal was seen).
    assert!(
        after[0] <= last_old + 1,
        "gap: {last_old} then {}",
        after[0]
    );
    assert_consecutive(&after, after[0], "the new ticker.log");
    assert!(
        log_events(&inst, "ticker")
            .iter()
            .any(|m| m.contains("resumed")),
        "{:?}",
        log_events(&inst, "ticker")
    );
    assert!(inst.service("ticker")["log_condition"].is_null());
}

#[test]
fn a_last_line_without_a_newline_is_written_when_its_process_exits() {
    let inst = Instance::start(
        "services:
  once:
    command: printf 'no newline'; exit 3
    restart: never
  twice:
    command: if [ -e twice.ran ]; then echo second; exec sleep 1000; fi; touch twice.ran; printf 'first, no newline'; exit 1
",
    );
    inst.wait_state("once", "exited");
    wait_until(Duration::from_secs(5), "the partial line in `logs`", || {
        let out = inst.cli(&["logs", "once"]);
        String::from_utf8_lossy(&out.stdout) == "no newline\n"
    });
    wait_until(Duration::from_secs(10), "the second run's output", || {
        inst.log("twice").contains("second")
    });
    assert_eq!(inst.log("twice"), "first, no newline\nsecond\n");
}

/// An ext4 filesystem in a file, loop-mounted as the state dir's `logs/`,
/// that a test freezes (`fsfreeze`): every write to it then sleeps until it
/// is thawed — a hung disk. Thawed and unmounted when dropped, even if the
/// test failed (declared before the instance, so dropped after it).
struct Frozen {
    dir: PathBuf,
    _image: tempfile::TempDir,
}

impl Frozen {
    fn mount(logs: &Path) -> Frozen {
        let image = tempfile::tempdir().unwrap();
        let file = image.path().join("logs.img");
        run(Command::new("truncate").args(["-s", "16M"]).arg(&file));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&file));
        std::fs::create_dir_all(logs).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&file)
            .arg(logs));
        std::fs::set_permissions(logs, std::fs::Permissions::from_mode(0o700)).unwrap();
        Frozen {
            dir: logs.to_path_buf(),
            _image: image,
        }
    }

    /// Freeze it; thawed again after 40 s whatever happens, so a failing
    /// test (whose instance waits for a daemon stuck in a write) cannot
    /// hang the suite.
    fn freeze(&self) {
        run(Command::new("fsfreeze").arg("-f").arg(&self.dir));
        let dir = self.dir.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(40));
            let _ = Command::new("fsfreeze").arg("-u").arg(&dir).status();
        });
    }

    fn thaw(&self) {
        let _ = Command::new("fsfreeze").arg("-u").arg(&self.dir).status();
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.thaw();
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// `stuck` writes 100 KiB (more than the FIFO takes, less than the FIFO
/// and its own pipe together), then a line a `classify` rule looks for.
const HANGING: &str = "services:
  stuck:
    command: yes 0123456789abcdef | head -c 102400; echo; echo 'disk on fire'; exit 1
    classify:
      - { output_matches: 'disk on fire', severity: critical }
  calm:
    command: i=0; while :; do i=$$((i+1)); echo \"calm $$i\"; sleep 0.02; done
";

/// Thread `name` of process `pid` sleeps in write(2).
fn blocked_in_write(pid: i32, name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let call = std::fs::read_to_string(t.path().join("syscall")).unwrap_or_default();
        comm.trim() == name && call.split_whitespace().next() == Some(&libc::SYS_write.to_string())
    })
}

/// The state dir with its `logs/` on a filesystem that can be frozen.
/// The instance comes first so that the guard, declared after it, is
/// dropped first: thawed before the instance waits for its daemon.
fn start_on_freezable_logs() -> (Instance, Frozen) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join(".sentineld");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    let frozen = Frozen::mount(&state.join("logs"));
    (Instance::start_in(dir, HANGING), frozen)
}

#[test]
fn a_hung_log_write_stalls_no_one_and_is_reported() {
    let (inst, frozen) = start_on_freezable_logs();
    wait_until(Duration::from_secs(10), "calm's first lines", || {
        numbers(&inst.log("calm"), "calm ").len() > 5
    });
    frozen.freeze();
    let out = inst.cli(&["restart", "stuck"]);
    assert!(out.status.success(), "{out:?}");
    // Classified by the rule although the log thread cannot take the
    // output: the loop reads what is still in the pipe without waiting.
    wait_until(Duration::from_secs(10), "stuck's failure", || {
        inst.service("stuck")["last_failure"]["classified"] == "critical"
    });
    // The write that hangs is whichever came first (calm writes often).
    wait_until(Duration::from_secs(15), "a stall event", || {
        ["stuck", "calm"]
            .iter()
            .any(|n| log_events(&inst, n).iter().any(|m| m.contains("stalled")))
    });
    let t0 = Instant::now();
    let calm = inst.service("calm");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t0.elapsed()
    );
    assert_eq!(calm["state"], "running");
    // Thawed: the write returns, and everything held back is written.
    frozen.thaw();
    wait_until(Duration::from_secs(15), "the all-clear", || {
        log_events(&inst, "stuck")
            .iter()
            .any(|m| m.contains("resumed"))
            || log_events(&inst, "calm")
                .iter()
                .any(|m| m.contains("resumed"))
    });
    let seen = numbers(&inst.log("calm"), "calm ");
    wait_until(Duration::from_secs(10), "calm's later lines", || {
        numbers(&inst.log("calm"), "calm ").len() > seen.len() + 20
    });
    assert_consecutive(&numbers(&inst.log("calm"), "calm "), 1, "calm.log");
    assert!(inst.log("stuck").contains("disk on fire\n"));
}

#[test]
fn down_returns_while_a_log_write_hangs() {
    let (mut inst, frozen) = start_on_freezable_logs();
    let calm = inst.wait_running("calm", None);
    wait_until(Duration::from_secs(10), "calm's first lines", || {
        numbers(&inst.log("calm"), "calm ").len() > 5
    });
    frozen.freeze();
    wait_until(Duration::from_secs(10), "the log thread to hang", || {
        blocked_in_write(inst.pid(), "logs")
    });
    down_while_frozen(&mut inst, &frozen, calm);
}

/// The whole state dir on a disk that hangs: the pgids journal, the
/// socket's removal and the logs wait in threads of their own; a restart,
/// `status` and `down` do not.
#[test]
fn a_hung_state_dir_stalls_neither_restarts_nor_status_nor_down() {
    // Bound together, so the guard drops (thaws) before the instance.
    let (mut inst, frozen) = {
        let dir = tempfile::tempdir().unwrap();
        let frozen = Frozen::mount(&dir.path().join(".sentineld"));
        (Instance::start_in(dir, HANGING), frozen)
    };
    let calm = inst.wait_running("calm", None);
    wait_until(Duration::from_secs(10), "calm's first lines", || {
        numbers(&inst.log("calm"), "calm ").len() > 5
    });
    frozen.freeze();
    kill(calm, libc::SIGKILL);
    let again = inst.wait_running("calm", Some(calm));
    let t0 = Instant::now();
    assert_eq!(inst.service("calm")["pid"], again);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t0.elapsed()
    );
    down_while_frozen(&mut inst, &frozen, again);
}

/// `down` returns (within 15 s) while the disk hangs, and `pid` is gone;
/// then thawed, the daemon exits.
fn down_while_frozen(inst: &mut Instance, frozen: &Frozen, pid: i32) {
    let t0 = Instant::now();
    let out = inst.cli(&["down"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(15),
        "down took {:?}",
        t0.elapsed()
    );
    assert!(!alive(pid));
    frozen.thaw();
    inst.wait_exit();
}
