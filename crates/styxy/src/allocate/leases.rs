//! Leases: which running process holds which instance port, and the one-live-holder rule of
//! `single` service types. Whether a lease's process is alive comes in as a function.

use crate::allocate::{Event, Outcome};
use crate::error::{AllocError, AllocResult as Result};

use crate::model::{InstanceBehavior, Lease, Registry, ServiceType};

/// Drops the leases whose process is gone, from every type.
pub fn drop_dead(reg: &mut Registry, live: &dyn Fn(&Lease) -> bool) -> Vec<Event> {
    retain(reg, &|_, _, l| live(l))
}

/// Keeps the leases that `keep` (given the type's name and type) accepts, in every type, and
/// ends the others, each with a `LEASE_ENDED` event.
pub fn retain(reg: &mut Registry, keep: &dyn Fn(&str, &ServiceType, &Lease) -> bool) -> Vec<Event> {
    let mut events = Vec::new();
    // Looked at first, so that only the types that lose a lease are copied (see `Types`).
    let losing: Vec<String> = reg
        .types
        .iter()
        .filter(|(name, t)| t.leases.iter().any(|l| !keep(name, t, l)))
        .map(|(name, _)| name.clone())
        .collect();
    for name in losing {
        let t = reg.types.get_mut(&name).expect("listed above");
        let mut leases = std::mem::take(&mut t.leases);
        leases.retain(|l| {
            let keep = keep(&name, t, l);
            if !keep {
                events.push(Event::LeaseEnded {
                    service_type: name.clone(),
                    instance: l.instance.clone(),
                    port: l.port,
                    lease_pid: l.pid,
                });
            }
            keep
        });
        t.leases = leases;
    }
    events
}

/// Records that process `lease.pid` runs with `lease.port` of `service_type`. A second live
/// holder (another process) of the same instance is refused, and of a `single` type any
/// second holder, naming the holder.
pub fn take(
    reg: &mut Registry,
    service_type: &str,
    lease: Lease,
    live: &dyn Fn(&Lease) -> bool,
) -> Result<Outcome<()>> {
    let mut events = drop_dead(reg, live);
    let Some(t) = reg.types.get_mut(service_type) else {
        return Err(AllocError::UnknownType {
            name: service_type.to_owned(),
            hint: "assign the workspace first with `cargo styxy assign`".into(),
        });
    };
    // One port, one server: the same instance never runs twice.
    if let Some(holder) = t
        .leases
        .iter()
        .find(|l| l.pid != lease.pid && l.instance == lease.instance)
    {
        return Err(AllocError::RunningHere {
            service_type: service_type.to_owned(),
            pid: holder.pid,
            port: holder.port,
            instance: holder.instance.clone(),
        });
    }
    if t.instance_behavior == InstanceBehavior::Single
        && let Some(holder) = t.leases.iter().find(|l| l.pid != lease.pid)
    {
        return Err(AllocError::SingleInUse {
            service_type: service_type.to_owned(),
            pid: holder.pid,
            port: holder.port,
            instance: holder.instance.clone(),
        });
    }
    events.push(Event::LeaseTaken {
        service_type: service_type.to_owned(),
        instance: lease.instance.clone(),
        port: lease.port,
        lease_pid: lease.pid,
    });
    t.leases.retain(|l| l.pid != lease.pid);
    t.leases.push(lease);
    Ok(Outcome {
        value: (),
        events,
        warnings: Vec::new(),
    })
}

/// Ends the leases of process `pid` in `service_type`.
pub fn end(reg: &mut Registry, service_type: &str, pid: u32) -> Vec<Event> {
    let Some(t) = reg.types.get_mut(service_type) else {
        return Vec::new();
    };
    let mut events = Vec::new();
    t.leases.retain(|l| {
        let ours = l.pid == pid;
        if ours {
            events.push(Event::LeaseEnded {
                service_type: service_type.to_owned(),
                instance: l.instance.clone(),
                port: l.port,
                lease_pid: l.pid,
            });
        }
        !ours
    });
    events
}

/// Hands the leases of process `from` in `service_type` to process `to`, started at
/// `start_time`: `run` gives its lease to the bin where the OS cannot make the bin die with
/// `run`, so that the registry knows the server for as long as it lives. Returns how many
/// moved.
pub fn hand_over(
    reg: &mut Registry,
    service_type: &str,
    from: u32,
    to: u32,
    start_time: u64,
) -> usize {
    let Some(t) = reg.types.get_mut(service_type) else {
        return 0;
    };
    let mut moved = 0;
    for l in t.leases.iter_mut().filter(|l| l.pid == from) {
        l.pid = to;
        l.start_time = start_time;
        moved += 1;
    }
    moved
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Origin, PortRange, ServiceType};

    fn lease(pid: u32) -> Lease {
        Lease {
            port: 100,
            pid,
            start_time: 7,
            instance: format!("/ws{pid}"),
            since: None,
        }
    }

    fn reg(behavior: InstanceBehavior) -> Registry {
        let mut t = ServiceType::new(vec![PortRange::new(100, 109)], Origin::User);
        t.instance_behavior = behavior;
        let mut reg = Registry::default();
        reg.types.insert("s".into(), t);
        reg
    }

    #[test]
    fn single_refuses_a_second_live_holder_but_not_a_dead_one() {
        let mut r = reg(InstanceBehavior::Single);
        take(&mut r, "s", lease(1), &|_| true).unwrap();
        let err = take(&mut r, "s", lease(2), &|_| true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pid 1") && err.contains("port 100"), "{err}");
        let out = take(&mut r, "s", lease(2), &|l| l.pid != 1).unwrap();
        assert!(matches!(
            out.events[0],
            Event::LeaseEnded { lease_pid: 1, .. }
        ));
        assert_eq!(r.types["s"].leases.len(), 1);
        assert_eq!(end(&mut r, "s", 2).len(), 1);
        assert!(r.types["s"].leases.is_empty());
    }

    #[test]
    fn multi_takes_one_per_instance() {
        let mut r = reg(InstanceBehavior::Multi);
        take(&mut r, "s", lease(1), &|_| true).unwrap();
        take(&mut r, "s", lease(2), &|_| true).unwrap();
        assert_eq!(r.types["s"].leases.len(), 2);
        // A second process for the instance of pid 1.
        let again = Lease { pid: 3, ..lease(1) };
        let err = take(&mut r, "s", again.clone(), &|_| true).unwrap_err();
        assert!(
            matches!(err, AllocError::RunningHere { pid: 1, .. }),
            "{err}"
        );
        // The same process again replaces its own lease; a dead holder is dropped.
        take(&mut r, "s", lease(1), &|_| true).unwrap();
        take(&mut r, "s", again, &|l| l.pid != 1).unwrap();
        assert_eq!(r.types["s"].leases.len(), 2);
    }

    #[test]
    fn a_handed_over_lease_lives_and_ends_with_its_new_holder() {
        let mut r = reg(InstanceBehavior::Single);
        take(&mut r, "s", lease(1), &|_| true).unwrap();
        assert_eq!(hand_over(&mut r, "s", 1, 9, 70), 1);
        assert_eq!(hand_over(&mut r, "nope", 1, 9, 70), 0);
        let held = &r.types["s"].leases[0];
        assert_eq!((held.pid, held.start_time, held.port), (9, 70, 100));
        // Its old holder gone, the lease still refuses a second one while 9 lives.
        let err = take(&mut r, "s", lease(2), &|l| l.pid == 9).unwrap_err();
        assert!(err.to_string().contains("pid 9"), "{err}");
        assert!(end(&mut r, "s", 1).is_empty());
        assert_eq!(end(&mut r, "s", 9).len(), 1);
    }
}
