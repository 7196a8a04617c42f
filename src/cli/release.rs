//! `release`: free instances; an auto-allocated type left empty is removed.

use clap::Args;

use crate::cli::Ctx;
use styxy::allocate;

/// Free instance ports
///
/// An auto-allocated type whose last instance is released is removed, and its range returns
/// to free space. With `--format json`: [{"service_type", "instance", "port", "type_removed"}].
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true))]
pub struct ReleaseArgs {
    /// Service type to release in (alone: all its instances)
    #[arg(long, value_name = "TYPE", group = "what")]
    pub service: Option<String>,
    /// Instance to release (alone: in every type)
    #[arg(long, value_name = "ID", group = "what")]
    pub instance: Option<String>,
    /// Every instance of this checkout (the workspace of --manifest-path or the current dir)
    #[arg(long, group = "what")]
    pub workspace: bool,
}

pub fn run(ctx: &Ctx, args: ReleaseArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    // The checkout's root comes from cargo (or the cache) before the lock is taken.
    let root = if args.workspace {
        let manifest = crate::cli::checkout::manifest(manifest)?;
        let ws = crate::cli::checkout::load(ctx, &manifest)?;
        Some(styxy::workspace::root_id(&ws.root)?)
    } else {
        None
    };
    let released = ctx.change(|change| {
        let outcome = allocate::release_where(
            change.registry,
            args.service.as_deref(),
            args.instance.as_deref(),
            root.as_deref(),
        )?;
        Ok(change.apply(outcome))
    })?;
    ctx.print(&released, |out| {
        for r in &released {
            let gone = if r.type_removed { "; type removed" } else { "" };
            writeln!(
                out,
                "released {}: port {} of {}{gone}",
                r.instance, r.port, r.service_type
            )?;
        }
        Ok(())
    })
}
