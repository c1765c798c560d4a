//! Stopping: stop signal, SIGKILL at the timeout, whole process groups,
//! reverse order, and `down`.

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_child_that_ignores_sigterm_is_killed_at_the_stop_timeout() {
    let inst = Instance::start(
        "services:\n  stubborn:\n    command: trap '' TERM; exec sleep 1000\n    stop: { timeout: 1s }\n",
    );
    let pid = inst.wait_running("stubborn", None);
    // The trap is in place once the shell has exec'd sleep.
    wait_until(Duration::from_secs(5), "exec of sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let t0 = Instant::now();
    let out = inst.cli(&["stop", "stubborn"]);
    let took = t0.elapsed();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "stubborn stopped"
    );
    assert!(!alive(pid));
    assert!(
        took >= Duration::from_millis(900)
            && took <= Duration::from_millis(1100) + Duration::from_millis(150),
        "stop took {took:?}, expected 1s ± 100 ms (plus CLI start-up)"
    );
    let s = inst.service("stubborn");
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["exit"]["signal"], "SIGKILL");
    // Stopped by request: not restarted.
    assert_eq!(s["restarts"], 0);
}

#[test]
fn down_leaves_no_grandchild_alive() {
    let mut inst =
        Instance::start("services:\n  family:\n    command: sleep 1000 & sleep 1000 & wait\n");
    let pid = inst.wait_running("family", None);
    let mut members = Vec::new();
    wait_until(
        Duration::from_secs(5),
        "three processes in the group",
        || {
            members = group_members(pid);
            members.len() == 3
        },
    );
    let status = inst.down();
    assert!(status.success(), "{status:?}");
    for m in members {
        assert!(!alive(m), "pid {m} survived down");
    }
    assert!(!inst.path(".sentineld/control.sock").exists());
}

#[test]
fn a_daemonizing_grandchild_is_stopped_too() {
    // setsid moves the grandchild out of the service's process group; as a
    // subreaper sentineld adopts it when its parent exits, and stops it at down.
    let mut inst = Instance::start(
        "services:\n  forker:\n    command: setsid sh -c 'echo $$$$ > escaped.pid; exec sleep 1000' & exec sleep 1000\n",
    );
    inst.wait_running("forker", None);
    let pidfile = inst.path("escaped.pid");
    wait_until(Duration::from_secs(5), "escaped.pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let escaped: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(escaped));
    let status = inst.down();
    assert!(status.success());
    wait_until(
        Duration::from_secs(2),
        "the escaped grandchild to die",
        || !alive(escaped),
    );
}

#[test]
fn services_stop_in_reverse_dependency_order() {
    let svc = |n: &str, dep: &str| {
        format!(
            "  {n}:\n    command: trap 'echo {n} >> order.txt; exit 0' TERM; while :; do sleep 0.05; done\n{dep}"
        )
    };
    let yaml = format!(
        "services:\n{}{}{}",
        svc("a", ""),
        svc("b", "    depends_on: { a: started }\n"),
        svc("c", "    depends_on: { b: started }\n")
    );
    let mut inst = Instance::start(&yaml);
    for n in ["a", "b", "c"] {
        inst.wait_running(n, None);
    }
    // The traps are set once the loop has begun.
    wait_until(Duration::from_secs(5), "the loops", || {
        ["a", "b", "c"].iter().all(|n| {
            let pid = inst.pid_of(n).unwrap();
            !children_of(pid).is_empty()
        })
    });
    assert!(inst.down().success());
    let order = std::fs::read_to_string(inst.path("order.txt")).unwrap();
    assert_eq!(order, "c\nb\na\n");
}

#[test]
fn services_that_nothing_orders_stop_together() {
    // Each ignores SIGTERM and notes when it got it; a 2 s stop timeout
    // each. Stopped one at a time, the last would hear of it 8 s after the
    // first; stopped together, all hear of it at once.
    let svc = |n: &str| {
        format!(
            "  {n}:\n    command: trap 'date +%s%N >> term.txt' TERM; while :; do sleep 0.05; done\n    stop: {{ timeout: 2s }}\n"
        )
    };
    let names = ["a", "b", "c", "d", "e"];
    let yaml = format!("services:\n{}", names.map(svc).concat());
    let mut inst = Instance::start(&yaml);
    for n in names {
        inst.wait_running(n, None);
    }
    wait_until(Duration::from_secs(5), "the loops", || {
        names
            .iter()
            .all(|n| !children_of(inst.pid_of(n).unwrap()).is_empty())
    });
    assert!(inst.down().success());
    let text = std::fs::read_to_string(inst.path("term.txt")).unwrap();
    let at: Vec<u64> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(at.len(), names.len(), "{text}");
    let spread = at.iter().max().unwrap() - at.iter().min().unwrap();
    assert!(spread < 1_500_000_000, "SIGTERMs spread over {spread} ns");
}

#[test]
fn sigterm_to_sentineld_stops_everything_and_exits_zero() {
    let mut inst = Instance::start(
        "services:\n  a:\n    command: exec sleep 1000\n  b:\n    command: exec sleep 1000\n",
    );
    let a = inst.wait_running("a", None);
    let b = inst.wait_running("b", None);
    kill(inst.pid(), libc::SIGTERM);
    let status = inst.wait_exit();
    assert_eq!(status.code(), Some(0));
    assert!(!alive(a) && !alive(b));
}

#[test]
fn stop_start_and_restart_commands() {
    let inst = Instance::start("services:\n  web:\n    command: exec sleep 1000\n");
    let p1 = inst.wait_running("web", None);
    let out = inst.cli(&["restart", "web"]);
    assert!(out.status.success(), "{out:?}");
    let p2 = inst.wait_running("web", Some(p1));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("web running (pid {p2})")));
    assert!(!alive(p1));

    let out = inst.cli(&["stop", "web"]);
    assert!(out.status.success());
    assert_eq!(inst.service("web")["state"], "stopped");
    assert!(!alive(p2));

    let out = inst.cli(&["start", "web"]);
    assert!(out.status.success(), "{out:?}");
    let p3 = inst.wait_running("web", Some(p2));
    assert!(alive(p3));

    let out = inst.cli(&["stop", "wbe"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "sentineld: unknown service \"wbe\" (did you mean \"web\"?)"
    );
}

#[test]
fn a_restart_waits_until_the_old_group_is_gone() {
    // The leader exits on SIGTERM at once; its child ignores SIGTERM and
    // holds 256 MiB, so that after the stop timeout's SIGKILL it takes a
    // while to be gone. Each new primary notes whether the previous child
    // is still there when it starts.
    let mut inst = Instance::start(
        "services:
  svc:
    command: if [ -f child ] && kill -0 $$(cat child) 2>/dev/null; then echo overlap >> overlaps; fi; python3 -c \"import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN); b = b'x' * (256 << 20); open('big', 'w').close(); time.sleep(1000)\" & echo $$! > child; trap 'exit 0' TERM; wait
    stop: { timeout: 300ms }
",
    );
    let mut pid = inst.wait_running("svc", None);
    for _ in 0..3 {
        wait_until(Duration::from_secs(10), "the child's memory", || {
            inst.path("big").exists()
        });
        std::fs::remove_file(inst.path("big")).unwrap();
        let out = inst.cli(&["restart", "svc"]);
        assert!(out.status.success(), "{out:?}");
        pid = inst.wait_running("svc", Some(pid));
    }
    let overlaps = std::fs::read_to_string(inst.path("overlaps")).unwrap_or_default();
    assert_eq!(
        overlaps, "",
        "a primary started beside the last one's child"
    );
    assert!(inst.down().success());
}
