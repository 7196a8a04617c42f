//! Setting right, under the lock, what a hand edit or a dead process left behind.

use super::{Event, Machine, Outcome, leases, slots};
use crate::model::validate;
use crate::model::{Lease, Registry};

/// Sets right what a hand edit of `registry.toml` or a dead process left behind, before a
/// command changes anything: leases whose process is gone (`live` says) are dropped, and an
/// instance whose port its type can no longer give it (outside the edited ranges, or another
/// instance's) moves to a free port of its type, or is released when there is none. Every
/// writing command calls this first, under the lock.
pub fn tidy(
    reg: &mut Registry,
    machine: &Machine<'_>,
    live: &dyn Fn(&Lease) -> bool,
) -> Outcome<()> {
    let mut out = Outcome::default();
    let overlaps = validate::overlaps(reg);
    for o in &overlaps {
        out.warnings.push(format!(
            "{} after a hand edit of registry.toml; change one with `cargo styxy type set {} --range A-B`",
            o.describe(),
            o.b
        ));
    }
    let mut moved = std::collections::BTreeSet::new();
    let misplaced: Vec<(String, String, u16)> = validate::misplaced(reg, &overlaps)
        .into_iter()
        .map(|(n, id, port)| (n.to_owned(), id.to_owned(), port))
        .collect();
    for (name, id, from) in misplaced {
        let elsewhere = reg.held_elsewhere(&name);
        let Some(t) = reg.types.get_mut(&name) else {
            continue;
        };
        let Some(mut instance) = t.instances.remove(&id) else {
            continue;
        };
        let why = if !t.contains(from) {
            "it is outside the type's ranges"
        } else if elsewhere.contains(&from) {
            "an instance of another type, whose ranges overlap these, holds it"
        } else {
            "another instance holds it"
        };
        match slots::pick(t, None, &elsewhere, machine.probe) {
            Some(port) => {
                out.warnings.push(format!(
                    "instance {id:?} of {name:?} moved from port {from} to {port}: {why} ({})",
                    t.ranges_text()
                ));
                out.events.push(Event::InstanceMoved {
                    service_type: name.clone(),
                    instance: id.clone(),
                    from,
                    port,
                    workspace: instance.workspace(&id).map(str::to_owned),
                });
                instance.port = port;
                t.instances.insert(id.clone(), instance);
            }
            None => {
                out.warnings.push(format!(
                    "instance {id:?} of {name:?} released: {why}, and {} has no free port",
                    t.ranges_text()
                ));
                out.events.push(Event::InstanceReleased {
                    service_type: name.clone(),
                    instance: id.clone(),
                    port: from,
                    workspace: instance.workspace(&id).map(str::to_owned),
                });
            }
        }
        moved.insert((name, id));
    }
    // Leases end whose process is gone, whose port an edit left outside the type, or whose
    // instance moved (its process runs on the old port).
    out.events.extend(leases::retain(reg, &|name, t, l| {
        live(l) && t.contains(l.port) && !moved.contains(&(name.to_owned(), l.instance.clone()))
    }));
    out
}
