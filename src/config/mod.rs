//! services.yaml → a validated, typed [`Plan`].
//!
//! Loading never has side effects beyond reading files (the YAML and its
//! `env_file`s): a bad file is reported in full — every error, each with
//! file, line, column and YAML path — and nothing is started.

pub mod diff;
pub mod limits;
mod parse;
pub mod read;
mod recovery;
pub mod units;
pub mod webhook;
pub mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;

pub use crate::strategy::policy::{DependOn, RestartPolicy, ServiceType, Strategy};
pub use parse::schema::json_schema;
pub use recovery::*;

/// The resolved, validated contents of a services file.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub file: PathBuf,
    /// Directory of the services file: relative paths are resolved against it.
    pub base_dir: PathBuf,
    pub state_dir: PathBuf,
    /// In declaration order.
    pub services: Vec<ServiceSpec>,
    /// The root of the supervision tree.
    pub supervisor: SupervisorSpec,
    pub groups: Vec<GroupSpec>,
    /// Stop everything and exit 1 when the root's intensity is exceeded.
    pub exit_on_critical: bool,
    /// The HTTP API's listener; none: off.
    pub api: Option<ApiSpec>,
    pub resources: limits::ResourcesSpec,
    /// POSTs every event, system events too.
    pub webhook: Option<webhook::WebhookSpec>,
    /// Service indices in an order that respects `depends_on` and group
    /// order; stop order is its reverse.
    #[serde(skip)]
    pub start_order: Vec<usize>,
    /// `up --state-dir` chose the state dir, not the file: a reload reads
    /// the file's `state_dir` as nothing.
    #[serde(skip)]
    pub state_dir_from_flag: bool,
}

impl Plan {
    /// The state dir `--state-dir` or `SENTINELD_STATE_DIR` gives, in place
    /// of the file's.
    pub fn place_state_dir(&mut self, dir: PathBuf) {
        self.state_dir = std::path::absolute(&dir).unwrap_or(dir);
        self.state_dir_from_flag = true;
    }
}

/// `api:`: where the HTTP API listens and the token it asks for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiSpec {
    pub listen: std::net::SocketAddr,
    /// Required off loopback; read from `token_file` when given there.
    pub token: Option<Secret>,
    /// `/healthz` and `/readyz` answer without the token, with their
    /// status and no names: for probes that cannot send a secret header.
    pub public_health: bool,
    /// The variables `token` was expanded from (`${SENTINELD_API_TOKEN}`):
    /// kept from the services' environment, which is sentineld's own.
    #[serde(skip)]
    pub token_vars: Vec<String>,
}

impl ApiSpec {
    /// Where `api:` listens when it names no address.
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:9700";
}

/// A value never printed: its `Debug` and its serialized form say `hidden`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"hidden\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("hidden")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupervisorSpec {
    pub strategy: Strategy,
    /// At most this many restarts within `period`; none: no limit.
    pub intensity: Option<u32>,
    #[serde(serialize_with = "ser_duration")]
    pub period: Duration,
}

impl Default for SupervisorSpec {
    fn default() -> Self {
        SupervisorSpec {
            strategy: Strategy::OneForOne,
            intensity: None,
            period: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupSpec {
    pub name: String,
    pub strategy: Strategy,
    pub intensity: u32,
    #[serde(serialize_with = "ser_duration")]
    pub period: Duration,
    /// Service or group names; order is start order.
    pub children: Vec<String>,
    /// The group this one is a child of; none: the root.
    pub parent: Option<String>,
}

impl GroupSpec {
    /// A group with no children yet; it restarts like the root, but with a
    /// limit: a group that keeps failing is the root's problem.
    pub fn new(name: impl Into<String>) -> GroupSpec {
        let root = SupervisorSpec::default();
        GroupSpec {
            name: name.into(),
            strategy: root.strategy,
            intensity: 10,
            period: root.period,
            children: Vec::new(),
            parent: None,
        }
    }
}

#[derive(Clone, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub command: Command,
    pub cwd: PathBuf,
    /// Set on top of sentineld's own environment: `env_file` first, then `env`.
    pub env: BTreeMap<String, String>,
    pub user: Option<UserSpec>,
    /// `forking`: the command is a launcher that daemonizes.
    #[serde(rename = "type")]
    pub kind: ServiceType,
    /// Where a forking service's daemon writes its pid (resolved against cwd).
    pub pid_file: Option<PathBuf>,
    pub restart: RestartPolicy,
    #[serde(serialize_with = "ser_duration")]
    pub min_uptime: Duration,
    pub stop: StopSpec,
    pub logs: LogSpec,
    /// First matching rule wins, then DESIGN §3's table.
    pub classify: Vec<ClassifyRule>,
    pub recovery: RecoverySpec,
    pub escalation: EscalationSpec,
    pub sla: SlaSpec,
    /// Run on every event of this service, with `SENTINELD_*` in its environment.
    pub on_event: Option<Command>,
    /// Run before every start of the primary (nginx -t): a failure is
    /// CRITICAL and the primary is not started.
    pub pre_start: Option<Command>,
    /// A `pre_start` still running after this is killed: a failure.
    #[serde(serialize_with = "ser_duration")]
    pub pre_start_timeout: Duration,
    /// An `on_event` hook still running after this is killed (its group).
    #[serde(serialize_with = "ser_duration")]
    pub on_event_timeout: Duration,
    /// POSTs this service's events.
    pub webhook: Option<webhook::WebhookSpec>,
    pub liveness: Option<ProbeSpec>,
    pub readiness: Option<ProbeSpec>,
    pub startup: Option<ProbeSpec>,
    /// sd_notify watchdog: a `WATCHDOG=1` is expected at least this often.
    #[serde(serialize_with = "ser_opt_duration")]
    pub watchdog: Option<Duration>,
    /// Not ready (readiness probe or `READY=1`) this long after a start: a
    /// `readiness timeout` failure.
    #[serde(serialize_with = "ser_opt_duration")]
    pub start_timeout: Option<Duration>,
    pub depends_on: Vec<(String, DependOn)>,
    /// Exceeding one is a failure (`memory limit exceeded`).
    #[serde(serialize_with = "limits::ser_limits")]
    pub limits: crate::strategy::limits::Limits,
    /// The group this service is a child of; none: the root.
    pub group: Option<String>,
    /// Signals sent to sentineld that it passes on to this service's main
    /// process (SIGUSR1, SIGUSR2, SIGWINCH).
    #[serde(serialize_with = "recovery::ser_signals")]
    pub forward_signals: Vec<Signal>,
}

impl ServiceSpec {
    /// A service with every optional key at its default.
    pub fn new(name: impl Into<String>, command: Command, cwd: PathBuf) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            command,
            cwd,
            env: BTreeMap::new(),
            user: None,
            kind: ServiceType::Simple,
            pid_file: None,
            restart: RestartPolicy::Always,
            min_uptime: Duration::from_secs(1),
            stop: StopSpec::default(),
            logs: LogSpec::default(),
            classify: Vec::new(),
            recovery: RecoverySpec::default(),
            escalation: EscalationSpec::default(),
            sla: SlaSpec::default(),
            on_event: None,
            pre_start: None,
            pre_start_timeout: Duration::from_secs(30),
            on_event_timeout: Duration::from_secs(30),
            webhook: None,
            liveness: None,
            readiness: None,
            startup: None,
            watchdog: None,
            start_timeout: None,
            depends_on: Vec::new(),
            limits: Default::default(),
            group: None,
            forward_signals: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeSpec {
    pub check: Check,
    #[serde(serialize_with = "ser_duration")]
    pub interval: Duration,
    pub timeout: ProbeTimeout,
    #[serde(serialize_with = "ser_duration")]
    pub initial_delay: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

/// Timing defaults; the check is `notify` until a kind is given.
impl Default for ProbeSpec {
    fn default() -> Self {
        ProbeSpec {
            check: Check::Notify,
            interval: Duration::from_secs(5),
            timeout: ProbeTimeout::Fixed(Duration::from_secs(1)),
            initial_delay: Duration::ZERO,
            failure_threshold: 3,
            success_threshold: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Check {
    /// A command; exit 0 passes.
    Exec(Command),
    Http(HttpCheck),
    /// `host:port`; a completed connect passes.
    Tcp(String),
    /// sd_notify `READY=1` (readiness only).
    Notify,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCheck {
    pub url: String,
    /// `host:port` to connect to.
    pub authority: String,
    pub path: String,
    pub method: String,
    /// Inclusive range of passing status codes.
    pub expect: (u16, u16),
    pub headers: Vec<(String, String)>,
}

/// The method and passing statuses; the URL parts are empty until given.
impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            url: String::new(),
            authority: String::new(),
            path: String::new(),
            method: "GET".into(),
            expect: (200, 399),
            headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeTimeout {
    Fixed(#[serde(serialize_with = "ser_duration")] Duration),
    /// clamp(3 × p99 estimate of recent latency, 100ms, interval).
    Adaptive,
}

fn ser_opt_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => ser_duration(d, s),
        None => s.serialize_none(),
    }
}

impl fmt::Debug for ServiceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceSpec")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("cwd", &self.cwd)
            .field("env", &"hidden")
            .field("user", &self.user)
            .field("restart", &self.restart)
            .field("min_uptime", &self.min_uptime)
            .field("stop", &self.stop)
            .field("logs", &self.logs)
            .field("classify", &self.classify)
            .field("recovery", &self.recovery)
            .field("escalation", &self.escalation)
            .field("type", &self.kind)
            .field("pid_file", &self.pid_file)
            .field("sla", &self.sla)
            .field("on_event", &self.on_event)
            .field("pre_start", &self.pre_start)
            .field("pre_start_timeout", &self.pre_start_timeout)
            .field("on_event_timeout", &self.on_event_timeout)
            .field("liveness", &self.liveness)
            .field("readiness", &self.readiness)
            .field("startup", &self.startup)
            .field("watchdog", &self.watchdog)
            .field("start_timeout", &self.start_timeout)
            .field("depends_on", &self.depends_on)
            .field("group", &self.group)
            .finish()
    }
}

/// Shown by `check` as the argv that will be exec'd.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A list: `argv[0]` is looked up in `PATH` and exec'd with no shell.
    Exec(Vec<String>),
    /// A string: run by `/bin/sh -c`.
    Shell(String),
}

impl Command {
    /// The argv to exec. A string with no shell syntax at all
    /// (`./server --port 8080`) is split on whitespace and exec'd directly:
    /// `sh -c` would do exactly that, but as one more process between
    /// sentineld and the service, delaying every exit and restart.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                plain_words(s).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), s.clone()])
            }
        }
    }

    /// Whether the program is looked up in `PATH` (a bare name).
    pub fn searches_path(&self) -> bool {
        let argv = self.argv();
        !argv[0].contains('/')
    }
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.argv().serialize(s)
    }
}

/// The words of a command line that the shell would only split on blanks:
/// no quoting, expansion, redirection, operators, assignments, and a first
/// word that is not a shell keyword or builtin.
pub fn plain_words(line: &str) -> Option<Vec<String>> {
    const SYNTAX: &[char] = &[
        '$', '`', '\\', '"', '\'', '|', '&', ';', '<', '>', '(', ')', '{', '}', '*', '?', '[', ']',
        '~', '#', '=', '!', '\n', '%',
    ];
    const SHELL_WORDS: &[&str] = &[
        ".", ":", "alias", "bg", "break", "case", "cd", "command", "continue", "do", "done",
        "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc", "fg",
        "fi", "for", "getopts", "hash", "if", "in", "jobs", "kill", "local", "printf", "pwd",
        "read", "readonly", "return", "set", "shift", "test", "then", "times", "trap", "true",
        "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
    ];
    if line.contains(SYNTAX) {
        return None;
    }
    let words: Vec<String> = line.split_ascii_whitespace().map(str::to_string).collect();
    let first = words.first()?;
    if SHELL_WORDS.contains(&first.as_str()) {
        return None;
    }
    Some(words)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StopSpec {
    #[serde(serialize_with = "ser_signal")]
    pub signal: Signal,
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogSpec {
    pub max_size: u64,
    pub keep: u32,
}

impl Default for StopSpec {
    fn default() -> Self {
        StopSpec {
            signal: Signal::SIGTERM,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for LogSpec {
    fn default() -> Self {
        LogSpec {
            max_size: 10 << 20,
            keep: 5,
        }
    }
}

fn ser_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

fn ser_signal<S: serde::Serializer>(sig: &Signal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(sig.as_str())
}

/// One problem in a services file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    /// Dotted YAML path (`services.web.stop.timeout`); empty for the document.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render_errors(.0))]
    Invalid(Vec<ConfigError>),
}

fn render_errors(errors: &[ConfigError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&e.to_string());
    }
    out
}

/// What validation may ask of the world. Production uses the process's
/// environment and uid; tests pass their own.
pub struct Context<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub euid: u32,
}

pub fn load(path: &Path) -> Result<Plan, LoadError> {
    let env = |k: &str| std::env::var(k).ok();
    let ctx = Context {
        env: &env,
        euid: nix::unistd::geteuid().as_raw(),
    };
    load_with(path, &ctx)
}

pub fn load_with(path: &Path, ctx: &Context<'_>) -> Result<Plan, LoadError> {
    let text = read::read_text(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    parse::plan_from_str(&text, &abs, ctx).map_err(LoadError::Invalid)
}

/// The state dir a client should talk to: `--state-dir`, else
/// `SENTINELD_STATE_DIR`, else the nearest `.sentineld` in the current
/// directory or one above it (as git finds `.git`), else `./.sentineld` as
/// an absolute path, so an error says where it looked.
pub fn client_state_dir(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("SENTINELD_STATE_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let here = std::env::current_dir().unwrap_or_default();
    nearest_state_dir(&here).unwrap_or_else(|| here.join(crate::state_dir::DEFAULT_NAME))
}

/// The first `.sentineld` directory in `start` or one of its ancestors.
pub fn nearest_state_dir(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join(crate::state_dir::DEFAULT_NAME))
        .find(|p| p.symlink_metadata().is_ok_and(|m| m.is_dir()))
}
