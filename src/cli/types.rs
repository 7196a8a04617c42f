//! `type add|set|rm`: manage service types by hand, built-in ones included.

use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::{Ctx, port_arg, range_arg};
use styxy::allocate::manage;
use styxy::model::{InstanceBehavior, PortRange, TypeFields};

/// Manage service types by hand
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum TypeCommand {
    /// Add a service type; a range that overlaps another type's is refused
    Add {
        /// Name: letters, digits, `.`, `_`, `-`, and one `/` between package and bin
        name: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Change a service type (ranges must keep every instance's port)
    Set {
        /// The service type to change
        name: String,
        #[command(flatten)]
        fields: Fields,
        /// Make it multi-instance (every instance gets its own port)
        #[arg(long, conflicts_with = "single")]
        multi: bool,
    },
    /// Remove a service type
    Rm {
        /// The service type to remove
        name: String,
        /// Also release its instances
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
pub struct Fields {
    /// Port range `A-B` (repeat for more ranges)
    #[arg(long = "range", value_name = "A-B", value_parser = range_arg)]
    pub ranges: Vec<PortRange>,
    /// Single-instance: every instance shares one port
    #[arg(long)]
    pub single: bool,
    /// Ports to hand out first, e.g. `--preferred 8080,8081`
    #[arg(long, value_name = "P,…", value_delimiter = ',', value_parser = port_arg)]
    pub preferred: Option<Vec<u16>>,
    /// What the type is for (`""` clears it)
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// Most instances this type may hold
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_instances: Option<u32>,
}

impl Fields {
    fn change(self, multi: bool) -> TypeFields {
        TypeFields {
            ranges: (!self.ranges.is_empty()).then_some(self.ranges),
            instance_behavior: if self.single {
                Some(InstanceBehavior::Single)
            } else if multi {
                Some(InstanceBehavior::Multi)
            } else {
                None
            },
            preferred_ports: self.preferred,
            description: self.description,
            max_instances: self.max_instances,
            zone: None,
            removed: false,
        }
    }
}

#[derive(Debug, Serialize)]
struct Changed<'a> {
    service_type: &'a str,
    ranges: &'a [PortRange],
    instance_behavior: InstanceBehavior,
    removed: bool,
}

pub fn run(ctx: &Ctx, cmd: TypeCommand) -> anyhow::Result<()> {
    let (name, shown, removed) = ctx.change(|change| {
        let reg = &mut *change.registry;
        let (name, events, removed) = match cmd {
            TypeCommand::Add { name, fields } => {
                if fields.ranges.is_empty() {
                    anyhow::bail!("a new type needs a range; pass --range A-B");
                }
                let out = manage::add_type(reg, &name, fields.change(false))?;
                (name, out.events, None)
            }
            TypeCommand::Set {
                name,
                fields,
                multi,
            } => {
                let out = manage::set_type(reg, &name, fields.change(multi))?;
                (name, out.events, None)
            }
            TypeCommand::Rm { name, force } => {
                let before = reg.types.get(&name).cloned();
                let out = manage::remove_type(reg, &name, force)?;
                (name, out.events, before)
            }
        };
        change.record(events);
        Ok(match removed {
            Some(t) => (name, t, true),
            None => {
                let shown = change.registry.types[&name].clone();
                (name, shown, false)
            }
        })
    })?;
    let view = Changed {
        service_type: &name,
        ranges: &shown.ranges,
        instance_behavior: shown.instance_behavior,
        removed,
    };
    ctx.print(&view, |out| {
        let verb = if view.removed { "removed" } else { "saved" };
        writeln!(
            out,
            "{verb} {}: {} ({})",
            view.service_type,
            shown.ranges_text(),
            view.instance_behavior.as_str()
        )
    })
}
