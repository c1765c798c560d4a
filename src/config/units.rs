//! Human units and small parsers used by validation: durations, sizes,
//! signal names, words from a fixed set, `${VAR}` expansion, `.env` files
//! and "did you mean".
//! Everything here is pure: the environment is passed in.

use std::time::Duration;

use nix::sys::signal::Signal;

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("expected a duration like 500ms, 10s or 1m30s, found nothing".into());
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "expected a duration with a unit like {t}s or {t}ms, found the bare number {t}"
        ));
    }
    humantime::parse_duration(t)
        .map_err(|_| format!("expected a duration like 500ms, 10s or 1m30s, found {t:?}"))
}

/// `10MiB`, `512KiB`, `1G`, `4096`. Decimal (kB, MB, GB) and binary (KiB,
/// MiB, GiB) units; K/M/G alone are binary, as most people mean them.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("expected a size like 10MiB, 512KiB or 4096, found {t:?}");
    if num.is_empty() {
        return Err(bad());
    }
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim() {
        "" | "B" | "b" => 1,
        "k" | "kB" | "KB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        "K" | "KiB" | "Ki" => 1 << 10,
        "M" | "MiB" | "Mi" => 1 << 20,
        "G" | "GiB" | "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// `SIGTERM`, `TERM`, `term` or a number.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| format!("{n} is not a signal number"));
    }
    let upper = t.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map_err(|_| {
        let hint = did_you_mean(&name, Signal::iterator().map(|s| s.as_str()));
        if hint.is_empty() {
            format!("unknown signal {t:?}; expected a name like SIGTERM or SIGINT")
        } else {
            format!("unknown signal {t:?}{hint}")
        }
    })
}

/// The words of a key with a fixed set of values, from the values and
/// their names: `words(RestartPolicy::ALL, RestartPolicy::as_str)`.
pub fn words<T: Copy, const N: usize>(
    all: [T; N],
    name: fn(T) -> &'static str,
) -> [(&'static str, T); N] {
    all.map(|v| (name(v), v))
}

/// The value `word` stands for, if it is one of `options`.
pub fn lookup<T: Copy>(word: &str, options: &[(&str, T)]) -> Option<T> {
    options.iter().find(|(w, _)| *w == word).map(|&(_, v)| v)
}

/// `word` as one of `options`, or an error that lists them.
pub fn one_of<T: Copy>(word: &str, options: &[(&str, T)]) -> Result<T, String> {
    lookup(word, options).ok_or_else(|| not_one_of(word, options))
}

/// "expected a or b, found …" / "expected one of a, b, c, found …", with a
/// suggestion when `word` looks like a typo of one of them.
pub fn not_one_of<T>(word: &str, options: &[(&str, T)]) -> String {
    let names: Vec<&str> = options.iter().map(|(w, _)| *w).collect();
    let expected = match names.as_slice() {
        [a, b] => format!("{a} or {b}"),
        _ => format!("one of {}", names.join(", ")),
    };
    let hint = did_you_mean(word, names);
    format!("expected {expected}, found {word:?}{hint}")
}

/// "a, b or c", for prose.
pub fn or_list<T>(options: &[(&str, T)]) -> String {
    match options {
        [] => String::new(),
        [only] => only.0.to_string(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(|(w, _)| *w).collect();
            format!("{} or {}", init.join(", "), last.0)
        }
    }
}

/// Expand `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`. A `$` not
/// followed by `{` or `$` is left as written, so shell commands keep `$1`.
pub fn expand_env(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("unterminated ${{...}} in {text:?}"))?;
            let expr = &inner[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid variable name {name:?} in ${{{expr}}}"));
            }
            match (
                lookup(name).filter(|v| !(default.is_some() && v.is_empty())),
                default,
            ) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} to give a default)"
                    ));
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Parse a `.env` file: `KEY=VALUE` lines, `#` comments, optional `export `,
/// values optionally in single or double quotes. Errors carry the line number.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((i + 1, format!("expected KEY=VALUE, found {raw:?}")));
        };
        let key = key.trim();
        if !valid_env_name(key) {
            return Err((i + 1, format!("invalid variable name {key:?}")));
        }
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            value
        };
        vars.push((key.to_string(), value.to_string()));
    }
    Ok(vars)
}

pub fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// ` (did you mean "restart"?)` when `word` looks like a typo of one of
/// `candidates`, else nothing: every suggestion in a message reads the same.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    suggest(word, candidates)
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

/// The longest word worth a "did you mean".
pub const SUGGEST_MAX: usize = 128;

/// The closest candidate by edit distance, if it is close enough to be a typo.
///
/// Bounded before anything is computed: a word longer than [`SUGGEST_MAX`]
/// is no typo of a name, and a candidate whose length differs by more than
/// the allowed distance cannot be one either, so a huge input costs nothing.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    if word.len() > SUGGEST_MAX {
        return None;
    }
    let len = word.chars().count();
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| c.len() <= SUGGEST_MAX && c.chars().count().abs_diff(len) <= limit)
        .map(|c| {
            (
                edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Optimal string alignment distance: a swapped pair of letters counts as
/// one edit, the commonest typo (`restrat`, `SIGTREM`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut best = (d[(i - 1) * w + j - 1] + cost)
                    .min(d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    best = best.min(d[(i - 2) * w + j - 2] + 1);
                }
                best
            };
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("10").unwrap_err().contains("10s"));
        assert!(parse_duration("fast").unwrap_err().contains("\"fast\""));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("2kB").unwrap(), 2000);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10XB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("SIGTREM").unwrap_err().contains("SIGTERM"));
    }

    #[test]
    fn env_expansion() {
        let env = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(expand_env("${HOME}/x", &env).unwrap(), "/root/x");
        assert_eq!(expand_env("${NOPE:-d}", &env).unwrap(), "d");
        assert_eq!(expand_env("$$HOME $1", &env).unwrap(), "$HOME $1");
        assert!(
            expand_env("${NOPE}", &env)
                .unwrap_err()
                .contains("NOPE is not set")
        );
        assert!(
            expand_env("${HOME", &env)
                .unwrap_err()
                .contains("unterminated")
        );
    }

    #[test]
    fn env_files() {
        let vars = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x'\n").unwrap();
        assert_eq!(vars.len(), 3);
        assert_eq!(vars[1], ("B".into(), "two words".into()));
        assert_eq!(parse_env_file("A=1\nnonsense\n").unwrap_err().0, 2);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("restrat", ["restart", "command"]), Some("restart"));
        assert_eq!(suggest("zzz", ["restart", "command"]), None);
        let huge = "x".repeat(60_000);
        let names: Vec<String> = (0..400).map(|i| format!("svc{i}")).collect();
        assert_eq!(suggest(&huge, names.iter().map(String::as_str)), None);
        assert_eq!(
            suggest("svx399", names.iter().map(String::as_str)),
            Some("svc399")
        );
        assert_eq!(
            did_you_mean("restrat", ["restart"]),
            " (did you mean \"restart\"?)"
        );
        assert_eq!(did_you_mean("zzz", ["restart"]), "");
    }

    #[test]
    fn words_from_a_fixed_set() {
        const YES_NO: &[(&str, bool)] = &[("yes", true), ("no", false)];
        const ABC: &[(&str, char)] = &[("alpha", 'a'), ("beta", 'b'), ("gamma", 'c')];
        assert_eq!(one_of("no", YES_NO), Ok(false));
        assert_eq!(
            one_of("yse", YES_NO).unwrap_err(),
            "expected yes or no, found \"yse\" (did you mean \"yes\"?)"
        );
        assert_eq!(
            one_of("delta", ABC).unwrap_err(),
            "expected one of alpha, beta, gamma, found \"delta\""
        );
        assert_eq!(lookup("Beta", ABC), None);
        assert_eq!(or_list(ABC), "alpha, beta or gamma");
        assert_eq!(or_list(YES_NO), "yes or no");
        assert_eq!(
            words(['x', 'y'], |c| if c == 'x' { "ex" } else { "why" }),
            [("ex", 'x'), ("why", 'y')]
        );
    }
}
