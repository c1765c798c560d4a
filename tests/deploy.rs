//! The files under deploy/ checked by real tools: the systemd unit by
//! `systemd-analyze verify`, the Kubernetes manifests by
//! `kubernetes-validate --strict` (PyPI; schemas bundled), the compose file
//! by the `compose_spec` crate (the compose-spec's types; unknown keys are
//! errors); and the stop budgets each states (terminationGracePeriodSeconds,
//! stop_grace_period) against the stop timeouts of the services file it
//! ships, as `sentineld check` resolves them.
//!
//! A missing tool skips its test with the reason printed, unless
//! `SENTINELD_REQUIRE_DEPLOY_TOOLS` is set (CI sets it): then it fails.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_yaml::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sentineld");

/// The API token the examples' services files expand (`check` needs one).
const TOKEN: &str = "a-token-for-the-deploy-tests";

/// What shutdown adds to the longest chain of stop timeouts: adopted
/// orphans get SIGTERM and 5 s before SIGKILL; 5 s for the log flush and exit.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
const FLUSH: Duration = Duration::from_secs(5);

fn deploy(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(rel)
}

fn read_yaml(rel: &str) -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(deploy(rel)).unwrap()).unwrap()
}

/// Run `tool`; None (with the reason printed) when it is not installed
/// and the deploy tools are not required.
fn run_tool(test: &str, tool: &str, args: &[&str]) -> Option<Output> {
    match Command::new(tool).args(args).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let required = std::env::var_os("SENTINELD_REQUIRE_DEPLOY_TOOLS").is_some();
            assert!(
                !required,
                "{tool} is required (SENTINELD_REQUIRE_DEPLOY_TOOLS) but not found"
            );
            eprintln!("SKIPPED {test}: {tool} is not installed");
            None
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn text(out: &Output) -> String {
    let both = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
    String::from_utf8_lossy(&both).into_owned()
}

/// `systemd-analyze verify` of `unit` with its sentineld paths pointing at
/// the built binary (verify checks that ExecStart's program exists).
fn verify_unit(unit: &str) -> Option<Output> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sentineld.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/sentineld", BIN)).unwrap();
    let path = path.to_str().unwrap();
    run_tool(
        "systemd unit",
        "systemd-analyze",
        &["verify", "--man=no", path],
    )
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let unit = std::fs::read_to_string(deploy("systemd/sentineld.service")).unwrap();
    let Some(out) = verify_unit(&unit) else {
        return;
    };
    assert!(
        out.status.success() && text(&out).is_empty(),
        "{}",
        text(&out)
    );
    // The check is real: a misspelt key is reported.
    let typo = verify_unit(&unit.replace("KillMode=", "KilMode=")).unwrap();
    assert!(text(&typo).contains("KilMode"), "{}", text(&typo));
    let settings: Vec<&str> = unit.lines().map(str::trim).collect();
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "KillMode=mixed",
        "ExecReload=/usr/local/bin/sentineld reload",
        "Delegate=yes",
    ] {
        assert!(settings.contains(&line), "the unit lacks {line}");
    }
    assert!(settings.iter().any(|l| l.starts_with("WatchdogSec=")));
    assert!(settings.iter().any(|l| l.starts_with("TimeoutStopSec=")));
}

#[test]
fn the_kubernetes_manifests_validate_against_their_schemas_strictly() {
    let dir = deploy("kubernetes");
    let files = ["configmap.yaml", "secret.yaml", "deployment.yaml"];
    let paths: Vec<String> = files
        .iter()
        .map(|f| dir.join(f).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["--strict", "--quiet"];
    args.extend(paths.iter().map(String::as_str));
    let Some(out) = run_tool("kubernetes", "kubernetes-validate", &args) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    // Strict: a field the schema does not know fails.
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("deployment.yaml");
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    std::fs::write(
        &bad,
        deployment.replace("readinessProbe:", "readynessProbe:"),
    )
    .unwrap();
    let out = run_tool(
        "kubernetes",
        "kubernetes-validate",
        &["--strict", bad.to_str().unwrap()],
    );
    let out = out.unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field passed: {}",
        text(&out)
    );
}

/// `sentineld check` of `yaml`: the resolved plan.
fn check(yaml: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .arg(&file)
        .env("SENTINELD_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "check failed: {}", text(&out));
    serde_yaml::from_slice(&out.stdout).unwrap()
}

/// The longest time shutdown may take for `plan`: services stop in waves,
/// each once everything that depends on it (or follows it in its group)
/// is down, each waiting its stop.timeout at most; so the longest chain
/// of stop timeouts bounds it. Then the orphans' grace, then the flush.
fn shutdown_bound(plan: &Value) -> Duration {
    let services = plan["services"].as_sequence().unwrap();
    let timeout = |s: &Value| humantime::parse_duration(s["stop"]["timeout"].as_str().unwrap());
    let mut stop_before: HashMap<String, Vec<String>> = HashMap::new();
    let mut own: HashMap<String, Duration> = HashMap::new();
    for s in services {
        let name = s["name"].as_str().unwrap().to_string();
        own.insert(name.clone(), timeout(s).unwrap());
        for dep in s["depends_on"].as_sequence().unwrap() {
            let on = dep[0].as_str().unwrap().to_string();
            stop_before.entry(on).or_default().push(name.clone());
        }
    }
    for g in plan["groups"].as_sequence().unwrap() {
        let children: Vec<&str> = g["children"]
            .as_sequence()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for pair in children.windows(2) {
            let later = stop_before.entry(pair[0].to_string()).or_default();
            later.push(pair[1].to_string());
        }
    }
    fn chain(
        name: &str,
        own: &HashMap<String, Duration>,
        after: &HashMap<String, Vec<String>>,
    ) -> Duration {
        let first = after.get(name).into_iter().flatten();
        let longest = first
            .map(|d| chain(d, own, after))
            .max()
            .unwrap_or_default();
        longest + own.get(name).copied().unwrap_or_default()
    }
    let longest = own.keys().map(|n| chain(n, &own, &stop_before)).max();
    longest.unwrap_or_default() + ORPHAN_GRACE + FLUSH
}

#[test]
fn the_shutdown_bound_follows_dependencies() {
    let plan = check(
        "services:\n  db: { command: sleep 9, stop: { timeout: 7s } }\n  \
         api: { command: sleep 9, depends_on: { db: started } }\n  \
         x: { command: sleep 9, stop: { timeout: 3s } }\n",
    );
    // api (10 s, the default) then db (7 s); x stops beside them.
    assert_eq!(shutdown_bound(&plan), Duration::from_secs(27));
}

fn configmap_services() -> String {
    let cm = read_yaml("kubernetes/configmap.yaml");
    cm["data"]["services.yaml"].as_str().unwrap().to_string()
}

fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    let containers = deployment["spec"]["template"]["spec"]["containers"].as_sequence();
    let found = containers.unwrap().iter().find(|c| c["name"] == name);
    found.unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn the_deployment_grace_period_covers_the_configmaps_stop_timeouts() {
    let bound = shutdown_bound(&check(&configmap_services()));
    let deployment = read_yaml("kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        Duration::from_secs(grace) >= bound,
        "terminationGracePeriodSeconds {grace} is less than the shutdown bound {bound:?}"
    );
}

#[test]
fn the_deployment_probes_sentineld_which_is_pid_1_of_its_container() {
    let deployment = read_yaml("kubernetes/deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["shareProcessNamespace"], false,
        "the pause process would be PID 1"
    );
    let main = container(&deployment, "sentineld");
    assert!(
        main["command"].is_null(),
        "the image's entrypoint, sentineld, must run"
    );
    let liveness = &main["livenessProbe"]["httpGet"];
    let readiness = &main["readinessProbe"]["httpGet"];
    assert_eq!(liveness["path"], "/healthz");
    assert_eq!(readiness["path"], "/readyz");
    // The API asks every other request for the Secret's token; the probes
    // carry none (the token is not repeated in the Deployment) and are
    // answered under public_health.
    for probe in [liveness, readiness] {
        assert!(probe["httpHeaders"].is_null(), "no token in the Deployment");
    }
    let plan = check(&configmap_services());
    assert_eq!(plan["api"]["public_health"], true);
    let listen = plan["api"]["listen"].as_str().unwrap();
    let port = main["ports"][0]["containerPort"].as_u64().unwrap();
    assert!(listen.ends_with(&format!(":{port}")), "api.listen {listen}");
    // Mounted as a directory: a subPath mount never sees an update.
    for c in pod["containers"].as_sequence().unwrap() {
        for m in c["volumeMounts"].as_sequence().unwrap() {
            assert!(m["subPath"].is_null(), "subPath mount in {:?}", c["name"]);
        }
    }
    let reloader = container(&deployment, "config-reloader");
    let script = reloader["command"][2].as_str().unwrap();
    assert!(script.contains("sentineld reload") && script.contains("..data"));
}

fn compose_file() -> compose_spec::Compose {
    let text = std::fs::read_to_string(deploy("compose.yaml")).unwrap();
    compose_spec::Compose::options()
        .apply_merge(true)
        .from_yaml_str(&text)
        .unwrap_or_else(|e| panic!("compose.yaml: {e}"))
}

#[test]
fn the_compose_file_is_valid_compose_and_gives_sentineld_its_grace() {
    let compose = compose_file();
    compose.validate_all().unwrap();
    let (_, service) = compose.services.first().unwrap();
    assert!(!service.init, "sentineld is the init");
    let yaml = std::fs::read_to_string(deploy("compose/services.yaml")).unwrap();
    let bound = shutdown_bound(&check(&yaml));
    let grace = service.stop_grace_period.expect("stop_grace_period");
    assert!(grace >= bound, "stop_grace_period {grace:?} < {bound:?}");
    // The checker is real: an unknown key is an error.
    let text = std::fs::read_to_string(deploy("compose.yaml")).unwrap();
    let typo = text.replace("stop_grace_period:", "stop_grace_periode:");
    assert!(
        compose_spec::Compose::options()
            .from_yaml_str(&typo)
            .is_err()
    );
}
