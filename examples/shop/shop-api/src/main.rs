//! A tiny HTTP server on this checkout's port for `shop-api`.
//! `PORT` (as `cargo styxy run` sets it) wins over the build-time constant.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

mod ports {
    include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs"));
}

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(ports::SHOP_API_PORT);
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    eprintln!("shop-api listening on http://127.0.0.1:{port}");
    for stream in listener.incoming() {
        let mut stream = stream?;
        let mut request_line = String::new();
        BufReader::new(&stream).read_line(&mut request_line)?;
        let body = format!("shop-api on {port}\n");
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )?;
    }
    Ok(())
}
