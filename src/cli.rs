//! Command-line definitions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::color::ColorChoice;

#[derive(Debug, Parser)]
#[command(
    name = "sentineld",
    version,
    about = "A process supervisor: runs the services a YAML file declares, watches them and heals them."
)]
pub struct Cli {
    /// State dir of the instance to talk to (default: $SENTINELD_STATE_DIR,
    /// else the nearest .sentineld from here up). For `up` and `check`,
    /// overrides the file's `state_dir`, as $SENTINELD_STATE_DIR does.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Colour: `auto` (only on a terminal, and not with NO_COLOR set),
    /// `always` (even through a pipe, despite NO_COLOR) or `never`.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the services of FILE and supervise them until stopped (Ctrl-C, SIGTERM or `down`).
    Up {
        /// Detach: return once every service has been started.
        #[arg(short, long)]
        detach: bool,
        /// Run as the init of a container even when not PID 1 (as PID 1
        /// this is automatic): stay in the foreground, so `-d` is refused.
        /// Everywhere, sentineld reaps every orphan it adopts, stops its
        /// services in order on SIGTERM/SIGINT and exits 0, 1 (the system
        /// ended critical) or 128+n (a signal it has no use for).
        #[arg(long, conflicts_with = "detach")]
        init: bool,
        /// The services file.
        file: PathBuf,
    },
    /// Validate FILE and print the resolved plan; exit 2 on any error.
    /// Warns (exit 0) about programs that cannot run and probe ports that
    /// another process already listens on.
    Check {
        file: PathBuf,
        #[command(flatten)]
        json: Json,
    },
    /// Show every service, or one with its recent events.
    Status {
        name: Option<String>,
        #[command(flatten)]
        json: Json,
    },
    /// Start a stopped service.
    Start {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Stop a service (its stop signal, then SIGKILL to its process group).
    Stop {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Stop and start a service.
    Restart {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Close a service's circuit breaker and clear its failure history; a
    /// service waiting on recovery (quarantined, retrying) starts at once.
    Reset {
        name: String,
        #[command(flatten)]
        json: Json,
    },
    /// Send SIGNAL (HUP, SIGUSR1, 10) to a service's main process: nginx
    /// reloads on HUP, redis reopens its log on USR1.
    Signal {
        name: String,
        signal: String,
        #[command(flatten)]
        json: Json,
    },
    /// Read the services file again and apply what changed: start added
    /// services, stop removed ones, restart those whose command or
    /// environment changed, apply the rest in place. A file with errors
    /// changes nothing (exit 2). SIGHUP to the daemon does the same.
    Reload {
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Print recent events: exits, failures with their severity and the
    /// action taken, recoveries.
    Events {
        /// Only this service's events.
        name: Option<String>,
        /// Keep printing events as they happen.
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        json: Json,
    },
    /// Print a service's captured stdout and stderr.
    Logs {
        name: String,
        /// Keep printing as lines arrive.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines from the end.
        #[arg(short = 'n', long, default_value_t = 100)]
        lines: usize,
        #[command(flatten)]
        json: Json,
    },
    /// Print every metric in Prometheus text format (for node_exporter's
    /// textfile collector, or a look by hand).
    Metrics {
        #[command(flatten)]
        json: Json,
    },
    /// Stop every service and the daemon.
    Down {
        #[command(flatten)]
        json: Json,
    },
    /// Print the OpenAPI 3 document of the HTTP API (`api.listen`).
    Openapi {
        #[command(flatten)]
        json: Json,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish,
    /// powershell), generated from these definitions.
    Completions { shell: clap_complete::Shell },
    /// Print a JSON Schema (draft-07) of the services file, for editors:
    /// `sentineld schema > sentineld.schema.json`, then a first line
    /// `# yaml-language-server: $schema=./sentineld.schema.json`.
    Schema,
    /// Print the man page (roff), generated from these definitions:
    /// `sentineld man > sentineld.1; man ./sentineld.1`.
    Man,
}

/// `--json`: output for scripts, in the shapes the README's "Scripting"
/// section gives; with it, an error is a JSON object on stderr too.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct Json {
    /// Machine-readable output (JSON); errors as JSON on stderr.
    #[arg(long = "json")]
    pub on: bool,
}

impl Command {
    /// Whether the command was asked for JSON (its errors are JSON too).
    pub fn json(&self) -> bool {
        match self {
            Command::Up { .. } | Command::Completions { .. } | Command::Man | Command::Schema => {
                false
            }
            Command::Check { json, .. }
            | Command::Status { json, .. }
            | Command::Start { json, .. }
            | Command::Stop { json, .. }
            | Command::Restart { json, .. }
            | Command::Reset { json, .. }
            | Command::Signal { json, .. }
            | Command::Reload { json, .. }
            | Command::Events { json, .. }
            | Command::Logs { json, .. }
            | Command::Metrics { json }
            | Command::Down { json }
            | Command::Openapi { json } => json.on,
        }
    }
}

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sentineld", &mut out);
    out
}

/// The man page: the command and, after it, each subcommand's section.
pub fn man_page() -> std::io::Result<Vec<u8>> {
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    let page = clap_mangen::Man::new(cmd.clone());
    page.render_title(&mut out)?;
    page.render_name_section(&mut out)?;
    page.render_synopsis_section(&mut out)?;
    page.render_description_section(&mut out)?;
    page.render_options_section(&mut out)?;
    // Each command has its section below (clap_mangen would point at pages
    // of their own, `sentineld-up(1)`, which do not exist).
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let about = about.replace('\\', "\\\\").replace('\n', " ");
        out.extend_from_slice(format!(".TP\n\\fB{}\\fR\n{about}\n", sub.get_name()).as_bytes());
    }
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let title = format!("sentineld {}", sub.get_name());
        out.extend_from_slice(format!(".SH \"{}\"\n", title.to_uppercase()).as_bytes());
        let sub = sub.clone().bin_name(title);
        let page = clap_mangen::Man::new(sub);
        page.render_synopsis_section(&mut out)?;
        page.render_description_section(&mut out)?;
        page.render_options_section(&mut out)?;
    }
    page.render_version_section(&mut out)?;
    Ok(out)
}
