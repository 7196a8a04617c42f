//! The library's typed errors. Each message is one sentence that ends with the fix.

use std::path::PathBuf;

pub use crate::model::{AllocError, AllocResult, Invalid};

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
