use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use sentineld::cli::{Cli, ColorChoice, Command};
use sentineld::commands::{self, CommandError};
use sentineld::config::client_state_dir;
use sentineld::control::protocol::Request;

fn main() -> ExitCode {
    ensure_std_fds();
    // `status` is run often and by scripts: its plain forms skip building
    // clap's whole command tree. Anything else (or anything odd) goes
    // through clap, which also gives the errors.
    if let Some(plain) = plain_status(std::env::args_os().skip(1)) {
        let dir = client_state_dir(plain.state_dir.as_deref());
        let result = commands::status(&dir, plain.name, plain.json, plain.color);
        return finish(result, plain.json);
    }
    let cli = match parse(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let json = cli.command.json();
    finish(run(cli), json)
}

/// The state dir of a daemon of a services file, when not the file's own:
/// `--state-dir`, else `SENTINELD_STATE_DIR` — as the clients take them (a
/// container's image sets the variable for both).
fn daemon_state_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let env = std::env::var_os("SENTINELD_STATE_DIR")?;
        (!env.is_empty()).then(|| PathBuf::from(env))
    })
}

/// The command line, through clap. Its own output follows `--color never`
/// (it follows `NO_COLOR` by itself); with `--json`, a usage error is one
/// JSON object on stderr like every other error (exit 2).
fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    use clap::{CommandFactory, FromArgMatches};
    let asked = |when: &str| {
        let flag = format!("--color={when}");
        args.windows(2).any(|w| w[0] == "--color" && w[1] == when)
            || args.iter().any(|a| *a == *flag)
    };
    let mut cmd = Cli::command();
    if asked("never") {
        cmd = cmd.color(clap::ColorChoice::Never);
    } else if asked("always") {
        cmd = cmd.color(clap::ColorChoice::Always);
    }
    let error = match cmd.try_get_matches_from(&args) {
        Ok(matches) => match Cli::from_arg_matches(&matches) {
            Ok(cli) => return Ok(cli),
            Err(e) => e,
        },
        Err(e) => e,
    };
    if error.use_stderr() && args.iter().any(|a| a == "--json") {
        let text = error.render().to_string();
        // The error's paragraph, not the usage and hint after it.
        let first = text.split("\n\n").next().unwrap_or_default();
        let first = first.strip_prefix("error: ").unwrap_or(first);
        let message = first.split_whitespace().collect::<Vec<_>>().join(" ");
        let json = serde_json::json!({ "type": "error", "kind": "usage", "message": message });
        commands::err(format!("{json}\n"));
        return Err(ExitCode::from(2));
    }
    let _ = error.print();
    Err(ExitCode::from(error.exit_code() as u8))
}

fn run(cli: Cli) -> Result<i32, CommandError> {
    let dir = client_state_dir(cli.state_dir.as_deref());
    let action = |request, json: sentineld::cli::Json| commands::simple(&dir, request, json.on);
    match cli.command {
        Command::Up { detach, init, file } => commands::up::up(
            &file,
            daemon_state_dir(cli.state_dir),
            detach,
            init,
            cli.color,
        ),
        Command::Check { file, json } => {
            commands::check(&file, daemon_state_dir(cli.state_dir), json.on)
        }
        Command::Status { name, json } => commands::status(&dir, name, json.on, cli.color),
        Command::Start { name, json } => action(Request::Start { name }, json),
        Command::Stop { name, json } => action(Request::Stop { name }, json),
        Command::Restart { name, json } => action(Request::Restart { name }, json),
        Command::Reset { name, json } => action(Request::Reset { name }, json),
        Command::Signal { name, signal, json } => {
            // Not a signal: bad input (exit 2), said before any daemon is asked.
            if let Err(e) = sentineld::config::units::parse_signal(&signal) {
                return Err(CommandError::BadInput(format!("sentineld: {e}")));
            }
            action(Request::Signal { name, signal }, json)
        }
        Command::Reload { dry_run, json } => action(Request::Reload { dry_run }, json),
        Command::Down { json } => action(Request::Down, json),
        Command::Events { name, follow, json } => commands::events(&dir, name, follow, json.on),
        Command::Logs {
            name,
            follow,
            lines,
            json,
        } => commands::logs::logs(&dir, &name, lines, follow, json.on),
        Command::Metrics { json } => commands::metrics(&dir, json.on),
        Command::Openapi { json } => commands::openapi(json.on),
        Command::Schema => {
            let schema = sentineld::config::json_schema();
            let mut text = serde_json::to_string_pretty(&schema).expect("a JSON value serializes");
            text.push('\n');
            write_out(text.as_bytes())
        }
        Command::Completions { shell } => write_out(&sentineld::cli::completions(shell)),
        Command::Man => match sentineld::cli::man_page() {
            Ok(page) => write_out(&page),
            Err(e) => Err(CommandError::Failed(format!("man page: {e}"))),
        },
    }
}

/// Generated text to stdout; a closed pipe (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> Result<i32, CommandError> {
    commands::out(bytes);
    Ok(0)
}

fn finish(result: Result<i32, CommandError>, json: bool) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            let text = if json {
                e.to_json()
            } else if e.is_located() {
                e.to_string()
            } else {
                format!("sentineld: {e}")
            };
            commands::err(format!("{text}\n"));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// A `status` command line that needs no clap.
#[derive(Debug, Default, PartialEq)]
struct PlainStatus {
    name: Option<String>,
    json: bool,
    state_dir: Option<PathBuf>,
    color: ColorChoice,
}

/// `status [NAME] [--json] [--state-dir DIR] [--color WHEN]` in any
/// order, and nothing else; `None` sends the command line to clap.
fn plain_status(mut args: impl Iterator<Item = OsString>) -> Option<PlainStatus> {
    if args.next()? != "status" {
        return None;
    }
    let mut plain = PlainStatus::default();
    let mut color = None;
    while let Some(arg) = args.next() {
        let arg = arg.into_string().ok()?;
        match arg.as_str() {
            "--json" if !plain.json => plain.json = true,
            "--state-dir" if plain.state_dir.is_none() => {
                // `--state-dir --json` is clap's to refuse, not a directory.
                let dir = args
                    .next()
                    .filter(|d| !d.is_empty() && !d.as_encoded_bytes().starts_with(b"-"))?;
                plain.state_dir = Some(PathBuf::from(dir))
            }
            "--color" if color.is_none() => color = Some(args.next()?.into_string().ok()?),
            a if a.starts_with("--color=") && color.is_none() => color = Some(a[8..].to_string()),
            a if !a.starts_with('-') && !a.is_empty() && plain.name.is_none() => {
                plain.name = Some(arg)
            }
            _ => return None,
        }
    }
    if let Some(when) = color {
        // A bad value is clap's to report.
        plain.color = <ColorChoice as clap::ValueEnum>::from_str(&when, false).ok()?;
    }
    Some(plain)
}

/// Make sure fds 0, 1 and 2 are open, so no socket or pipe of ours lands on
/// them and is handed to a child as a standard stream.
fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open returns the lowest free fd, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Option<PlainStatus> {
        plain_status(line.split_whitespace().map(OsString::from))
    }

    #[test]
    fn plain_status_takes_color_and_hands_anything_odd_to_clap() {
        let p = parse("status web --color always --json").unwrap();
        assert_eq!(p.name.as_deref(), Some("web"));
        assert!(p.json);
        assert_eq!(p.color, ColorChoice::Always);
        assert_eq!(
            parse("status --color=never").unwrap().color,
            ColorChoice::Never
        );
        assert_eq!(parse("status").unwrap().color, ColorChoice::Auto);
        assert_eq!(parse("status --color sometimes"), None);
        assert_eq!(parse("status --color"), None);
        assert_eq!(parse("status --color never --color always"), None);
        assert_eq!(parse("status -x"), None);
    }
}
