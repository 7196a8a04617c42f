//! The shared per-user registry: two files with two owners. `registry.toml` holds what
//! people write (`config`), layered over the built-in types; the state holds what the tool
//! decides (`state`). The [`Store`] locks, reads both whole and commits; the [`model`] is
//! what they hold. How the files are read and written is private.

pub(crate) mod config;
mod lock;
pub mod model;
pub mod paths;
pub(crate) mod state;
pub(crate) mod store;
pub mod validate;

pub use config::builtins;
pub use model::{
    Instance, InstanceBehavior, Lease, Origin, Placement, PortRange, Registry, Rule, ServiceType,
    Settings,
};
pub use store::{Guard, Store};
