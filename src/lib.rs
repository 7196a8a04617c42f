//! # styxy
//!
//! The library behind `cargo styxy`: stable, unique, known-in-advance ports for every
//! development service of every checkout on a machine, with no daemon. State lives in a
//! per-user registry directory guarded by an OS file lock on a sidecar file: `registry.toml`
//! (what people write, layered over the built-in types) and `state.json` (what the tool
//! decides).
//!
//! The public API is what a build script and an embedder need:
//!
//! - [`build`]: `styxy::build::emit()`, the build-script entry point.
//! - [`session`]: one turn at the registry: [`session::lock`] takes the lock and reads the
//!   registry, change [`registry::Guard::registry`] with the [`allocate`] functions, then
//!   [`session::Session::commit`] writes it, the per-checkout port files and the audit trail.
//! - [`model`]: the registry's plain values (service types, ranges, instances, leases,
//!   settings, rules, events) and their validation.
//! - [`allocate`]: the allocation engine, pure functions of the registry as read under the
//!   lock.
//! - [`registry`]: the [`registry::Store`] (where the registry is, how to read it without
//!   the lock), which reads and commits the [`model::Registry`].
//! - [`Error`]: what can go wrong, each with the fix in its message.
//!
//! Everything else (the files' formats, the port files, the workspace discovery, the probe
//! of listening ports, the audit trail) is private to the crate. [`cli`] is the command-line
//! tool's entry, for `main.rs`.
//!
//! The library builds without the command-line tool (`default-features = false`), so a build
//! script can depend on it without clap or any async runtime.
//!
//! MSRV: Rust 1.89 (`std::fs::File::lock`). The API is not stable before 1.0.

pub mod allocate;
pub(crate) mod assign;
pub(crate) mod audit;
pub mod build;
pub(crate) mod emit;
pub mod error;
pub(crate) mod fsx;
pub mod model;
pub mod os;
pub(crate) mod portfile;
pub(crate) mod probe;
pub mod registry;
pub mod session;
#[cfg(feature = "cli")]
pub(crate) mod view;
pub(crate) mod workspace;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub(crate) mod health;
#[cfg(feature = "cli")]
pub(crate) mod metrics;
#[cfg(feature = "web")]
pub(crate) mod web;

pub use error::{Error, Result};

/// The facts about this machine that allocation needs, from the real OS.
pub fn this_machine() -> allocate::Machine<'static> {
    allocate::Machine {
        ephemeral: probe::ephemeral_range(),
        probe: &probe::Live,
    }
}
