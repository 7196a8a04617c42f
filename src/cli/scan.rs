//! `scan`: listening ports in a span, each with its registry owner or marked foreign.

use clap::Args;
use serde::Serialize;

use crate::cli::{Ctx, port_arg};
use styxy::probe::Listener;

/// List the ports listening now, each with its registry owner, or marked foreign
///
/// `registered`: an instance holds it; `foreign`: inside a service type's range but no
/// instance holds it; `unmanaged`: outside every range. With `--format json`: [{"port",
/// "status", "service_type", "instance", "listeners": [{"pid", "command"}]}].
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// First port of the span
    #[arg(long, value_name = "A", value_parser = port_arg, default_value = "1024")]
    pub start: u16,
    /// Last port of the span
    #[arg(long, value_name = "B", value_parser = port_arg, default_value = "65535")]
    pub end: u16,
}

#[derive(Debug, Serialize)]
struct Entry {
    port: u16,
    status: &'static str,
    service_type: Option<String>,
    instance: Option<String>,
    listeners: Vec<Listener>,
}

pub fn run(ctx: &Ctx, args: ScanArgs) -> anyhow::Result<()> {
    if args.start > args.end {
        anyhow::bail!(
            "--start {} is above --end {}; give the span low to high",
            args.start,
            args.end
        );
    }
    let reg = ctx.store.read()?;
    let span = args.start..=args.end;
    let ports: Vec<u16> = match styxy::probe::listening_ports() {
        Some(all) => all.into_iter().filter(|p| span.contains(p)).collect(),
        // No listing of sockets on this OS: probe every port of the span the way a server binds.
        None => span
            .clone()
            .filter(|p| styxy::probe::is_listening(*p))
            .collect(),
    };
    let mut who = styxy::probe::listeners_by_port(|p| span.contains(&p));
    let entries: Vec<Entry> = ports
        .into_iter()
        .map(|port| {
            let owner = reg.owner_of(port);
            let holder = owner.and_then(|(_, t)| {
                t.instances
                    .iter()
                    .find(|(_, i)| i.port == port)
                    .map(|(id, _)| id.clone())
            });
            let status = match (owner, &holder) {
                (Some(_), Some(_)) => "registered",
                (Some(_), None) => "foreign",
                (None, _) => "unmanaged",
            };
            Entry {
                port,
                status,
                service_type: owner.map(|(n, _)| n.to_owned()),
                instance: holder,
                listeners: who.remove(&port).unwrap_or_default(),
            }
        })
        .collect();
    ctx.print(&entries, |out| {
        for e in &entries {
            let owner = match (&e.service_type, &e.instance) {
                (Some(t), Some(i)) => format!("{t} ({i})"),
                (Some(t), None) => format!("in {t}'s range"),
                _ => String::new(),
            };
            let procs: Vec<String> = e
                .listeners
                .iter()
                .map(|l| format!("pid {} {}", l.pid, l.command))
                .collect();
            writeln!(
                out,
                "{:>5}  {:<10}  {owner}  {}",
                e.port,
                e.status,
                procs.join("; ")
            )?;
        }
        Ok(())
    })
}
