//! Whether a port is listening right now on this machine, probed the way a server binds.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use crate::registry::model::PortRange;

/// True when a server could not bind `port` on 127.0.0.1 or on `[::1]` because something holds
/// it. Both loopbacks are tried: a service on `[::1]` does not block an IPv4 bind, yet
/// `localhost` clients reach it. The bind uses std's defaults (`SO_REUSEADDR` on Unix), as
/// servers do, so sockets in TIME_WAIT do not count.
pub fn is_listening(port: u16) -> bool {
    let taken = |addr: SocketAddr| matches!(TcpListener::bind(addr), Err(e) if e.kind() == ErrorKind::AddrInUse);
    taken(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        || taken(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
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
        #[cfg(feature = "cli")]
        if let Some(rows) = listen_table() {
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

/// The OS ephemeral port range, where the kernel picks ports for outgoing connections.
/// Read from `/proc/sys/net/ipv4/ip_local_port_range` on Linux (once a process: a command's
/// tidying and its allocation ask for it under the lock); IANA's 49152-65535 elsewhere.
pub fn ephemeral_range() -> Option<PortRange> {
    static RANGE: std::sync::OnceLock<Option<PortRange>> = std::sync::OnceLock::new();
    *RANGE.get_or_init(read_ephemeral_range)
}

fn read_ephemeral_range() -> Option<PortRange> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut it = text.split_whitespace().map(str::parse::<u16>);
        match (it.next(), it.next()) {
            (Some(Ok(a)), Some(Ok(b))) if a <= b => Some(PortRange::new(a, b)),
            _ => None,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Some(PortRange::new(49152, 65535))
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

/// Ports with a listening TCP socket on any local address (no socket is bound). `None`
/// where the OS has no such listing.
#[cfg(feature = "cli")]
pub fn listening_ports() -> Option<std::collections::BTreeSet<u16>> {
    listen_table().map(|rows| rows.into_iter().map(|s| s.port).collect())
}

/// Which of `ports` a client of `localhost:PORT` reaches now: a TCP socket listens on it at
/// 127.0.0.1, `[::1]` or a wildcard address. With `pids`, each with the pid of the process
/// holding that socket (the lowest, when a pre-forking server shares it), where the OS tells.
/// This is the `listening` (and `listener_pid`) of `list`, `check`, `wait` and the dashboard.
#[cfg(feature = "cli")]
pub fn serving(
    ports: &std::collections::BTreeSet<u16>,
    pids: bool,
) -> std::collections::BTreeMap<u16, Option<u32>> {
    use std::collections::HashMap;
    let Some(table) = listen_table() else {
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
        .map(|s| (s.inode, s.port))
        .collect();
    let mut out: std::collections::BTreeMap<u16, Option<u32>> =
        by_inode.values().map(|p| (*p, None)).collect();
    if pids {
        for (port, pid) in socket_holders(&by_inode) {
            let held = out.entry(port).or_default();
            *held = Some(held.map_or(pid, |h| h.min(pid)));
        }
    }
    out
}

/// A listening TCP socket.
#[cfg(feature = "cli")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Socket {
    port: u16,
    inode: u64,
    /// Bound to a loopback or wildcard address, so `localhost:PORT` reaches it.
    local: bool,
}

/// Whether a socket bound to `addr` takes connections to a loopback address.
#[cfg(feature = "cli")]
fn reaches_loopback(addr: std::net::IpAddr) -> bool {
    let addr = addr.to_canonical();
    addr.is_loopback() || addr.is_unspecified()
}

/// Every listening TCP socket, IPv4 and IPv6: asked of the kernel's sock_diag netlink
/// interface, which walks only the listening sockets; else (netlink refused, as some
/// sandboxes do) read from `/proc/net/tcp{,6}`, each read of which walks the whole socket
/// table (milliseconds on a large machine).
#[cfg(feature = "cli")]
fn listen_table() -> Option<Vec<Socket>> {
    #[cfg(target_os = "linux")]
    {
        if let Ok(rows) = sock_diag::listening() {
            return Some(rows);
        }
        let mut rows = Vec::new();
        let mut any = false;
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let Some(text) = read_table(table) else {
                continue;
            };
            any = true;
            rows.extend(parse_listen_rows(&text));
        }
        any.then_some(rows)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The kernel's listing of listening TCP sockets over netlink (`NETLINK_SOCK_DIAG`,
/// `SOCK_DIAG_BY_FAMILY` with only `TCP_LISTEN` asked for; see sock_diag(7)).
#[cfg(all(target_os = "linux", feature = "cli"))]
mod sock_diag {
    use rustix::net::netlink::{self, SocketAddrNetlink};
    use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const IPPROTO_TCP: u8 = 6;
    const TCP_LISTEN: u32 = 10;
    const AF_INET: u8 = 2;
    const AF_INET6: u8 = 10;
    /// `struct nlmsghdr`.
    const HEADER: usize = 16;
    /// `struct inet_diag_sockid`.
    const SOCKID: usize = 48;

    /// The listening sockets of both families.
    pub fn listening() -> std::io::Result<Vec<super::Socket>> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        let mut rows = Vec::new();
        // The kernel sends a dump in messages of up to 32 KiB.
        let mut buf = vec![0u8; 64 * 1024];
        for (seq, family) in [(1u32, AF_INET), (2, AF_INET6)] {
            rustix::net::sendto(
                &fd,
                &request(seq, family),
                SendFlags::empty(),
                &SocketAddrNetlink::new(0, 0),
            )?;
            'dump: loop {
                let (got, whole) = rustix::net::recv(&fd, &mut buf[..], RecvFlags::empty())?;
                if whole > got {
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                let mut msgs = &buf[..got];
                while msgs.len() >= HEADER {
                    let len = u32_at(msgs, 0) as usize;
                    let kind = u16::from_ne_bytes([msgs[4], msgs[5]]);
                    if len < HEADER || len > msgs.len() {
                        return Err(std::io::ErrorKind::InvalidData.into());
                    }
                    match kind {
                        NLMSG_DONE => break 'dump,
                        NLMSG_ERROR => return Err(std::io::ErrorKind::Other.into()),
                        SOCK_DIAG_BY_FAMILY => rows.extend(row(&msgs[HEADER..len])),
                        _ => {}
                    }
                    msgs = msgs.get((len + 3) & !3..).unwrap_or_default();
                }
            }
        }
        Ok(rows)
    }

    /// `nlmsghdr` + `inet_diag_req_v2` asking for the TCP sockets in LISTEN of `family`.
    fn request(seq: u32, family: u8) -> Vec<u8> {
        let len = HEADER + 8 + SOCKID;
        let mut r = Vec::with_capacity(len);
        r.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_ne_bytes());
        r.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        r.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        r.extend_from_slice(&seq.to_ne_bytes());
        r.extend_from_slice(&0u32.to_ne_bytes());
        r.extend_from_slice(&[family, IPPROTO_TCP, 0, 0]);
        r.extend_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
        r.resize(len, 0);
        r
    }

    /// One `inet_diag_msg`: the family at 0, the port big-endian at 4, the local address
    /// at 8 (4 or 16 bytes), the inode after the socket id and four 32-bit fields.
    fn row(msg: &[u8]) -> Option<super::Socket> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let port = u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]);
        let addr = msg.get(8..24)?;
        let addr = match *msg.first()? {
            AF_INET => IpAddr::from(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            _ => IpAddr::from(Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?)),
        };
        let inode = u32_at(msg.get(4 + SOCKID + 16..)?, 0);
        Some(super::Socket {
            port,
            inode: u64::from(inode),
            local: super::reaches_loopback(addr),
        })
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        b.get(at..at + 4)
            .and_then(|s| s.try_into().ok())
            .map_or(0, u32::from_ne_bytes)
    }
}

/// A `/proc/net/tcp{,6}` table, read in as few calls as it takes: each `read` of it walks
/// the kernel's socket hash table, so a small buffer (std's first read is 32 bytes)
/// multiplies that cost.
#[cfg(feature = "cli")]
fn read_table(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(1 << 20);
    std::fs::File::open(path).ok()?.read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The LISTEN rows of a `/proc/net/tcp{,6}` table.
#[cfg(feature = "cli")]
fn parse_listen_rows(text: &str) -> impl Iterator<Item = Socket> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        let (addr, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        (*state == "0A").then_some(Socket {
            port,
            inode: inode.parse().ok()?,
            local: reaches_loopback(parse_proc_addr(addr)?),
        })
    })
}

/// An address as `/proc/net/tcp{,6}` prints it: 8 or 32 hex digits, each group of 8 a
/// 32-bit word of the address in network byte order, printed as a host-order number.
#[cfg(feature = "cli")]
fn parse_proc_addr(hex: &str) -> Option<std::net::IpAddr> {
    let mut bytes = Vec::with_capacity(16);
    for i in (0..hex.len()).step_by(8) {
        let word = u32::from_str_radix(hex.get(i..i + 8)?, 16).ok()?;
        bytes.extend_from_slice(&word.to_ne_bytes());
    }
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).into()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).into()),
        _ => None,
    }
}

/// A process listening on a port, as far as the OS tells (`/proc` on Linux; only our
/// own user's processes are visible unless we are root).
#[cfg(feature = "cli")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listener {
    pub pid: u32,
    pub command: String,
}

/// Who listens on `port`: the pids and commands owning its listening sockets.
#[cfg(feature = "cli")]
pub fn listeners_of(port: u16) -> Vec<Listener> {
    listeners_by_port(|p| p == port)
        .remove(&port)
        .unwrap_or_default()
}

/// The processes behind every listening port that `want` selects, in one pass over `/proc`.
#[cfg(feature = "cli")]
pub fn listeners_by_port(
    want: impl Fn(u16) -> bool,
) -> std::collections::BTreeMap<u16, Vec<Listener>> {
    let by_inode = listen_table()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| want(s.port))
        .map(|s| (s.inode, s.port))
        .collect();
    let mut out: std::collections::BTreeMap<u16, Vec<Listener>> = Default::default();
    let mut commands = std::collections::HashMap::new();
    for (port, pid) in socket_holders(&by_inode) {
        let command = commands.entry(pid).or_insert_with(|| command_line(pid));
        out.entry(port).or_default().push(Listener {
            pid,
            command: command.clone(),
        });
    }
    out
}

/// (port, pid) of every process holding one of the sockets of `by_inode` (inode to port),
/// each once, in pid order: the sockets' inodes matched to the links in `/proc/*/fd`. Only
/// our own user's processes are visible unless we are root.
#[cfg(feature = "cli")]
fn socket_holders(by_inode: &std::collections::HashMap<u64, u16>) -> Vec<(u16, u32)> {
    let mut out = Vec::new();
    if by_inode.is_empty() {
        return out;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for proc_dir in procs.flatten() {
        let Some(pid) = proc_dir
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_dir.path().join("fd")) else {
            continue;
        };
        let mut ports: Vec<u16> = fds
            .flatten()
            .filter_map(|fd| {
                let target = std::fs::read_link(fd.path()).ok()?;
                let t = target.to_string_lossy();
                let inode: u64 = t
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?;
                by_inode.get(&inode).copied()
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        out.extend(ports.into_iter().map(|port| (port, pid)));
    }
    out.sort_by_key(|(_, pid)| *pid);
    out
}

/// A process's command line on one line: arguments joined by spaces, control characters
/// as spaces, at most 120 characters.
#[cfg(feature = "cli")]
pub fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let joined: String = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
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

/// The pid holding an exclusive flock on the file with inode `ino`, from `/proc/locks`.
#[cfg(feature = "cli")]
pub fn flock_holder(ino: u64) -> Option<u32> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let kind = f.iter().position(|x| *x == "FLOCK")?;
        let pid = f.get(kind + 3)?.parse().ok()?;
        let file_ino: u64 = f.get(kind + 4)?.rsplit(':').next()?.parse().ok()?;
        (file_ino == ino).then_some(pid)
    })
}

#[cfg(feature = "cli")]
#[cfg(test)]
mod proc_tests {
    use super::*;

    /// A LISTEN row of the table (state 0A) at `addr:port`, with socket inode `inode`.
    fn row(addr: &str, port: u16, state: &str, inode: u64) -> String {
        format!(
            "0: {addr}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0\n"
        )
    }

    #[test]
    fn parses_listen_rows_only_and_tells_which_reach_loopback() {
        let v4 = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue\n{}{}{}{}",
            row("0100007F", 8080, "0A", 1),
            row("0100007F", 41668, "01", 2),
            row("00000000", 8081, "0A", 3),
            // 192.168.1.5, reached only on that address.
            row("0501A8C0", 8082, "0A", 4),
        );
        let sock = |port, inode, local| Socket { port, inode, local };
        assert_eq!(
            parse_listen_rows(&v4).collect::<Vec<_>>(),
            [
                sock(8080, 1, true),
                sock(8081, 3, true),
                sock(8082, 4, false)
            ]
        );
        let v6 = format!(
            "  sl  local_address rem_address\n{}{}{}{}",
            row("00000000000000000000000001000000", 9000, "0A", 5),
            row("00000000000000000000000000000000", 9001, "0A", 6),
            // ::ffff:127.0.0.1, and fe80::1.
            row("0000000000000000FFFF00000100007F", 9002, "0A", 7),
            row("000080FE000000000000000001000000", 9003, "0A", 8),
        );
        assert_eq!(
            parse_listen_rows(&v6).collect::<Vec<_>>(),
            [
                sock(9000, 5, true),
                sock(9001, 6, true),
                sock(9002, 7, true),
                sock(9003, 8, false)
            ]
        );
    }

    /// The netlink listing says what `/proc/net/tcp{,6}` says, inodes included.
    #[cfg(all(target_os = "linux", feature = "cli"))]
    #[test]
    fn sock_diag_lists_what_proc_lists() {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").ok();
        let from_proc = || -> std::collections::BTreeSet<Socket> {
            ["/proc/net/tcp", "/proc/net/tcp6"]
                .iter()
                .filter_map(|t| read_table(t))
                .flat_map(|text| parse_listen_rows(&text).collect::<Vec<_>>())
                .collect()
        };
        let before = from_proc();
        let diag: std::collections::BTreeSet<Socket> =
            sock_diag::listening().unwrap().into_iter().collect();
        let after = from_proc();
        let mine = [Some(&v4), v6.as_ref()]
            .into_iter()
            .flatten()
            .map(|l| l.local_addr().unwrap().port());
        for port in mine {
            assert!(
                diag.iter().any(|s| s.port == port && s.local),
                "{port} in {diag:?}"
            );
        }
        // Other processes may open or close listeners meanwhile: compare what stayed.
        let stable: std::collections::BTreeSet<_> = before.intersection(&after).copied().collect();
        assert!(stable.is_subset(&diag), "{stable:?} not in {diag:?}");
    }

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

/// A process's start time in clock ticks since boot (field 22 of `/proc/<pid>/stat`), or
/// `None` if no such process exists. With the pid it identifies one process, even after
/// the pid is recycled.
pub fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` is stopped (by SIGSTOP, SIGTSTP or a terminal read): state `T` in
/// `/proc/<pid>/stat`.
#[cfg(feature = "cli")]
pub fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after = stat.get(stat.rfind(')')? + 1..)?;
            after.split_whitespace().next().map(|s| s == "T")
        })
        .unwrap_or(false)
}

/// Whether the process a lease names is still running.
pub fn lease_is_live(lease: &crate::registry::model::Lease) -> bool {
    process_start_time(lease.pid) == Some(lease.start_time)
}

#[cfg(test)]
mod process_tests {
    #[test]
    fn our_own_start_time_is_stable_and_a_missing_pid_has_none() {
        let me = std::process::id();
        let t = super::process_start_time(me);
        assert!(t.is_some());
        assert_eq!(t, super::process_start_time(me));
        assert_eq!(super::process_start_time(u32::MAX), None);
    }
}
