//! What a child gets from sentineld between fork and exec: its user, its
//! resource limits, its death with sentineld, a notify socket it can reach
//! — and how an exec short of resources is handled.

mod common;

use std::os::unix::process::CommandExt;
use std::time::Duration;

use common::*;

const NOBODY: u32 = 65534;

/// Real uid of a live process, from /proc/PID/status.
fn uid_of(pid: i32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `pid` runs `sleep` as nobody: past its fork, its change of user and its
/// exec.
fn execd_as_nobody(pid: i32) -> bool {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"));
    uid_of(pid) == Some(NOBODY) && exe.is_ok_and(|p| p.ends_with("sleep"))
}

fn hard_limit(resource: libc::__rlimit_resource_t) -> libc::rlim_t {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    assert_eq!(unsafe { libc::getrlimit(resource, &mut limit) }, 0);
    limit.rlim_max
}

/// Failure events of a service, as (severity, action, message).
fn failures(inst: &Instance, name: &str) -> Vec<(String, String, String)> {
    inst.events(name)
        .into_iter()
        .filter(|e| e["kind"] == "failure")
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
            (field("severity"), field("action"), field("message"))
        })
        .collect()
}

#[test]
fn a_user_service_dies_with_a_sigkilled_sentineld() {
    let mut inst =
        Instance::start("services:\n  guest:\n    command: exec sleep 1000\n    user: nobody\n");
    let pid = inst.wait_running("guest", None);
    wait_until(Duration::from_secs(5), "guest exec'd as nobody", || {
        execd_as_nobody(pid)
    });
    kill(inst.pid(), libc::SIGKILL);
    inst.wait_exit();
    // PR_SET_PDEATHSIG, set after the switch to nobody (which clears it).
    wait_until(Duration::from_secs(5), "guest gone with sentineld", || {
        !alive(pid)
    });
    // The next up of the state dir, and its down, leave nothing behind
    // (its cgroups included).
    inst.launch();
    inst.wait_running("guest", Some(pid));
    assert!(inst.down().success());
}

#[test]
fn children_get_the_fd_limit_sentineld_was_started_with() {
    let inst = Instance::start_limited(
        tempfile::tempdir().unwrap(),
        "services:\n  count:\n    command: echo nofile $(ulimit -Sn) $(ulimit -Hn); exec sleep 1000\n",
        &[(libc::RLIMIT_NOFILE, 1024, 4096)],
    );
    inst.wait_running("count", None);
    wait_until(Duration::from_secs(5), "the limit in the log", || {
        inst.log("count").contains("nofile ")
    });
    assert!(
        inst.log("count").contains("nofile 1024 4096\n"),
        "{}",
        inst.log("count")
    );
    // sentineld itself still raised its own soft limit.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", inst.pid())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files"));
    let fields: Vec<&str> = open_files.unwrap().split_whitespace().collect();
    assert_eq!(fields[3..5], ["4096", "4096"], "{limits}");
}

#[test]
fn a_user_service_reports_ready_over_sd_notify() {
    let inst = Instance::start(&format!(
        "services:
  guest:
    command: [python3, {}, '0']
    user: nobody
    # Not root's PATH: a python3 under /root would be found but not run.
    env: {{ PATH: /usr/local/bin:/usr/bin:/bin }}
    readiness: notify
    start_timeout: 20s
",
        fixture_for_anyone("notify.py").display()
    ));
    let pid = inst.wait_running("guest", None);
    wait_until(Duration::from_secs(10), "READY=1 from nobody", || {
        inst.service("guest")["ready"] == true
    });
    let s = inst.service("guest");
    assert_eq!(
        (&s["pid"], &s["notify_status"]),
        (&pid.into(), &"working".into())
    );
    assert_eq!(uid_of(pid), Some(NOBODY));
    // The socket is not a file a user could reach or replace in the state dir.
    assert!(notify_socket_of(pid).starts_with("@sentineld-"));
}

/// `NOTIFY_SOCKET` in the environment of `pid`, once it has exec'd (before,
/// it has sentineld's, which has none).
fn notify_socket_of(pid: i32) -> String {
    let mut var = None;
    wait_until(Duration::from_secs(5), "NOTIFY_SOCKET", || {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        var = env
            .split(|b| *b == 0)
            .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
            .map(|v| String::from_utf8_lossy(v).into_owned());
        var.is_some()
    });
    var.unwrap()
}

#[test]
fn a_stranger_on_the_notify_socket_cannot_make_a_service_ready() {
    let inst = Instance::start(&format!(
        "services:
  mute:
    command: [python3, {}, go, STATUS=genuine]
    readiness: notify
",
        fixture("notify_when.py").display()
    ));
    let pid = inst.wait_running("mute", None);
    let name = notify_socket_of(pid);
    // Anyone can reach an abstract socket: here a process of another user,
    // in no service's process group. Its words must not count.
    let send = "import socket, sys; \
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); \
        s.sendto(b'READY=1\\nSTATUS=forged', '\\0' + sys.argv[1])";
    let stranger = std::process::Command::new("python3")
        .args(["-c", send, &name[1..]])
        .uid(NOBODY)
        .gid(NOBODY)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir("/")
        .status()
        .unwrap();
    assert!(stranger.success());
    // The service speaks after the stranger: once its message is in, the
    // stranger's (queued before it) has been read too.
    std::fs::write(inst.path("go"), "").unwrap();
    wait_until(Duration::from_secs(10), "the service's own status", || {
        inst.service("mute")["notify_status"] == "genuine"
    });
    let s = inst.service("mute");
    assert_eq!(s["ready"], false, "{s}");
}

#[test]
fn an_exec_short_of_processes_is_retried_and_runs_once_the_limit_is_lifted() {
    // With RLIMIT_NPROC at 0 a switch to nobody marks the child over the
    // limit, and its execve fails with EAGAIN; root's own forks are exempt.
    // The hard limit stays: raising one back takes CAP_SYS_RESOURCE.
    let hard = hard_limit(libc::RLIMIT_NPROC);
    let inst = Instance::start_limited(
        tempfile::tempdir().unwrap(),
        "services:
  guest:
    command: exec sleep 1000
    user: nobody
    recovery:
      retry: { attempts: 50, backoff: 500ms, max_backoff: 500ms }
",
        &[(libc::RLIMIT_NPROC, 0, hard)],
    );
    wait_until(Duration::from_secs(10), "a failed exec", || {
        !failures(&inst, "guest").is_empty()
    });
    let lift = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: plain syscall on sentineld's pid, a child of this test.
    let lifted =
        unsafe { libc::prlimit(inst.pid(), libc::RLIMIT_NPROC, &lift, std::ptr::null_mut()) };
    assert_eq!(lifted, 0, "{}", std::io::Error::last_os_error());
    let (severity, action, message) = failures(&inst, "guest").remove(0);
    assert!(
        message.contains("Resource temporarily unavailable"),
        "{message}"
    );
    assert_eq!((severity.as_str(), action.as_str()), ("transient", "retry"));
    let pid = inst.wait_running("guest", None);
    wait_until(Duration::from_secs(5), "guest exec'd as nobody", || {
        execd_as_nobody(pid)
    });
    let s = inst.service("guest");
    assert_eq!(s["state"], "running", "{s}");
    assert!(failures(&inst, "guest").iter().all(|f| f.0 == "transient"));
}

/// A start that cannot run the program is a failed start, said by the
/// verb that asked for it and naming the step: a missing binary, a
/// working directory removed since `up`.
#[test]
fn a_start_that_cannot_exec_is_refused_with_the_step_that_failed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let mut inst = Instance::start_in(
        dir,
        "services:
  m:
    command: [/nonexistent/bin]
    restart: on-failure
  c:
    command: exec sleep 9301
    cwd: sub
",
    );
    let c = inst.wait_running("c", None);
    // The missing binary: no `started` event, a spawn failure; a start by
    // hand says it did not run.
    wait_until(Duration::from_secs(5), "m to fail", || {
        inst.messages("m")
            .iter()
            .any(|x| x.contains("spawn failed"))
    });
    assert!(!inst.messages("m").iter().any(|x| x.starts_with("started")));
    let out = inst.cli(&["start", "m"]);
    assert!(!out.status.success(), "{out:?}");
    // The working directory removed: the restart fails, naming the chdir.
    std::fs::remove_dir(inst.path("sub")).unwrap();
    let out = inst.cli(&["restart", "c"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(!alive(c));
    let m = inst.messages("c");
    assert!(
        m.iter()
            .any(|x| x.contains("chdir to ") && x.contains("sub: No such file")),
        "{m:#?}"
    );
    assert!(inst.down().success());
}
