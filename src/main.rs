use std::process::ExitCode;

use clap::Parser;
use sentineld::cli::{Cli, Command};
use sentineld::commands::{self, CommandError};
use sentineld::config::client_state_dir;
use sentineld::control::protocol::Request;

fn main() -> ExitCode {
    ensure_std_fds();
    let cli = Cli::parse();
    let dir = client_state_dir(cli.state_dir.as_deref());
    let result: Result<i32, CommandError> = match cli.command {
        Command::Up { detach, file } => commands::up::up(&file, cli.state_dir, detach),
        Command::Check { file } => commands::check(&file),
        Command::Status { name, json } => commands::status(&dir, name, json),
        Command::Start { name } => commands::simple(&dir, Request::Start { name }),
        Command::Stop { name } => commands::simple(&dir, Request::Stop { name }),
        Command::Restart { name } => commands::simple(&dir, Request::Restart { name }),
        Command::Reset { name } => commands::simple(&dir, Request::Reset { name }),
        Command::Events { name, follow, json } => commands::events(&dir, name, follow, json),
        Command::Logs {
            name,
            follow,
            lines,
        } => commands::logs::logs(&dir, &name, lines, follow),
        Command::Down => commands::simple(&dir, Request::Down),
    };
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
