//! Registry-wide settings, placement strategies and their zones, auto-allocation rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::InstanceBehavior;

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
