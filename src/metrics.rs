//! Prometheus metrics (`prometheus-client`): gauges from the registry as it is now, counters
//! and histograms from the counters every commit updates in the state, so they are monotonic
//! across processes and cost the same whatever the audit trail's size. Written in the classic
//! text format (0.0.4, what node_exporter's textfile collector and `promtool` read) or in
//! OpenMetrics, both by the crate's encoders; families in a fixed order, and the series of a
//! family sorted by their labels.

use std::collections::{BTreeMap, BTreeSet};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry as Metrics;

use crate::allocate::Space;
use crate::registry::model::{Counters, Histogram, LOCK_BUCKETS, Registry};

/// A histogram as the state keeps it, encoded as it is.
#[derive(Debug)]
struct Stored(Histogram);

impl EncodeMetric for Stored {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        let h = &self.0;
        let buckets: Vec<(f64, u64)> = LOCK_BUCKETS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, bound)| (bound, h.buckets.get(i).copied().unwrap_or(0)))
            .collect();
        encoder.encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The two text expositions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// The classic Prometheus text format, 0.0.4.
    Classic,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Exposition {
    /// The HTTP `Content-Type` of the exposition.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Classic => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A family of gauges or counters whose series are written in the order of their labels
/// (prometheus-client's `Family` keeps them in a hash map, so its order changes run to run).
#[derive(Debug)]
struct Sorted<L> {
    series: BTreeMap<L, u64>,
    kind: MetricType,
}

impl<L: Ord> Sorted<L> {
    fn new(kind: MetricType) -> Self {
        Self {
            series: BTreeMap::new(),
            kind,
        }
    }

    fn set(&mut self, labels: L, value: u64) {
        self.series.insert(labels, value);
    }

    fn add(&mut self, labels: L, value: u64) {
        *self.series.entry(labels).or_default() += value;
    }
}

impl<L: EncodeLabelSet + Ord + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Sorted<L> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.series {
            let mut series = encoder.encode_family(labels)?;
            match self.kind {
                MetricType::Counter => series.encode_counter::<NoLabelSet, _, u64>(value, None)?,
                _ => series.encode_gauge(&i64::try_from(*value).unwrap_or(i64::MAX))?,
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        self.kind
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct OriginLabel {
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct TypeLabel {
    service_type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

/// What the metrics are computed from.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub registry: &'a Registry,
    pub space: Space,
    pub counters: &'a Counters,
    /// Ports listening now, where the OS tells.
    pub listening: Option<&'a BTreeSet<u16>>,
    pub leases_live: i64,
}

/// Ports inside the registry's ranges that something listens on but no instance holds.
pub fn foreign_listeners(reg: &Registry, listening: &BTreeSet<u16>) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (name, t) in &reg.types {
        let held: BTreeSet<u16> = t.instances.values().map(|i| i.port).collect();
        for r in &t.ranges {
            out.extend(
                listening
                    .range(r.start..=r.end)
                    .filter(|p| !held.contains(p))
                    .map(|p| (*p, name.clone())),
            );
        }
    }
    out.sort();
    out
}

/// The metrics, as `exposition` writes them.
pub fn render(inputs: &Inputs<'_>, exposition: Exposition) -> String {
    let reg = inputs.registry;
    let mut m = Metrics::default();

    let mut types = Sorted::new(MetricType::Gauge);
    for origin in ["builtin", "user", "auto"] {
        let n = reg
            .types
            .values()
            .filter(|t| t.origin.as_str() == origin)
            .count();
        types.set(
            OriginLabel {
                origin: origin.into(),
            },
            n as u64,
        );
    }
    m.register(
        "styxy_service_types",
        "Service types in the registry, by origin",
        types,
    );

    let reserved: u64 = reg
        .types
        .values()
        .flat_map(|t| &t.ranges)
        .map(|r| u64::from(r.len()))
        .sum();
    let ports_reserved = Gauge::<i64>::default();
    ports_reserved.set(i64::try_from(reserved).unwrap_or(i64::MAX));
    m.register(
        "styxy_ports_reserved",
        "Ports inside the ranges of all service types",
        ports_reserved,
    );

    let (lo, hi) = (u32::from(inputs.space.lo), u32::from(inputs.space.hi));
    let in_space: u64 = reg
        .types
        .values()
        .flat_map(|t| &t.ranges)
        .filter_map(|r| {
            let (s, e) = (u32::from(r.start).max(lo), u32::from(r.end).min(hi));
            (s <= e).then(|| u64::from(e - s + 1))
        })
        .sum();
    let span = f64::from(hi.saturating_sub(lo) + 1);
    let utilization = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    utilization.set(in_space as f64 / span);
    m.register(
        "styxy_port_space_utilization_ratio",
        "Share of the auto-allocation span (min_port..max_port) taken by ranges",
        utilization,
    );

    let mut instances = Sorted::new(MetricType::Gauge);
    for (name, t) in reg.types.iter().filter(|(_, t)| !t.instances.is_empty()) {
        instances.set(
            TypeLabel {
                service_type: name.clone(),
            },
            t.instances.len() as u64,
        );
    }
    m.register(
        "styxy_instances",
        "Instances holding a port, by service type",
        instances,
    );

    let leases = Gauge::<i64>::default();
    leases.set(inputs.leases_live);
    m.register("styxy_leases_live", "Leases of running processes", leases);

    let mut allocations = Sorted::new(MetricType::Counter);
    for result in ["assigned", "failed"] {
        allocations.add(
            ResultLabel {
                result: result.into(),
            },
            0,
        );
    }
    let mut events = Sorted::new(MetricType::Counter);
    let by_event = &inputs.counters.events;
    for (event, n) in by_event {
        events.add(
            EventLabel {
                event: event.clone(),
            },
            *n,
        );
        let result = match event.as_str() {
            "INSTANCE_ASSIGNED" => "assigned",
            "ALLOCATION_FAILED" => "failed",
            _ => continue,
        };
        allocations.add(
            ResultLabel {
                result: result.into(),
            },
            *n,
        );
    }
    m.register(
        "styxy_allocations",
        "Instance allocations, by result",
        allocations,
    );
    m.register("styxy_events", "Registry changes, by audit event", events);
    m.register(
        "styxy_lock_wait_seconds",
        "Time spent waiting for the registry lock",
        Stored(inputs.counters.lock_wait.clone()),
    );
    m.register(
        "styxy_lock_hold_seconds",
        "Time the registry lock was held",
        Stored(inputs.counters.lock_hold.clone()),
    );

    let foreign = Gauge::<i64>::default();
    if let Some(listening) = inputs.listening {
        foreign.set(i64::try_from(foreign_listeners(reg, listening).len()).unwrap_or(i64::MAX));
    }
    m.register(
        "styxy_foreign_listeners",
        "Listening ports inside our ranges that no instance holds",
        foreign,
    );

    let mut out = String::new();
    let _ = match exposition {
        Exposition::Classic => prometheus_client::encoding::prometheus_text::encode(&mut out, &m),
        Exposition::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &m),
    };
    out
}
