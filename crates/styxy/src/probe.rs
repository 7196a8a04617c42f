//! Whether a port is listening right now on this machine and who holds it: a bind where
//! that is the question, the OS's listing of listening sockets ([`crate::os`]) where there
//! is one.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener};

use crate::model::PortRange;
use crate::os;

/// True when a server could not bind `port` on 127.0.0.1 or on `[::1]` because something holds
/// it (and on 0.0.0.0 where a loopback bind does not see a wildcard holder:
/// [`os::free_port_check_addresses`]). Both loopbacks are tried: a service on `[::1]` does not
/// block an IPv4 bind, yet `localhost` clients reach it. The bind uses std's defaults
/// (`SO_REUSEADDR` on Unix), as servers do, so sockets in TIME_WAIT do not count.
pub fn is_listening(port: u16) -> bool {
    let taken = |addr: SocketAddr| matches!(TcpListener::bind(addr), Err(e) if e.kind() == ErrorKind::AddrInUse);
    os::free_port_check_addresses()
        .iter()
        .any(|ip| taken(SocketAddr::new(*ip, port)))
}

/// This machine as the allocator probes it: a port is taken when a bind says so
/// ([`is_listening`]); a new range's ports are checked with one listing of the listening
/// sockets (sock_diag) instead of two binds a port, where the OS has one.
#[derive(Debug, Clone, Copy)]
pub struct Live;

impl crate::allocate::Probe for Live {
    fn is_listening(&self, port: u16) -> bool {
        is_listening(port)
    }

    fn listeners_in(&self, range: PortRange) -> Vec<u16> {
        #[cfg(feature = "tool")]
        if let Some(rows) = os::listening_sockets() {
            let mut ports: Vec<u16> = rows
                .into_iter()
                .map(|s| s.port)
                .filter(|p| range.contains(*p))
                .collect();
            ports.sort_unstable();
            ports.dedup();
            return ports;
        }
        (range.start..=range.end)
            .filter(|p| is_listening(*p))
            .collect()
    }
}

/// The OS ephemeral port range, where the kernel picks ports for outgoing connections
/// ([`crate::os::ephemeral_range`]), read once a process: a command's tidying and its
/// allocation ask for it under the lock.
pub fn ephemeral_range() -> Option<PortRange> {
    static RANGE: std::sync::OnceLock<Option<PortRange>> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| os::ephemeral_range().map(|(a, b)| PortRange::new(a, b)))
}

/// Ports with a listening TCP socket on any local address (no socket is bound). `None`
/// where the OS has no such listing.
#[cfg(feature = "tool")]
pub fn listening_ports() -> Option<std::collections::BTreeSet<u16>> {
    os::listening_sockets().map(|rows| rows.into_iter().map(|s| s.port).collect())
}

/// Which of `ports` a client of `localhost:PORT` reaches now: a TCP socket listens on it at
/// 127.0.0.1, `[::1]` or a wildcard address. With `pids`, each with the pid of the process
/// holding that socket (the lowest, when a pre-forking server shares it), where the OS tells.
/// This is the `listening` (and `listener_pid`) of `list`, `check`, `wait` and the dashboard.
#[cfg(feature = "tool")]
pub fn serving(
    ports: &std::collections::BTreeSet<u16>,
    pids: bool,
) -> std::collections::BTreeMap<u16, Option<u32>> {
    use std::collections::HashMap;
    let Some(table) = os::listening_sockets() else {
        // No listing on this OS: a bind says whether the port is taken, not by whom.
        return ports
            .iter()
            .filter(|p| is_listening(**p))
            .map(|p| (*p, None))
            .collect();
    };
    let by_inode: HashMap<u64, u16> = table
        .into_iter()
        .filter(|s| s.local && ports.contains(&s.port))
        .map(|s| (s.id, s.port))
        .collect();
    let mut out: std::collections::BTreeMap<u16, Option<u32>> =
        by_inode.values().map(|p| (*p, None)).collect();
    if pids {
        for (port, pid) in os::socket_owners(&by_inode) {
            let held = out.entry(port).or_default();
            *held = Some(held.map_or(pid, |h| h.min(pid)));
        }
    }
    out
}

/// A process listening on a port, as far as the OS tells (only our own user's processes
/// are visible unless we are root).
#[cfg(feature = "tool")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listener {
    pub pid: u32,
    pub command: String,
}

/// Who listens on `port`: the pids and commands owning its listening sockets.
#[cfg(feature = "tool")]
pub fn listeners_of(port: u16) -> Vec<Listener> {
    listeners_by_port(|p| p == port)
        .remove(&port)
        .unwrap_or_default()
}

/// The processes behind every listening port that `want` selects, in one pass over the
/// processes.
#[cfg(feature = "tool")]
pub fn listeners_by_port(
    want: impl Fn(u16) -> bool,
) -> std::collections::BTreeMap<u16, Vec<Listener>> {
    let by_inode = os::listening_sockets()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| want(s.port))
        .map(|s| (s.id, s.port))
        .collect();
    let mut out: std::collections::BTreeMap<u16, Vec<Listener>> = Default::default();
    let mut commands = std::collections::HashMap::new();
    for (port, pid) in os::socket_owners(&by_inode) {
        let command = commands.entry(pid).or_insert_with(|| command_line(pid));
        out.entry(port).or_default().push(Listener {
            pid,
            command: command.clone(),
        });
    }
    out
}

/// A process's command line on one line: arguments joined by spaces, control characters
/// as spaces, at most 120 characters.
#[cfg(feature = "tool")]
pub fn command_line(pid: u32) -> String {
    let joined = os::command_args(pid).join(" ");
    let clean: String = joined
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match clean.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &clean[..i]),
        None => clean,
    }
}

/// Whether the process a lease names is still running.
pub fn lease_is_live(lease: &crate::model::Lease) -> bool {
    os::process_start_time(lease.pid) == Some(lease.start_time)
}

#[cfg(all(test, feature = "tool"))]
mod listing_tests {
    use super::*;

    #[test]
    fn sees_our_own_listener_and_names_us() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if let Some(ports) = listening_ports() {
            assert!(ports.contains(&port));
            let who = listeners_of(port);
            assert!(who.iter().any(|w| w.pid == std::process::id()), "{who:?}");
        }
        let live = serving(&[port, 1].into(), true);
        assert_eq!(
            live.into_iter().collect::<Vec<_>>(),
            [(port, Some(std::process::id()))]
        );
        drop(l);
        assert!(serving(&[port].into(), false).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listener_on_either_loopback() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(is_listening(v4.local_addr().unwrap().port()));
        if let Ok(v6) = TcpListener::bind("[::1]:0") {
            assert!(is_listening(v6.local_addr().unwrap().port()));
        }
        let port = v4.local_addr().unwrap().port();
        drop(v4);
        assert!(!is_listening(port));
    }
}
