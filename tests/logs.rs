//! Captured output: nothing lost under a burst of two writers on one pipe,
//! whole lines never mixed, order kept per writer,
//! rotation by size, and `sentineld logs`.

mod common;

use std::time::Duration;

use common::*;

fn check_stream(log: &str, prefix: &str, n: usize) {
    let nums: Vec<usize> = log
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|r| r.parse().unwrap_or_else(|_| panic!("mangled line {r:?}")))
        .collect();
    assert_eq!(nums.len(), n, "{prefix}: {} lines of {n}", nums.len());
    assert!(
        nums.iter().enumerate().all(|(i, v)| *v == i + 1),
        "{prefix}: out of order"
    );
}

#[test]
fn a_burst_of_200k_lines_per_stream_arrives_whole_and_in_order() {
    let script = fixture("burst.sh");
    let inst = Instance::start(&format!(
        "services:\n  burst:\n    command: [{}, '200000']\n    logs: {{ max_size: 1GiB }}\n",
        script.display()
    ));
    inst.wait_running("burst", None);
    wait_until(Duration::from_secs(60), "the burst to be written", || {
        inst.path("burst.done").exists()
    });
    wait_until(
        Duration::from_secs(20),
        "all 400000 lines in the log",
        || inst.log("burst").lines().count() >= 400_000,
    );
    let log = inst.log("burst");
    assert_eq!(log.lines().count(), 400_000);
    check_stream(&log, "out ", 200_000);
    check_stream(&log, "err ", 200_000);
}

#[test]
fn logs_rotate_by_size_and_keep_whole_lines() {
    let inst = Instance::start(
        "services:\n  chatty:\n    command: seq 1 100000; echo finished > chatty.done; exec sleep 1000\n    logs: { max_size: 64KiB, keep: 3 }\n",
    );
    wait_until(Duration::from_secs(20), "the output", || {
        inst.path("chatty.done").exists()
    });
    let base = inst.path(".sentineld/logs/chatty.log");
    wait_until(Duration::from_secs(10), "the last line", || {
        std::fs::read_to_string(&base).is_ok_and(|s| s.ends_with("100000\n"))
    });
    let mut all = Vec::new();
    for k in [3, 2, 1] {
        let p = format!("{}.{k}", base.display());
        let text = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("missing {p}"));
        assert!(
            text.len() as u64 <= 64 * 1024,
            "{p} is {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "{p} ends mid-line");
        all.push(text);
    }
    assert!(!std::path::Path::new(&format!("{}.4", base.display())).exists());
    let current = std::fs::read_to_string(&base).unwrap();
    assert!(current.len() as u64 <= 64 * 1024);
    all.push(current);
    // The kept files hold the newest lines, consecutive and unbroken.
    let nums: Vec<u64> = all.concat().lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(*nums.last().unwrap(), 100_000);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1));
}

#[test]
fn logs_command_prints_the_last_lines() {
    let inst = Instance::start(
        "services:\n  talk:\n    command: seq 1 500; echo oops >&2; exec sleep 1000\n",
    );
    wait_until(Duration::from_secs(10), "output", || {
        inst.log("talk").contains("oops")
    });
    let out = inst.cli(&["logs", "talk", "-n", "3"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "499\n500\noops\n");

    let out = inst.cli(&["logs", "tlak"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "sentineld: unknown service \"tlak\" (did you mean \"talk\"?)"
    );
}

#[test]
fn output_written_just_before_exit_is_not_lost() {
    let mut inst = Instance::start(
        "services:\n  last:\n    command: seq 1 5000; printf 'no newline at the end'\n    restart: never\n",
    );
    inst.wait_state("last", "exited");
    assert!(inst.down().success());
    let log = inst.log("last");
    assert!(log.starts_with("1\n2\n"));
    assert!(log.contains("\n5000\n"));
    assert!(
        log.ends_with("no newline at the end\n"),
        "{:?}",
        &log[log.len() - 40..]
    );
}

#[test]
fn logs_follow_keeps_going_across_rotations() {
    // Bursts of 100 lines of ~10 bytes, 4 KiB files: a rotation every ~4
    // bursts, while `logs -f` follows.
    let inst = Instance::start(
        "services:\n  ticker:\n    command: sleep 0.5; for r in $$(seq 30); do for k in $$(seq 100); do echo \"tick $$((r * 100 - 100 + k))\"; done; sleep 0.05; done; exec sleep 1000\n    logs: { max_size: 4KiB, keep: 50 }\n",
    );
    let mut child = std::process::Command::new(BIN)
        .args(["logs", "ticker", "-f", "-n", "0"])
        .current_dir(inst.dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id() as i32;
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if let Some(n) = line.strip_prefix("tick ") {
                let n: u32 = n.parse().unwrap();
                seen.push(n);
                if n == 3000 {
                    break;
                }
            }
        }
        seen
    });
    wait_until(Duration::from_secs(20), "the last tick in the log", || {
        inst.log("ticker").contains("tick 3000\n")
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !reader.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    kill(pid, libc::SIGKILL);
    let _ = child.wait();
    let seen = reader.join().unwrap();
    assert!(!seen.is_empty());
    // Whatever -f started with, from there on nothing is skipped or repeated,
    // across every rotation, up to the last line.
    assert_eq!(
        *seen.last().unwrap(),
        3000,
        "{:?}",
        &seen[seen.len().saturating_sub(5)..]
    );
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "gap or repeat in {} lines",
        seen.len()
    );
    assert!(
        inst.path(".sentineld/logs/ticker.log.5").exists(),
        "several rotations happened"
    );
}

#[test]
fn a_known_service_that_printed_nothing_has_an_empty_log_not_an_error() {
    let inst = Instance::start("services:\n  quiet:\n    command: exec sleep 1000\n");
    inst.wait_running("quiet", None);
    for args in [&["logs", "quiet"][..], &["logs", "quiet", "--json"]] {
        let out = inst.cli(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let unknown = inst.cli(&["logs", "quiets"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
}
