//! A client that knows the server's port at compile time: no config, no discovery.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

mod ports {
    include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs"));
}

/// Where this checkout's `shop-api` listens.
fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], ports::SHOP_API_PORT))
}

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("--ports") {
        for (service, port) in ports::SERVICES {
            println!("{service} {port}");
        }
        return Ok(());
    }
    let mut stream = TcpStream::connect(server_addr())?;
    stream.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    print!("{}", reply.split("\r\n\r\n").nth(1).unwrap_or(""));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_targets_this_checkouts_server() {
        assert_eq!(server_addr().port(), ports::SHOP_API_PORT);
        assert!(ports::SERVICES.contains(&("shop-api", ports::SHOP_API_PORT)));
    }
}
