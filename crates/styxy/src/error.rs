//! The library's typed errors, one enum per area, each with its exit code. Each message is
//! one sentence that ends with the fix.

use std::path::PathBuf;

pub use crate::model::{AllocError, AllocResult, Invalid};

/// The process exit codes (README "Exit codes"): each error's area has its own, so a script
/// can tell a lock held too long or a broken registry from a request that was refused.
pub mod exit {
    /// A command that did not succeed: a request the registry cannot take (a full range, an
    /// unknown type), a check that found something (`doctor`, `wait`'s timeout).
    pub const FAILURE: u8 = 1;
    /// The arguments cannot mean anything (clap's code).
    pub const USAGE: u8 = 2;
    /// `registry.toml` or the state does not parse or validate, or is of a newer format.
    pub const INVALID_REGISTRY: u8 = 3;
    /// Another cargo-styxy held the registry lock longer than `STYXY_LOCK_TIMEOUT`.
    pub const LOCK_TIMEOUT: u8 = 4;
    /// The cargo workspace: no manifest, `cargo metadata` failed, a manifest or a
    /// `[package.metadata.styxy]` table that cannot be read.
    pub const WORKSPACE: u8 = 5;
    /// The registry directory cannot be used: no home, a directory others may write in, a
    /// special file where a file belongs, a read or write that failed.
    pub const REGISTRY_IO: u8 = 6;
    /// A file the user named (`-o FILE`) cannot be written.
    pub const OUTPUT: u8 = 7;
}

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
        "{file} was written by a newer cargo-styxy (state format {format}); this one reads format {reads}: upgrade cargo-styxy (`cargo install cargo-styxy`)"
    )]
    NewerState {
        file: PathBuf,
        format: u32,
        /// The newest format this build reads.
        reads: u32,
    },

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
        "gave up waiting {secs} s for the styxy registry lock {lock_file}; another cargo-styxy is holding it (see {who_holds}), or raise STYXY_LOCK_TIMEOUT"
    )]
    LockTimeout {
        lock_file: PathBuf,
        secs: u64,
        /// How to find the holder on this OS (`crate::os::who_holds`).
        who_holds: String,
    },

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

    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("manifest {path} does not exist; pass --manifest-path to a Cargo.toml")]
    NoManifest { path: PathBuf },

    #[error(
        "no Cargo.toml in {dir} or any parent; run this in a cargo workspace or pass --manifest-path"
    )]
    NotInWorkspace { dir: PathBuf },

    #[error("cargo metadata failed for {manifest}: {message}")]
    CargoMetadata { manifest: PathBuf, message: String },

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
    /// A file the user named (`-o FILE`) could not be written: the error met.
    #[error(transparent)]
    Output(Box<Error>),
}

impl StoreError {
    /// The process exit code for this error: see [`exit`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Parse { .. }
            | Self::InvalidRegistry { .. }
            | Self::InvalidState { .. }
            | Self::NewerState { .. } => exit::INVALID_REGISTRY,
            Self::LockTimeout { .. } => exit::LOCK_TIMEOUT,
            Self::UnsafeDir { .. } | Self::NotAFile { .. } | Self::NoHome | Self::Io { .. } => {
                exit::REGISTRY_IO
            }
            Self::RefusedWrite { .. } | Self::NoBackup { .. } => exit::FAILURE,
        }
    }
}

impl WorkspaceError {
    /// The process exit code for this error: see [`exit`].
    pub fn exit_code(&self) -> u8 {
        exit::WORKSPACE
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

    /// The process exit code for this error: its area's (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Store(e) => e.exit_code(),
            Self::Alloc(_) => exit::FAILURE,
            Self::Workspace(e) => e.exit_code(),
            Self::Output(_) => exit::OUTPUT,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
