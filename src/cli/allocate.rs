//! `allocate`: an instance port in a service type, auto-allocating the type if unknown.

use clap::Args;

use crate::cli::{Ctx, port_arg};
use styxy::allocate::{self, Request};
use styxy::model::InstanceBehavior;

/// Give an instance a port in a service type (creating the type if it is new)
///
/// The same instance always gets the same port back. Prints the port and its type's ranges;
/// with `--format json`: {"service_type", "instance", "port", "ranges", "instance_behavior",
/// "auto_allocated", "existing"}.
#[derive(Debug, Args)]
pub struct AllocateArgs {
    /// Service type, e.g. `api` or `myshop/admin`
    #[arg(long, value_name = "TYPE")]
    pub service: String,
    /// Instance id [default: this directory's canonical path]
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Port wanted: used when free, else a warning and the next free one. A new type's range
    /// starts here
    #[arg(long, value_name = "PORT", value_parser = port_arg, allow_negative_numbers = true)]
    pub port: Option<u16>,
    /// If the type is new, make it single-instance (every instance shares one port)
    #[arg(long)]
    pub single: bool,
    /// If the type is new, place its range inside this zone (`[strategies.NAME.zones]`)
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<String>,
}

pub fn run(ctx: &Ctx, args: AllocateArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()
        .and_then(|d| styxy::os::canonicalize(&d))
        .map_err(|e| e.to_string())
        .and_then(|p| styxy::workspace::root_id(&p).map_err(|e| e.to_string()));
    let (instance, workspace) = match (&args.instance, &cwd) {
        (Some(id), _) => (id.clone(), None),
        (None, Ok(dir)) => (dir.clone(), Some(dir.clone())),
        (None, Err(e)) => {
            anyhow::bail!("cannot read the current directory ({e}); pass --instance ID")
        }
    };
    let machine = styxy::this_machine();
    let request = Request {
        strict: false,
        service_type: &args.service,
        instance: &instance,
        workspace: workspace.as_deref(),
        port: args.port,
        requested_by: None,
        instance_behavior: args.single.then_some(InstanceBehavior::Single),
        service: None,
        zone: args.zone.as_deref(),
    };
    let grant = ctx.change(|change| {
        let outcome = allocate::allocate(change.registry, &machine, &request).inspect_err(|e| {
            change.record_failure(allocate::failure_event(&request, e));
        })?;
        Ok(change.apply(outcome))
    })?;
    let g = &grant;
    ctx.print(g, |out| {
        let what = match (g.auto_allocated, g.existing) {
            (true, _) => "new type",
            (false, true) => "already held",
            (false, false) => "new instance",
        };
        writeln!(
            out,
            "{}: port {} for {} ({}; ranges {})",
            g.service_type,
            g.port,
            g.instance,
            what,
            styxy::model::join_ranges(&g.ranges)
        )
    })
}
