//! `state.json`, what the tool decides and owns: the auto-allocated types, every type's
//! instances and leases, and the metric counters. Format-versioned, read whole and written
//! whole under the lock (nextest's `record/store.rs` pattern); a newer format is refused,
//! never overwritten.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::counters::Counters;
use crate::audit::Record;
use crate::model::{Instance, Instances, Lease, Origin, Registry, ServiceType, Types};

/// The state file in the registry directory.
pub const STATE_FILE: &str = "state.json";

/// The format this build writes; it reads this one and every older one. Format 2 writes a
/// checkout's own instance (its id the checkout's root) as `[port, "service"]` instead of
/// an object naming the root again.
pub const FORMAT: u32 = 2;

/// The state file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format: u32,
    /// The auto-allocated types, whole (their instances and leases included).
    #[serde(default, skip_serializing_if = "Types::is_empty")]
    pub types: Types,
    /// The instances and leases of the types that `registry.toml` or the built-ins define.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<String, Held>,
    #[serde(default)]
    pub counters: Counters,
    /// The audit records of the commit that wrote this state, so that the next writer can
    /// append them if a kill kept them from the trail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit: Vec<Record>,
}

/// The instances and leases of one type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    #[serde(default, skip_serializing_if = "Instances::is_empty")]
    pub instances: Instances,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Lease>,
}

/// Why a state file could not be used.
#[derive(Debug)]
pub enum StateError {
    /// Written by a newer cargo-styxy.
    Newer(u32),
    /// Not a state file of any format: the parser's message.
    Parse(String),
}

#[derive(Deserialize)]
struct FormatOnly {
    format: u32,
}

/// Reads a state file's text.
pub fn parse(text: &str) -> Result<State, StateError> {
    match serde_json::from_str::<State>(text) {
        Ok(s) if s.format > FORMAT => Err(StateError::Newer(s.format)),
        Ok(s) => Ok(s),
        Err(e) => match serde_json::from_str::<FormatOnly>(text) {
            Ok(f) if f.format > FORMAT => Err(StateError::Newer(f.format)),
            _ => Err(StateError::Parse(e.to_string())),
        },
    }
}

/// The state of `reg`: its auto-allocated types, and the holders of the others.
pub fn of(reg: &Registry, counters: &Counters, audit: &[Record]) -> State {
    let mut state = State {
        format: FORMAT,
        types: Types::default(),
        held: BTreeMap::new(),
        counters: counters.clone(),
        audit: audit.to_vec(),
    };
    for (name, t) in &reg.types {
        if t.origin == Origin::Auto {
            state.types.insert(name.clone(), t.clone());
        } else if !t.instances.is_empty() || !t.leases.is_empty() {
            let held = Held {
                instances: t.instances.clone(),
                leases: t.leases.clone(),
            };
            state.held.insert(name.clone(), held);
        }
    }
    state
}

/// What the state holds for a type that is defined nowhere any more (removed from
/// `registry.toml` by hand): dropped by the next write, which records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Orphans {
    pub instances: Vec<(String, String, Instance)>,
}

/// What the state holds besides the registry's holders.
#[derive(Debug, Clone, Default)]
pub struct Rest {
    pub counters: Counters,
    pub orphans: Orphans,
    pub audit: Vec<Record>,
}

/// Adds the state to `reg`, the types `registry.toml` and the built-ins define. A type
/// defined there shadows an auto-allocated type of the same name, which lends it its holders.
pub fn merge(reg: &mut Registry, state: State) -> Rest {
    // Into the state's types, which are the many: the defined ones are few.
    let defined = std::mem::replace(&mut reg.types, state.types);
    for (name, mut t) in defined {
        if let Some(auto) = reg.types.remove(&name) {
            t.instances.extend(auto.instances);
            t.leases.extend(auto.leases);
        }
        reg.types.insert(name, t);
    }
    let mut orphans = Orphans::default();
    for (name, held) in state.held {
        match reg.types.get_mut(&name) {
            Some(t) => {
                t.instances.extend(held.instances);
                t.leases.extend(held.leases);
            }
            None => orphans.instances.extend(
                held.instances
                    .into_iter()
                    .map(|(id, i)| (name.clone(), id, i)),
            ),
        }
    }
    Rest {
        counters: state.counters,
        orphans,
        audit: state.audit,
    }
}

/// [`State`] borrowed from a registry, to be written.
#[derive(Serialize)]
struct View<'r> {
    format: u32,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    types: BTreeMap<&'r str, &'r ServiceType>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    held: BTreeMap<&'r str, HeldView<'r>>,
    counters: &'r Counters,
    #[serde(skip_serializing_if = "<[Record]>::is_empty")]
    audit: &'r [Record],
}

#[derive(Serialize)]
struct HeldView<'r> {
    #[serde(skip_serializing_if = "Instances::is_empty")]
    instances: &'r Instances,
    #[serde(skip_serializing_if = "<[Lease]>::is_empty")]
    leases: &'r [Lease],
}

/// The text of the state of `reg` (as [`of`] makes it): one line of JSON. `size_hint` is
/// about how long it will be (the last state's length), so that the text is not copied as it
/// grows.
pub fn render(reg: &Registry, counters: &Counters, audit: &[Record], size_hint: usize) -> String {
    let mut view = View {
        format: FORMAT,
        types: BTreeMap::new(),
        held: BTreeMap::new(),
        counters,
        audit,
    };
    for (name, t) in &reg.types {
        if t.origin == Origin::Auto {
            view.types.insert(name, t);
        } else if !t.instances.is_empty() || !t.leases.is_empty() {
            let held = HeldView {
                instances: &t.instances,
                leases: &t.leases,
            };
            view.held.insert(name, held);
        }
    }
    let mut out = Vec::with_capacity(size_hint + size_hint / 8 + 1024);
    serde_json::to_writer(&mut out, &view).expect("the state serialises (plain data)");
    out.push(b'\n');
    String::from_utf8(out).expect("serde_json writes UTF-8")
}
