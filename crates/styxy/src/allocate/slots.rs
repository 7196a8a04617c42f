//! Which port of a type a new instance gets.

use std::collections::BTreeSet;

use crate::allocate::Probe;
use crate::model::{InstanceBehavior, ServiceType};

/// The port a new instance of `t` gets: a `single` type's shared port if it has one; else
/// `wish` (when inside the ranges), then the preferred ports, then the lowest port of the
/// ranges, skipping ports other instances hold, ports in `elsewhere` (held by another type
/// whose ranges overlap these, [`Registry::held_elsewhere`](crate::model::Registry::held_elsewhere)) and ports something listens on now.
/// `None` when every port is taken.
pub fn pick(
    t: &ServiceType,
    wish: Option<u16>,
    elsewhere: &BTreeSet<u16>,
    probe: &dyn Probe,
) -> Option<u16> {
    if t.instance_behavior == InstanceBehavior::Single
        && let Some(shared) = t.instances.values().next()
        && !elsewhere.contains(&shared.port)
    {
        return Some(shared.port);
    }
    let held: BTreeSet<u16> = t.instances.values().map(|i| i.port).collect();
    let free = |p: &u16| {
        t.contains(*p) && !held.contains(p) && !elsewhere.contains(p) && !probe.is_listening(*p)
    };
    wish.into_iter()
        .chain(t.preferred_ports.iter().copied())
        .find(free)
        .or_else(|| t.ranges.iter().flat_map(|r| r.ports()).find(free))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Instance, Origin, PortRange};

    fn none() -> BTreeSet<u16> {
        BTreeSet::new()
    }

    fn with(ports: &[u16]) -> ServiceType {
        let mut t = ServiceType::new(vec![PortRange::new(100, 104)], Origin::User);
        for (i, p) in ports.iter().enumerate() {
            t.instances
                .insert(format!("i{i}"), Instance::new("", *p, None, None));
        }
        t
    }

    #[test]
    fn lowest_free_then_full() {
        let idle = |_: u16| false;
        assert_eq!(pick(&with(&[100, 102]), None, &none(), &idle), Some(101));
        assert_eq!(
            pick(&with(&[100, 101, 102, 103, 104]), None, &none(), &idle),
            None
        );
    }

    #[test]
    fn preferred_and_wish_first_listeners_skipped() {
        let mut t = with(&[]);
        t.preferred_ports = vec![103, 9999];
        let idle = |_: u16| false;
        assert_eq!(pick(&t, None, &none(), &idle), Some(103));
        assert_eq!(pick(&t, Some(104), &none(), &idle), Some(104));
        // A wish outside the ranges is not honoured.
        assert_eq!(pick(&t, Some(50), &none(), &idle), Some(103));
        let busy = |p: u16| p == 103 || p == 100;
        assert_eq!(pick(&t, None, &none(), &busy), Some(101));
    }

    #[test]
    fn single_shares_one_port() {
        let mut t = with(&[102]);
        t.instance_behavior = InstanceBehavior::Single;
        assert_eq!(pick(&t, None, &none(), &|_| true), Some(102));
        // Unless another type holds it (overlapping ranges): then it moves as a whole.
        let elsewhere = BTreeSet::from([102]);
        assert_eq!(pick(&t, None, &elsewhere, &|_| false), Some(100));
    }

    #[test]
    fn ports_of_an_overlapping_type_are_skipped() {
        let elsewhere = BTreeSet::from([100, 101]);
        assert_eq!(pick(&with(&[]), None, &elsewhere, &|_| false), Some(102));
    }
}
