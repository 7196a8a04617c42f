//! Port ranges: an inclusive span of ports, written `[start, end]`.

use std::fmt;

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
                f.write_str("a range [start, end] or \"start-end\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PortRange, E> {
                super::validate::parse_range(text).map_err(E::custom)
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
        d.deserialize_any(Pair)
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
