//! `check PORT`: who holds a port in the registry, and who listens on it now.

use clap::Args;
use serde::Serialize;

use crate::cli::{Ctx, port_arg};
use crate::observe::view::{InstanceView, LeaseView};
use styxy::model::PortRange;
use styxy::probe::Listener;

/// Who holds a port in the registry, and whether something listens on it now
///
/// With `--format json`: {"port", "service_type", "ranges", "instances": [{"instance",
/// "port", "workspace", "listening", "listener_pid"}], "leases": [{"port", "pid",
/// "instance"}], "listening", "listener_pid", "listeners": [{"pid", "command"}], "foreign"},
/// in `list`'s words: `listening` when `localhost:PORT` takes connections now,
/// `listener_pid` its process where the OS tells, `leases` the live leases of `run` (a stale
/// one is `doctor`'s). `foreign` is true when something listens on a port of our ranges that
/// no instance holds.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The port to check, 1-65535
    #[arg(value_parser = port_arg)]
    pub port: u16,
}

#[derive(Debug, Serialize)]
struct Check<'a> {
    port: u16,
    service_type: Option<&'a str>,
    ranges: &'a [PortRange],
    instances: Vec<InstanceView<'a>>,
    leases: Vec<LeaseView<'a>>,
    listening: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    listener_pid: Option<u32>,
    listeners: Vec<Listener>,
    foreign: bool,
}

pub fn run(ctx: &Ctx, args: CheckArgs) -> anyhow::Result<()> {
    let reg = ctx.store.read()?;
    let port = args.port;
    let owner = reg.owner_of(port);
    let serving = styxy::probe::serving(&[port].into(), true);
    let listening = serving.contains_key(&port);
    let listener_pid = serving.get(&port).copied().flatten();
    let instances: Vec<InstanceView> = owner
        .map(|(_, t)| {
            t.instances
                .iter()
                .filter(|(_, i)| i.port == port)
                .map(|(id, i)| InstanceView {
                    instance: id,
                    port,
                    workspace: i.workspace(id),
                    listening,
                    listener_pid,
                })
                .collect()
        })
        .unwrap_or_default();
    let leases: Vec<LeaseView> = owner
        .map(|(_, t)| {
            t.leases
                .iter()
                .filter(|l| l.port == port && styxy::probe::lease_is_live(l))
                .map(|l| LeaseView {
                    port,
                    pid: l.pid,
                    instance: &l.instance,
                })
                .collect()
        })
        .unwrap_or_default();
    let listeners = if listening {
        styxy::probe::listeners_of(port)
    } else {
        Vec::new()
    };
    let view = Check {
        port,
        service_type: owner.map(|(n, _)| n),
        ranges: owner.map(|(_, t)| t.ranges.as_slice()).unwrap_or_default(),
        foreign: listening && owner.is_some() && instances.is_empty(),
        instances,
        leases,
        listening,
        listener_pid,
        listeners,
    };
    ctx.print(&view, |out| {
        match &view.service_type {
            None => writeln!(out, "port {port}: in no service type's range")?,
            Some(t) => writeln!(
                out,
                "port {port}: in the range of {t:?} ({})",
                styxy::model::join_ranges(view.ranges)
            )?,
        }
        for h in &view.instances {
            writeln!(out, "  held by instance {}", h.instance)?;
        }
        for l in &view.leases {
            writeln!(out, "  run by pid {} for {}", l.pid, l.instance)?;
        }
        if !view.listening {
            writeln!(out, "  nothing listens on it now")?;
        } else if view.listeners.is_empty() {
            writeln!(
                out,
                "  something listens on it now (the OS does not say who)"
            )?;
        }
        for l in &view.listeners {
            writeln!(out, "  listening now: pid {} ({})", l.pid, l.command)?;
        }
        if view.foreign {
            writeln!(out, "  foreign: no instance holds this port of our range")?;
        }
        Ok(())
    })
}
