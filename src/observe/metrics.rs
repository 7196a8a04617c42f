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

use styxy::allocate::Space;
#[cfg(feature = "web")]
use styxy::audit::Record;
use styxy::model::{PortRange, Registry};
use styxy::registry::counters::{Counters, Histogram, LOCK_BUCKETS};

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
    #[cfg(feature = "web")]
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

/// How many ports of `ranges` lie inside the auto-allocation span.
fn in_space(ranges: &[PortRange], space: Space) -> u64 {
    let (lo, hi) = (u32::from(space.lo), u32::from(space.hi));
    ranges
        .iter()
        .filter_map(|r| {
            let (s, e) = (u32::from(r.start).max(lo), u32::from(r.end).min(hi));
            (s <= e).then(|| u64::from(e - s + 1))
        })
        .sum()
}

fn span_len(space: Space) -> f64 {
    f64::from(u32::from(space.hi).saturating_sub(u32::from(space.lo)) + 1)
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

/// The metrics of the registry in `store` as it is now, with the machine's listeners and
/// the leases' liveness probed: what `metrics` prints and the dashboard's `/metrics` serves.
pub fn of_store(store: &styxy::registry::Store, exposition: Exposition) -> styxy::Result<String> {
    let (reg, counters) = store.read_with_counters()?;
    let listening = styxy::probe::listening_ports();
    let leases_live = reg
        .types
        .values()
        .flat_map(|t| &t.leases)
        .filter(|l| styxy::probe::lease_is_live(l))
        .count();
    Ok(render(
        &Inputs {
            registry: &reg,
            space: styxy::allocate::space(&reg, &styxy::this_machine()),
            counters: &counters,
            listening: listening.as_ref(),
            leases_live: i64::try_from(leases_live).unwrap_or(i64::MAX),
        },
        exposition,
    ))
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

    let in_space: u64 = reg
        .types
        .values()
        .map(|t| in_space(&t.ranges, inputs.space))
        .sum();
    let utilization = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    utilization.set(in_space as f64 / span_len(inputs.space));
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

/// The registry's recent past in equal intervals, for the dashboard's charts: counts and lock
/// times from the audit trail, and the instances and the span's use at the end of each
/// interval, found by walking the trail back from the registry as it is now.
#[cfg(feature = "web")]
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct History {
    /// The end of each interval, in seconds since the Unix epoch; the last one is now.
    pub t: Vec<u64>,
    /// The intervals' length, in seconds.
    pub step_s: u64,
    /// Instances assigned, allocations refused and instances released (`gc` included).
    pub assigned: Vec<u64>,
    pub failed: Vec<u64>,
    pub released: Vec<u64>,
    /// Instances holding a port at the end of the interval.
    pub instances: Vec<u64>,
    /// The share of today's auto-allocation span taken by ranges at the end of the interval,
    /// 0-1; `None` before an edit whose earlier ranges the trail does not say (records of
    /// older versions).
    pub utilization: Vec<Option<f64>>,
    /// The mean and the longest lock wait, and the mean lock hold, of the interval's
    /// changes, in milliseconds; `None` for an interval without changes.
    pub lock_wait_ms: Vec<Option<f64>>,
    pub lock_wait_max_ms: Vec<Option<f64>>,
    pub lock_hold_ms: Vec<Option<f64>>,
}

/// Intervals of equal whole seconds covering exactly `span` (whole seconds, at least one)
/// ending at `now`: as many as `buckets` where that divides `span`, else the most below it
/// that does (`span=1h`, `buckets=1000`: 900 of 4 s). From `records` (oldest first, as
/// `audit::read` gives them) and the registry `reg` as it is at `now`. Hand edits of
/// `registry.toml` are not in the trail, so the past before one is drawn as if it had
/// always been so.
#[cfg(feature = "web")]
pub fn history(
    reg: &Registry,
    space: Space,
    records: &[Record],
    now: std::time::SystemTime,
    span: std::time::Duration,
    buckets: u32,
) -> History {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let span_s = span.as_secs().max(1);
    let mut n = u64::from(buckets.max(1)).min(span_s);
    while !span_s.is_multiple_of(n) {
        n -= 1;
    }
    let step = span_s / n;
    let end = secs(now);
    let t: Vec<u64> = (0..n)
        .map(|i| end.saturating_sub((n - 1 - i) * step))
        .collect();
    let first = end.saturating_sub(n * step);
    let len = t.len();
    let mut h = History {
        t,
        step_s: step,
        assigned: vec![0; len],
        failed: vec![0; len],
        released: vec![0; len],
        instances: vec![0; len],
        utilization: vec![None; len],
        lock_wait_ms: vec![None; len],
        lock_wait_max_ms: vec![None; len],
        lock_hold_ms: vec![None; len],
    };
    // The current figures, undone record by record going back in time.
    let mut instances = reg
        .types
        .values()
        .map(|t| t.instances.len() as i64)
        .sum::<i64>();
    let mut reserved = reg
        .types
        .values()
        .map(|t| in_space(&t.ranges, space) as i64)
        .sum::<i64>();
    let mut known = true;
    let timed: Vec<(u64, &Record)> = records
        .iter()
        .filter_map(|r| Some((secs(r.time()?), r)))
        .collect();
    // Counts and lock times, in the interval each record falls in.
    let mut waits: Vec<(f64, f64, f64, u32)> = vec![(0.0, 0.0, 0.0, 0); len];
    for &(when, r) in timed
        .iter()
        .filter(|(when, _)| *when > first && *when <= end)
    {
        let j = usize::try_from((when - first - 1) / step).map_or(len - 1, |j| j.min(len - 1));
        match r.event.as_str() {
            "INSTANCE_ASSIGNED" => h.assigned[j] += 1,
            "ALLOCATION_FAILED" => h.failed[j] += 1,
            "INSTANCE_RELEASED" => h.released[j] += 1,
            "GC" if r.instance.is_some() => h.released[j] += 1,
            _ => {}
        }
        if let Some(wait) = r.lock_wait_ms {
            let w = &mut waits[j];
            w.0 += wait;
            w.1 = w.1.max(wait);
            w.2 += r.lock_hold_ms.unwrap_or(0.0);
            w.3 += 1;
        }
    }
    for (i, (sum, max, hold, count)) in waits.into_iter().enumerate() {
        if count > 0 {
            h.lock_wait_ms[i] = Some(sum / f64::from(count));
            h.lock_wait_max_ms[i] = Some(max);
            h.lock_hold_ms[i] = Some(hold / f64::from(count));
        }
    }
    // The figures at each interval's end: today's, with every later record undone.
    let in_ranges =
        |rs: &Option<Vec<PortRange>>| rs.as_deref().map_or(0, |rs| in_space(rs, space) as i64);
    let mut later = timed.iter().rev().peekable();
    for i in (0..len).rev() {
        while let Some((_, r)) = later.next_if(|(when, _)| *when > h.t[i]) {
            match r.event.as_str() {
                "INSTANCE_ASSIGNED" => instances -= 1,
                "INSTANCE_RELEASED" => instances += 1,
                "GC" if r.instance.is_some() => instances += 1,
                "TYPE_ALLOCATED" | "TYPE_ADDED" | "TYPE_GREW" => reserved -= in_ranges(&r.ranges),
                "TYPE_REMOVED" => reserved += in_ranges(&r.ranges),
                "TYPE_EDITED" if r.from_ranges.is_some() => {
                    reserved += in_ranges(&r.from_ranges) - in_ranges(&r.ranges);
                }
                "TYPE_EDITED" => known = false,
                _ => {}
            }
        }
        h.instances[i] = u64::try_from(instances).unwrap_or(0);
        h.utilization[i] =
            known.then(|| (reserved.max(0) as f64 / span_len(space)).clamp(0.0, 1.0));
    }
    h
}

#[cfg(test)]
#[cfg(feature = "web")]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use styxy::allocate::manage::add_type;
    use styxy::allocate::{Machine, Request, allocate};
    use styxy::model::TypeFields;

    /// A record of `event` `ago` seconds before `now`, with the given extra fields.
    fn record(now: SystemTime, ago: u64, event: &str, extra: serde_json::Value) -> Record {
        let ts = humantime::format_rfc3339(now - Duration::from_secs(ago)).to_string();
        let mut v = serde_json::json!({ "ts": ts, "event": event, "pid": 1, "user": "u" });
        if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
            map.extend(extra);
        }
        serde_json::from_value(v).unwrap()
    }

    /// An hour in six intervals: the counts fall in their intervals, and the instances and
    /// the span's use at each interval's end are today's with every later change undone.
    #[test]
    fn history_walks_the_trail_back_from_now() {
        let mut reg = Registry::default();
        let change = TypeFields {
            ranges: Some(vec![PortRange::new(10000, 10009)]),
            ..TypeFields::default()
        };
        add_type(&mut reg, "t", change).unwrap();
        let machine = Machine {
            ephemeral: || None,
            probe: &|_| false,
            checkouts_gone: |roots| vec![false; roots.len()],
        };
        for instance in ["a", "b"] {
            let request = Request {
                service_type: "t",
                instance,
                ..Request::default()
            };
            allocate(&mut reg, &machine, &request).unwrap();
        }
        let space = Space {
            lo: 10000,
            hi: 10099,
            ephemeral: None,
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let r = |r: [u16; 2]| serde_json::json!([r]);
        let ranges = r([10000, 10004]);
        let records = [
            record(
                now,
                3100,
                "TYPE_ADDED",
                serde_json::json!({ "ranges": ranges }),
            ),
            record(
                now,
                1800,
                "INSTANCE_ASSIGNED",
                serde_json::json!({ "instance": "a", "lock_wait_ms": 2.0, "lock_hold_ms": 1.0 }),
            ),
            record(
                now,
                1700,
                "INSTANCE_ASSIGNED",
                serde_json::json!({ "instance": "b", "lock_wait_ms": 4.0, "lock_hold_ms": 3.0 }),
            ),
            record(
                now,
                900,
                "TYPE_EDITED",
                serde_json::json!({ "ranges": r([10000, 10009]), "from_ranges": ranges }),
            ),
            record(
                now,
                600,
                "INSTANCE_ASSIGNED",
                serde_json::json!({ "instance": "c" }),
            ),
            record(
                now,
                300,
                "INSTANCE_RELEASED",
                serde_json::json!({ "instance": "c" }),
            ),
            record(
                now,
                100,
                "ALLOCATION_FAILED",
                serde_json::json!({ "instance": "d" }),
            ),
        ];
        let h = history(&reg, space, &records, now, Duration::from_secs(3600), 6);
        assert_eq!(h.step_s, 600);
        assert_eq!(h.t.first(), Some(&(1_800_000_000 - 3000)));
        assert_eq!(h.t.last(), Some(&1_800_000_000));
        assert_eq!(h.assigned, [0, 0, 1, 1, 1, 0]);
        assert_eq!(h.released, [0, 0, 0, 0, 0, 1]);
        assert_eq!(h.failed, [0, 0, 0, 0, 0, 1]);
        assert_eq!(h.instances, [0, 0, 1, 2, 3, 2]);
        let used: Vec<Option<f64>> = [0.05, 0.05, 0.05, 0.05, 0.1, 0.1].map(Some).into();
        assert_eq!(h.utilization, used);
        assert_eq!(h.lock_wait_ms[2..4], [Some(2.0), Some(4.0)]);
        assert_eq!(h.lock_hold_ms[3], Some(3.0));
        assert_eq!(h.lock_wait_ms[0], None);

        // An edit written before `from_ranges` existed leaves the span's use before it unknown.
        let mut old = records.clone();
        old[3].from_ranges = None;
        let h = history(&reg, space, &old, now, Duration::from_secs(3600), 6);
        assert_eq!(h.utilization[..4], [None; 4]);
        assert_eq!(h.utilization[4], Some(0.1));

        // The window is the span, whatever the bucket count asked: an hour in (at most) a
        // thousand intervals is 900 of 4 s, not 1000 of 3 s (3000 s).
        for (span, buckets, n) in [(3600, 1000, 900), (3600, 7, 6), (61, 60, 1), (60, 1000, 60)] {
            let h = history(
                &reg,
                space,
                &records,
                now,
                Duration::from_secs(span),
                buckets,
            );
            assert_eq!(h.t.len() as u64, n, "{span} s in {buckets}");
            assert_eq!(h.step_s * n, span, "{span} s in {buckets}");
            assert_eq!(h.t[0], 1_800_000_000 - span + h.step_s);
        }
    }
}
