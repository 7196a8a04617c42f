//! `list`: every service type with its ranges, instances and live leases, and the settings.

use clap::Args;

use crate::cli::Ctx;
use crate::observe::view::listing;
use styxy::model::join_ranges;

/// List service types, instances and ports (listening now or not), and the settings
///
/// With `--format json`: {"service_types": [{"service_type", "ranges", "instance_behavior",
/// "origin", "preferred_ports", "description", "zone", "instances": [{"instance",
/// "port", "workspace", "listening", "listener_pid"}], "leases": [{"port", "pid",
/// "instance"}]}], "settings": {"min_port", "max_port", "chunk_size", "gap_size",
/// "placement", "max_instances", "auto_allocate", "audit_max_bytes", "audit_files"}}.
/// `listening` is true when `localhost:PORT` takes connections now, whoever started the
/// server; `listener_pid` is its process where the OS tells (left out otherwise).
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only types whose name matches this glob, e.g. `shop-*`
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Hide the built-in types that have no instances
    #[arg(long)]
    pub used: bool,
}

pub fn run(ctx: &Ctx, args: ListArgs) -> anyhow::Result<()> {
    let reg = ctx.store.read()?;
    let pattern = args
        .pattern
        .as_deref()
        .map(styxy::model::validate::pattern)
        .transpose()?;
    let listing = listing(&reg, |n, t| {
        pattern.as_ref().is_none_or(|p| p.matches(n)) && (!args.used || !t.instances.is_empty())
    });
    ctx.print(&listing, |out| {
        let width = listing
            .service_types
            .iter()
            .map(|t| t.service_type.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            out,
            "{:width$}  {:<13}  {:<6}  {:<7}  INSTANCES",
            "TYPE", "RANGES", "MODE", "ORIGIN"
        )?;
        for t in &listing.service_types {
            writeln!(
                out,
                "{:width$}  {:<13}  {:<6}  {:<7}  {}",
                t.service_type,
                join_ranges(t.ranges),
                t.instance_behavior.as_str(),
                t.origin,
                t.instances.len()
            )?;
            for i in &t.instances {
                let mut status: Vec<String> = Vec::new();
                if i.listening {
                    status.push(match i.listener_pid {
                        Some(pid) => format!("listening, pid {pid}"),
                        None => "listening".to_owned(),
                    });
                }
                status.extend(
                    t.leases
                        .iter()
                        .filter(|l| l.instance == i.instance)
                        .map(|l| format!("run by pid {}", l.pid)),
                );
                let status = if status.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", status.join("; "))
                };
                writeln!(out, "  {:>5}  {}{status}", i.port, i.instance)?;
            }
        }
        let s = &listing.settings;
        writeln!(
            out,
            "\nauto-allocation: {} ports per range, gap {}, placement {}, in {}-{}{}",
            s.chunk_size,
            s.gap_size,
            s.placement,
            s.min_port,
            s.max_port,
            if s.auto_allocate { "" } else { " (off)" }
        )
    })
}
