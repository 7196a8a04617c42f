//! The whole registry: settings, service types, rules and strategies.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{PortRange, Rule, ServiceType, Settings, Strategy, Types, Zone};

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
