//! `doctor`: the registry's health, each finding with the command that fixes it.

use clap::Args;

use crate::cli::Ctx;

/// Check the registry's health; each finding comes with its fix
///
/// Checks that the registry parses and validates, gaps between auto-allocated ranges,
/// ranges inside the OS ephemeral span, foreign listeners inside our (non-built-in) ranges,
/// stale leases, orphaned temp files, and who holds the lock. Exits 0 only when there is
/// no finding. With `--format json`: {"healthy", "findings": [{"check", "message", "fix"}]}.
#[derive(Debug, Args)]
pub struct DoctorArgs {}

pub fn run(ctx: &Ctx, _args: DoctorArgs) -> anyhow::Result<()> {
    let report = crate::observe::health::check(&ctx.store);
    ctx.print(&report, |out| {
        if report.healthy {
            writeln!(
                out,
                "the registry {} is healthy",
                ctx.store.file().display()
            )?;
        }
        for f in &report.findings {
            writeln!(out, "{}: {}\n  fix: {}", f.check, f.message, f.fix)?;
        }
        Ok(())
    })?;
    if !report.healthy {
        anyhow::bail!(
            "{} problem(s) found; each is listed above with its fix",
            report.findings.len()
        );
    }
    Ok(())
}
