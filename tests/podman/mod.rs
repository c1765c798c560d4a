//! Podman harness: a minimal image made from the just-built binary (its
//! libraries, busybox), containers with unique names, and a guard that
//! removes every container and image a test made, even when it fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_sentineld");

/// The uid the images run sentineld as, as `deploy/Containerfile` does.
pub const UID: u32 = 10001;

/// Whether podman can be used. Absent podman skips a test (with the
/// reason printed) only when `SENTINELD_REQUIRE_PODMAN` is unset; CI sets
/// it, so a podman that went missing fails there instead of passing.
pub fn available(test: &str) -> bool {
    let found = Command::new("podman").arg("--version").output().is_ok();
    if !found && std::env::var_os("SENTINELD_REQUIRE_PODMAN").is_none() {
        eprintln!(
            "SKIPPED {test}: podman is not installed (set SENTINELD_REQUIRE_PODMAN=1 to fail)"
        );
        return false;
    }
    assert!(
        found,
        "podman is required (SENTINELD_REQUIRE_PODMAN is set) but not found"
    );
    true
}

/// Run podman; returns its output whatever its status.
pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs")
}

/// Run podman and insist on success; returns its stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {} failed: {}\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A name no other test (or test process) uses.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("sentineld-test-{what}-{}-{n}", std::process::id())
}

/// `--ulimit` flags for `podman run`. crun sets the container's rlimits,
/// and a process without CAP_SYS_RESOURCE cannot raise a hard limit: the
/// defaults (1048576) fail there. `nofile` is this process's own (podman
/// raises its own to its hard limit, so it can set them); `nproc` counts
/// the user's processes machine-wide, and podman lowers its own below
/// ours (to 32768 with podman 4.3 here), so it is capped at 4096: plenty for
/// a test, and below what podman holds.
pub fn ulimits() -> Vec<String> {
    let limit = |resource| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(resource, &mut lim) }, 0);
        lim
    };
    let nofile = limit(libc::RLIMIT_NOFILE);
    let nproc = limit(libc::RLIMIT_NPROC).rlim_cur.min(4096);
    vec![
        "--ulimit".into(),
        format!("nofile={}:{}", nofile.rlim_cur, nofile.rlim_max),
        "--ulimit".into(),
        format!("nproc={nproc}:{nproc}"),
    ]
}

/// Removes what a test made, in reverse order: containers, then images.
#[derive(Default)]
pub struct Cleanup {
    containers: Vec<String>,
    images: Vec<String>,
}

impl Cleanup {
    pub fn container(&mut self, name: &str) {
        self.containers.push(name.to_string());
    }

    pub fn image(&mut self, name: &str) {
        self.images.push(name.to_string());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in self.containers.iter().rev() {
            let _ = podman(&["rm", "--force", "--time", "0", c]);
        }
        for i in self.images.iter().rev() {
            let _ = podman(&["rmi", "--force", i]);
        }
    }
}

/// The dynamic libraries `binary` needs, and its loader, as `ldd` names them.
fn libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().expect("ldd runs");
    assert!(out.status.success(), "ldd {}: {out:?}", binary.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

fn busybox() -> PathBuf {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.expect("busybox (Debian: busybox-static) is required for the container tests")
}

fn copy_into(root: &Path, source: &Path, dest: &str) {
    let target = root.join(dest.trim_start_matches('/'));
    std::fs::create_dir_all(target.parent().unwrap()).unwrap();
    std::fs::copy(source, &target)
        .unwrap_or_else(|e| panic!("copy {} → {}: {e}", source.display(), target.display()));
}

/// A root filesystem: busybox and its applets, glibc as `binary` needs it,
/// `binary` (if given) as /usr/local/bin/sentineld, users root and
/// sentineld (uid [`UID`]), a writable /tmp and a state dir it owns.
pub fn rootfs(root: &Path, binary: Option<&Path>) {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    let bb = busybox();
    copy_into(root, &bb, "/bin/busybox");
    let list = Command::new(&bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).split_whitespace() {
        let _ = symlink("busybox", root.join("bin").join(applet));
    }
    for lib in libraries(Path::new(BIN)) {
        copy_into(root, &lib, lib.to_str().unwrap());
    }
    if let Some(binary) = binary {
        copy_into(root, binary, "/usr/local/bin/sentineld");
    }
    let etc = root.join("etc");
    std::fs::create_dir_all(etc.join("sentineld")).unwrap();
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\nsentineld:x:{UID}:{UID}::/var/lib/sentineld:/bin/false\n"
    );
    std::fs::write(etc.join("passwd"), passwd).unwrap();
    std::fs::write(
        etc.join("group"),
        format!("root:x:0:\nsentineld:x:{UID}:\n"),
    )
    .unwrap();
    for dir in ["tmp", "proc", "sys", "dev", "root"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let tmp = root.join("tmp");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let state = root.join("var/lib/sentineld");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown(&state, Some(UID), Some(UID)).unwrap();
}

/// Pack `root` and `podman import` it as `image` with `changes`
/// (Containerfile instructions such as `ENTRYPOINT [...]`).
pub fn import(root: &Path, image: &str, changes: &[&str]) {
    let tar = root.with_extension("tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar of {}", root.display());
    let mut args = vec!["import".to_string(), "--quiet".to_string()];
    for c in changes {
        args.push("--change".into());
        args.push(c.to_string());
    }
    args.push(tar.to_str().unwrap().to_string());
    args.push(image.to_string());
    podman_ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let _ = std::fs::remove_file(tar);
}

/// The image sentineld runs in: as `deploy/Containerfile` makes it (a
/// non-root user, the state dir in /var/lib/sentineld/state, the services file
/// in /etc/sentineld), from the just-built binary.
pub fn sentineld_image(work: &Path, cleanup: &mut Cleanup) -> String {
    let image = format!("localhost/{}:latest", unique("image"));
    let root = work.join("rootfs");
    rootfs(&root, Some(Path::new(BIN)));
    cleanup.image(&image);
    import(
        &root,
        &image,
        &[
            "ENV SENTINELD_STATE_DIR=/var/lib/sentineld/state",
            "ENV PATH=/usr/local/bin:/bin",
            &format!("USER {UID}:{UID}"),
            "STOPSIGNAL SIGTERM",
            r#"ENTRYPOINT ["/usr/local/bin/sentineld", "up", "--state-dir", "/var/lib/sentineld/state", "/etc/sentineld/services.yaml"]"#,
        ],
    );
    image
}

/// Poll `cond` every 100 ms until it holds or `timeout` passes; panics with `what`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
