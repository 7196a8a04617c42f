//! `gc`: drop what is stale.

use clap::Args;
use serde::Serialize;

use crate::cli::Ctx;
use styxy::allocate::gc::Dropped;

/// Drop instances whose checkout is gone or no longer has their service, leases of dead
/// processes, and auto-allocated types left with no instances
///
/// With `--format json`: {"dry_run", "dropped": [{"service_type", "instance", "port",
/// "reason"}]}.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be dropped, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    dropped: Vec<Dropped>,
}

pub fn run(ctx: &Ctx, args: GcArgs) -> anyhow::Result<()> {
    let dropped = ctx.warned(styxy::gc::gc(&ctx.store, args.dry_run)?);
    let report = Report {
        dry_run: args.dry_run,
        dropped,
    };
    ctx.print(&report, |w| {
        let verb = if report.dry_run {
            "would drop"
        } else {
            "dropped"
        };
        if report.dropped.is_empty() {
            writeln!(w, "nothing to drop")?;
        }
        for d in &report.dropped {
            let what = match (&d.instance, d.port) {
                (Some(i), Some(p)) => format!("{} port {p} ({i})", d.service_type),
                _ => format!("type {}", d.service_type),
            };
            writeln!(w, "{verb} {what}: {}", d.reason)?;
        }
        Ok(())
    })
}
