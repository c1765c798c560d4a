//! `sentineld schema`: a valid JSON Schema that accepts the services files
//! we document and run, and rejects the bad files of `config_errors` —
//! all but those only `sentineld check` can judge, each named below with
//! the reason.

#[path = "config_errors/cases.rs"]
mod cases;
mod common;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use cases::CASES;
use common::BIN;

/// Bad files the schema accepts, and why no JSON Schema could reject them.
/// A new case in `config_errors` is either rejected by the schema or
/// listed here.
const SEMANTIC_ONLY: &[(&str, &str)] = &[
    (
        "missing env_file",
        "the file system: whether the file exists",
    ),
    (
        "missing cwd",
        "the file system: whether the directory exists",
    ),
    ("unknown user", "the system's users"),
    ("unset variable", "the environment sentineld runs in"),
    (
        "bad regular expression",
        "Rust regex syntax is not ECMA's ((?i) is valid only in Rust), so `format: regex` would reject good rules in editors",
    ),
    (
        "sampling interval too short",
        "a minimum duration is arithmetic over the duration's parts (1m 30s), not a pattern",
    ),
    ("zero probe interval", "a minimum duration, as above"),
    (
        "probe timeout longer than its interval",
        "compares two durations of the file",
    ),
    (
        "dependency cycle",
        "a property of the whole dependency graph",
    ),
    (
        "unknown dependency",
        "a name that must be another key of services",
    ),
    (
        "ready without a readiness probe",
        "depends on another service's keys",
    ),
    (
        "completed on a permanent service",
        "depends on another service's keys",
    ),
    (
        "a service in two groups",
        "a relation between groups' lists",
    ),
    (
        "a group containing itself",
        "a name that refers to its own key",
    ),
    (
        "groups containing each other",
        "a property of the whole tree",
    ),
    (
        "unknown group child",
        "a name that must be a service or group",
    ),
    (
        "group order against depends_on",
        "a cycle through group order and dependencies",
    ),
];

fn schema() -> Value {
    let out = Command::new(BIN).arg("schema").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("{\n  \""), "pretty JSON: {text:.40}");
    serde_json::from_str(&text).unwrap()
}

fn validator() -> jsonschema::Validator {
    let schema = schema();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    jsonschema::draft7::new(&schema).expect("compiles")
}

/// The file as an editor sees it: YAML (with no key twice in a mapping)
/// loaded as JSON.
fn load(yaml: &str) -> Result<Value, String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    serde_json::to_value(doc).map_err(|e| e.to_string())
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn the_schema_is_valid_and_describes_the_file() {
    let schema = schema();
    jsonschema::meta::validate(&schema).expect("a valid JSON Schema");
    assert_eq!(schema["title"], "sentineld services file");
    assert_eq!(schema["required"], serde_json::json!(["services"]));
    let service = &schema["definitions"]["service"];
    assert_eq!(service["additionalProperties"], false);
    let restart = &service["properties"]["restart"];
    assert_eq!(restart["default"], "always");
    assert!(
        restart["description"]
            .as_str()
            .unwrap()
            .contains("on-failure")
    );
}

#[test]
fn the_schema_accepts_the_example_and_the_readmes_files() {
    let v = validator();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = std::fs::read_to_string(root.join("examples/services.yaml")).unwrap();
    let doc = load(&example).unwrap();
    assert_eq!(
        errors(&v, &doc),
        Vec::<String>::new(),
        "examples/services.yaml"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let files = yaml_blocks(&readme);
    assert!(files.len() >= 3, "{} YAML blocks in README", files.len());
    for (line, block) in files {
        let mut doc = load(&block).unwrap_or_else(|e| panic!("README.md:{line}: {e}"));
        if doc.get("services").is_none() {
            // A service's keys: in a service, beside a command.
            doc["command"] = "true".into();
            doc = serde_json::json!({ "services": { "api": doc } });
        }
        assert_eq!(errors(&v, &doc), Vec::<String>::new(), "README.md:{line}");
    }
}

/// The README's ```yaml blocks (whole files, or a service's keys), with
/// the line each starts on.
fn yaml_blocks(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut block: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match (&mut block, line.trim_end()) {
            (None, "```yaml") => block = Some((i + 2, String::new())),
            (Some(_), "```") => {
                out.extend(block.take());
            }
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_schema_rejects_every_bad_file_but_those_only_check_can_judge() {
    let v = validator();
    for (name, _) in SEMANTIC_ONLY {
        assert!(CASES.iter().any(|(n, ..)| n == name), "no case {name:?}");
    }
    for (name, yaml, _) in CASES {
        let rejected = match load(yaml) {
            Err(_) => true,
            Ok(doc) => !v.is_valid(&doc),
        };
        let semantic = SEMANTIC_ONLY.iter().any(|(n, _)| n == name);
        match (rejected, semantic) {
            (true, true) => panic!("{name:?}: the schema rejects it; take it off SEMANTIC_ONLY"),
            (false, false) => panic!(
                "{name:?}: the schema accepts this bad file; make it reject it, or list it in SEMANTIC_ONLY with the reason"
            ),
            _ => {}
        }
    }
}

#[test]
fn a_value_may_be_a_variable_reference() {
    let v = validator();
    let yaml = "services:\n  web:\n    command: [sleep, '${SECS:-5}']\n    restart: ${RESTART:-always}\n    min_uptime: ${UPTIME}\n    logs: { keep: '${KEEP:-3}' }\n    readiness: { tcp: '${HOST}:${PORT}' }\n";
    let doc = load(yaml).unwrap();
    assert_eq!(errors(&v, &doc), Vec::<String>::new());
    let bad = load("services:\n  web:\n    command: x\n    restart: ${RESTART\n").unwrap();
    assert!(
        !v.is_valid(&bad),
        "an unterminated reference is no reference"
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let mut child = Command::new(BIN)
        .arg("schema")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
}

#[test]
fn a_token_of_digits_alone_is_a_yaml_number_and_still_a_token() {
    // `check` takes it (as text); an editor must not flag it.
    let v = validator();
    let yaml = "api: { listen: 10.0.0.1:9700, token: 1234567890123456789 }\nservices:\n  a:\n    command: exec sleep 1\n";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.yaml"), yaml).unwrap();
    let out = Command::new(BIN)
        .args(["check", "services.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(errors(&v, &load(yaml).unwrap()), Vec::<String>::new());
    let short = yaml.replace("1234567890123456789", "123");
    assert!(!errors(&v, &load(&short).unwrap()).is_empty(), "too short");
}
