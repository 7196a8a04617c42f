//! The shared per-user registry: two files with two owners. `registry.toml` holds what
//! people write ([`config`]), layered over the built-in types; the state holds what the tool
//! decides ([`state`]). [`store`] locks, reads both whole and commits.

pub mod config;
mod lock;
pub mod model;
pub mod paths;
pub mod state;
pub mod store;
pub mod validate;

pub use model::{
    Instance, InstanceBehavior, Lease, Origin, Placement, PortRange, Registry, Rule, ServiceType,
    Settings,
};
pub use store::{Guard, Store};
