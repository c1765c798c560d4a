use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sentineld::cli::{Cli, Command};
use sentineld::commands::{self, CommandError};
use sentineld::config::client_state_dir;
use sentineld::control::protocol::Request;

fn main() -> ExitCode {
    ensure_std_fds();
    // `status` is run often and by scripts: its plain forms skip building
    // clap's whole command tree. Anything else (or anything odd) goes
    // through clap, which also gives the errors.
    if let Some((name, json, state_dir)) = plain_status(std::env::args_os().skip(1)) {
        let dir = client_state_dir(state_dir.as_deref());
        return finish(commands::status(&dir, name, json));
    }
    let cli = Cli::parse();
    let dir = client_state_dir(cli.state_dir.as_deref());
    let result: Result<i32, CommandError> = match cli.command {
        Command::Up { detach, init, file } => commands::up::up(&file, cli.state_dir, detach, init),
        Command::Check { file } => commands::check(&file),
        Command::Status { name, json } => commands::status(&dir, name, json),
        Command::Start { name } => commands::simple(&dir, Request::Start { name }),
        Command::Stop { name } => commands::simple(&dir, Request::Stop { name }),
        Command::Restart { name } => commands::simple(&dir, Request::Restart { name }),
        Command::Reset { name } => commands::simple(&dir, Request::Reset { name }),
        Command::Signal { name, signal } => {
            commands::simple(&dir, Request::Signal { name, signal })
        }
        Command::Reload { dry_run } => commands::simple(&dir, Request::Reload { dry_run }),
        Command::Events { name, follow, json } => commands::events(&dir, name, follow, json),
        Command::Logs {
            name,
            follow,
            lines,
        } => commands::logs::logs(&dir, &name, lines, follow),
        Command::Metrics => commands::metrics(&dir),
        Command::Down => commands::simple(&dir, Request::Down),
        Command::Openapi => {
            print!("{}", sentineld::control::http::OPENAPI);
            Ok(0)
        }
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
    };
    finish(result)
}

/// Generated text to stdout; a closed pipe (`| head`) is not an error.
fn write_out(bytes: &[u8]) -> Result<i32, CommandError> {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(bytes);
    Ok(0)
}

fn finish(result: Result<i32, CommandError>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code as u8),
        // Config errors start with file:line:col, like a compiler's.
        Err(e @ CommandError::BadInput(_)) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("sentineld: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `status [NAME] [--json] [--state-dir DIR]` in any order, and nothing
/// else; `None` sends the command line to clap.
fn plain_status(
    mut args: impl Iterator<Item = OsString>,
) -> Option<(Option<String>, bool, Option<PathBuf>)> {
    if args.next()? != "status" {
        return None;
    }
    let (mut name, mut json, mut dir) = (None, false, None);
    while let Some(arg) = args.next() {
        let arg = arg.into_string().ok()?;
        match arg.as_str() {
            "--json" if !json => json = true,
            "--state-dir" if dir.is_none() => dir = Some(PathBuf::from(args.next()?)),
            a if !a.starts_with('-') && !a.is_empty() && name.is_none() => name = Some(arg),
            _ => return None,
        }
    }
    Some((name, json, dir))
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
