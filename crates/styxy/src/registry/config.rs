//! `registry.toml`, what people write: settings, rules, zones, and the service types they
//! declared or changed, layered over the built-in types compiled into the binary. Read with
//! toml's serde; written back with toml_edit, touching only what changed, so every comment
//! and every bit of layout elsewhere survives.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;
use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, TableLike, Value};

use crate::model::{
    InstanceBehavior, Origin, PortRange, Registry, Rule, ServiceType, Settings, Strategy,
    TypeFields, Types,
};

/// The built-in service types (Styxy's 17 standard categories).
pub const BUILTIN_TYPES: &str = include_str!("../../templates/builtin-types.toml");

/// What a new `registry.toml` says: the settings with their defaults, and how to declare,
/// change or remove types.
pub const TEMPLATE: &str = include_str!("../../templates/registry.toml");

/// The built-in types, parsed once.
pub fn builtins() -> &'static Types {
    static BUILTINS: OnceLock<Types> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        let file: File = toml::from_str(BUILTIN_TYPES).expect("the built-in types parse (tested)");
        file.types
            .into_iter()
            .map(|(name, entry)| {
                let mut t = ServiceType::new(Vec::new(), Origin::Builtin);
                entry.apply_to(&mut t);
                (name, t)
            })
            .collect()
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    settings: Settings,
    #[serde(default)]
    types: BTreeMap<String, TypeFields>,
    #[serde(default)]
    rules: BTreeMap<String, Rule>,
    #[serde(default)]
    strategies: BTreeMap<String, Strategy>,
}

/// `registry.toml` as read.
#[derive(Debug)]
pub struct Config {
    /// The built-in types with the file's changes, the file's own types, its settings, rules
    /// and zones.
    pub registry: Registry,
}

/// Why a `registry.toml` could not be read: the byte offset and the parser's message.
#[derive(Debug)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// Reads `registry.toml`'s text. An empty file, or one of comments only, is the built-in
/// types with the default settings.
pub fn parse(text: &str) -> Result<Config, ParseError> {
    let file: File = toml::from_str(text).map_err(|e| ParseError {
        offset: e.span().map_or(0, |s| s.start),
        message: e.message().trim().replace('\n', " "),
    })?;
    let mut types = builtins().clone();
    for (name, entry) in file.types {
        if entry.removed {
            types.remove(&name);
            continue;
        }
        let origin = if types.contains_key(&name) {
            Origin::Builtin
        } else {
            Origin::User
        };
        let mut t = match types.remove(&name) {
            Some(builtin) if origin == Origin::Builtin => builtin,
            _ => ServiceType::new(Vec::new(), origin),
        };
        t.origin = origin;
        entry.apply_to(&mut t);
        types.insert(name, t);
    }
    Ok(Config {
        registry: Registry {
            settings: file.settings,
            types,
            rules: file.rules,
            strategies: file.strategies,
        },
    })
}

/// The part of a type that `registry.toml` holds (not its instances, leases or origin).
type Definition<'t> = (
    &'t [PortRange],
    InstanceBehavior,
    &'t [u16],
    &'t Option<String>,
    Option<u32>,
    &'t Option<String>,
);

fn definition(t: &ServiceType) -> Definition<'_> {
    (
        &t.ranges,
        t.instance_behavior,
        &t.preferred_ports,
        &t.description,
        t.max_instances,
        &t.zone,
    )
}

/// The type `name` as `registry.toml` defines it: `None` for an auto-allocated type, which
/// the state holds, and for a type that is not there.
fn configured<'r>(reg: &'r Registry, name: &str) -> Option<&'r ServiceType> {
    reg.types.get(name).filter(|t| t.origin != Origin::Auto)
}

/// Whether the part of the registry that `registry.toml` holds differs between `old` and
/// `new`, whose service types differ by the types `changed` (and no others).
pub fn differs_between(old: &Registry, new: &Registry, changed: &[&String]) -> bool {
    old.settings != new.settings
        || old.rules != new.rules
        || old.strategies != new.strategies
        || changed.iter().any(|name| {
            configured(old, name).map(definition) != configured(new, name).map(definition)
        })
}

/// Makes `doc` say `new`, given that it said `old` (as [`parse`] read it) and that their
/// service types differ by the types `changed`.
pub fn write(doc: &mut DocumentMut, old: &Registry, new: &Registry, changed: &[&String]) {
    if old.settings != new.settings {
        sync_settings(section(doc, "settings"), &old.settings, &new.settings);
    }
    let builtin_names = builtins();
    for &name in changed {
        let (before, after) = (configured(old, name), configured(new, name));
        if before.map(definition) == after.map(definition) {
            continue;
        }
        let types = section(doc, "types");
        let builtin = builtin_names.get(name.as_str());
        match (after, builtin) {
            (None, None) => {
                types.remove(name);
            }
            // Removed, or (after a removal) auto-allocated again, which the state holds.
            (None, Some(_)) => removed_builtin(types, name),
            (Some(t), _) => {
                let table = type_table(types, name);
                // A table that was `removed = true` starts again from the built-in.
                let base = if table.remove("removed").is_some() {
                    None
                } else {
                    before
                };
                update_type(table, base.or(builtin), builtin.is_some(), t);
            }
        }
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

/// `[types.NAME]` saying `removed = true`.
fn removed_builtin(types: &mut dyn TableLike, name: &str) {
    let mut t = Table::new();
    t.insert("removed", toml_edit::value(true));
    match types.get_mut(name) {
        Some(Item::Table(old)) => {
            let decor = old.decor().clone();
            *old = t;
            *old.decor_mut() = decor;
        }
        _ => {
            types.insert(name, Item::Table(t));
        }
    }
}

/// The table of type `name`, created (`[types.NAME]`) if missing.
fn type_table<'t>(types: &'t mut dyn TableLike, name: &str) -> &'t mut dyn TableLike {
    if !types.get(name).is_some_and(Item::is_table_like) {
        types.insert(name, Item::Table(Table::new()));
    }
    types
        .get_mut(name)
        .and_then(Item::as_table_like_mut)
        .expect("inserted as a table just above")
}

/// Writes the fields of `t` that differ from `base` (all set ones when there is none). Over
/// a built-in (`inherits`), a field emptied is written empty, else it would be inherited.
fn update_type(
    table: &mut dyn TableLike,
    base: Option<&ServiceType>,
    inherits: bool,
    t: &ServiceType,
) {
    if differs(base, t, |x| &x.ranges) {
        set(table, "ranges", Some(ranges_value(&t.ranges)));
    }
    if differs(base, t, |x| &x.instance_behavior)
        && (base.is_some() || t.instance_behavior != InstanceBehavior::default())
    {
        set(
            table,
            "instance_behavior",
            Some(t.instance_behavior.as_str().into()),
        );
    }
    if differs(base, t, |x| &x.preferred_ports) {
        let empty = t.preferred_ports.is_empty();
        let v = (!empty || inherits).then(|| ports_value(&t.preferred_ports));
        set(table, "preferred_ports", v);
    }
    if differs(base, t, |x| &x.description) {
        let v = match &t.description {
            Some(d) => Some(Value::from(d.as_str())),
            None => inherits.then(|| Value::from("")),
        };
        set(table, "description", v);
    }
    if differs(base, t, |x| &x.max_instances) {
        set(table, "max_instances", t.max_instances.map(int));
    }
    if differs(base, t, |x| &x.zone) {
        set(table, "zone", t.zone.as_deref().map(Value::from));
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
    use crate::model::{Strategy, Zone};

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
        write(&mut doc, &old, &new, &[]);
        let text = doc.to_string();
        assert_eq!(
            parse(&text).unwrap().registry.strategies,
            new.strategies,
            "{text}"
        );
        assert!(text.contains("# keep"));
    }
}
