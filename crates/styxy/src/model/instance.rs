//! Instances (one holder of a port inside a type) and leases (a process holding it).

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// The process's start time as the OS tells it (clock ticks since boot on Linux), so a
    /// recycled pid is not mistaken for the holder.
    pub start_time: u64,
    pub instance: String,
    /// When the lease was taken, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}
