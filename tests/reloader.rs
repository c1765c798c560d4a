//! The Kubernetes `config-reloader` of deploy/kubernetes/deployment.yaml,
//! its script run for real against a volume laid out as the kubelet lays
//! out a ConfigMap (`services.yaml -> ..data/services.yaml`, `..data -> a
//! timestamped directory`): the kubelet's swap of `..data` becomes a
//! reload, a bad file changes nothing.

mod common;

use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// The reloader container's shell script.
fn reloader_script() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/deployment.yaml");
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let containers = doc["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap();
    let reloader = containers
        .iter()
        .find(|c| c["name"] == "config-reloader")
        .unwrap();
    reloader["command"][2].as_str().unwrap().to_string()
}

/// The kubelet's update: the new files in a directory of their own, then
/// `..data` pointed at it in one rename.
fn publish(volume: &Path, version: &str, services: &str) {
    let dir = volume.join(format!("..{version}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("services.yaml"), services).unwrap();
    let tmp = volume.join("..data_tmp");
    symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, volume.join("..data")).unwrap();
}

/// Processes of the test, each in a group of its own, ended on drop.
struct Group(Vec<Child>);

impl Drop for Group {
    fn drop(&mut self) {
        for child in &mut self.0 {
            kill(-(child.id() as i32), libc::SIGTERM);
            let _ = child.wait();
        }
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env_remove("NO_COLOR")
        .process_group(0)
        .spawn()
        .unwrap()
}

#[test]
fn a_configmap_swap_becomes_a_reload_and_a_bad_file_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let volume = root.path().join("etc-sentineld");
    std::fs::create_dir(&volume).unwrap();
    let one = "services:\n  a:\n    command: exec sleep 300\n";
    publish(&volume, "2026_12_03_1", one);
    symlink("..data/services.yaml", volume.join("services.yaml")).unwrap();
    let state: PathBuf = root.path().join("state");
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    symlink(BIN, bin.join("sentineld")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // `status NAME --json`: the one service, its state and pid; and the
    // system's reload error, if any.
    let status = |name: &str| {
        let out = Command::new(BIN)
            .args(["status", name, "--json"])
            .env("SENTINELD_STATE_DIR", &state)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let mut service = v["services"][0].clone();
        service["reload_error"] = v["system"]["reload_error"].clone();
        out.status.success().then_some(service)
    };
    let mut group = Group(Vec::new());
    let mut up = Command::new(BIN);
    up.arg("up")
        .arg(volume.join("services.yaml"))
        .env("SENTINELD_STATE_DIR", &state);
    group.0.push(spawn(&mut up, &root.path().join("up.log")));
    wait_until(Duration::from_secs(10), "a running", || {
        status("a").is_some_and(|s| s["state"] == "running")
    });
    let script = reloader_script().replace("/etc/sentineld", &volume.display().to_string());
    let mut reloader = Command::new("sh");
    reloader
        .args(["-c", &script])
        .env("PATH", &path)
        .env("SENTINELD_STATE_DIR", &state);
    group
        .0
        .push(spawn(&mut reloader, &root.path().join("reloader.log")));

    let two = "services:\n  a:\n    command: exec sleep 300\n  b:\n    command: exec sleep 300\n";
    publish(&volume, "2026_12_03_2", two);
    wait_until(Duration::from_secs(20), "b added by the reloader", || {
        status("b").is_some_and(|s| s["state"] == "running")
    });
    let a = status("a").unwrap()["pid"].clone();
    publish(&volume, "2026_12_03_3", "services:\n  a:\n    command: [\n");
    wait_until(Duration::from_secs(20), "the bad file refused", || {
        status("a").is_some_and(|s| s["reload_error"]["message"].is_string())
    });
    assert_eq!(status("a").unwrap()["pid"], a, "a untouched");
    assert!(
        status("b").is_some_and(|s| s["state"] == "running"),
        "b kept"
    );
}
