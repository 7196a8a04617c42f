//! Writes a changed [`Registry`] back into the user's TOML document, touching only what
//! changed so every comment and every bit of layout elsewhere survives (toml_edit).

use std::collections::BTreeMap;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::registry::model::{Instance, PortRange, Registry, Rule, ServiceType, Settings};

/// Makes `doc` say `new`, given that it said `old`.
pub fn sync(doc: &mut DocumentMut, old: &Registry, new: &Registry) {
    if old.settings != new.settings {
        sync_settings(section(doc, "settings"), &old.settings, &new.settings);
    }
    if old.types != new.types {
        sync_map(
            section(doc, "types"),
            &old.types,
            &new.types,
            type_item,
            update_type,
        );
    }
    if old.rules != new.rules {
        sync_map(
            section(doc, "rules"),
            &old.rules,
            &new.rules,
            rule_item,
            update_rule,
        );
    }
    if old.strategies != new.strategies {
        sync_strategies(section(doc, "strategies"), old, new);
    }
}

/// The top-level table `key`, created (as an implicit header) if missing.
fn section<'d>(doc: &'d mut DocumentMut, key: &str) -> &'d mut dyn TableLike {
    let root = doc.as_table_mut();
    if !root.get(key).is_some_and(Item::is_table_like) {
        let mut t = Table::new();
        t.set_implicit(true);
        root.insert(key, Item::Table(t));
    }
    root.get_mut(key)
        .and_then(Item::as_table_like_mut)
        .expect("inserted as a table just above")
}

/// Sets `key` to `value` keeping the old value's decor (its comments); `None` removes it.
fn set(table: &mut dyn TableLike, key: &str, value: Option<Value>) {
    match (table.get_mut(key), value) {
        (Some(Item::Value(old)), Some(mut new)) => {
            *new.decor_mut() = old.decor().clone();
            *old = new;
        }
        (_, Some(new)) => {
            table.insert(key, Item::Value(new));
        }
        (_, None) => {
            table.remove(key);
        }
    }
}

fn int(n: impl Into<i64>) -> Value {
    Value::from(n.into())
}

fn ranges_value(ranges: &[PortRange]) -> Value {
    let mut a = Array::new();
    for r in ranges {
        a.push(Value::Array(Array::from_iter([int(r.start), int(r.end)])));
    }
    Value::Array(a)
}

fn ports_value(ports: &[u16]) -> Value {
    Value::Array(ports.iter().map(|p| int(*p)).collect())
}

fn instance_value(i: &Instance) -> Value {
    let mut t = InlineTable::new();
    t.insert("port", int(i.port));
    if let Some(w) = &i.workspace {
        t.insert("workspace", Value::from(w.as_str()));
    }
    if let Some(s) = &i.service {
        t.insert("service", Value::from(s.as_str()));
    }
    Value::InlineTable(t)
}

/// `[strategies.NAME.zones]`: zone by zone, each `name = { min_port, max_port }`.
fn sync_strategies(table: &mut dyn TableLike, old: &Registry, new: &Registry) {
    for name in old
        .strategies
        .keys()
        .filter(|n| !new.strategies.contains_key(*n))
    {
        table.remove(name);
    }
    for (name, strategy) in &new.strategies {
        if old.strategies.get(name) == Some(strategy) {
            continue;
        }
        if !table.get(name).is_some_and(Item::is_table_like) {
            let mut t = Table::new();
            t.set_implicit(true);
            table.insert(name, Item::Table(t));
        }
        let Some(st) = table.get_mut(name).and_then(Item::as_table_like_mut) else {
            continue;
        };
        if !st.get("zones").is_some_and(Item::is_table_like) {
            st.insert("zones", Item::Table(Table::new()));
        }
        let Some(zones) = st.get_mut("zones").and_then(Item::as_table_like_mut) else {
            continue;
        };
        let before = old.strategies.get(name).map(|s| &s.zones);
        for z in before
            .into_iter()
            .flat_map(|b| b.keys())
            .filter(|z| !strategy.zones.contains_key(*z))
        {
            zones.remove(z);
        }
        for (z, bounds) in &strategy.zones {
            if before.and_then(|b| b.get(z)) != Some(bounds) {
                let mut v = InlineTable::new();
                v.insert("min_port", int(bounds.min_port));
                v.insert("max_port", int(bounds.max_port));
                set(zones, z, Some(Value::InlineTable(v)));
            }
        }
    }
}

fn lease_value(l: &crate::registry::model::Lease) -> Value {
    let mut t = InlineTable::new();
    t.insert("port", int(l.port));
    t.insert("pid", int(l.pid));
    t.insert(
        "start_time",
        int(i64::try_from(l.start_time).unwrap_or(i64::MAX)),
    );
    t.insert("instance", Value::from(l.instance.as_str()));
    if let Some(since) = &l.since {
        t.insert("since", Value::from(since.as_str()));
    }
    Value::InlineTable(t)
}

fn sync_settings(t: &mut dyn TableLike, old: &Settings, new: &Settings) {
    if old.min_port != new.min_port {
        set(t, "min_port", Some(int(new.min_port)));
    }
    if old.max_port != new.max_port {
        set(t, "max_port", new.max_port.map(int));
    }
    if old.chunk_size != new.chunk_size {
        set(t, "chunk_size", Some(int(new.chunk_size)));
    }
    if old.gap_size != new.gap_size {
        set(t, "gap_size", Some(int(new.gap_size)));
    }
    if old.placement != new.placement {
        set(t, "placement", Some(new.placement.as_str().into()));
    }
    if old.max_instances != new.max_instances {
        set(t, "max_instances", Some(int(new.max_instances)));
    }
    if old.auto_allocate != new.auto_allocate {
        set(t, "auto_allocate", Some(new.auto_allocate.into()));
    }
    if old.audit_max_bytes != new.audit_max_bytes {
        let bytes = i64::try_from(new.audit_max_bytes).unwrap_or(i64::MAX);
        set(t, "audit_max_bytes", Some(int(bytes)));
    }
    if old.audit_files != new.audit_files {
        set(t, "audit_files", Some(int(new.audit_files)));
    }
}

/// Removes entries gone from `new`, inserts new ones whole, and updates changed ones field
/// by field.
fn sync_map<V: PartialEq>(
    table: &mut dyn TableLike,
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    fresh: fn(&V) -> Table,
    update: fn(&mut dyn TableLike, bool, Option<&V>, &V),
) {
    for name in old.keys().filter(|n| !new.contains_key(*n)) {
        table.remove(name);
    }
    for (name, v) in new {
        let before = old.get(name);
        if before == Some(v) {
            continue;
        }
        match table.get_mut(name) {
            Some(Item::Table(t)) => update(t, false, before, v),
            Some(Item::Value(Value::InlineTable(t))) => update(t, true, before, v),
            _ => {
                table.insert(name, Item::Table(fresh(v)));
            }
        }
    }
}

fn type_item(t: &ServiceType) -> Table {
    let mut table = Table::new();
    update_type(&mut table, false, None, t);
    table
}

/// Writes the fields of `t` that differ from `old` (all of them when `old` is `None`).
/// `inline` says the type is written `name = { … }`, inside which only inline tables fit.
fn update_type(
    table: &mut dyn TableLike,
    inline: bool,
    old: Option<&ServiceType>,
    t: &ServiceType,
) {
    if differs(old, t, |x| &x.ranges) {
        set(table, "ranges", Some(ranges_value(&t.ranges)));
    }
    if differs(old, t, |x| &x.instance_behavior) {
        set(
            table,
            "instance_behavior",
            Some(t.instance_behavior.as_str().into()),
        );
    }
    if differs(old, t, |x| &x.preferred_ports) {
        let v = (!t.preferred_ports.is_empty()).then(|| ports_value(&t.preferred_ports));
        set(table, "preferred_ports", v);
    }
    if differs(old, t, |x| &x.description) {
        set(
            table,
            "description",
            t.description.as_deref().map(Value::from),
        );
    }
    if differs(old, t, |x| &x.origin) {
        set(table, "origin", Some(t.origin.as_str().into()));
    }
    if differs(old, t, |x| &x.requested_by) {
        set(
            table,
            "requested_by",
            t.requested_by.as_deref().map(Value::from),
        );
    }
    if differs(old, t, |x| &x.max_instances) {
        set(table, "max_instances", t.max_instances.map(int));
    }
    if differs(old, t, |x| &x.instances) {
        sync_instances(table, inline, old.map(|o| &o.instances), &t.instances);
    }
    if differs(old, t, |x| &x.zone) {
        set(table, "zone", t.zone.as_deref().map(Value::from));
    }
    if differs(old, t, |x| &x.leases) {
        let v = (!t.leases.is_empty())
            .then(|| Value::Array(t.leases.iter().map(lease_value).collect()));
        set(table, "leases", v);
    }
}

fn sync_instances(
    table: &mut dyn TableLike,
    inline: bool,
    old: Option<&BTreeMap<String, Instance>>,
    new: &BTreeMap<String, Instance>,
) {
    if new.is_empty() {
        table.remove("instances");
        return;
    }
    if !table.get("instances").is_some_and(Item::is_table_like) {
        let item = if inline {
            Item::Value(Value::InlineTable(InlineTable::new()))
        } else {
            Item::Table(Table::new())
        };
        table.insert("instances", item);
    }
    let Some(instances) = table.get_mut("instances").and_then(Item::as_table_like_mut) else {
        return;
    };
    let empty = BTreeMap::new();
    let old = old.unwrap_or(&empty);
    for id in old.keys().filter(|id| !new.contains_key(*id)) {
        instances.remove(id);
    }
    for (id, i) in new {
        if old.get(id) != Some(i) {
            set(instances, id, Some(instance_value(i)));
        }
    }
}

/// Whether field `f` of `new` differs from `old`'s (always, when there is no `old`).
fn differs<T, F: PartialEq>(old: Option<&T>, new: &T, f: impl Fn(&T) -> &F) -> bool {
    old.is_none_or(|o| f(o) != f(new))
}

fn rule_item(r: &Rule) -> Table {
    let mut table = Table::new();
    update_rule(&mut table, false, None, r);
    table
}

fn update_rule(table: &mut dyn TableLike, _inline: bool, old: Option<&Rule>, r: &Rule) {
    if differs(old, r, |x| &x.chunk_size) {
        set(table, "chunk_size", r.chunk_size.map(int));
    }
    if differs(old, r, |x| &x.placement) {
        set(table, "placement", r.placement.map(|p| p.as_str().into()));
    }
    if differs(old, r, |x| &x.preferred_range_start) {
        set(
            table,
            "preferred_range_start",
            r.preferred_range_start.map(int),
        );
    }
    if differs(old, r, |x| &x.instance_behavior) {
        set(
            table,
            "instance_behavior",
            r.instance_behavior.map(|b| b.as_str().into()),
        );
    }
    if differs(old, r, |x| &x.zone) {
        set(table, "zone", r.zone.as_deref().map(Value::from));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::model::{Strategy, Zone};

    #[test]
    fn strategies_are_written() {
        let old = Registry::default();
        let mut new = old.clone();
        new.strategies.insert(
            "team".into(),
            Strategy {
                zones: [(
                    "front".to_owned(),
                    Zone {
                        min_port: 21000,
                        max_port: 21099,
                    },
                )]
                .into(),
            },
        );
        let mut doc: DocumentMut = "# keep\n[settings]\n".parse().unwrap();
        sync(&mut doc, &old, &new);
        let text = doc.to_string();
        assert_eq!(toml::from_str::<Registry>(&text).unwrap(), new, "{text}");
        assert!(text.contains("# keep"));
    }
}
