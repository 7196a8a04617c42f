//! The metric counters the state keeps, so reading them costs the same however long the
//! audit trail is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
