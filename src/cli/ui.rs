//! `ui`: the local web dashboard.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use clap::Args;

use crate::cli::{Ctx, Format, port_arg};
use styxy::allocate::{self, Request};

/// Serve the web dashboard on 127.0.0.1 (and [::1]) and print its URL
///
/// The port is the dashboard's own instance of the `coordination` type, so it is the same
/// on every start. The URL carries a token made anew at each start (also in `ui.token` in
/// the registry, 0600); the page trades it for a cookie. Runs until Ctrl-C. If the
/// dashboard already runs, prints its URL instead and exits 0.
#[derive(Debug, Args)]
pub struct UiArgs {
    /// Port wanted (in the `coordination` range; else a warning and the usual one)
    #[arg(long, value_name = "PORT", value_parser = port_arg)]
    pub port: Option<u16>,
    /// Open the dashboard in the browser ($BROWSER, else xdg-open)
    #[arg(long)]
    pub open: bool,
}

/// The instance id the dashboard holds its port under.
pub const UI_INSTANCE: &str = "cargo-styxy ui";

pub fn run(ctx: &Ctx, args: UiArgs) -> anyhow::Result<()> {
    let port = {
        let request = Request {
            service_type: "coordination",
            instance: UI_INSTANCE,
            port: args.port,
            ..Request::default()
        };
        ctx.change(|change| {
            let out = allocate::allocate(change.registry, &styxy::this_machine(), &request)?;
            Ok(change.apply(out))
        })?
        .port
    };
    let token_file = ctx.store.dir().join("ui.token");
    let v4 = match TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))) {
        Ok(l) => l,
        Err(e) => {
            // Another `ui` of this registry serves there: its URL, not an error.
            if let Some((pid, token)) = running_ui(port, &token_file) {
                let pid = if pid > 0 {
                    format!(" (pid {pid})")
                } else {
                    String::new()
                };
                ctx.warn(&format!("the dashboard already runs{pid}; this is its URL"));
                print_url(ctx, port, &token, &token_file)?;
                return Ok(());
            }
            anyhow::bail!(
                "cannot listen on 127.0.0.1:{port} ({e}), and it is not a `cargo styxy ui` of this registry; see `cargo styxy check {port}`"
            );
        }
    };
    let mut listeners = vec![v4];
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
        Ok(v6) => listeners.push(v6),
        Err(e) => ctx.note(&format!("not listening on [::1]:{port}: {e}")),
    }
    let token = crate::web::security::new_token()?;
    styxy::fsx::write_atomic(&token_file, token.as_bytes())?;
    let url = print_url(ctx, port, &token, &token_file)?;
    ctx.note("serving the dashboard; Ctrl-C stops it");
    if args.open {
        let browser = std::env::var("BROWSER").unwrap_or_else(|_| "xdg-open".into());
        if let Err(e) = std::process::Command::new(&browser).arg(&url).spawn() {
            ctx.warn(&format!(
                "cannot start {browser} ({e}); open {url} yourself"
            ));
        }
    }
    crate::web::serve(ctx.store.clone(), token, port, listeners)?;
    Ok(())
}

/// Prints the dashboard's URL (one JSON line with `--format json`) and returns it.
fn print_url(
    ctx: &Ctx,
    port: u16,
    token: &str,
    token_file: &std::path::Path,
) -> anyhow::Result<String> {
    let url = format!("http://127.0.0.1:{port}/?token={token}");
    let mut out = std::io::stdout().lock();
    match ctx.format {
        Format::Json => writeln!(
            out,
            "{}",
            serde_json::json!({ "url": url, "port": port, "token_file": token_file })
        )?,
        _ => writeln!(out, "{url}")?,
    }
    out.flush()?;
    Ok(url)
}

/// The pid and token of the `cargo styxy ui` of this registry that listens on `port`, if
/// that is what listens there. The token is never sent to find out: the server must answer
/// a fresh nonce with its keyed hash under this registry's `ui.token`
/// ([`crate::web::security::identity_proof`]), which a squatter on the port cannot.
fn running_ui(port: u16, token_file: &std::path::Path) -> Option<(u32, String)> {
    use std::io::{Read, Write as _};
    let token = styxy::fsx::read_text_bounded(token_file, 4096, styxy::os::Links::Refuse)
        .ok()?
        .trim()
        .to_owned();
    let nonce = crate::web::security::new_token().ok()?;
    let timeout = std::time::Duration::from_secs(2);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    write!(
        s,
        "GET {}?nonce={nonce} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n",
        crate::web::security::IDENTIFY_PATH
    )
    .ok()?;
    let mut reply = Vec::new();
    s.take(64 * 1024).read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n")?;
    let expected = crate::web::security::identity_proof(&token, &nonce);
    let proven = head.starts_with("HTTP/1.1 200")
        && crate::web::security::same_proof(body.trim(), &expected);
    if !proven {
        return None;
    }
    let pid = styxy::probe::listeners_of(port)
        .first()
        .map_or(0, |l| l.pid);
    Some((pid, token))
}
