//! The registry's typed content: settings, service types, instances and rules.
//!
//! These are plain values: read from `registry.toml` layered over the built-in types and from
//! the state file ([`super::Store`]), changed by the pure allocator, written back by the store.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// An inclusive span of ports, written `[start, end]` in TOML and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub const fn new(start: u16, end: u16) -> Self {
        Self { start, end }
    }

    /// Number of ports in the range (`end >= start` is checked by validation).
    pub fn len(&self) -> u32 {
        u32::from(self.end).saturating_sub(u32::from(self.start)) + 1
    }

    /// A range always holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> + use<> {
        self.start..=self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.start, self.end].serialize(s)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Not `[u16; 2]`: its visitor ignores a third element, so `[8000, 8099, 8199]`
        // would read as 8000-8099 without a word.
        struct Pair;
        impl<'de> serde::de::Visitor<'de> for Pair {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a range [start, end]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PortRange, A::Error> {
                use serde::de::Error;
                let start = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let end = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let mut len = 2;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    len += 1;
                }
                if len > 2 {
                    return Err(A::Error::invalid_length(len, &self));
                }
                Ok(PortRange { start, end })
            }
        }
        d.deserialize_seq(Pair)
    }
}

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

/// How auto-allocation chooses where a new range goes (spec §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// After the highest range.
    #[default]
    After,
    /// Before the lowest range in the managed span.
    Before,
    /// The first gap between ranges that fits, else next to the same category, else after.
    Smart,
}

impl Placement {
    pub const NAMES: [&'static str; 3] = ["after", "before", "smart"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::After => "after",
            Self::Before => "before",
            Self::Smart => "smart",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "after" => Some(Self::After),
            "before" => Some(Self::Before),
            "smart" => Some(Self::Smart),
            _ => None,
        }
    }
}

/// Registry-wide settings (`[settings]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Lowest port auto-allocation uses.
    #[serde(default = "defaults::min_port")]
    pub min_port: u16,
    /// Highest port auto-allocation uses; unset means just below the OS ephemeral range
    /// (and never above 49151).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_port: Option<u16>,
    /// Ports in a new auto-allocated range, and in each growth chunk.
    #[serde(default = "defaults::chunk_size")]
    pub chunk_size: u16,
    /// Free ports kept between an auto-allocated range and every other range.
    #[serde(default = "defaults::gap_size")]
    pub gap_size: u16,
    #[serde(default)]
    pub placement: Placement,
    /// Instances a `multi` type may hold before growth stops.
    #[serde(default = "defaults::max_instances")]
    pub max_instances: u32,
    /// Whether unknown service types are created on first use.
    #[serde(default = "defaults::auto_allocate")]
    pub auto_allocate: bool,
    /// The audit log is rotated when it reaches this size.
    #[serde(default = "defaults::audit_max_bytes")]
    pub audit_max_bytes: u64,
    /// Rotated audit logs kept.
    #[serde(default = "defaults::audit_files")]
    pub audit_files: u32,
}

mod defaults {
    pub fn min_port() -> u16 {
        10000
    }
    pub fn chunk_size() -> u16 {
        10
    }
    pub fn gap_size() -> u16 {
        10
    }
    pub fn max_instances() -> u32 {
        100
    }
    pub fn auto_allocate() -> bool {
        true
    }
    pub fn audit_max_bytes() -> u64 {
        10 * 1024 * 1024
    }
    pub fn audit_files() -> u32 {
        5
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_port: defaults::min_port(),
            max_port: None,
            chunk_size: defaults::chunk_size(),
            gap_size: defaults::gap_size(),
            placement: Placement::default(),
            max_instances: defaults::max_instances(),
            auto_allocate: defaults::auto_allocate(),
            audit_max_bytes: defaults::audit_max_bytes(),
            audit_files: defaults::audit_files(),
        }
    }
}

/// One holder of a port inside a service type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub port: u16,
    /// The checkout the instance belongs to; see [`Instance::workspace`].
    pub checkout: Checkout,
    /// For a service of a cargo workspace (`assign`): its `package/bin` label, so `gc` can
    /// tell when the checkout no longer has it.
    pub service: Option<String>,
}

/// The checkout (canonical workspace root or directory) an instance belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Checkout {
    /// None: an instance named by hand (`allocate --instance ID`).
    #[default]
    None,
    /// The checkout whose root is the instance's id (`assign`, or `allocate` in a checkout):
    /// the common case, so the path is not kept twice.
    Own,
    /// Another path: the root of the checkout whose service joins the type under an id of
    /// its own (`ROOT#package/bin`).
    At(String),
}

impl Instance {
    /// The instance `id` on `port`, of the checkout `workspace` if it has one.
    pub fn new(id: &str, port: u16, workspace: Option<&str>, service: Option<&str>) -> Self {
        let checkout = match workspace {
            None => Checkout::None,
            Some(w) if w == id => Checkout::Own,
            Some(w) => Checkout::At(w.to_owned()),
        };
        Self {
            port,
            checkout,
            service: service.map(str::to_owned),
        }
    }

    /// The root of the checkout this instance (whose id is `id`) belongs to, if any.
    pub fn workspace<'a>(&'a self, id: &'a str) -> Option<&'a str> {
        match &self.checkout {
            Checkout::None => None,
            Checkout::Own => Some(id),
            Checkout::At(w) => Some(w),
        }
    }
}

/// An instance as written: `[port]` or `[port, "service"]` for a checkout's own instance (its
/// id is the checkout's root), else `{"port": P, "workspace": "ROOT", "service": "S"}` with
/// the unset fields left out (the only form of state format 1 and of the single-file
/// registry, where a `workspace` equal to the id is read as [`Checkout::Own`]).
impl Serialize for Instance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match &self.checkout {
            Checkout::Own => {
                let mut seq = s.serialize_seq(Some(1 + usize::from(self.service.is_some())))?;
                seq.serialize_element(&self.port)?;
                if let Some(service) = &self.service {
                    seq.serialize_element(service)?;
                }
                seq.end()
            }
            other => {
                let workspace = match other {
                    Checkout::At(w) => Some(w),
                    _ => None,
                };
                let n = 1 + usize::from(workspace.is_some()) + usize::from(self.service.is_some());
                let mut map = s.serialize_map(Some(n))?;
                map.serialize_entry("port", &self.port)?;
                if let Some(w) = workspace {
                    map.serialize_entry("workspace", w)?;
                }
                if let Some(service) = &self.service {
                    map.serialize_entry("service", service)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            port: u16,
            #[serde(default)]
            workspace: Option<String>,
            #[serde(default)]
            service: Option<String>,
        }
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Instance;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an instance: [port, \"service\"] or {port, workspace, service}")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Instance, A::Error> {
                use serde::de::Error;
                let port = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let service = seq.next_element()?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(3, &self));
                }
                Ok(Instance {
                    port,
                    checkout: Checkout::Own,
                    service,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Instance, A::Error> {
                let f = Fields::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Instance {
                    port: f.port,
                    // Made [`Checkout::Own`] by [`Instances`] when it is the id.
                    checkout: f.workspace.map_or(Checkout::None, Checkout::At),
                    service: f.service,
                })
            }
        }
        d.deserialize_any(Either)
    }
}

/// A type's instances by id, in id order: a sorted vector, as a type holds a few (at most
/// `max_instances`, 100 unless set), where a tree's nodes would cost more than its entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instances(Vec<(String, Instance)>);

impl Instances {
    fn find(&self, id: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(id))
    }

    pub fn get(&self, id: &str) -> Option<&Instance> {
        self.find(id).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Instance> {
        self.find(id).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.find(id).is_ok()
    }

    /// Sets the instance `id`, returning the one it replaces.
    pub fn insert(&mut self, id: String, instance: Instance) -> Option<Instance> {
        match self.find(&id) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, instance)),
            Err(i) => {
                self.0.insert(i, (id, instance));
                None
            }
        }
    }

    pub fn remove(&mut self, id: &str) -> Option<Instance> {
        self.find(id).ok().map(|i| self.0.remove(i).1)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Instance)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Instance> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl std::ops::Index<&str> for Instances {
    type Output = Instance;

    fn index(&self, id: &str) -> &Instance {
        self.get(id).expect("no instance of that id")
    }
}

impl Extend<(String, Instance)> for Instances {
    fn extend<I: IntoIterator<Item = (String, Instance)>>(&mut self, iter: I) {
        for (id, instance) in iter {
            self.insert(id, instance);
        }
    }
}

impl FromIterator<(String, Instance)> for Instances {
    fn from_iter<I: IntoIterator<Item = (String, Instance)>>(iter: I) -> Self {
        let mut out = Self::default();
        out.extend(iter);
        out
    }
}

impl IntoIterator for Instances {
    type Item = (String, Instance);
    type IntoIter = std::vec::IntoIter<(String, Instance)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Instances {
    type Item = (&'a String, &'a Instance);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, Instance)>,
        fn(&'a (String, Instance)) -> (&'a String, &'a Instance),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Instances {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Map;
        impl<'de> serde::de::Visitor<'de> for Map {
            type Value = Instances;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of instance ids to instances")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Instances, A::Error> {
                let mut out = Instances(Vec::with_capacity(map.size_hint().unwrap_or(0)));
                while let Some((id, mut instance)) = map.next_entry::<String, Instance>()? {
                    if matches!(&instance.checkout, Checkout::At(w) if *w == id) {
                        instance.checkout = Checkout::Own;
                    }
                    // Written in order, so each goes last; a hand-written file may be in
                    // any order, and a repeated id wins as in a map.
                    match out.0.last() {
                        Some((last, _)) if *last >= id => {
                            out.insert(id, instance);
                        }
                        _ => out.0.push((id, instance)),
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Map)
    }
}

/// A running process holding an instance's port (`cargo styxy run`). It is live only while a
/// process with that pid and that start time exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease {
    pub port: u16,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat`), so a
    /// recycled pid is not mistaken for the holder.
    pub start_time: u64,
    pub instance: String,
    /// When the lease was taken, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
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

/// Ranges as `a-b, c-d`.
pub fn join_ranges(ranges: &[PortRange]) -> String {
    ranges
        .iter()
        .map(PortRange::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A named span that auto-allocation can be kept inside (`[strategies.NAME.zones]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub min_port: u16,
    pub max_port: u16,
}

/// A custom placement strategy: for now, a set of zones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strategy {
    #[serde(default)]
    pub zones: BTreeMap<String, Zone>,
}

/// An auto-allocation rule (`[rules."PATTERN"]`): what a new type whose name matches gets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_range_start: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_behavior: Option<InstanceBehavior>,
    /// Allocate new types inside this zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
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

/// The whole registry.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub types: Types,
    #[serde(default)]
    pub rules: BTreeMap<String, Rule>,
    /// Custom placement strategies and their zones.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub strategies: BTreeMap<String, Strategy>,
}

impl Registry {
    /// Every range of every type with its owner, sorted by start.
    pub fn all_ranges(&self) -> Vec<(PortRange, &str)> {
        let mut all: Vec<(PortRange, &str)> = self
            .types
            .iter()
            .flat_map(|(name, t)| t.ranges.iter().map(move |r| (*r, name.as_str())))
            .collect();
        all.sort_unstable();
        all
    }

    /// The types that differ between `self` and `new`: [`Types::changed`].
    pub fn changed_types<'r>(
        &'r self,
        new: &'r Registry,
    ) -> impl Iterator<Item = (&'r String, Option<&'r ServiceType>, Option<&'r ServiceType>)> {
        self.types.changed(&new.types)
    }

    /// The ports inside the ranges of `name` that instances of other types hold: none,
    /// unless a hand edit left ranges overlapping.
    pub fn held_elsewhere(&self, name: &str) -> std::collections::BTreeSet<u16> {
        let Some(t) = self.types.get(name) else {
            return std::collections::BTreeSet::new();
        };
        self.types
            .iter()
            .filter(|(n, o)| {
                n.as_str() != name
                    && o.ranges
                        .iter()
                        .any(|r| t.ranges.iter().any(|m| m.overlaps(r)))
            })
            .flat_map(|(_, o)| o.instances.values().map(|i| i.port))
            .filter(|p| t.contains(*p))
            .collect()
    }

    /// The zone named `name` in any strategy, with the strategy's name.
    pub fn zone(&self, name: &str) -> Option<(&str, Zone)> {
        self.strategies
            .iter()
            .find_map(|(s, st)| st.zones.get(name).map(|z| (s.as_str(), *z)))
    }

    /// The type whose range holds `port`, if any.
    pub fn owner_of(&self, port: u16) -> Option<(&str, &ServiceType)> {
        self.types
            .iter()
            .find(|(_, t)| t.contains(port))
            .map(|(n, t)| (n.as_str(), t))
    }
}

/// One change to the registry, as the audit trail records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Event {
    TypeAllocated {
        service_type: String,
        ranges: Vec<PortRange>,
        placement: &'static str,
        chunk: u16,
    },
    TypeGrew {
        service_type: String,
        ranges: Vec<PortRange>,
        placement: &'static str,
        chunk: u16,
    },
    TypeAdded {
        service_type: String,
        ranges: Vec<PortRange>,
    },
    TypeEdited {
        service_type: String,
        ranges: Vec<PortRange>,
        /// The ranges before the edit.
        from_ranges: Vec<PortRange>,
    },
    TypeRemoved {
        service_type: String,
        ranges: Vec<PortRange>,
    },
    InstanceAssigned {
        service_type: String,
        instance: String,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// An instance left outside its type's ranges by a hand edit (or sharing a port with
    /// another instance) was given a port inside them.
    InstanceMoved {
        service_type: String,
        instance: String,
        from: u16,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    InstanceReleased {
        service_type: String,
        instance: String,
        port: u16,
        #[serde(skip_serializing_if = "Option::is_none")]
        workspace: Option<String>,
    },
    /// An allocation that was refused (full type, no room, unknown type).
    AllocationFailed {
        service_type: String,
        instance: String,
        error: String,
    },
    RuleChanged {
        pattern: String,
    },
    LeaseTaken {
        service_type: String,
        instance: String,
        port: u16,
        lease_pid: u32,
    },
    LeaseEnded {
        service_type: String,
        instance: String,
        port: u16,
        lease_pid: u32,
    },
    /// `gc` dropped something; the event names what.
    Gc {
        service_type: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        reason: String,
    },
    ConfigChanged {
        key: String,
        value: String,
    },
}

impl Event {
    /// Every event's name, as [`Event::name`] gives it.
    pub const NAMES: [&'static str; 14] = [
        "TYPE_ALLOCATED",
        "TYPE_GREW",
        "TYPE_ADDED",
        "TYPE_EDITED",
        "TYPE_REMOVED",
        "INSTANCE_ASSIGNED",
        "INSTANCE_MOVED",
        "INSTANCE_RELEASED",
        "ALLOCATION_FAILED",
        "RULE_CHANGED",
        "LEASE_TAKEN",
        "LEASE_ENDED",
        "GC",
        "CONFIG_CHANGED",
    ];

    /// The event's name in the audit trail and the metrics (`TYPE_ALLOCATED`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TypeAllocated { .. } => "TYPE_ALLOCATED",
            Self::TypeGrew { .. } => "TYPE_GREW",
            Self::TypeAdded { .. } => "TYPE_ADDED",
            Self::TypeEdited { .. } => "TYPE_EDITED",
            Self::TypeRemoved { .. } => "TYPE_REMOVED",
            Self::InstanceAssigned { .. } => "INSTANCE_ASSIGNED",
            Self::InstanceMoved { .. } => "INSTANCE_MOVED",
            Self::InstanceReleased { .. } => "INSTANCE_RELEASED",
            Self::AllocationFailed { .. } => "ALLOCATION_FAILED",
            Self::RuleChanged { .. } => "RULE_CHANGED",
            Self::LeaseTaken { .. } => "LEASE_TAKEN",
            Self::LeaseEnded { .. } => "LEASE_ENDED",
            Self::Gc { .. } => "GC",
            Self::ConfigChanged { .. } => "CONFIG_CHANGED",
        }
    }
}

/// Upper bounds (seconds) of the lock wait and hold histograms' buckets: 0.1 ms × 4^i.
pub const LOCK_BUCKETS: [f64; 10] = [
    0.0001, 0.0004, 0.0016, 0.0064, 0.0256, 0.1024, 0.4096, 1.6384, 6.5536, 26.2144,
];

/// A histogram kept as counts: `buckets[i]` observations fell at or below
/// [`LOCK_BUCKETS`]`[i]` (and above the bound before it); the last one counts the rest.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Histogram {
    pub count: u64,
    pub sum: f64,
    #[serde(default)]
    pub buckets: Vec<u64>,
}

impl Histogram {
    pub fn observe(&mut self, seconds: f64) {
        let i = LOCK_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LOCK_BUCKETS.len());
        self.buckets.resize(LOCK_BUCKETS.len() + 1, 0);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += seconds;
    }
}

/// The metric counters, kept in the state and updated by every commit, so reading them costs
/// the same however long the audit trail is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Audit events recorded, by name.
    #[serde(default)]
    pub events: BTreeMap<String, u64>,
    #[serde(default)]
    pub lock_wait: Histogram,
    #[serde(default)]
    pub lock_hold: Histogram,
}

/// One line of the trail. Every field but `ts`, `event`, `pid` and `user` depends on the
/// event; `lock_wait_ms` and `lock_hold_ms` are on the first line of each locked change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// RFC 3339, UTC.
    pub ts: String,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For `INSTANCE_MOVED`: the port the instance held before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranges: Option<Vec<PortRange>>,
    /// For `TYPE_EDITED`: the ranges before the edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ranges: Option<Vec<PortRange>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The process holding a lease (`pid` is the process that wrote the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_pid: Option<u32>,
    pub pid: u32,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_wait_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_hold_ms: Option<f64>,
    /// The commit the record belongs to (every record of one locked change has the same),
    /// so the next writer can tell whether a killed writer's records reached the trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl Record {
    /// The record's time, if `ts` parses.
    pub fn time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339_weak(&self.ts).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of each event: `name()`, the trail's `event` field and [`Event::NAMES`] agree.
    #[test]
    fn every_event_is_named_once_and_as_the_trail_writes_it() {
        let s = || "x".to_owned();
        let r = || vec![PortRange::new(1, 2)];
        let all = [
            Event::TypeAllocated {
                service_type: s(),
                ranges: r(),
                placement: "after",
                chunk: 2,
            },
            Event::TypeGrew {
                service_type: s(),
                ranges: r(),
                placement: "after",
                chunk: 2,
            },
            Event::TypeAdded {
                service_type: s(),
                ranges: r(),
            },
            Event::TypeEdited {
                service_type: s(),
                ranges: r(),
                from_ranges: r(),
            },
            Event::TypeRemoved {
                service_type: s(),
                ranges: r(),
            },
            Event::InstanceAssigned {
                service_type: s(),
                instance: s(),
                port: 1,
                workspace: None,
            },
            Event::InstanceMoved {
                service_type: s(),
                instance: s(),
                from: 1,
                port: 2,
                workspace: None,
            },
            Event::InstanceReleased {
                service_type: s(),
                instance: s(),
                port: 1,
                workspace: None,
            },
            Event::AllocationFailed {
                service_type: s(),
                instance: s(),
                error: s(),
            },
            Event::RuleChanged { pattern: s() },
            Event::LeaseTaken {
                service_type: s(),
                instance: s(),
                port: 1,
                lease_pid: 1,
            },
            Event::LeaseEnded {
                service_type: s(),
                instance: s(),
                port: 1,
                lease_pid: 1,
            },
            Event::Gc {
                service_type: s(),
                instance: None,
                port: None,
                reason: s(),
            },
            Event::ConfigChanged {
                key: s(),
                value: s(),
            },
        ];
        let names: Vec<&str> = all.iter().map(Event::name).collect();
        assert_eq!(names, Event::NAMES);
        for e in &all {
            assert_eq!(serde_json::to_value(e).unwrap()["event"], e.name());
        }
    }
}
