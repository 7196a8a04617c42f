//! `audit`: the trail of registry changes, filtered.

use std::time::SystemTime;

use clap::Args;

use crate::cli::{CliError, Ctx};
use styxy::audit::{self, Record};

/// Show the audit trail: every change to the registry, oldest first
///
/// Filters combine. With `--format json`: [{"ts", "event", "service_type", "instance",
/// "port", "ranges", "workspace", "placement", "chunk", "key", "value", "pattern",
/// "error", "pid", "user", "lock_wait_ms", "lock_hold_ms"}] (fields an event lacks are
/// left out).
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only from this time: RFC 3339 (`2026-11-27T10:00:00Z`, `…T11:00:00+01:00`) or an age (`90m`, `1h`, `2d`)
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub since: Option<SystemTime>,
    /// Only until this time (same forms as --since)
    #[arg(long, value_name = "T", value_parser = time_arg)]
    pub until: Option<SystemTime>,
    /// Only this event, e.g. TYPE_ALLOCATED (case does not matter)
    #[arg(long, value_name = "EVENT", value_parser = event_arg(), ignore_case = true)]
    pub event: Option<String>,
    /// Only this service type (a glob: `shop-*`)
    #[arg(long, value_name = "TYPE")]
    pub service: Option<String>,
    /// Only this instance (a glob, as --service: `/home/*/shop*`)
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Only the last N matching records
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
}

fn time_arg(s: &str) -> Result<SystemTime, String> {
    audit::parse_time(s)
}

/// The event names, as possible values: a name that is none of them is a usage error that
/// lists them, and shells complete them.
fn event_arg() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(styxy::model::Event::NAMES)
}

pub fn run(ctx: &Ctx, args: AuditArgs) -> Result<(), CliError> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since > until
    {
        return Err(CliError::usage(anyhow::anyhow!(
            "--since is after --until, so nothing can match; swap them"
        )));
    }
    let service = args
        .service
        .as_deref()
        .map(styxy::model::validate::pattern)
        .transpose()?;
    let filter = audit::Filter {
        since: args.since,
        until: args.until,
        event: args.event.clone(),
        service,
        instance: args
            .instance
            .as_deref()
            .map(styxy::model::validate::pattern)
            .transpose()?,
        text: None,
    };
    let (records, warnings) = audit::read(ctx.store.dir());
    for w in &warnings {
        ctx.warn(w);
    }
    let mut picked: Vec<&Record> = records.iter().filter(|r| filter.matches(r)).collect();
    if let Some(n) = args.limit {
        picked.drain(..picked.len().saturating_sub(n));
    }
    ctx.print(&picked, |out| {
        for r in &picked {
            let mut what = Vec::new();
            if let Some(s) = &r.service_type {
                what.push(s.clone());
            }
            if let Some(i) = &r.instance {
                what.push(format!("instance {i}"));
            }
            if let Some(p) = r.port {
                what.push(format!("port {p}"));
            }
            if let Some(rs) = &r.ranges {
                what.push(format!("ranges {}", styxy::model::join_ranges(rs)));
            }
            if let (Some(k), Some(v)) = (&r.key, &r.value) {
                what.push(format!("{k} = {v}"));
            }
            if let Some(p) = &r.pattern {
                what.push(format!("rule {p}"));
            }
            if let Some(e) = &r.error {
                what.push(e.clone());
            }
            writeln!(
                out,
                "{}  {:<18} {}  (pid {}, {})",
                r.ts,
                r.event,
                what.join(", "),
                r.pid,
                r.user
            )?;
        }
        Ok(())
    })?;
    Ok(())
}
