//! Captured output under faults: a full disk, a removed log directory, a
//! last line without a newline, a log write that never returns. Each is an
//! event and a visible condition, nothing is dropped on the way (the child
//! is held back through its pipe instead), and it is recovered from when
//! the cause clears. Real mechanisms: a small tmpfs, `rm -rf`, a FIFO whose
//! reader never reads.

mod common;

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
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

/// `.sentineld/logs/NAME.log` as a FIFO with a reader that never reads:
/// once its 64 KiB buffer is full, the log thread's next write to it never
/// returns — a hung disk, for that file. The returned reader must stay open.
fn plant_hanging_log(inst_dir: &Path, name: &str) -> std::fs::File {
    let logs = inst_dir.join(".sentineld/logs");
    std::fs::create_dir_all(&logs).unwrap();
    let fifo = logs.join(format!("{name}.log"));
    run(Command::new("mkfifo").arg(&fifo));
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap()
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

fn start_hanging() -> (Instance, std::fs::File) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), HANGING).unwrap();
    let reader = plant_hanging_log(dir.path(), "stuck");
    (Instance::start_in(dir, HANGING), reader)
}

#[test]
fn a_hung_log_write_stalls_no_one_and_is_reported() {
    let (inst, reader) = start_hanging();
    // Classified by the rule although the log thread cannot take the
    // output: the loop reads what is still in the pipe without waiting.
    wait_until(Duration::from_secs(10), "stuck's failure", || {
        !inst.service("stuck")["last_failure"].is_null()
    });
    let s = inst.service("stuck");
    assert_eq!(s["last_failure"]["classified"], "critical", "{s}");
    wait_log_event(&inst, "stuck", "a stall event", "stalled");
    let s = inst.service("stuck");
    assert_eq!(s["log_condition"]["kind"], "stalled", "{s}");
    let t0 = Instant::now();
    let calm = inst.service("calm");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t0.elapsed()
    );
    assert_eq!(calm["state"], "running");

    // The reader starts reading: the write returns, and everything held
    // back is written.
    let mut reader = reader;
    let drained = std::thread::spawn(move || {
        let mut sink = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => break,
                Ok(n) => sink.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        sink
    });
    wait_log_event(&inst, "stuck", "the all-clear", "resumed");
    let seen = numbers(&inst.log("calm"), "calm ");
    wait_until(Duration::from_secs(10), "calm's later lines", || {
        numbers(&inst.log("calm"), "calm ").len() > seen.len() + 20
    });
    assert_consecutive(&numbers(&inst.log("calm"), "calm "), 1, "calm.log");
    drop(inst);
    let stuck = drained.join().unwrap();
    assert!(String::from_utf8_lossy(&stuck).contains("disk on fire\n"));
}

#[test]
fn down_returns_while_a_log_write_hangs() {
    let (mut inst, _reader) = start_hanging();
    wait_until(Duration::from_secs(10), "the log thread to hang", || {
        blocked_in_write(inst.pid(), "logs")
    });
    let calm = inst.wait_running("calm", None);
    let t0 = Instant::now();
    assert!(inst.down().success());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "down took {:?}",
        t0.elapsed()
    );
    assert!(!alive(calm));
}
