//! `ui`: the local web dashboard.

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};

use clap::Args;

use crate::allocate::{self, Request};
use crate::cli::{Ctx, Format, port_arg};

/// Serve the web dashboard on 127.0.0.1 (and [::1]) and print its URL
///
/// The port is the dashboard's own instance of the `coordination` type, so it is the same
/// on every start. The URL carries a token made anew at each start (also in `ui.token` in
/// the registry, 0600); the page trades it for a cookie. Runs until Ctrl-C.
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
        let (mut guard, mut events) = ctx.lock()?;
        let request = Request {
            service_type: "coordination",
            instance: UI_INSTANCE,
            port: args.port,
            ..Request::default()
        };
        let out = allocate::allocate(&mut guard.registry, &crate::this_machine(), &request)?;
        events.extend(out.events);
        guard.commit(&events)?;
        for w in &out.warnings {
            ctx.warn(w);
        }
        out.value.port
    };
    let v4 = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on 127.0.0.1:{port} ({e}); is another `cargo styxy ui` running? See `cargo styxy check {port}`"
        )
    })?;
    let mut listeners = vec![v4];
    match TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))) {
        Ok(v6) => listeners.push(v6),
        Err(e) => ctx.note(&format!("not listening on [::1]:{port}: {e}")),
    }
    let token = crate::web::security::new_token()?;
    let token_file = ctx.store.dir().join("ui.token");
    crate::fsx::write_atomic(&token_file, token.as_bytes())?;
    let url = format!("http://127.0.0.1:{port}/?token={token}");
    {
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
    }
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
