//! `port SERVICE`: one port and nothing else, for `$(cargo styxy port api)`.

use clap::Args;

use crate::cli::Ctx;
use crate::cli::workspace::{self, Selection};

/// Print the port of one service of the workspace, nothing else
///
/// SERVICE is a service type, a bin, `package/bin`, or an env name.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The service: a service type, a bin, `package/bin`, or an env name (`API_PORT`)
    pub service: String,
}

pub fn run(ctx: &Ctx, args: PortArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    let manifest = workspace::manifest(manifest)?;
    let ws = workspace::load(ctx, &manifest)?;
    let all = workspace::select(&ws, &Selection::default())?;
    let matching: Vec<_> = all
        .iter()
        .filter(|s| s.answers_to(&args.service))
        .cloned()
        .collect();
    match matching.len() {
        1 => {}
        0 => anyhow::bail!(
            "no service {:?} in the workspace at {}; its services are {}",
            args.service,
            ws.root.display(),
            all.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
        ),
        _ => anyhow::bail!(
            "{:?} names several services ({}); use `package/bin` or the env name",
            args.service,
            matching
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    let port = workspace::ports(ctx, &ws, &matching)?[0];
    ctx.print(&port, |out| writeln!(out, "{port}"))
}
