//! The library's typed errors. Each message is one sentence that ends with the fix.

use std::path::PathBuf;

use crate::registry::model::PortRange;

/// The registry's files, directory and lock: what reading or writing them can meet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error(
        "{file}:{line}:{column}: {message}; fix the file by hand{}",
        restore_hint(backup.as_ref())
    )]
    Parse {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
        backup: Option<PathBuf>,
    },

    #[error("{file}: {invalid}; fix the file by hand{}", restore_hint(backup.as_ref()))]
    InvalidRegistry {
        file: PathBuf,
        invalid: Box<Invalid>,
        backup: Option<PathBuf>,
    },

    /// A change that would leave the registry invalid (never written).
    #[error("{file}: refusing to write an invalid registry: {invalid}")]
    RefusedWrite {
        file: PathBuf,
        invalid: Box<Invalid>,
    },

    #[error(
        "{file}: {message} (the state file is cargo-styxy's own; restore it from a copy, or remove it to start again with no instances)"
    )]
    InvalidState { file: PathBuf, message: String },

    #[error(
        "{file} was written by a newer cargo-styxy (state format {format}); this one reads format {}: upgrade cargo-styxy (`cargo install cargo-styxy`)",
        crate::registry::state::FORMAT
    )]
    NewerState { file: PathBuf, format: u32 },

    #[error("refusing to use the registry directory {dir}: {reason}; fix it with `{fix}`")]
    UnsafeDir {
        dir: PathBuf,
        reason: String,
        fix: String,
    },

    #[error("{path} is {kind}, where cargo-styxy keeps a file; move it away")]
    NotAFile { path: PathBuf, kind: &'static str },

    #[error("no backup of the registry in {dir}; nothing to restore")]
    NoBackup { dir: PathBuf },

    #[error(
        "gave up waiting {secs} s for the styxy registry lock {lock_file}; another cargo-styxy is holding it (see `fuser {lock_file}`), or raise STYXY_LOCK_TIMEOUT"
    )]
    LockTimeout { lock_file: PathBuf, secs: u64 },

    #[error("cannot find a registry directory: set STYXY_HOME or pass --registry DIR")]
    NoHome,

    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

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

/// A cargo workspace whose services cannot be told: its manifests and metadata tables.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkspaceError {
    #[error("package `{package}`: `{key}` {reason}; fix it in {manifest}")]
    Metadata {
        package: String,
        key: String,
        reason: String,
        manifest: PathBuf,
    },

    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },

    #[error(
        "{first} and {second} would both get the env name {env}; give one of them its own with `env = \"…\"` in its `[package.metadata.styxy.bins.<bin>]`"
    )]
    EnvClash {
        env: String,
        first: String,
        second: String,
    },

    #[error(
        "{first} and {second} would share one port of service type {service_type:?}; give one its own `service = \"…\"`, or join a shared type with `type = \"…\"`"
    )]
    ServiceClash {
        service_type: String,
        first: String,
        second: String,
    },

    #[error(
        "the workspace at {root} has no services: no bin targets (or all are `skip = true`) and no `[package.metadata.styxy] services`; add a bin or list its services there"
    )]
    NoServices { root: PathBuf },
}

/// Everything that can go wrong in the library: one error of one area.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Alloc(#[from] AllocError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

impl StoreError {
    /// The process exit status for this error (spec: 1 for every error, 2 for usage).
    pub fn exit_code(&self) -> u8 {
        1
    }
}

impl AllocError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

impl WorkspaceError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        1
    }
}

fn restore_hint(backup: Option<&PathBuf>) -> String {
    match backup {
        Some(b) => format!(
            " or restore the last good backup {} with `cargo styxy config restore`",
            b.display()
        ),
        None => String::new(),
    }
}

impl Error {
    /// An I/O error of the registry's files: what was being done, to which path.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Store(StoreError::Io {
            action,
            path: path.into(),
            source,
        })
    }

    /// The process exit status for this error: its area's.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Store(e) => e.exit_code(),
            Self::Alloc(e) => e.exit_code(),
            Self::Workspace(e) => e.exit_code(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the allocation engine and the checks of values return: errors of one area.
pub type AllocResult<T, E = AllocError> = std::result::Result<T, E>;
