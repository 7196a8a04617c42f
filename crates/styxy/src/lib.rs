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
//! - [`build`]: the constants a build script gets, through the `styxy-build` helper and
//!   `cargo-styxy styxy build-script`.
//! - [`registry::change()`]: the one change path: takes the lock, reads and tidies the
//!   registry, runs your change on it (with the [`allocate`] functions), commits it (the
//!   state, `registry.toml` when a person's config changed, the per-checkout port files, the
//!   audit trail), releases the lock and returns your value with the warnings met.
//! - [`model`]: the registry's plain values (service types, ranges, instances, leases,
//!   settings, rules, events) and their validation.
//! - [`allocate`]: the allocation engine, pure functions of the registry as read under the
//!   lock.
//! - [`registry`]: the [`registry::Store`] (where the registry is, how to read it without
//!   the lock), which reads and commits the [`model::Registry`].
//! - [`Error`]: what can go wrong, each with the fix in its message.
//!
//! The rest is what the `cargo-styxy` binary builds on: [`workspace`] (a checkout's
//! services), [`assign`], [`emit`] (what the ports are written as: env files, constants,
//! port files),
//! [`audit`], [`probe`] (what listens), [`os`] (every question asked of the OS) and [`fsx`]
//! (how the registry's files are written).
//!
//! The library has no CLI, web or async crates. Its one feature, `tool`, adds what the
//! command-line tool needs of the OS (the kernel's listing of listening sockets and their
//! owners, `run`'s signal handling); a build script leaves it off.
//!
//! MSRV: Rust 1.89 (`std::fs::File::lock`). The API is not stable before 1.0.

pub mod allocate;
pub mod assign;
pub mod audit;
pub mod build;
pub mod emit;
pub mod error;
pub mod fsx;
pub mod gc;
pub mod model;
pub mod os;
pub mod probe;
pub mod registry;
pub mod workspace;

pub use error::{Error, Result};

/// The facts about this machine that allocation needs, from the real OS.
pub fn this_machine() -> allocate::Machine<'static> {
    allocate::Machine {
        ephemeral: probe::ephemeral_range,
        probe: &probe::Live,
        checkout_gone,
    }
}

/// Whether the checkout root `root` (an absolute path) is gone from disk: a path that is
/// not absolute never is, and only "not found" counts (a directory that cannot be read
/// now is not a removed one).
fn checkout_gone(root: &str) -> bool {
    let path = std::path::Path::new(root);
    path.is_absolute()
        && std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}
