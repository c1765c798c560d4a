//! Probe ports that another process already listens on: a tcp or http
//! probe of this machine (`localhost`, a loopback or unspecified address)
//! whose port has a listening socket in `/proc/net/tcp` or `tcp6` — the
//! service will not be able to bind it, or its probe will talk to the
//! other process. Read only: nothing is bound or connected to.
//!
//! The owner is named when this user may see it (its socket's inode among
//! `/proc/PID/fd`). A port held by a process of the daemon running this
//! file's state dir (the service itself, while `check` runs beside `up`)
//! is not a warning.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::config::{Check, Plan};
use crate::control::client;
use crate::control::protocol::{Request, Response};

/// A listening TCP socket.
#[derive(Debug, Clone, PartialEq)]
struct Listener {
    addr: IpAddr,
    port: u16,
    inode: u64,
}

/// (YAML path, message) for each probe whose port is taken.
pub fn warnings(plan: &Plan) -> Vec<(Vec<String>, String)> {
    let targets = targets(plan);
    if targets.is_empty() {
        return Vec::new();
    }
    let listeners = listeners();
    let mut owners: Option<HashMap<u64, u32>> = None;
    let mut daemon: Option<Option<u32>> = None;
    let mut out = Vec::new();
    for (path, hosts, port) in targets {
        let Some(l) = listeners
            .iter()
            .find(|l| l.port == port && l.serves(&hosts))
        else {
            continue;
        };
        let owners = owners.get_or_insert_with(|| socket_owners(&listeners));
        let owner = owners.get(&l.inode).copied();
        let daemon = *daemon.get_or_insert_with(|| daemon_pid(plan));
        if let (Some(pid), Some(d)) = (owner, daemon)
            && descends_from(pid, d)
        {
            continue;
        }
        let at = match l.addr {
            IpAddr::V6(a) => format!("[{a}]:{port}"),
            IpAddr::V4(a) => format!("{a}:{port}"),
        };
        let who = match (owner, owner.and_then(comm)) {
            (Some(pid), Some(name)) => format!("pid {pid} ({name})"),
            (Some(pid), None) => format!("pid {pid}"),
            (None, _) => "another process".to_string(),
        };
        let message = format!("port {port} is already taken: {who} listens on {at}");
        out.push((path, message));
    }
    out
}

impl Listener {
    /// Whether a connection to one of `hosts` on its port reaches it: it
    /// listens on all addresses (of its family, or both for `[::]`), or
    /// on that one. `127.0.0.2:80` is not `127.0.0.1:80`.
    fn serves(&self, hosts: &[IpAddr]) -> bool {
        hosts.iter().any(|h| match (self.addr, h) {
            (a, h) if a == *h => true,
            (IpAddr::V4(a), IpAddr::V4(_)) => a.is_unspecified(),
            (IpAddr::V6(a), _) => a.is_unspecified(),
            _ => false,
        })
    }
}

/// The addresses a probe of this machine's `host` connects to: both
/// loopbacks for `localhost`; the loopback for an unspecified address
/// (which Linux takes as this machine); none for another machine.
fn local_hosts(host: &str) -> Vec<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    match host.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V4(a)) if a.is_unspecified() => vec![Ipv4Addr::LOCALHOST.into()],
        Ok(IpAddr::V6(a)) if a.is_unspecified() => vec![Ipv6Addr::LOCALHOST.into()],
        Ok(ip) if ip.is_loopback() => vec![ip],
        _ => Vec::new(),
    }
}

/// Each probe of this machine's ports, once per service and port.
fn targets(plan: &Plan) -> Vec<(Vec<String>, Vec<IpAddr>, u16)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for spec in &plan.services {
        let probes = [
            ("liveness", &spec.liveness),
            ("readiness", &spec.readiness),
            ("startup", &spec.startup),
        ];
        for (key, probe) in probes {
            let (kind, hostport) = match probe.as_ref().map(|p| &p.check) {
                Some(Check::Tcp(hostport)) => ("tcp", hostport),
                Some(Check::Http(h)) => ("http", &h.authority),
                _ => continue,
            };
            let Some((hosts, port)) = local_port(hostport) else {
                continue;
            };
            if seen.insert((spec.name.as_str(), port)) {
                let path = ["services", &spec.name, key, kind];
                out.push((path.iter().map(|s| s.to_string()).collect(), hosts, port));
            }
        }
    }
    out
}

/// The addresses and port of `host:port` when the host is this machine.
fn local_port(hostport: &str) -> Option<(Vec<IpAddr>, u16)> {
    let (host, port) = hostport.rsplit_once(':')?;
    let hosts = local_hosts(host);
    let port = port.parse().ok()?;
    (!hosts.is_empty()).then_some((hosts, port))
}

/// Every listening TCP socket of this network namespace.
fn listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        out.extend(text.lines().skip(1).filter_map(parse_line));
    }
    out
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode …`; a LISTEN
/// (`0A`) socket only.
fn parse_line(line: &str) -> Option<Listener> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"0A") {
        return None;
    }
    let (addr, port) = fields.get(1)?.split_once(':')?;
    Some(Listener {
        addr: parse_addr(addr)?,
        port: u16::from_str_radix(port, 16).ok()?,
        inode: fields.get(9)?.parse().ok()?,
    })
}

/// The kernel's hex address: 32-bit words, each in host (little-endian)
/// byte order.
fn parse_addr(hex: &str) -> Option<IpAddr> {
    let words: Option<Vec<u32>> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok())
        .collect();
    let bytes: Vec<u8> = words?.iter().flat_map(|w| w.to_le_bytes()).collect();
    // A v4-mapped listener (`::ffff:127.0.0.1`) is its v4 address.
    match bytes.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)).to_canonical()),
        _ => None,
    }
}

/// The pid holding each of the listeners' sockets, of those whose fds
/// this user may read.
fn socket_owners(listeners: &[Listener]) -> HashMap<u64, u32> {
    let wanted: HashMap<String, u64> = (listeners.iter())
        .map(|l| (format!("socket:[{}]", l.inode), l.inode))
        .collect();
    let mut out = HashMap::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in procs.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            if let Some(inode) = target.to_str().and_then(|t| wanted.get(t)) {
                out.entry(*inode).or_insert(pid);
            }
        }
    }
    out
}

/// The pid of a daemon running on the plan's state dir, if one answers.
fn daemon_pid(plan: &Plan) -> Option<u32> {
    let timeout = Some(Duration::from_secs(2));
    match client::request(&plan.state_dir, &Request::Ping, timeout) {
        Ok(Response::Pong { pid, .. }) => Some(pid),
        _ => None,
    }
}

/// Whether `pid` is `ancestor` or one of its descendants.
fn descends_from(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        match ppid(pid) {
            Some(p) if p > 1 => pid = p,
            _ => return false,
        }
    }
    false
}

fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    crate::supervisor::registry::stat_field(&stat, 4)?
        .parse()
        .ok()
}

fn comm(pid: u32) -> Option<String> {
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(name.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_listening_only() {
        let v4 = "   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 123456 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v4).unwrap();
        assert_eq!(l.addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!((l.port, l.inode), (8080, 123456));
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_line(&established), None);
        let v6 = "   0: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0000000000000000 100 0 0 10 0";
        let l = parse_line(v6).unwrap();
        assert_eq!(l.addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!((l.port, l.inode), (80, 42));
    }

    #[test]
    fn only_this_machines_hosts_are_checked() {
        let port = |hp| local_port(hp).map(|(_, p)| p);
        assert_eq!(port("127.0.0.1:8080"), Some(8080));
        assert_eq!(port("localhost:81"), Some(81));
        assert_eq!(port("[::1]:82"), Some(82));
        assert_eq!(port("0.0.0.0:83"), Some(83));
        assert_eq!(port("[::ffff:127.0.0.1]:84"), Some(84));
        assert_eq!(port("db.internal:5432"), None);
        assert_eq!(port("10.0.0.5:5432"), None);
    }

    #[test]
    fn a_listener_on_another_address_is_not_the_probes() {
        let at = |addr: &str| Listener {
            addr: addr.parse().unwrap(),
            port: 80,
            inode: 1,
        };
        let (lo4, _) = local_port("127.0.0.1:80").unwrap();
        let (localhost, _) = local_port("localhost:80").unwrap();
        let (lo6, _) = local_port("[::1]:80").unwrap();
        assert!(at("127.0.0.1").serves(&lo4));
        assert!(at("0.0.0.0").serves(&lo4));
        assert!(at("::").serves(&lo4), "[::] takes both families");
        assert!(!at("127.0.0.2").serves(&lo4));
        assert!(!at("192.0.2.2").serves(&lo4));
        assert!(!at("::1").serves(&lo4));
        assert!(at("::1").serves(&localhost) && at("127.0.0.1").serves(&localhost));
        assert!(!at("0.0.0.0").serves(&lo6));
        let mapped = parse_addr("0000000000000000FFFF00000100007F").unwrap();
        assert_eq!(mapped, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
}
