//! Whether to colour output: `--color auto|always|never` and `NO_COLOR`
//! (<https://no-color.org>). One rule for every coloured output — the
//! `status` table and the daemon's own log — so no escape code reaches a
//! pipe, a file or `--json` unless asked for with `--color always`.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless `NO_COLOR` is set to anything.
    #[default]
    Auto,
    /// Colour even through a pipe and despite `NO_COLOR`.
    Always,
    Never,
}

impl ColorChoice {
    /// Whether output to a stream that is (or is not) a terminal gets colour.
    pub fn enabled(self, terminal: bool) -> bool {
        self.decide(terminal, std::env::var_os("NO_COLOR").as_deref())
    }

    /// [`Self::enabled`] for `stream`.
    pub fn enabled_for(self, stream: &impl IsTerminal) -> bool {
        self.enabled(stream.is_terminal())
    }

    /// The rule, with `NO_COLOR`'s value given: set and not empty disables
    /// colour in `auto` only.
    fn decide(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }

    /// The spelling of `--color`, for a command line handed on.
    pub fn as_str(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ColorChoice::{self, *};
    use std::ffi::OsStr;

    #[test]
    fn no_color_disables_auto_only_and_an_empty_one_does_not() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        let cases: [(ColorChoice, bool, Option<&OsStr>, bool); 8] = [
            (Auto, true, None, true),
            (Auto, false, None, false),
            (Auto, true, set, false),
            (Auto, true, empty, true),
            (Always, false, set, true),
            (Always, false, None, true),
            (Never, true, None, false),
            (Never, true, empty, false),
        ];
        for (choice, tty, no_color, want) in cases {
            assert_eq!(
                choice.decide(tty, no_color),
                want,
                "{choice:?} {tty} {no_color:?}"
            );
        }
    }
}
