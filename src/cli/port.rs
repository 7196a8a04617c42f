//! `port SERVICE`: one port and nothing else, for `$(cargo styxy port api)`.

use clap::Args;

use crate::cli::Ctx;
use crate::cli::checkout;

/// Print the port of one service of the workspace, nothing else
///
/// SERVICE is a service type, a bin, `package/bin`, or an env name.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The service: a service type, a bin, `package/bin`, or an env name (`API_PORT`)
    pub service: String,
}

pub fn run(ctx: &Ctx, args: PortArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    let manifest = checkout::manifest(manifest)?;
    let ws = checkout::load(ctx, &manifest)?;
    let service = checkout::named(&ws, &args.service)?;
    let port = checkout::ports(ctx, &ws, std::slice::from_ref(&service))?[0];
    ctx.print(&port, |out| writeln!(out, "{port}"))
}
