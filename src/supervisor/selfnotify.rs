//! What sentineld tells its own supervisor (systemd `Type=notify`, or any
//! manager that sets `NOTIFY_SOCKET`): READY=1 once every service has been
//! started, RELOADING=1 … READY=1 around a reload, STOPPING=1 at shutdown,
//! and WATCHDOG=1 from the event loop itself while it turns, when the
//! manager asked for it with `WATCHDOG_USEC` (`WatchdogSec=`).

use std::time::Duration;

/// Tell our own supervisor (systemd `Type=notify`) about us, if it asked.
/// Never waits: a manager that does not read its socket (a full queue)
/// loses the message rather than stop the event loop. A failure is logged
/// once, and again only after a send has worked since.
pub(super) fn notify_self(state: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    static FAILING: AtomicBool = AtomicBool::new(false);
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return;
    };
    let sent = std::os::unix::net::UnixDatagram::unbound().and_then(|sock| {
        sock.set_nonblocking(true)?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(state.as_bytes(), &addr)
        } else {
            sock.send_to(state.as_bytes(), std::path::Path::new(&path))
        }
    });
    match sent {
        Ok(_) => FAILING.store(false, Ordering::Relaxed),
        Err(e) if !FAILING.swap(true, Ordering::Relaxed) => {
            let what = state.lines().next().unwrap_or_default();
            let path = path.to_string_lossy();
            tracing::warn!("cannot notify our own supervisor at {path:?} ({what}): {e}");
        }
        Err(_) => {}
    }
}

/// How often to send WATCHDOG=1: half of `WATCHDOG_USEC`, as sd_notify(3)
/// advises; none if it is unset, not a number, zero, or meant for another
/// process (`WATCHDOG_PID`).
pub(super) fn watchdog_every() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    let pid = match std::env::var("WATCHDOG_PID") {
        Ok(p) => Some(p.trim().parse::<u32>().ok()?),
        Err(_) => None,
    };
    watchdog_period(&usec, pid)
}

/// Half of `usec` microseconds, no less than 1 ms; `pid`, if given, must be
/// ours.
fn watchdog_period(usec: &str, pid: Option<u32>) -> Option<Duration> {
    if pid.is_some_and(|p| p != std::process::id()) {
        return None;
    }
    let usec: u64 = usec.trim().parse().ok().filter(|&n| n > 0)?;
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

/// The loop is alive: tell the manager.
pub(super) fn watchdog() {
    notify_self("WATCHDOG=1");
}

/// A reload is being applied (systemd's `RELOADING=1`, with the monotonic
/// time `Type=notify-reload` asks for).
pub(super) fn reloading() {
    // SAFETY: clock_gettime with a valid pointer.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let usec = ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000;
    notify_self(&format!("RELOADING=1\nMONOTONIC_USEC={usec}"));
}

/// Back to running, with a line for `systemctl status`.
pub(super) fn ready(status: &str) {
    notify_self(&format!("READY=1\nSTATUS={status}"));
}

/// The variables of our own manager's protocol: they describe sentineld's
/// relation to it, not a service's, and must not reach the services.
pub(super) const MANAGER_VARS: [&str; 6] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_fed_at_half_the_interval_and_only_ours() {
        let me = std::process::id();
        assert_eq!(
            watchdog_period("2000000", None),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_period("2000000", Some(me)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_period("2000000", Some(me + 1)), None);
        assert_eq!(watchdog_period("0", None), None);
        assert_eq!(watchdog_period("soon", None), None);
        assert_eq!(watchdog_period("1", None), Some(Duration::from_millis(1)));
    }
}
