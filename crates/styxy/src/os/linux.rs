//! Linux: listening sockets from the kernel's sock_diag netlink interface (else
//! `/proc/net/tcp{,6}`), their owners, command lines, locks and process start times from
//! `/proc`, and `run`'s tie of the bin to its parent (`PR_SET_PDEATHSIG`).

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;

use super::Socket;

/// `/proc/sys/net/ipv4/ip_local_port_range`.
pub fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) if a <= b => Some((a, b)),
        _ => None,
    }
}

/// Asked of sock_diag, which walks only the listening sockets; else (netlink refused, as
/// some sandboxes do, or a build without it) read from `/proc/net/tcp{,6}`, each read of
/// which walks the whole socket table (milliseconds on a large machine).
pub fn listening_sockets() -> Option<Vec<Socket>> {
    #[cfg(feature = "tool")]
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

/// The kernel's listing of listening TCP sockets over netlink (`NETLINK_SOCK_DIAG`,
/// `SOCK_DIAG_BY_FAMILY` with only `TCP_LISTEN` asked for; see sock_diag(7)).
#[cfg(feature = "tool")]
mod sock_diag {
    use super::Socket;
    use crate::os::reaches_localhost;
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
    pub fn listening() -> std::io::Result<Vec<Socket>> {
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
    fn row(msg: &[u8]) -> Option<Socket> {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        let port = u16::from_be_bytes([*msg.get(4)?, *msg.get(5)?]);
        let addr = msg.get(8..24)?;
        let addr = match *msg.first()? {
            AF_INET => IpAddr::from(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3])),
            _ => IpAddr::from(Ipv6Addr::from(<[u8; 16]>::try_from(addr).ok()?)),
        };
        let inode = u32_at(msg.get(4 + SOCKID + 16..)?, 0);
        Some(Socket {
            port,
            id: u64::from(inode),
            local: reaches_localhost(addr),
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
fn read_table(path: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(1 << 20);
    std::fs::File::open(path).ok()?.read_to_end(&mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// The LISTEN rows of a `/proc/net/tcp{,6}` table.
fn parse_listen_rows(text: &str) -> impl Iterator<Item = Socket> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
        let (addr, port) = local.split_once(':')?;
        let port = u16::from_str_radix(port, 16).ok()?;
        (*state == "0A").then_some(Socket {
            port,
            id: inode.parse().ok()?,
            local: super::reaches_localhost(parse_proc_addr(addr)?),
        })
    })
}

/// An address as `/proc/net/tcp{,6}` prints it: 8 or 32 hex digits, each group of 8 a
/// 32-bit word of the address in network byte order, printed as a host-order number.
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

/// The sockets' inodes matched to the links in `/proc/*/fd`.
pub fn socket_owners(ports_by_id: &HashMap<u64, u16>) -> Vec<(u16, u32)> {
    let mut out = Vec::new();
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
                ports_by_id.get(&inode).copied()
            })
            .collect();
        ports.sort_unstable();
        ports.dedup();
        out.extend(ports.into_iter().map(|port| (port, pid)));
    }
    out.sort_by_key(|(_, pid)| *pid);
    out
}

/// `/proc/<pid>/cmdline`.
pub fn command_args(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    raw.split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The FLOCK line of `/proc/locks` on the file's inode.
pub fn lock_holder(file: &File) -> Option<u32> {
    let ino = super::file_id(&file.metadata().ok()?);
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

/// The fields of `/proc/<pid>/stat` after the command name (which is in parentheses and
/// may hold spaces), from field 3 (the state) on.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// Field 22 of `/proc/<pid>/stat`: clock ticks since boot.
pub fn process_start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// State `T` in `/proc/<pid>/stat`.
pub fn is_stopped(pid: u32) -> bool {
    stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "T"))
}

/// Through the trampoline: `/proc/self/exe` is this very binary even when it was replaced
/// on disk meanwhile (`cargo install` during a run).
pub fn tied_command(
    trampoline: &str,
    program: OsString,
    args: Vec<OsString>,
) -> (OsString, Vec<OsString>) {
    let mut all = vec![
        trampoline.into(),
        std::process::id().to_string().into(),
        program,
    ];
    all.extend(args);
    ("/proc/self/exe".into(), all)
}

/// `PR_SET_PDEATHSIG` with SIGKILL: the request survives the `exec`s into cargo and from
/// cargo into the bin, so whatever ends the parent, the bin does not outlive it.
#[cfg(feature = "tool")]
pub fn exec_tied_to(
    parent: u32,
    program: &std::ffi::OsStr,
    args: &[OsString],
    warn: impl FnOnce(super::TieError),
) -> super::TieError {
    use rustix::process::{Signal, getppid, set_parent_process_death_signal};
    if let Err(e) = set_parent_process_death_signal(Some(Signal::KILL)) {
        warn(super::TieError::Untied(e.into()));
    }
    // The parent died before the request was made: nothing would kill us later.
    if getppid().map(|p| p.as_raw_pid().unsigned_abs()) != Some(parent) {
        return super::TieError::ParentGone;
    }
    use std::os::unix::process::CommandExt;
    super::TieError::Exec(std::process::Command::new(program).args(args).exec())
}

#[cfg(test)]
mod tests {
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
        let sock = |port, inode, local| Socket {
            port,
            id: inode,
            local,
        };
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
    #[cfg(feature = "tool")]
    #[test]
    fn sock_diag_lists_what_proc_lists() {
        use std::net::TcpListener;
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
}
