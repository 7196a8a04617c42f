//! Gives every service of a workspace its port: one lock, one allocation per service, one
//! write of the registry and of the workspace's port file.

use serde::Serialize;

use crate::allocate::{self, Grant, Machine, Request};
use crate::error::{AllocError, Error, Result};
use crate::portfile::PortFile;
use crate::registry::Store;
use crate::workspace::Service;

/// A service and the port it got.
#[derive(Debug, Clone, Serialize)]
pub struct Assigned {
    pub service: Service,
    pub grant: Grant,
}

/// Allocates every service under one lock, all or nothing. Nothing is written when nothing
/// changed (but a missing or stale port file is rewritten). Returns the grants and the
/// warnings.
pub fn assign(
    store: &Store,
    machine: &Machine<'_>,
    root: &str,
    services: &[Service],
) -> Result<(Vec<Assigned>, Vec<String>)> {
    let (mut guard, tidied) = crate::session::lock(store)?;
    let mut events = tidied.events;
    let mut warnings = tidied.warnings;
    let mut out = Vec::new();
    for s in services {
        if s.joins_type && !guard.registry.types.contains_key(&s.service_type) {
            return Err(Error::from(AllocError::UnknownType {
                name: s.service_type.clone(),
                hint: format!(
                    "{label} joins it with `type = \"{t}\"`; add it with `cargo styxy type add {t} --range A-B`, or write `service = \"{t}\"` to have it created",
                    label = s.label(),
                    t = s.service_type
                ),
            }));
        }
        let label = s.label();
        let requested_by = format!("{root} {label}");
        let request = Request {
            service_type: &s.service_type,
            instance: &s.instance,
            workspace: Some(root),
            port: s.pinned_port,
            strict: s.strict,
            requested_by: Some(&requested_by),
            instance_behavior: s.instance_behavior,
            service: Some(&label),
            zone: s.zone.as_deref(),
        };
        let outcome = match allocate::allocate(&mut guard.registry, machine, &request) {
            Ok(outcome) => outcome,
            Err(e) => {
                // All or nothing: the services assigned before this one are not kept.
                guard.discard_changes();
                let tidy =
                    allocate::tidy(&mut guard.registry, machine, &crate::probe::lease_is_live);
                let failed = tidy
                    .events
                    .into_iter()
                    .chain(allocate::failure_event(&request, &e));
                guard.commit(&failed.collect::<Vec<_>>())?;
                return Err(e.into());
            }
        };
        events.extend(outcome.events);
        warnings.extend(
            outcome
                .warnings
                .into_iter()
                .map(|w| format!("{}: {w}", s.label())),
        );
        out.push(Assigned {
            service: s.clone(),
            grant: outcome.value,
        });
    }
    guard.touch_workspace(root);
    guard.commit(&events)?;
    Ok((out, warnings))
}

/// The services' ports from the port file, if it has every one of them.
pub fn from_port_file(pf: &PortFile, services: &[Service]) -> Option<Vec<u16>> {
    services
        .iter()
        .map(|s| pf.port(&s.service_type, &s.instance))
        .collect()
}
