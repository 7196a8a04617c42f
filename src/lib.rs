//! # styxy
//!
//! The library behind `cargo styxy`: stable, unique, known-in-advance ports for every
//! development service of every checkout on a machine, with no daemon. State lives in a
//! per-user registry directory guarded by an OS file lock on a sidecar file: `registry.toml`
//! (what people write, layered over the built-in types) and `state.json` (what the tool
//! decides).
//!
//! - [`registry`]: the registry's model, location, lock and atomic, comment-preserving writes.
//! - [`allocate`]: the allocation engine, pure functions of the registry as read under the
//!   lock.
//! - [`probe`]: whether a port is listening now, and the OS ephemeral range.
//! - [`workspace`]: a cargo workspace's services, their type and env names.
//! - [`session`]: one command's turn at the registry: lock, tidy, commit, and the port
//!   files and audit lines that follow a commit.
//! - [`portfile`]: the per-checkout projection of the registry that build scripts read.
//! - [`build`]: `styxy::build::emit()`, the build-script entry point.
//! - [`view`]: what `list` and the dashboard show.
//!
//! The library builds without the command-line tool (`default-features = false`), so a build
//! script can depend on it without clap or any async runtime.
//!
//! MSRV: Rust 1.89 (`std::fs::File::lock`). The API is not stable before 1.0.

pub mod allocate;
pub mod assign;
pub mod audit;
pub mod build;
pub mod emit;
pub mod error;
pub mod fsx;
pub mod portfile;
pub mod probe;
pub mod registry;
pub mod session;
pub mod view;
pub mod workspace;

#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "cli")]
pub mod metrics;
#[cfg(feature = "web")]
pub mod web;

pub use error::{Error, Result};

/// The facts about this machine that allocation needs, from the real OS.
pub fn this_machine() -> allocate::Machine<'static> {
    allocate::Machine {
        ephemeral: probe::ephemeral_range(),
        probe: &probe::is_listening,
    }
}
