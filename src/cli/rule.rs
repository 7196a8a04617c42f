//! `rule add|rm|list`: auto-allocation rules by glob on the type name.

use clap::Subcommand;
use serde::Serialize;

use crate::cli::{Ctx, port_arg};
use styxy::allocate::manage;
use styxy::model::{InstanceBehavior, Placement, Rule};

/// Auto-allocation rules: what a new type whose name matches a glob gets
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum RuleCommand {
    /// Add a rule (or replace the rule of the same pattern)
    Add {
        /// Glob on the type name, e.g. `monitoring-*`; the longest matching pattern wins
        pattern: String,
        /// Ports per new range
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        chunk_size: Option<u16>,
        /// Where new ranges go
        #[arg(long, value_name = "P", value_parser = placement_arg())]
        placement: Option<Placement>,
        /// Place new ranges at or above this port when there is room
        #[arg(long, value_name = "PORT", value_parser = port_arg)]
        preferred_start: Option<u16>,
        /// Whether a new type's instances share one port (single) or get one each (multi)
        #[arg(long, value_name = "B", value_parser = behavior_arg())]
        instance: Option<InstanceBehavior>,
        /// Place new ranges inside this zone (from `[strategies.NAME.zones]`)
        #[arg(long, value_name = "ZONE")]
        zone: Option<String>,
    },
    /// Remove a rule
    Rm {
        /// The rule's pattern, as `rule list` shows it
        pattern: String,
    },
    /// List the rules. With `--format json`: {"PATTERN": {"chunk_size", "placement",
    /// "preferred_range_start", "instance_behavior", "zone"}}
    List,
}

/// `--placement`: one of [`Placement::NAMES`], which help and completions list.
fn placement_arg() -> impl clap::builder::TypedValueParser<Value = Placement> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Placement::NAMES)
        .map(|s| Placement::parse(&s).unwrap_or_default())
}

/// `--instance`: `single` or `multi`.
fn behavior_arg() -> impl clap::builder::TypedValueParser<Value = InstanceBehavior> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["single", "multi"]).map(|s| match s.as_str() {
        "single" => InstanceBehavior::Single,
        _ => InstanceBehavior::Multi,
    })
}

#[derive(Debug, Serialize)]
struct Changed<'a> {
    pattern: &'a str,
    removed: bool,
}

pub fn run(ctx: &Ctx, cmd: RuleCommand) -> anyhow::Result<()> {
    let (pattern, removed) = match cmd {
        RuleCommand::List => {
            let reg = ctx.store.read()?;
            return ctx.print(&reg.rules, |out| {
                if reg.rules.is_empty() {
                    writeln!(
                        out,
                        "no rules; add one with `cargo styxy rule add PATTERN …`"
                    )?;
                }
                for (p, r) in &reg.rules {
                    writeln!(out, "{p}: {}", describe(r))?;
                }
                Ok(())
            });
        }
        RuleCommand::Add {
            pattern,
            chunk_size,
            placement,
            preferred_start,
            instance,
            zone,
        } => {
            let rule = Rule {
                chunk_size,
                placement,
                preferred_range_start: preferred_start,
                instance_behavior: instance,
                zone,
            };
            ctx.change(|change| {
                let out = manage::set_rule(change.registry, &pattern, rule)?;
                change.apply(out);
                Ok(())
            })?;
            (pattern, false)
        }
        RuleCommand::Rm { pattern } => {
            ctx.change(|change| {
                let out = manage::remove_rule(change.registry, &pattern)?;
                change.apply(out);
                Ok(())
            })?;
            (pattern, true)
        }
    };
    let view = Changed {
        pattern: &pattern,
        removed,
    };
    ctx.print(&view, |out| {
        let verb = if removed { "removed" } else { "saved" };
        writeln!(out, "{verb} rule {pattern}")
    })
}

fn describe(r: &Rule) -> String {
    let mut parts = Vec::new();
    if let Some(c) = r.chunk_size {
        parts.push(format!("chunk_size {c}"));
    }
    if let Some(p) = r.placement {
        parts.push(format!("placement {}", p.as_str()));
    }
    if let Some(s) = r.preferred_range_start {
        parts.push(format!("preferred_range_start {s}"));
    }
    if let Some(b) = r.instance_behavior {
        parts.push(format!("instance {}", b.as_str()));
    }
    if let Some(z) = &r.zone {
        parts.push(format!("zone {z}"));
    }
    if parts.is_empty() {
        "(defaults)".into()
    } else {
        parts.join(", ")
    }
}
