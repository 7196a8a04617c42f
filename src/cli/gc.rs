//! `gc`: drop what is stale.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::Args;
use serde::Serialize;

use crate::allocate::gc::{self, Dropped, Facts};
use crate::cli::Ctx;

/// Drop instances whose checkout is gone or no longer has their service, leases of dead
/// processes, and auto-allocated types left with no instances
///
/// With `--format json`: {"dry_run", "dropped": [{"service_type", "instance", "port",
/// "reason"}]}.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Say what would be dropped, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    dropped: Vec<Dropped>,
}

/// `(service type, instance)` pairs.
type Held = BTreeSet<(String, String)>;

/// The `(type, instance)` pairs a workspace has now, read from its manifests (no cargo);
/// `None` if that cannot be told. A root with no Cargo.toml has none.
fn services_at(root: &str) -> Option<Held> {
    let dir = Path::new(root);
    if !dir.join("Cargo.toml").is_file() {
        return Some(BTreeSet::new());
    }
    let (ws, _) = crate::workspace::manifests::discover(dir).ok()?;
    let services = crate::workspace::services(&ws).ok()?;
    Some(
        services
            .into_iter()
            .map(|s| (s.service_type, s.instance))
            .collect(),
    )
}

pub fn run(ctx: &Ctx, args: GcArgs) -> anyhow::Result<()> {
    let mut guard = crate::session::open(&ctx.store)?;
    let known: RefCell<BTreeMap<String, Option<Held>>> = RefCell::default();
    let has_service = |root: &str, service_type: &str, instance: &str| {
        let mut known = known.borrow_mut();
        let services = known
            .entry(root.to_owned())
            .or_insert_with(|| services_at(root));
        services
            .as_ref()
            .map(|s| s.contains(&(service_type.to_owned(), instance.to_owned())))
    };
    let facts = Facts {
        exists: &|ws| Path::new(ws).is_dir(),
        has_service: &has_service,
        lease_is_live: &crate::probe::lease_is_live,
    };
    let out = gc::gc(&mut guard.registry, &facts);
    if args.dry_run {
        drop(guard);
    } else {
        // What gc reports comes first; then what a hand edit left is set right as by any write.
        let tidied = crate::allocate::tidy(
            &mut guard.registry,
            &crate::this_machine(),
            &crate::probe::lease_is_live,
        );
        for w in &tidied.warnings {
            ctx.warn(w);
        }
        let events: Vec<_> = out.events.iter().cloned().chain(tidied.events).collect();
        guard.commit(&events)?;
    }
    let report = Report {
        dry_run: args.dry_run,
        dropped: out.value,
    };
    ctx.print(&report, |w| {
        let verb = if report.dry_run {
            "would drop"
        } else {
            "dropped"
        };
        if report.dropped.is_empty() {
            writeln!(w, "nothing to drop")?;
        }
        for d in &report.dropped {
            let what = match (&d.instance, d.port) {
                (Some(i), Some(p)) => format!("{} port {p} ({i})", d.service_type),
                _ => format!("type {}", d.service_type),
            };
            writeln!(w, "{verb} {what}: {}", d.reason)?;
        }
        Ok(())
    })
}
