//! The shared per-user registry: two files with two owners. `registry.toml` holds what
//! people write (`config`), layered over the built-in types; the state holds what the tool
//! decides (`state`). The [`Store`] locks, reads both whole and commits the
//! [`crate::model::Registry`] they hold. How the files are read and written is private.

pub mod config;
pub mod counters;
mod lock;
pub mod paths;
pub mod state;
pub mod store;

pub use config::builtins;
pub use store::{Guard, Store};
