//! The shared per-user registry: its typed model, where it lives, how it is validated,
//! locked, written atomically and edited without losing the user's comments.

pub mod edit;
pub mod fast;
pub mod model;
pub mod paths;
pub mod snapshot;
pub mod store;
pub mod validate;

pub use model::{
    Instance, InstanceBehavior, Lease, Origin, Placement, PortRange, Registry, Rule, ServiceType,
    Settings,
};
pub use store::{Guard, Store};
