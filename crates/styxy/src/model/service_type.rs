//! Service types: a name's port ranges, instance behaviour, origin and instances.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Instances, Lease, PortRange, join_ranges};

/// Whether every instance of a type gets its own port (`multi`) or all share one (`single`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceBehavior {
    #[default]
    Multi,
    Single,
}

impl InstanceBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Multi => "multi",
            Self::Single => "single",
        }
    }
}

/// Where a service type came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Shipped in the registry template (Styxy's standard categories).
    Builtin,
    /// Declared by hand (`type add`, or written into the file).
    #[default]
    User,
    /// Created by auto-allocation; removed again when its last instance is released.
    Auto,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::User => "user",
            Self::Auto => "auto",
        }
    }
}

/// A named category of services with its port ranges (spec §2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceType {
    pub ranges: Vec<PortRange>,
    #[serde(default)]
    pub instance_behavior: InstanceBehavior,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferred_ports: Vec<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub origin: Origin,
    /// For auto-allocated types: who first asked for it (workspace, package/bin, or instance).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Overrides `settings.max_instances` for this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// Instance id → its port.
    #[serde(default, skip_serializing_if = "Instances::is_empty")]
    pub instances: Instances,
    /// Processes running with an instance's port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Lease>,
    /// The zone the type was allocated in; its growth stays there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

/// The fields of a service type that people set, each optional (`None` leaves it as it
/// is): the one description of them for `type add|set`, the dashboard's type form and
/// `registry.toml`'s `[types.NAME]` tables, applied by [`TypeFields::apply_to`] and checked
/// by [`crate::model::validate::type_fields`]. A range is written `[start, end]` or
/// `"start-end"`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeFields {
    #[serde(default)]
    pub ranges: Option<Vec<PortRange>>,
    #[serde(default)]
    pub instance_behavior: Option<InstanceBehavior>,
    #[serde(default)]
    pub preferred_ports: Option<Vec<u16>>,
    /// `Some("")` clears the description.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub max_instances: Option<u32>,
    /// The zone the type's growth stays in.
    #[serde(default)]
    pub zone: Option<String>,
    /// In `registry.toml`: takes away the built-in type of this name (what `type rm`
    /// writes). Refused where a type is changed, not removed.
    #[serde(default)]
    pub removed: bool,
}

impl TypeFields {
    /// Sets the fields that are `Some` on `t`.
    pub fn apply_to(self, t: &mut ServiceType) {
        if let Some(r) = self.ranges {
            t.ranges = r;
        }
        if let Some(b) = self.instance_behavior {
            t.instance_behavior = b;
        }
        if let Some(p) = self.preferred_ports {
            t.preferred_ports = p;
        }
        if let Some(d) = self.description {
            t.description = (!d.is_empty()).then_some(d);
        }
        if let Some(m) = self.max_instances {
            t.max_instances = Some(m);
        }
        if let Some(z) = self.zone {
            t.zone = Some(z);
        }
    }
}

impl ServiceType {
    /// A type with the given ranges and nothing else set.
    pub fn new(ranges: Vec<PortRange>, origin: Origin) -> Self {
        Self {
            ranges,
            instance_behavior: InstanceBehavior::Multi,
            preferred_ports: Vec::new(),
            description: None,
            origin,
            requested_by: None,
            max_instances: None,
            instances: Instances::default(),
            leases: Vec::new(),
            zone: None,
        }
    }

    /// The type's ranges as `10000-10009, 10030-10039`.
    pub fn ranges_text(&self) -> String {
        join_ranges(&self.ranges)
    }

    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|r| r.contains(port))
    }
}

/// The service types by name.
///
/// Each type is shared between copies of the registry until one of them changes it (copy on
/// write): the copy a commit keeps to compare against costs a pointer per type, and a type
/// nobody changed is told apart by a pointer comparison, not by comparing its instances. So a
/// command's cost grows with what it changes, not with the registry's size. Hence
/// [`Types::get_mut`] only for a type about to be changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Types(BTreeMap<String, Arc<ServiceType>>);

impl Types {
    pub fn get(&self, name: &str) -> Option<&ServiceType> {
        self.0.get(name).map(|t| &**t)
    }

    /// The type named `name`, to change: from here on this copy of the registry has its own.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut ServiceType> {
        self.0.get_mut(name).map(Arc::make_mut)
    }

    pub fn insert(&mut self, name: String, t: ServiceType) -> Option<ServiceType> {
        self.0.insert(name, Arc::new(t)).map(Arc::unwrap_or_clone)
    }

    pub fn remove(&mut self, name: &str) -> Option<ServiceType> {
        self.0.remove(name).map(Arc::unwrap_or_clone)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &ServiceType> {
        self.0.values().map(|t| &**t)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &ServiceType)> {
        self.0.iter().map(|(n, t)| (n, &**t))
    }

    /// Every type, to change: each becomes this copy's own (a copy of all of them).
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut ServiceType> {
        self.0.values_mut().map(Arc::make_mut)
    }

    /// Keeps the types for which `keep` holds.
    pub fn retain(&mut self, mut keep: impl FnMut(&String, &ServiceType) -> bool) {
        self.0.retain(|n, t| keep(n, t));
    }

    /// The types that differ between `self` and `new` (removed, added or changed), each
    /// once and in name order, with its value before and after. A type that both share
    /// unchanged is passed over without looking inside it.
    pub fn changed<'r>(
        &'r self,
        new: &'r Types,
    ) -> impl Iterator<Item = (&'r String, Option<&'r ServiceType>, Option<&'r ServiceType>)> {
        // One merge of the two sorted maps: no lookups, which count at 10,000 types.
        let mut old = self.0.iter().peekable();
        let mut new = new.0.iter().peekable();
        std::iter::from_fn(move || {
            loop {
                let order = match (old.peek(), new.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some((a, _)), Some((b, _))) => a.cmp(b),
                };
                match order {
                    Ordering::Less => return old.next().map(|(n, t)| (n, Some(&**t), None)),
                    Ordering::Greater => return new.next().map(|(n, t)| (n, None, Some(&**t))),
                    Ordering::Equal => {
                        let ((n, a), (_, b)) = (old.next()?, new.next()?);
                        if !Arc::ptr_eq(a, b) && a != b {
                            return Some((n, Some(&**a), Some(&**b)));
                        }
                    }
                }
            }
        })
    }
}

impl FromIterator<(String, ServiceType)> for Types {
    fn from_iter<I: IntoIterator<Item = (String, ServiceType)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(n, t)| (n, Arc::new(t))).collect())
    }
}

impl std::ops::Index<&str> for Types {
    type Output = ServiceType;

    fn index(&self, name: &str) -> &ServiceType {
        &self.0[name]
    }
}

impl IntoIterator for Types {
    type Item = (String, ServiceType);
    type IntoIter = std::iter::Map<
        std::collections::btree_map::IntoIter<String, Arc<ServiceType>>,
        fn((String, Arc<ServiceType>)) -> (String, ServiceType),
    >;

    /// The types, each this copy's own (a type shared with another copy is copied).
    fn into_iter(self) -> Self::IntoIter {
        self.0
            .into_iter()
            .map(|(n, t)| (n, Arc::unwrap_or_clone(t)))
    }
}

impl<'a> IntoIterator for &'a Types {
    type Item = (&'a String, &'a ServiceType);
    type IntoIter = std::iter::Map<
        std::collections::btree_map::Iter<'a, String, Arc<ServiceType>>,
        fn((&'a String, &'a Arc<ServiceType>)) -> (&'a String, &'a ServiceType),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(n, t)| (n, &**t))
    }
}

impl Serialize for Types {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Types {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Map;
        impl<'de> serde::de::Visitor<'de> for Map {
            type Value = Types;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of service type names to types")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Types, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((name, t)) = map.next_entry::<String, ServiceType>()? {
                    out.insert(name, Arc::new(t));
                }
                Ok(Types(out))
            }
        }
        d.deserialize_map(Map)
    }
}
