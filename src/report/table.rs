//! The `status` table. Colours as `--color` says: by default only on a
//! terminal and never with `NO_COLOR` ([`crate::color`]).

use std::fmt::Write;

use crate::control::protocol::{BriefRow, EventRecord, Health, ServiceStatus, State};

pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour on stdout as `choice` decides for it.
    pub fn for_stdout(choice: crate::color::ColorChoice) -> Style {
        Style {
            color: choice.enabled_for(&std::io::stdout()),
        }
    }

    fn paint<'t>(&self, text: &'t str, code: &str) -> std::borrow::Cow<'t, str> {
        if self.color && !code.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m").into()
        } else {
            text.into()
        }
    }
}

fn state_color(s: State) -> &'static str {
    match s {
        State::Running => "32",
        State::Starting
        | State::Stopping
        | State::Backoff
        | State::Retrying
        | State::Restarting
        | State::Fallback => "33",
        State::Failed | State::Quarantined | State::Blocked => "31",
        State::Stopped | State::Exited => "",
    }
}

fn health_color(h: Health) -> &'static str {
    match h {
        Health::Healthy => "32",
        Health::Degraded => "33",
        Health::Critical | Health::Quarantined => "31",
    }
}

/// `3d4h`, `2h05m`, `4m30s`, `12s`.
pub fn human_uptime(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
    }
}

/// What the LAST column says: why the service is where it is, else how its
/// last process ended.
pub fn last(s: &ServiceStatus) -> String {
    if let Some(r) = s.reason.as_ref().or(s.last.as_ref()) {
        return r.clone();
    }
    match &s.exit {
        Some(e) => match (&e.code, &e.signal) {
            (Some(c), _) => format!("exit {c} at {}", short_time(&e.at)),
            (None, Some(sig)) => format!("{sig} at {}", short_time(&e.at)),
            _ => "-".into(),
        },
        None => "-".into(),
    }
}

fn short_time(rfc3339: &str) -> &str {
    rfc3339.get(11..19).unwrap_or(rfc3339)
}

/// What the table shows of a service.
pub fn row(s: &ServiceStatus) -> BriefRow<'_> {
    BriefRow {
        name: s.name.as_str().into(),
        group: s.group.as_deref().map(Into::into),
        state: s.state,
        health: s.health,
        // While the fallback stands in, its pid, as in the table.
        pid: s.pid.or(s.fallback_pid),
        uptime_s: s.uptime_s,
        restarts: s.restarts,
        risk: s.risk,
        last: last(s).into(),
        cpu_percent: s.cpu_percent,
        rss_bytes: s.rss_bytes,
    }
}

/// The CPU column: `97%`, `0.4%`, `-` until sampled.
pub fn human_cpu(percent: Option<f64>) -> String {
    match percent {
        Some(p) if p < 9.95 => format!("{p:.1}%"),
        Some(p) => format!("{p:.0}%"),
        None => "-".into(),
    }
}

/// The MEM column: `812K`, `54M`, `1.2G`, `-` until sampled.
pub fn human_bytes(bytes: Option<u64>) -> String {
    const K: u64 = 1 << 10;
    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;
    match bytes {
        Some(b) if b < M => format!("{}K", b / K),
        Some(b) if b < G => format!("{}M", b / M),
        Some(b) => format!("{:.1}G", b as f64 / G as f64),
        None => "-".into(),
    }
}

/// A row's cells, the numbers written once into one string.
struct Cells<'r> {
    text: [&'r str; 4],
    numbers: String,
    /// Where PID, UPTIME, RESTARTS, RISK, CPU and MEM end in `numbers`.
    ends: [usize; 6],
}

impl<'r> Cells<'r> {
    fn of(s: &'r BriefRow<'_>) -> Cells<'r> {
        let mut numbers = String::with_capacity(32);
        let mut ends = [0; 6];
        match s.pid {
            Some(p) => write!(numbers, "{p}").expect("to a string"),
            None => numbers.push('-'),
        }
        ends[0] = numbers.len();
        numbers.push_str(&s.uptime_s.map_or("-".into(), human_uptime));
        ends[1] = numbers.len();
        write!(numbers, "{}", s.restarts).expect("to a string");
        ends[2] = numbers.len();
        write!(numbers, "{:.2}", s.risk).expect("to a string");
        ends[3] = numbers.len();
        numbers.push_str(&human_cpu(s.cpu_percent));
        ends[4] = numbers.len();
        numbers.push_str(&human_bytes(s.rss_bytes));
        ends[5] = numbers.len();
        let group = s.group.as_deref().unwrap_or("-");
        Cells {
            text: [&s.name, group, s.state.as_str(), s.health.as_str()],
            numbers,
            ends,
        }
    }

    /// The cells in column order (GROUP only if `grouped`), LAST aside.
    fn get(&self, grouped: bool) -> impl Iterator<Item = &str> {
        let n = &self.numbers;
        let e = self.ends;
        let numbers = [
            &n[..e[0]],
            &n[e[0]..e[1]],
            &n[e[1]..e[2]],
            &n[e[2]..e[3]],
            &n[e[3]..e[4]],
            &n[e[4]..e[5]],
        ];
        let skip = if grouped { None } else { Some(1) };
        (self.text.into_iter().enumerate())
            .filter(move |(k, _)| Some(*k) != skip)
            .map(|(_, t)| t)
            .chain(numbers)
    }
}

/// `n` spaces, a slice at a time.
fn pad_with_spaces(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

pub fn render(services: &[BriefRow<'_>], style: &Style) -> String {
    // The GROUP column appears once the file declares groups.
    let grouped = services.iter().any(|s| s.group.is_some());
    let mut header = vec!["NAME"];
    if grouped {
        header.push("GROUP");
    }
    header.extend([
        "STATE", "HEALTH", "PID", "UPTIME", "RESTARTS", "RISK", "CPU", "MEM",
    ]);
    let state_col = if grouped { 2 } else { 1 };
    let cells: Vec<Cells> = services.iter().map(Cells::of).collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c.get(grouped)) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::with_capacity(services.iter().map(|s| s.last.len() + 80).sum());
    for (k, h) in header.iter().enumerate() {
        let _ = write!(out, "{h:<w$}  ", w = widths[k]);
    }
    out.push_str("LAST\n");
    for (c, s) in cells.iter().zip(services) {
        for (k, cell) in c.get(grouped).enumerate() {
            let pad = widths[k] - cell.len();
            match k {
                _ if k == state_col => out.push_str(&style.paint(cell, state_color(s.state))),
                _ if k == state_col + 1 => out.push_str(&style.paint(cell, health_color(s.health))),
                _ => out.push_str(cell),
            }
            pad_with_spaces(&mut out, pad + 2);
        }
        out.push_str(&s.last);
        out.push('\n');
    }
    out
}

/// `status NAME`: every field, then the recent events.
pub fn render_one(s: &ServiceStatus, events: &[EventRecord], style: &Style) -> String {
    let mut out = render(&[row(s)], style);
    if let Some(at) = &s.started_at {
        let _ = writeln!(out, "\nstarted at  {at}");
    }
    if let Some(stage) = &s.stage {
        let _ = writeln!(out, "stage       {stage} (breaker {})", s.breaker);
    }
    if let (Some(what), Some(at)) = (&s.next_action, &s.next_at) {
        let _ = writeln!(out, "next        {what} at {at}");
    }
    if !s.depends_on.is_empty() {
        let deps: Vec<String> = s
            .depends_on
            .iter()
            .map(|d| {
                format!(
                    "{} ({}{})",
                    d.name,
                    d.condition,
                    if d.satisfied { ", met" } else { "" }
                )
            })
            .collect();
        let _ = writeln!(out, "depends on  {}", deps.join(", "));
    }
    if let Some(ready) = s.ready {
        let _ = writeln!(out, "ready       {}", if ready { "yes" } else { "no" });
    }
    probe_lines(&mut out, s);
    if let Some(st) = &s.notify_status {
        let _ = writeln!(out, "status      {st}");
    }
    if let Some(pid) = s.fallback_pid {
        let _ = writeln!(out, "fallback    pid {pid}");
    }
    if let Some(c) = &s.log_condition {
        let _ = writeln!(out, "logs        {} (since {})", c.message, c.since);
    }
    resource_line(&mut out, s);
    failure_lines(&mut out, s);
    if let Some(a) = &s.availability {
        let sla = match (a.sla, a.sla_met) {
            (Some(t), Some(true)) => format!("; SLA {t}% met"),
            (Some(t), _) => format!("; SLA {t}% NOT met"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "available   {}% of the last hour, {}% of the day (running: {}%, {}%){sla}",
            a.ready_1h, a.ready_24h, a.running_1h, a.running_24h
        );
    }
    if let Some(e) = &s.exit {
        let how = match (&e.code, &e.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by {sig}"),
            _ => "?".into(),
        };
        let _ = writeln!(out, "last exit   {how} at {}", e.at);
    }
    if !events.is_empty() {
        out.push_str("\nrecent events:\n");
        for e in events {
            let _ = writeln!(out, "  {}  {}", e.at, e.message);
        }
    }
    out
}

/// The last resource sample of its process tree, once there is one.
fn resource_line(out: &mut String, s: &ServiceStatus) {
    let Some(rss) = s.rss_bytes else {
        return;
    };
    let trend = s
        .mem_trend_mib_per_min
        .map(|t| format!(" ({t:+.1} MiB/min)"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "resources   cpu {}, mem {:.1} MiB{trend}, {} threads, {} fds, {} processes",
        human_cpu(s.cpu_percent),
        rss as f64 / f64::from(1 << 20),
        s.threads.unwrap_or(0),
        s.fds.unwrap_or(0),
        s.processes.unwrap_or(0),
    );
}

/// One line per probe that runs a check: its kind and last result.
fn probe_lines(out: &mut String, s: &ServiceStatus) {
    for (name, p) in [
        ("startup", &s.probes.startup),
        ("liveness", &s.probes.liveness),
        ("readiness", &s.probes.readiness),
    ] {
        if let Some(p) = p.as_ref().filter(|p| p.kind != "notify") {
            let last = match (p.last_ok, &p.last_at) {
                (Some(ok), Some(at)) => format!(
                    "last {} at {at} in {:.1}ms: {}",
                    if ok { "passed" } else { "failed" },
                    p.last_latency_ms.unwrap_or(0.0),
                    p.last_output.as_deref().unwrap_or("")
                ),
                _ => "not run yet".into(),
            };
            let _ = writeln!(out, "{name:<11} {} probe, {last}", p.kind);
        }
    }
}

/// The last failure, the counts by severity and action, and recovery.
fn failure_lines(out: &mut String, s: &ServiceStatus) {
    if let Some(f) = &s.last_failure {
        let _ = writeln!(
            out,
            "last failure {} at {}: {} → {}{}",
            f.cause,
            f.at,
            f.severity,
            f.action,
            f.escalation
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        );
    }
    let f = &s.failures;
    if f.transient + f.recoverable + f.critical > 0 {
        let a = &s.actions;
        let _ = writeln!(
            out,
            "failures    {} transient, {} recoverable, {} critical; actions: {} retry, {} restart, {} fallback, {} quarantine",
            f.transient, f.recoverable, f.critical, a.retry, a.restart, a.fallback, a.quarantine
        );
        let r = &s.recovery;
        let _ = writeln!(
            out,
            "recovery    {}/{} attempts succeeded{}",
            r.successes,
            r.attempts,
            r.mttr_s
                .map(|m| format!(", mean time to recover {m:.1}s"))
                .unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str, state: State) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state,
            health: Health::Healthy,
            pid: Some(42),
            started_at: None,
            uptime_s: Some(3725.0),
            restarts: 2,
            exit: None,
            reason: None,
            last: None,
            risk: 0.0,
            stage: None,
            next_action: None,
            next_at: None,
            last_failure: None,
            breaker: "closed".into(),
            fallback_pid: None,
            failure_rate_per_min: None,
            uptime_ewma_s: None,
            ready: None,
            probes: Default::default(),
            probe_latency_ewma_ms: None,
            notify_status: None,
            group: None,
            depends_on: Vec::new(),
            log_condition: None,
            failures: Default::default(),
            actions: Default::default(),
            recovery: Default::default(),
            availability: None,
            cpu_percent: None,
            sampled_at: None,
            rss_bytes: None,
            threads: None,
            fds: None,
            processes: None,
            mem_trend_mib_per_min: None,
        }
    }

    #[test]
    fn columns_line_up_without_colour() {
        let t = render(
            &[
                row(&svc("web", State::Running)),
                row(&svc("database", State::Running)),
            ],
            &Style { color: false },
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "NAME      STATE    HEALTH   PID  UPTIME  RESTARTS  RISK  CPU  MEM  LAST"
        );
        assert_eq!(
            lines[1],
            "web       running  healthy  42   1h02m   2         0.00  -    -    -"
        );
        let mut busy = svc("busy", State::Running);
        busy.cpu_percent = Some(97.2);
        busy.rss_bytes = Some(540 << 20);
        let t = render(&[row(&busy)], &Style { color: false });
        assert!(
            t.lines().nth(1).unwrap().ends_with("0.00  97%  540M  -"),
            "{t}"
        );
        assert!(!t.contains('\x1b'));
    }

    #[test]
    fn cpu_and_memory_cells() {
        assert_eq!(human_cpu(Some(0.44)), "0.4%");
        assert_eq!(human_cpu(Some(250.0)), "250%");
        assert_eq!(human_bytes(Some(800 << 10)), "800K");
        assert_eq!(human_bytes(Some(3 << 29)), "1.5G");
        assert_eq!(human_bytes(None), "-");
    }

    #[test]
    fn uptimes() {
        assert_eq!(human_uptime(5.2), "5s");
        assert_eq!(human_uptime(270.0), "4m30s");
        assert_eq!(human_uptime(90000.0), "1d1h");
    }
}
