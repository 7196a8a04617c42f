//! What makes a value or a registry invalid, and what a request the registry cannot take
//! meets: the errors of the model and of the allocation engine built on it.

use super::PortRange;

/// What makes a registry invalid, saying where: its definitions (settings, types, zones,
/// rules) or what its types hold (instances, leases).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Invalid {
    /// A setting, a type's name or range, or a rule's pattern that the CLI refuses too.
    #[error("{0}")]
    Value(AllocError),

    #[error("service type {service_type:?}: {error}")]
    OfType {
        service_type: String,
        error: AllocError,
    },

    #[error("service type {service_type:?} has no ranges")]
    NoRanges { service_type: String },

    #[error("a lease of {service_type:?} (pid {pid}) holds port {port}, outside the type's ranges")]
    LeaseOutside {
        service_type: String,
        pid: u32,
        port: u16,
    },

    #[error(
        "instance {instance:?} of {service_type:?} holds port {port}, which its type cannot give it (outside its ranges {ranges}, another instance's, or another type's)"
    )]
    Misheld {
        service_type: String,
        instance: String,
        port: u16,
        ranges: String,
    },

    #[error("zone {zone:?} is defined in more than one strategy; zone names must be unique")]
    ZoneTwice { zone: String },

    #[error(
        "zone {zone:?} of strategy {strategy:?}: {min_port}-{max_port} is not a span of ports from 1024 up, low to high"
    )]
    ZoneSpan {
        strategy: String,
        zone: String,
        min_port: u16,
        max_port: u16,
    },

    #[error("rule {pattern:?}: chunk_size must be at least 1")]
    RuleChunk { pattern: String },

    #[error("rule {pattern:?} names the zone {zone:?}, which no [strategies.NAME.zones] defines")]
    RuleZone { pattern: String, zone: String },
}

/// A request or a value the registry cannot take: bad names, values and settings, types and
/// rules that do not exist, ranges that overlap or are full, a single-instance type in use.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AllocError {
    #[error("invalid service type name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("invalid instance id {id:?}: {reason}")]
    InvalidInstance { id: String, reason: String },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidValue {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("invalid setting `{key}` = {value:?}: {reason}")]
    InvalidSetting {
        key: String,
        value: String,
        reason: String,
    },

    #[error(
        "range {range} of {name:?} overlaps {other_range} of {other:?}; pick a range that is free (see `cargo styxy list`)"
    )]
    Overlap {
        name: String,
        range: PortRange,
        other: String,
        other_range: PortRange,
    },

    #[error("service type {name:?} already exists; change it with `cargo styxy type set {name}`")]
    TypeExists { name: String },

    #[error("unknown service type {name:?}; {hint}")]
    UnknownType { name: String, hint: String },

    #[error("no rule for pattern {pattern:?}; see `cargo styxy rule list`")]
    UnknownRule { pattern: String },

    #[error("{what}; see `cargo styxy list`")]
    NothingToRelease { what: String },

    #[error(
        "port range {ranges} of {name:?} is full ({count} instances: {holders}); run `cargo styxy gc`, `cargo styxy release`, or raise max_instances"
    )]
    TypeFull {
        name: String,
        ranges: String,
        count: usize,
        holders: String,
    },

    #[error(
        "no room for {chunk} more ports for {name:?} in {lo}-{hi} with gap_size {gap}; free ranges with `cargo styxy release`, or widen the span with `cargo styxy config set max_port …`"
    )]
    NoRoom {
        name: String,
        chunk: u16,
        lo: u16,
        hi: u16,
        gap: u16,
    },

    #[error(
        "zone {zone:?} ({lo}-{hi}) is full: no room for {chunk} more ports for {name:?} with gap_size {gap}; release types in it (`cargo styxy release`), or widen it in [strategies.{strategy}.zones]"
    )]
    ZoneFull {
        zone: String,
        strategy: String,
        name: String,
        chunk: u16,
        lo: u16,
        hi: u16,
        gap: u16,
    },

    #[error(
        "no zone {zone:?}; define it under [strategies.NAME.zones] in the registry (`cargo styxy config path`)"
    )]
    UnknownZone { zone: String },

    #[error(
        "{service_type:?} is single-instance and already running: pid {pid} holds port {port} for {instance}; stop it, or pass --reuse to use its port"
    )]
    SingleInUse {
        service_type: String,
        pid: u32,
        port: u16,
        instance: String,
    },

    #[error(
        "port {port} is pinned with `strict = true` for {service}, but {holder}; free it, or drop `strict` to take another port"
    )]
    PinTaken {
        service: String,
        port: u16,
        holder: String,
    },

    #[error(
        "{service_type:?} already runs from this checkout: pid {pid} holds port {port} for {instance}; stop it, or pass --reuse to use its port"
    )]
    RunningHere {
        service_type: String,
        pid: u32,
        port: u16,
        instance: String,
    },
}

/// What the allocation engine and the checks of values return: errors of one area.
pub type AllocResult<T, E = AllocError> = std::result::Result<T, E>;
