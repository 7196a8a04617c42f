//! Gives every service of a workspace its port: one lock, one allocation per service, one
//! write of the registry and of the workspace's port file.

use serde::Serialize;

use crate::allocate::{self, Grant, Machine, Request};
use crate::emit::portfile::{self, PortFile};
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
/// warnings, among which one for each service that gets another port than this checkout's
/// port file says it had, with the old port, the new one and why.
pub fn assign(
    store: &Store,
    machine: &Machine<'_>,
    root: &str,
    services: &[Service],
) -> Result<Changed<Vec<Assigned>>> {
    // What this checkout had, as its port file says (current or not).
    let before =
        PortFile::read(&portfile::path(store.dir(), root)).filter(|pf| pf.workspace == root);
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
            let had = before
                .as_ref()
                .and_then(|pf| pf.had(&s.service_type, &s.instance));
            if let Some(old) = had.filter(|old| *old != outcome.value.port) {
                let why = moved_because(change.registry, machine, &outcome.value, old);
                change.warn(format!(
                    "{label}: {} moved from port {old} to {}: {why}",
                    s.env, outcome.value.port
                ));
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

/// Why a service's port is not the `old` one its checkout had: its instance had been
/// released (a new one got `grant`), and who holds `old` now.
fn moved_because(
    reg: &crate::model::Registry,
    machine: &Machine<'_>,
    grant: &Grant,
    old: u16,
) -> String {
    let first = if grant.existing {
        "its instance holds another port in the registry"
    } else {
        "its instance had been released"
    };
    let holder = reg.types.iter().find_map(|(name, t)| {
        t.instances
            .iter()
            .find(|(id, i)| {
                i.port == old && !(name == &grant.service_type && **id == grant.instance)
            })
            .map(|(id, _)| format!("port {old} is held by {id} of {name:?}"))
    });
    let then = holder.or_else(|| {
        machine.probe.is_listening(old).then(|| {
            format!("something listens on port {old} (`cargo styxy check {old}` says what)")
        })
    });
    let then = then.or_else(|| {
        (!grant.ranges.iter().any(|r| r.contains(old))).then(|| {
            format!(
                "port {old} is outside the ranges of {:?} now",
                grant.service_type
            )
        })
    });
    match then {
        Some(then) => format!("{first}, and {then}"),
        None => format!("{first}, and port {old} was not free for it"),
    }
}

/// The services' ports from the port file, if it has every one of them.
pub fn from_port_file(pf: &PortFile, services: &[Service]) -> Option<Vec<u16>> {
    services
        .iter()
        .map(|s| pf.port(&s.service_type, &s.instance))
        .collect()
}
