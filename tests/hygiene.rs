//! Process hygiene: no orphans after sentineld dies, no zombies, no leaked fds.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn after_kill_9_the_next_up_kills_leftovers_only_with_proof() {
    let mut inst = Instance::start(
        "services:\n  family:\n    command: sleep 1000 & echo $$! > grandchild.pid; exec sleep 1000\n",
    );
    let leader = inst.wait_running("family", None);
    let pidfile = inst.path("grandchild.pid");
    wait_until(Duration::from_secs(5), "grandchild.pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let grandchild: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(stat_field(grandchild, 5).unwrap(), leader.to_string());

    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    // PR_SET_PDEATHSIG: the direct child goes with its parent.
    wait_until(Duration::from_secs(1), "the direct child to die", || {
        !alive(leader)
    });
    // The grandchild was re-parented elsewhere and is still running.
    assert!(
        alive(grandchild),
        "grandchild should outlive a SIGKILLed sentineld"
    );

    // Once the dead leader is reaped by whoever adopted it, its group number
    // proves nothing (it could have gone to someone else's group), so the
    // next `up` leaves that group alone — unless the service's cgroup
    // proves the grandchild is its own.
    wait_until(
        Duration::from_secs(30),
        "the dead leader to be reaped",
        || !std::path::Path::new(&format!("/proc/{leader}")).exists(),
    );
    std::fs::remove_file(&pidfile).unwrap();
    inst.launch();
    inst.wait_running("family", Some(leader));
    let log = std::fs::read_to_string(inst.path("up.log")).unwrap();
    if cgroups_writable() {
        // Its cgroup proves the grandchild is the service's: killed.
        wait_until(
            Duration::from_secs(2),
            "the leftover grandchild to die",
            || !alive(grandchild),
        );
        assert!(
            log.contains("family: killed the processes a previous sentineld left in its cgroup"),
            "{log}"
        );
    } else {
        assert!(alive(grandchild));
        assert!(
            log.contains(&format!(
                "family: left process group {leader} alone: its leader (pid {leader}) is gone"
            )),
            "{log}"
        );
    }
    kill(grandchild, libc::SIGKILL);
}

#[test]
fn abandoned_grandchildren_leave_no_zombies() {
    let inst = Instance::start(
        "services:\n  spawner:\n    command: for i in $(seq 200); do (sleep 0.01 &); done; echo spawned > done.txt; exec sleep 1000\n",
    );
    inst.wait_running("spawner", None);
    wait_until(
        Duration::from_secs(10),
        "the 200 grandchildren to be spawned",
        || inst.path("done.txt").exists(),
    );
    let me = inst.pid();
    wait_until(
        Duration::from_secs(5),
        "no zombie children of sentineld",
        || {
            children_of(me)
                .iter()
                .all(|p| stat_field(*p, 3).as_deref() != Some("Z"))
                && children_of(me).len() == 1
        },
    );
}

#[test]
fn a_child_has_exactly_fds_0_1_2() {
    let inst = Instance::start(
        "services:\n  a:\n    command: exec sleep 1000\n  b:\n    command: [sleep, '1000']\n",
    );
    for name in ["a", "b"] {
        let pid = inst.wait_running(name, None);
        wait_until(Duration::from_secs(5), "exec of sleep", || {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
        });
        let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        fds.sort();
        assert_eq!(fds, vec![0, 1, 2], "{name}");
        let stdin = std::fs::read_link(format!("/proc/{pid}/fd/0")).unwrap();
        assert_eq!(stdin.to_str().unwrap(), "/dev/null");
        let stdout = std::fs::read_link(format!("/proc/{pid}/fd/1")).unwrap();
        assert!(stdout.to_str().unwrap().starts_with("pipe:"), "{stdout:?}");
    }
}

#[test]
fn each_service_leads_its_own_process_group_and_gets_its_environment() {
    let inst = Instance::start(
        "services:\n  envy:\n    command: echo \"svc=$$SENTINELD_SERVICE x=$$X\"; exec sleep 1000\n    env: { X: 'hello world' }\n",
    );
    let pid = inst.wait_running("envy", None);
    assert_eq!(
        stat_field(pid, 5).unwrap(),
        pid.to_string(),
        "process group"
    );
    assert_eq!(stat_field(pid, 6).unwrap(), pid.to_string(), "session");
    wait_until(Duration::from_secs(5), "the log line", || {
        inst.log("envy").contains("svc=envy x=hello world")
    });
}
