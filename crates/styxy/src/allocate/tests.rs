//! The allocator's cases (Styxy's range-analyzer cases, with its bugs fixed) and properties.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::manage;
use super::*;
use crate::model::Settings;
use crate::model::TypeFields;
use crate::registry::store::template;

const EPHEMERAL: PortRange = PortRange::new(32768, 60999);

fn idle(_: u16) -> bool {
    false
}

fn machine(probe: &dyn Probe) -> Machine<'_> {
    Machine {
        ephemeral: || Some(EPHEMERAL),
        probe,
        checkouts_gone: |roots| vec![false; roots.len()],
    }
}

fn empty() -> Registry {
    Registry::default()
}

fn alloc(reg: &mut Registry, name: &str, instance: &str) -> Grant {
    alloc_on(reg, name, instance, &idle)
}

fn alloc_on(reg: &mut Registry, name: &str, instance: &str, probe: &dyn Probe) -> Grant {
    allocate(
        reg,
        &machine(probe),
        &Request {
            service_type: name,
            instance,
            ..Request::default()
        },
    )
    .unwrap()
    .value
}

/// An allocation on an idle machine, its error kept.
fn try_alloc(reg: &mut Registry, name: &str, instance: &str) -> Result<Outcome<Grant>> {
    allocate(
        reg,
        &machine(&idle),
        &Request {
            service_type: name,
            instance,
            ..Request::default()
        },
    )
}

fn range_of(reg: &mut Registry, name: &str) -> PortRange {
    alloc(reg, name, "i").ranges[0]
}

#[test]
fn empty_registry_starts_at_min_port() {
    assert_eq!(range_of(&mut empty(), "a"), PortRange::new(10000, 10009));
}

#[test]
fn after_the_builtins_with_gaps() {
    let mut reg = template();
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(11510, 11519));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(11530, 11539));
    assert_eq!(range_of(&mut reg, "c"), PortRange::new(11550, 11559));
}

#[test]
fn gap_size_zero_means_no_gap() {
    let mut reg = template();
    reg.settings.gap_size = 0;
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(11500, 11509));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(11510, 11519));
}

#[test]
fn a_rule_sets_the_chunk() {
    let mut reg = template();
    manage::set_rule(
        &mut reg,
        "big-*",
        Rule {
            chunk_size: Some(20),
            ..Rule::default()
        },
    )
    .unwrap();
    assert_eq!(range_of(&mut reg, "big-one"), PortRange::new(11510, 11529));
    // Names the rule does not match keep the default chunk.
    assert_eq!(range_of(&mut reg, "small"), PortRange::new(11540, 11549));
}

#[test]
fn the_longest_matching_rule_wins() {
    let mut reg = empty();
    for (p, c) in [("*", 5), ("mon-*", 7), ("mon-db*", 3)] {
        let rule = Rule {
            chunk_size: Some(c),
            ..Rule::default()
        };
        manage::set_rule(&mut reg, p, rule).unwrap();
    }
    assert_eq!(rule_for(&reg, "mon-dbx").unwrap().0, "mon-db*");
    assert_eq!(rule_for(&reg, "mon-x").unwrap().0, "mon-*");
    assert_eq!(rule_for(&reg, "x").unwrap().0, "*");
}

#[test]
fn smart_fills_the_first_gap() {
    let mut reg = empty();
    reg.settings.placement = Placement::Smart;
    for (n, r) in [
        ("x", PortRange::new(10000, 10009)),
        ("y", PortRange::new(10040, 10049)),
    ] {
        let change = TypeFields {
            ranges: Some(vec![r]),
            ..TypeFields::default()
        };
        manage::add_type(&mut reg, n, change).unwrap();
    }
    assert_eq!(range_of(&mut reg, "z"), PortRange::new(10020, 10029));
}

#[test]
fn before_goes_below_the_lowest_managed_range() {
    let mut reg = empty();
    reg.settings.placement = Placement::Before;
    let change = TypeFields {
        ranges: Some(vec![PortRange::new(20000, 20009)]),
        ..TypeFields::default()
    };
    manage::add_type(&mut reg, "x", change).unwrap();
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(19980, 19989));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(19960, 19969));
}

#[test]
fn chunk_size_one_works() {
    let mut reg = empty();
    reg.settings.chunk_size = 1;
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(10000, 10000));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(10011, 10011));
    // A one-port type grows by one port per instance.
    let g = alloc(&mut reg, "a", "second");
    assert_eq!(g.port, 10022);
    assert_eq!(g.ranges.len(), 2);
}

#[test]
fn overlapping_type_add_is_refused() {
    let mut reg = template();
    let before = reg.clone();
    let change = TypeFields {
        ranges: Some(vec![PortRange::new(8050, 8150)]),
        ..TypeFields::default()
    };
    let err = manage::add_type(&mut reg, "mine", change).unwrap_err();
    assert!(
        matches!(err, AllocError::Overlap { ref other, .. } if other == "api"),
        "{err}"
    );
    assert_eq!(reg, before);
}

#[test]
fn same_instance_same_port_and_no_change() {
    let mut reg = empty();
    let first = alloc(&mut reg, "a", "one");
    let snapshot = reg.clone();
    let again = try_alloc(&mut reg, "a", "one").unwrap();
    assert_eq!(again.value.port, first.port);
    assert!(again.value.existing && !again.value.auto_allocated);
    assert!(again.events.is_empty());
    assert_eq!(reg, snapshot);
}

#[test]
fn full_multi_type_grows_without_moving_ports() {
    let mut reg = empty();
    reg.settings.chunk_size = 2;
    let a = alloc(&mut reg, "t", "a").port;
    let b = alloc(&mut reg, "t", "b").port;
    alloc(&mut reg, "other", "x");
    let out = try_alloc(&mut reg, "t", "c").unwrap();
    assert!(matches!(out.events[0], Event::TypeGrew { .. }));
    assert_eq!(out.value.ranges.len(), 2);
    let t = &reg.types["t"];
    assert_eq!((t.instances["a"].port, t.instances["b"].port), (a, b));
    assert!(t.ranges[1].contains(out.value.port));
}

#[test]
fn max_instances_stops_growth_and_names_the_holders() {
    let mut reg = empty();
    reg.settings.chunk_size = 2;
    reg.settings.max_instances = 2;
    alloc(&mut reg, "t", "alpha");
    alloc(&mut reg, "t", "beta");
    let before = reg.clone();
    let err = try_alloc(&mut reg, "t", "gamma").unwrap_err().to_string();
    assert!(
        err.contains("alpha on 10000") && err.contains("beta on 10001"),
        "{err}"
    );
    assert!(err.contains("cargo styxy gc"), "{err}");
    assert_eq!(reg, before);
}

#[test]
fn max_instances_caps_a_type_with_room_left() {
    let mut reg = empty();
    reg.settings.max_instances = 2;
    alloc(&mut reg, "t", "a");
    alloc(&mut reg, "t", "b");
    let err = try_alloc(&mut reg, "t", "c").unwrap_err();
    assert!(
        matches!(err, AllocError::TypeFull { count: 2, .. }),
        "{err}"
    );
    // A type's own cap overrides the setting.
    reg.types.get_mut("t").unwrap().max_instances = Some(3);
    assert_eq!(alloc(&mut reg, "t", "c").port, 10002);
}

#[test]
fn single_types_share_one_port() {
    let mut reg = template();
    let a = alloc(&mut reg, "ai", "one").port;
    let b = alloc(&mut reg, "ai", "two").port;
    assert_eq!((a, b), (11434, 11434));
    let g = allocate(
        &mut reg,
        &machine(&idle),
        &Request {
            service_type: "new-single",
            instance: "x",
            instance_behavior: Some(InstanceBehavior::Single),
            ..Request::default()
        },
    )
    .unwrap()
    .value;
    assert_eq!(g.instance_behavior, InstanceBehavior::Single);
    assert_eq!(alloc(&mut reg, "new-single", "y").port, g.port);
}

#[test]
fn preferred_ports_come_first() {
    let mut reg = template();
    assert_eq!(alloc(&mut reg, "database", "a").port, 5432);
    assert_eq!(alloc(&mut reg, "database", "b").port, 5433);
}

#[test]
fn freed_neighbours_form_one_block() {
    let mut reg = empty();
    reg.settings.gap_size = 0;
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(10000, 10009));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(10010, 10019));
    let out = release(&mut reg, None, Some("i")).unwrap();
    assert!(out.value.iter().all(|r| r.type_removed));
    assert!(reg.types.is_empty());
    reg.settings.chunk_size = 20;
    assert_eq!(range_of(&mut reg, "big"), PortRange::new(10000, 10019));
}

#[test]
fn user_types_stay_when_emptied() {
    let mut reg = template();
    alloc(&mut reg, "api", "a");
    release(&mut reg, Some("api"), Some("a")).unwrap();
    assert!(reg.types.contains_key("api"));
    assert!(release(&mut reg, Some("api"), Some("a")).is_err());
}

#[test]
fn listening_ports_are_never_covered_or_handed_out() {
    let mut reg = empty();
    let busy = |p: u16| p == 10005;
    let g = alloc_on(&mut reg, "a", "i", &busy);
    assert_eq!(g.ranges[0], PortRange::new(10006, 10015));
    let mut reg = template();
    let busy_pref = |p: u16| p == 5432;
    assert_eq!(alloc_on(&mut reg, "database", "i", &busy_pref).port, 5433);
}

#[test]
fn the_ephemeral_range_is_skipped() {
    let mut reg = empty();
    reg.settings.min_port = 32750;
    reg.settings.max_port = Some(61100);
    assert_eq!(range_of(&mut reg, "a"), PortRange::new(32750, 32759));
    assert_eq!(range_of(&mut reg, "b"), PortRange::new(61000, 61009));
}

#[test]
fn default_max_port_sits_below_the_ephemeral_range() {
    let reg = empty();
    assert_eq!(space(&reg, &machine(&idle)).hi, 32767);
    let far = Machine {
        ephemeral: || Some(PortRange::new(60000, 65535)),
        probe: &idle,
        checkouts_gone: |roots| vec![false; roots.len()],
    };
    assert_eq!(space(&reg, &far).hi, IANA_REGISTERED_MAX);
}

#[test]
fn no_room_is_an_error_naming_the_span() {
    let mut reg = empty();
    reg.settings.min_port = 10000;
    reg.settings.max_port = Some(10015);
    range_of(&mut reg, "a");
    let err = try_alloc(&mut reg, "b", "i").unwrap_err();
    assert!(err.to_string().contains("10000-10015"), "{err}");
}

#[test]
fn unknown_types_need_auto_allocation() {
    let mut reg = empty();
    reg.settings.auto_allocate = false;
    let err = try_alloc(&mut reg, "x", "i").unwrap_err();
    assert!(err.to_string().contains("type add x"), "{err}");
}

#[test]
fn a_wished_port_starts_a_new_range_or_warns() {
    let mut reg = template();
    let wish = |reg: &mut Registry, name: &str, port: u16| {
        allocate(
            reg,
            &machine(&idle),
            &Request {
                service_type: name,
                instance: "i",
                port: Some(port),
                ..Request::default()
            },
        )
        .unwrap()
    };
    let out = wish(&mut reg, "pinned", 20000);
    assert_eq!(out.value.port, 20000);
    assert!(out.warnings.is_empty());
    let out = wish(&mut reg, "clash", 20005);
    assert_ne!(out.value.port, 20005);
    assert_eq!(out.warnings.len(), 1, "{:?}", out.warnings);
}

#[test]
fn categories_of_names() {
    assert_eq!(categories("shop-api"), vec!["shop", "api"]);
    assert_eq!(categories("shop/admin"), vec!["shop"]);
    assert_eq!(categories("monitoring"), vec!["monitoring"]);
    assert!(categories("plain").is_empty());
}

// ---- properties ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Alloc { ty: u8, instance: u8 },
    Release { ty: u8, instance: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, 0u8..6).prop_map(|(ty, instance)| Op::Alloc { ty, instance }),
        1 => (0u8..12, 0u8..6).prop_map(|(ty, instance)| Op::Release { ty, instance }),
    ]
}

fn settings() -> impl Strategy<Value = Settings> {
    (1u16..25, 0u16..20, 0usize..3, 1u32..8).prop_map(|(chunk, gap, p, max)| Settings {
        chunk_size: chunk,
        gap_size: gap,
        placement: [Placement::After, Placement::Before, Placement::Smart][p],
        max_instances: max,
        ..Settings::default()
    })
}

/// Free ports between two ranges (0 when they touch; negative never happens without overlap).
fn distance(a: PortRange, b: PortRange) -> i64 {
    let (lo, hi) = if a.start <= b.start { (a, b) } else { (b, a) };
    i64::from(hi.start) - i64::from(lo.end) - 1
}

fn check_invariants(reg: &Registry, space: Space) -> Result<(), TestCaseError> {
    let valid = validate::definitions(reg)
        .and_then(|()| validate::holdings(reg, reg.types.keys().map(String::as_str)));
    prop_assert!(valid.is_ok(), "{:?}", valid);
    let gap = i64::from(reg.settings.gap_size);
    let all = reg.all_ranges();
    for (i, (a, an)) in all.iter().enumerate() {
        let a_auto = reg.types[*an].origin == Origin::Auto;
        if a_auto {
            prop_assert!(
                a.start >= space.lo && a.end <= space.hi,
                "{a} outside bounds"
            );
            prop_assert!(!a.overlaps(&EPHEMERAL), "{a} in the ephemeral range");
        }
        for (b, bn) in &all[i + 1..] {
            prop_assert!(!a.overlaps(b), "{a} of {an} overlaps {b} of {bn}");
            let b_auto = reg.types[*bn].origin == Origin::Auto;
            if a_auto || b_auto {
                prop_assert!(distance(*a, *b) >= gap, "{a} and {b} closer than {gap}");
            }
        }
    }
    for (name, t) in &reg.types {
        let ports: BTreeSet<u16> = t.instances.values().map(|i| i.port).collect();
        match t.instance_behavior {
            InstanceBehavior::Multi => {
                prop_assert_eq!(ports.len(), t.instances.len(), "ports shared in {}", name)
            }
            InstanceBehavior::Single => prop_assert!(ports.len() <= 1),
        }
        if t.origin == Origin::Auto {
            prop_assert!(!t.instances.is_empty(), "empty auto type {} left", name);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn allocation_keeps_every_invariant(
        settings in settings(),
        with_builtins in any::<bool>(),
        busy in proptest::collection::btree_set(10000u16..10400, 0..20),
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let mut reg = if with_builtins { template() } else { empty() };
        reg.settings = settings.clone();
        let probe = |p: u16| busy.contains(&p);
        let m = machine(&probe);
        let space = space(&reg, &m);
        let mut held: BTreeMap<(String, String), u16> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Alloc { ty, instance } => {
                    let (name, id) = (format!("t{ty}"), format!("i{instance}"));
                    let req = Request { service_type: &name, instance: &id, ..Request::default() };
                    let before = reg.clone();
                    match allocate(&mut reg, &m, &req) {
                        Ok(out) => {
                            let g = out.value;
                            if let Some(&port) = held.get(&(name.clone(), id.clone())) {
                                // Idempotent: the same port, nothing changed.
                                prop_assert_eq!(g.port, port);
                                prop_assert!(g.existing);
                                prop_assert_eq!(&reg, &before);
                            } else {
                                prop_assert!(!busy.contains(&g.port), "handed out listening {}", g.port);
                                held.insert((name, id), g.port);
                            }
                        }
                        // Full or out of room: nothing may have changed.
                        Err(_) => prop_assert_eq!(&reg, &before),
                    }
                }
                Op::Release { ty, instance } => {
                    let (name, id) = (format!("t{ty}"), format!("i{instance}"));
                    if release(&mut reg, Some(&name), Some(&id)).is_ok() {
                        held.remove(&(name, id));
                    }
                }
            }
            check_invariants(&reg, space)?;
            // Every acknowledged instance still holds its port.
            for ((n, i), port) in &held {
                prop_assert_eq!(reg.types[n].instances[i].port, *port);
            }
        }
        // Releasing everything frees all auto-allocated space: a new type lands where it
        // would in a registry that never held any.
        let names: Vec<String> = held.keys().map(|(n, _)| n.clone()).collect();
        for n in names {
            let _ = release(&mut reg, Some(&n), None);
        }
        prop_assert!(reg.types.values().all(|t| t.origin != Origin::Auto));
        let mut fresh = if with_builtins { template() } else { empty() };
        fresh.settings = settings;
        let req = Request { service_type: "after-all", instance: "x", ..Request::default() };
        let again = allocate(&mut reg, &m, &req).map(|o| o.value.ranges);
        let first = allocate(&mut fresh, &m, &req).map(|o| o.value.ranges);
        prop_assert_eq!(again.ok(), first.ok());
    }
}

#[test]
fn tidy_moves_instances_a_hand_edit_left_outside_and_keeps_the_others() {
    let mut reg = empty();
    for id in ["a", "b", "c"] {
        alloc(&mut reg, "svc", id);
    }
    let before: Vec<u16> = reg.types["svc"]
        .instances
        .values()
        .map(|i| i.port)
        .collect();
    assert_eq!(before, [10000, 10001, 10002]);
    // By hand: the range now starts at 10001, and "c" was given "b"'s port.
    let t = reg.types.get_mut("svc").unwrap();
    t.ranges = vec![PortRange::new(10001, 10010)];
    t.instances.get_mut("c").unwrap().port = 10001;
    let out = tidy(&mut reg, &machine(&idle), &|_| true);
    let after: BTreeMap<&str, u16> = reg.types["svc"]
        .instances
        .iter()
        .map(|(id, i)| (id.as_str(), i.port))
        .collect();
    assert_eq!(
        after,
        BTreeMap::from([("a", 10002), ("b", 10001), ("c", 10003)])
    );
    let moved: Vec<(u16, u16)> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::InstanceMoved { from, port, .. } => Some((*from, *port)),
            _ => None,
        })
        .collect();
    assert_eq!(moved, [(10000, 10002), (10001, 10003)]);
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("10000") && w.contains("10002")),
        "{:?}",
        out.warnings
    );
    assert!(validate::holdings(&reg, reg.types.keys().map(String::as_str)).is_ok());
    assert!(
        tidy(&mut reg, &machine(&idle), &|_| true).events.is_empty(),
        "tidy twice is a no-op"
    );
}

#[test]
fn a_removed_checkouts_instances_are_released_before_a_port_is_placed_in_their_type() {
    let mut reg = empty();
    let place = |reg: &mut Registry, instance: &str, workspace: Option<&str>| {
        allocate(
            reg,
            &machine(&idle),
            &Request {
                service_type: "api",
                instance,
                workspace,
                ..Request::default()
            },
        )
        .unwrap()
    };
    let gone = place(&mut reg, "/gone/ws", Some("/gone/ws")).value.port;
    place(&mut reg, "/gone/ws#web/admin", Some("/gone/ws"));
    // An id that names a path but no checkout (allocate --instance) is never released.
    place(&mut reg, "/gone/ws/not-a-checkout", None);
    let leased = place(&mut reg, "/gone/leased", Some("/gone/leased"))
        .value
        .port;
    reg.types
        .get_mut("api")
        .unwrap()
        .leases
        .push(crate::model::Lease {
            port: leased,
            pid: 1,
            start_time: 1,
            instance: "/gone/leased".into(),
            since: None,
        });
    let removed = Machine {
        checkouts_gone: |roots| roots.iter().map(|r| r.starts_with("/gone/")).collect(),
        ..machine(&idle)
    };
    let out = allocate(
        &mut reg,
        &removed,
        &Request {
            service_type: "api",
            instance: "/here/ws",
            workspace: Some("/here/ws"),
            ..Request::default()
        },
    )
    .unwrap();
    let released: Vec<(&str, &str)> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Gc {
                instance: Some(i),
                reason,
                ..
            } => Some((i.as_str(), reason.as_str())),
            _ => None,
        })
        .collect();
    let why = "its checkout /gone/ws no longer exists";
    assert_eq!(released, [("/gone/ws", why), ("/gone/ws#web/admin", why)]);
    // The freed port is the first free one again: the new checkout gets it.
    assert_eq!(out.value.port, gone);
    let left: Vec<&str> = reg.types["api"]
        .instances
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        left,
        ["/gone/leased", "/gone/ws/not-a-checkout", "/here/ws"]
    );
}
