//! `assign`: give every service of the workspace its port.

use clap::Args;
use serde::Serialize;

use crate::cli::Ctx;
use crate::cli::checkout::{self, Selection};
use styxy::model::{InstanceBehavior, PortRange, join_ranges};

/// Give every service of the workspace its port (idempotent)
///
/// Every bin target of every member is a service, plus `[package.metadata.styxy] services`.
/// Creates service types as needed and writes the workspace's port file for build scripts.
/// With `--format json`: {"workspace", "services": [{"service_type", "package", "bin",
/// "env", "port", "ranges", "instance_behavior", "auto_allocated"}]}.
#[derive(Debug, Args)]
pub struct AssignArgs {
    #[command(flatten)]
    pub selection: Selection,
}

#[derive(Debug, Serialize)]
struct Assignment<'a> {
    workspace: String,
    services: Vec<ServiceView<'a>>,
}

#[derive(Debug, Serialize)]
struct ServiceView<'a> {
    service_type: &'a str,
    package: &'a str,
    bin: Option<&'a str>,
    env: &'a str,
    port: u16,
    ranges: &'a [PortRange],
    instance_behavior: InstanceBehavior,
    auto_allocated: bool,
}

pub fn run(ctx: &Ctx, args: AssignArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    let manifest = checkout::manifest(manifest)?;
    let ws = checkout::load(ctx, &manifest)?;
    let services = checkout::select(&ws, &args.selection, &manifest)?;
    let root = styxy::workspace::root_id(&ws.root)?;
    let assigned = ctx.warned(styxy::assign::assign(
        &ctx.store,
        &styxy::this_machine(),
        &root,
        &services,
    )?);
    let view = Assignment {
        workspace: root,
        services: assigned
            .iter()
            .map(|a| ServiceView {
                service_type: &a.service.service_type,
                package: &a.service.package,
                bin: a.service.bin.as_deref(),
                env: &a.service.env,
                port: a.grant.port,
                ranges: &a.grant.ranges,
                instance_behavior: a.grant.instance_behavior,
                auto_allocated: a.grant.auto_allocated,
            })
            .collect(),
    };
    ctx.print(&view, |out| {
        let width = view.services.iter().map(|s| s.env.len()).max().unwrap_or(0);
        for s in &view.services {
            let new = if s.auto_allocated { ", new type" } else { "" };
            writeln!(
                out,
                "{:width$} = {:<5}  {} ({}{new})",
                s.env,
                s.port,
                s.service_type,
                join_ranges(s.ranges)
            )?;
        }
        Ok(())
    })
}
