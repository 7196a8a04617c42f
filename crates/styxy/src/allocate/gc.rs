//! Garbage collection (spec §4): instances whose checkout is gone or no longer has their
//! service, leases of dead processes, and auto-allocated types left with no instances.

use serde::Serialize;

use crate::allocate::{Event, Outcome, leases};
use crate::model::{Lease, Origin, Registry};

/// What `gc` looks at outside the registry.
pub struct Facts<'a> {
    /// Whether a checkout directory still exists.
    pub exists: &'a dyn Fn(&str) -> bool,
    /// Whether the workspace at a root still has the service `(type, instance)`; `None`
    /// when that cannot be told (a manifest that does not parse right now), which keeps it.
    pub has_service: &'a dyn Fn(&str, &str, &str) -> Option<bool>,
    pub lease_is_live: &'a dyn Fn(&Lease) -> bool,
}

impl std::fmt::Debug for Facts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Facts").finish_non_exhaustive()
    }
}

/// One thing `gc` dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dropped {
    pub service_type: String,
    pub instance: Option<String>,
    pub port: Option<u16>,
    pub reason: String,
}

/// Drops what is stale; returns what it dropped.
pub fn gc(reg: &mut Registry, facts: &Facts<'_>) -> Outcome<Vec<Dropped>> {
    let mut out: Outcome<Vec<Dropped>> = Outcome::default();
    let mut stale_by_type = Vec::new();
    for (name, t) in &reg.types {
        let stale: Vec<(String, u16, String)> = t
            .instances
            .iter()
            .filter_map(|(id, i)| {
                let ws = i.workspace(id)?;
                if !(facts.exists)(ws) {
                    return Some((id.clone(), i.port, format!("its checkout {ws} is gone")));
                }
                let label = i.service.as_deref()?;
                ((facts.has_service)(ws, name, id) == Some(false)).then(|| {
                    (
                        id.clone(),
                        i.port,
                        format!("{ws} no longer has the service {label}"),
                    )
                })
            })
            .collect();
        if !stale.is_empty() {
            stale_by_type.push((name.clone(), stale));
        }
    }
    // Only the types that lose an instance are changed, and so copied (see `Types`).
    for (name, stale) in stale_by_type {
        let t = reg.types.get_mut(&name).expect("listed above");
        for (id, port, reason) in stale {
            t.instances.remove(&id);
            out.events.push(Event::Gc {
                service_type: name.clone(),
                instance: Some(id.clone()),
                port: Some(port),
                reason: reason.clone(),
            });
            out.value.push(Dropped {
                service_type: name.clone(),
                instance: Some(id),
                port: Some(port),
                reason,
            });
        }
    }
    for event in leases::drop_dead(reg, facts.lease_is_live) {
        if let Event::LeaseEnded {
            service_type,
            instance,
            port,
            lease_pid,
        } = &event
        {
            out.value.push(Dropped {
                service_type: service_type.clone(),
                instance: Some(instance.clone()),
                port: Some(*port),
                reason: format!("the lease of pid {lease_pid} outlived its process"),
            });
        }
        out.events.push(event);
    }
    let empty: Vec<String> = reg
        .types
        .iter()
        .filter(|(_, t)| t.origin == Origin::Auto && t.instances.is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    for name in empty {
        if let Some(t) = reg.types.remove(&name) {
            out.value.push(Dropped {
                service_type: name.clone(),
                instance: None,
                port: None,
                reason: format!(
                    "an auto-allocated type with no instances; {} is free again",
                    t.ranges_text()
                ),
            });
            out.events.push(Event::TypeRemoved {
                service_type: name,
                ranges: t.ranges,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Instance, PortRange, ServiceType};

    #[test]
    fn drops_gone_checkouts_lost_services_dead_leases_and_empty_auto_types() {
        let mut reg = Registry::default();
        let mut t = ServiceType::new(vec![PortRange::new(100, 109)], Origin::Auto);
        let inst =
            |port, ws: &str, service: Option<&str>| Instance::new(ws, port, Some(ws), service);
        t.instances
            .insert("/gone".into(), inst(100, "/gone", Some("p")));
        t.instances
            .insert("/kept".into(), inst(101, "/kept", Some("p")));
        t.instances
            .insert("/changed".into(), inst(102, "/changed", Some("p")));
        t.instances
            .insert("/plain".into(), inst(103, "/plain", None));
        t.leases.push(Lease {
            port: 101,
            pid: 9,
            start_time: 1,
            instance: "/kept".into(),
            since: None,
        });
        reg.types.insert("t".into(), t);
        let mut lonely = ServiceType::new(vec![PortRange::new(200, 209)], Origin::Auto);
        lonely
            .instances
            .insert("/gone".into(), inst(200, "/gone", None));
        reg.types.insert("lonely".into(), lonely);
        let facts = Facts {
            exists: &|ws| ws != "/gone",
            has_service: &|ws, _, _| Some(ws != "/changed"),
            lease_is_live: &|_| false,
        };
        let out = gc(&mut reg, &facts);
        let t = &reg.types["t"];
        let left: Vec<&str> = t.instances.keys().map(String::as_str).collect();
        assert_eq!(left, ["/kept", "/plain"], "{:?}", out.value);
        assert!(t.leases.is_empty());
        assert!(!reg.types.contains_key("lonely"));
        assert_eq!(out.value.len(), 5, "{:?}", out.value);
        // Nothing left to drop: a second run drops nothing.
        assert!(gc(&mut reg, &facts).value.is_empty());
    }
}
