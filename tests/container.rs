//! sentineld as a container's entrypoint (PID 1) under podman: `podman stop`
//! ends it cleanly within the stop timeout, `podman kill -s HUP` reloads the
//! mounted services file, orphans are reaped, and a service killed inside
//! the container is restarted. The image is made from the just-built
//! binary (see tests/podman); every container and image is removed by the
//! test's [`Cleanup`], even when it fails.

mod podman;

use std::path::Path;
use std::time::{Duration, Instant};

use podman::{Cleanup, podman, podman_ok, unique, wait_until};
use serde_json::Value;

/// A running container of the test image with `services.yaml` mounted
/// (read-only, as a ConfigMap is) at /etc/sentineld.
struct Container {
    name: String,
    config: tempfile::TempDir,
    // Dropped last: removes the container, then the image.
    _cleanup: Cleanup,
    _work: tempfile::TempDir,
}

impl Container {
    fn run(yaml: &str) -> Container {
        use std::os::unix::fs::PermissionsExt;
        let work = tempfile::tempdir().unwrap();
        let mut cleanup = Cleanup::default();
        let image = podman::sentineld_image(work.path(), &mut cleanup);
        let config = tempfile::tempdir().unwrap();
        let perms = std::fs::Permissions::from_mode(0o755);
        std::fs::set_permissions(config.path(), perms).unwrap();
        let name = unique("ctr");
        let c = Container {
            name: name.clone(),
            config,
            _cleanup: cleanup,
            _work: work,
        };
        c.write_config(yaml);
        let mount = format!("{}:/etc/sentineld:ro", c.config.path().display());
        let mut args = vec!["run", "--detach", "--name", &name, "--network", "none"];
        let ulimits = podman::ulimits();
        args.extend(ulimits.iter().map(String::as_str));
        args.extend(["--volume", &mount, &image]);
        let mut c = c;
        c._cleanup.container(&name);
        podman_ok(&args);
        wait_until(Duration::from_secs(20), "sentineld to answer", || {
            c.exec(&["sentineld", "status", "--json"]).status.success() || c.exited()
        });
        assert!(!c.exited(), "sentineld exited at start:\n{}", c.logs());
        c
    }

    /// Replace services.yaml as a deploy would: a new file renamed over it.
    fn write_config(&self, yaml: &str) {
        let tmp = self.config.path().join(".services.yaml.new");
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(tmp, self.config.path().join("services.yaml")).unwrap();
    }

    fn exec(&self, cmd: &[&str]) -> std::process::Output {
        let mut args = vec!["exec", &self.name];
        args.extend(cmd);
        podman(&args)
    }

    fn exec_ok(&self, cmd: &[&str]) -> String {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "exec {cmd:?}: {out:?}\n{}",
            self.logs()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn inspect(&self, format: &str) -> String {
        podman_ok(&["inspect", "--format", format, &self.name])
            .trim()
            .to_string()
    }

    fn exited(&self) -> bool {
        self.inspect("{{.State.Status}}") == "exited"
    }

    fn logs(&self) -> String {
        let out = podman(&["logs", &self.name]);
        let text = [out.stdout, out.stderr].concat();
        String::from_utf8_lossy(&text).into_owned()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.exec_ok(&["sentineld", "status", "--json"])).unwrap()
    }

    fn service(&self, name: &str) -> Option<Value> {
        let status = self.status();
        let services = status["services"].as_array().unwrap();
        services.iter().find(|s| s["name"] == name).cloned()
    }

    /// Wait until `name` runs with a pid other than `not`; its pid (in the
    /// container's pid namespace).
    fn wait_running(&self, name: &str, not: Option<i64>) -> i64 {
        let mut pid = None;
        wait_until(Duration::from_secs(20), &format!("{name} running"), || {
            let s = self.service(name).unwrap_or_default();
            pid = s["pid"].as_i64();
            s["state"] == "running" && pid.is_some() && pid != not
        });
        pid.unwrap()
    }

    /// Host pids of every process in the container.
    fn host_pids(&self) -> Vec<i32> {
        let out = podman_ok(&["top", &self.name, "hpid"]);
        out.lines()
            .skip(1)
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// `(pid, state, ppid)` of every process the container's /proc shows.
    fn processes(&self) -> Vec<(i64, String, i64)> {
        let out = self.exec_ok(&["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null"]);
        out.lines()
            .filter_map(|l| {
                let pid = l.split_whitespace().next()?.parse().ok()?;
                let mut rest = l[l.rfind(')')? + 1..].split_whitespace();
                let state = rest.next()?.to_string();
                Some((pid, state, rest.next()?.parse().ok()?))
            })
            .collect()
    }
}

const STOPPABLE: &str = r#"
services:
  stubborn:
    # Ignores SIGTERM: sentineld SIGKILLs it when its stop timeout passes.
    command: ["sh", "-c", "trap '' TERM; exec sleep 100000"]
    stop: { timeout: 2s }
  escapee:
    # A grandchild in a session of its own, adopted by PID 1: stopped at
    # shutdown with the adopted orphans.
    command: ["sh", "-c", "(setsid sleep 100000 &); exec sleep 100000"]
    stop: { timeout: 2s }
"#;

#[test]
fn podman_stop_ends_sentineld_and_everything_within_the_stop_timeout_with_exit_0() {
    if !podman::available("podman_stop") {
        return;
    }
    let c = Container::run(STOPPABLE);
    c.wait_running("stubborn", None);
    c.wait_running("escapee", None);
    wait_until(Duration::from_secs(10), "the escapee's grandchild", || {
        c.processes().len() >= 4
    });
    let pids = c.host_pids();
    assert!(
        pids.len() >= 4,
        "expected sentineld, 2 services, 1 orphan: {pids:?}"
    );
    let timeout = 15;
    let started = Instant::now();
    podman_ok(&["stop", "--time", &timeout.to_string(), &c.name]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(timeout),
        "podman stop took {took:?}: sentineld did not end within the {timeout} s stop timeout\n{}",
        c.logs()
    );
    let code = c.inspect("{{.State.ExitCode}}");
    assert_eq!(code, "0", "exit code after podman stop\n{}", c.logs());
    let left: Vec<_> = pids
        .iter()
        .filter(|p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(left.is_empty(), "processes left after stop: {left:?}");
}

#[test]
fn podman_kill_hup_reloads_the_mounted_services_file() {
    if !podman::available("podman_kill_hup") {
        return;
    }
    let first = "services:\n  first:\n    command: sleep 100000\n";
    let c = Container::run(first);
    let pid = c.wait_running("first", None);
    c.write_config(&format!("{first}  second:\n    command: sleep 100001\n"));
    podman_ok(&["kill", "--signal", "HUP", &c.name]);
    c.wait_running("second", None);
    assert_eq!(c.service("first").unwrap()["pid"], pid, "first untouched");
    assert_eq!(c.inspect("{{.State.Status}}"), "running", "{}", c.logs());
}

#[test]
fn orphaned_grandchildren_are_adopted_and_reaped_by_pid_1() {
    if !podman::available("orphans_reaped") {
        return;
    }
    // The subshell starts the grandchild and exits at once: the grandchild
    // is an orphan, whose parent becomes PID 1, and which exits 3 s later.
    // (`$$$$` is the shell's `$$`: sentineld expands `$$` to `$`.)
    let yaml = r#"
services:
  parent:
    command: ["sh", "-c", "(sh -c 'echo $$$$ > /tmp/orphan.pid; exec sleep 3' &); exec sleep 100000"]
"#;
    let c = Container::run(yaml);
    c.wait_running("parent", None);
    let mut orphan = 0;
    wait_until(Duration::from_secs(10), "the orphan's pid file", || {
        let out = c.exec(&["cat", "/tmp/orphan.pid"]);
        orphan = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        orphan > 0
    });
    let procs = c.processes();
    let seen = procs.iter().find(|p| p.0 == orphan);
    assert!(
        matches!(seen, Some((_, _, 1))),
        "the orphan {orphan} should be PID 1's child now: {procs:?}"
    );
    wait_until(Duration::from_secs(10), "the orphan to be reaped", || {
        c.processes().iter().all(|p| p.0 != orphan)
    });
    let zombies: Vec<_> = c.processes().into_iter().filter(|p| p.1 == "Z").collect();
    assert!(zombies.is_empty(), "zombies in the container: {zombies:?}");
}

#[test]
fn a_service_killed_inside_the_container_is_restarted() {
    if !podman::available("killed_restarted") {
        return;
    }
    let c = Container::run("services:\n  long:\n    command: sleep 100000\n");
    let pid = c.wait_running("long", None);
    c.exec_ok(&["kill", "-9", &pid.to_string()]);
    let new = c.wait_running("long", Some(pid));
    assert_ne!(new, pid);
    let zombies: Vec<_> = c.processes().into_iter().filter(|p| p.1 == "Z").collect();
    assert!(zombies.is_empty(), "zombies in the container: {zombies:?}");
}

/// Stand-ins for the Containerfile's base images, where no registry is
/// reachable: a builder whose RUN steps see the host's /usr (compilers,
/// glibc) and Rust toolchain, read-only, through `podman build --volume`,
/// and a runtime of busybox and glibc. Returns the build's volume flags.
fn base_images(work: &Path, builder: &str, runtime: &str) -> Vec<String> {
    use std::os::unix::fs::symlink;
    let root = work.join("builder");
    for dir in [
        "usr",
        "etc/alternatives",
        "tmp",
        "src",
        "opt/rustup",
        "opt/cargo",
        "proc",
        "dev",
    ] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        symlink(format!("usr/{link}"), root.join(link)).unwrap();
    }
    for file in ["passwd", "group", "ld.so.cache"] {
        let _ = std::fs::copy(Path::new("/etc").join(file), root.join("etc").join(file));
    }
    podman::import(
        &root,
        builder,
        &[
            "ENV PATH=/opt/cargo/bin:/usr/local/bin:/usr/bin:/bin",
            "ENV RUSTUP_HOME=/opt/rustup",
            "ENV CARGO_HOME=/opt/cargo",
            "ENV CARGO_NET_OFFLINE=true",
        ],
    );
    let root = work.join("runtime");
    podman::rootfs(&root, None);
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    podman::import(&root, runtime, &["ENV PATH=/usr/local/bin:/bin"]);
    let home = std::env::var("HOME").unwrap();
    let rustup = std::env::var("RUSTUP_HOME").unwrap_or(format!("{home}/.rustup"));
    let cargo = std::env::var("CARGO_HOME").unwrap_or(format!("{home}/.cargo"));
    [
        "/usr:/usr:ro".to_string(),
        // Debian's cc and ld are links through /etc/alternatives.
        "/etc/alternatives:/etc/alternatives:ro".to_string(),
        format!("{rustup}:/opt/rustup:ro"),
        format!("{cargo}:/opt/cargo:ro"),
    ]
    .into_iter()
    .flat_map(|v| ["--volume".to_string(), v])
    .collect()
}

#[test]
fn the_containerfile_builds_an_image_that_runs_sentineld_as_pid_1() {
    if !podman::available("containerfile") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let mut cleanup = Cleanup::default();
    let (builder, runtime, image) = (unique("builder"), unique("runtime"), unique("built"));
    let [builder, runtime, image] = [builder, runtime, image].map(|n| format!("localhost/{n}"));
    for i in [&builder, &runtime, &image] {
        cleanup.image(i);
    }
    let volumes = base_images(work.path(), &builder, &runtime);
    let repo = env!("CARGO_MANIFEST_DIR");
    // No layer cache: nothing of the build (the builder stage holds a whole
    // target dir) is left behind as an untagged image.
    let mut args: Vec<String> = [
        "build",
        "--quiet",
        "--layers=false",
        "--file",
        "deploy/Containerfile",
    ]
    .map(String::from)
    .to_vec();
    args.extend(podman::ulimits());
    args.extend(volumes);
    for arg in [
        format!("BUILDER_IMAGE={builder}"),
        format!("RUNTIME_IMAGE={runtime}"),
        // The dev profile: the release build's LTO takes minutes more.
        "PROFILE=dev".to_string(),
    ] {
        args.extend(["--build-arg".to_string(), arg]);
    }
    args.extend(["--tag".to_string(), image.clone(), repo.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    podman_ok(&args);
    let name = unique("built-ctr");
    cleanup.container(&name);
    let mut run = vec!["run", "--detach", "--name", &name, "--network", "none"];
    let ulimits = podman::ulimits();
    run.extend(ulimits.iter().map(String::as_str));
    run.push(&image);
    podman_ok(&run);
    let exec = |cmd: &[&str]| podman(&[&["exec", &name][..], cmd].concat());
    wait_until(Duration::from_secs(20), "the image's heartbeat", || {
        let out = exec(&["sentineld", "status", "--json"]);
        let status: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        status["services"][0]["state"] == "running"
    });
    let pid1 = String::from_utf8(exec(&["cat", "/proc/1/cmdline"]).stdout).unwrap();
    assert!(
        pid1.starts_with("/usr/local/bin/sentineld\0up\0"),
        "PID 1: {pid1:?}"
    );
    let uid = String::from_utf8(exec(&["id", "-u"]).stdout).unwrap();
    assert_eq!(uid.trim(), podman::UID.to_string(), "a non-root user");
    podman_ok(&["stop", "--time", "15", &name]);
    let code = podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "0");
}
