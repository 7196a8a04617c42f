//! Whether a port is listening right now on this machine, probed the way a server binds.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use crate::registry::model::PortRange;

/// True when a server could not bind `port` on 127.0.0.1 or on [::1] because something holds
/// it. Both loopbacks are tried: a service on [::1] does not block an IPv4 bind, yet
/// `localhost` clients reach it. The bind uses std's defaults (`SO_REUSEADDR` on Unix), as
/// servers do, so sockets in TIME_WAIT do not count.
pub fn is_listening(port: u16) -> bool {
    let taken = |addr: SocketAddr| matches!(TcpListener::bind(addr), Err(e) if e.kind() == ErrorKind::AddrInUse);
    taken(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        || taken(SocketAddr::from((Ipv6Addr::LOCALHOST, port)))
}

/// The OS ephemeral port range, where the kernel picks ports for outgoing connections.
/// Read from `/proc/sys/net/ipv4/ip_local_port_range` on Linux; IANA's 49152-65535 elsewhere.
pub fn ephemeral_range() -> Option<PortRange> {
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
