//! Gives every service of a workspace its port: one lock, one allocation per service, one
//! write of the registry and of the workspace's port file.

use serde::Serialize;

use crate::allocate::{self, Grant, Machine, Request};
use crate::emit::portfile::PortFile;
use crate::error::{AllocError, Error, Result};
use crate::registry::{self, Changed, Store};
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
) -> Result<Changed<Vec<Assigned>>> {
    registry::change(store, |change| {
        let mut out = Vec::new();
        for s in services {
            if s.joins_type && !change.registry.types.contains_key(&s.service_type) {
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
            // All or nothing: a refusal drops the services assigned before this one.
            let outcome =
                allocate::allocate(change.registry, machine, &request).inspect_err(|e| {
                    change.record_failure(allocate::failure_event(&request, e));
                })?;
            change.record(outcome.events);
            for w in outcome.warnings {
                change.warn(format!("{label}: {w}"));
            }
            out.push(Assigned {
                service: s.clone(),
                grant: outcome.value,
            });
        }
        change.touch_workspace(root);
        Ok(out)
    })
}

/// The services' ports from the port file, if it has every one of them.
pub fn from_port_file(pf: &PortFile, services: &[Service]) -> Option<Vec<u16>> {
    services
        .iter()
        .map(|s| pf.port(&s.service_type, &s.instance))
        .collect()
}
