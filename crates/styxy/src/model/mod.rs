//! The ground floor: the registry's plain values (settings, service types, ranges,
//! instances, leases, rules, the events a change records) and their validation.
//!
//! These are read from `registry.toml` layered over the built-in types and from the state
//! file (`crate::registry`), changed by the pure allocator (`crate::allocate`) and written
//! back by the store. Nothing here reads a file or asks the OS, and nothing here imports
//! another module of the crate.

mod error;
mod event;
mod instance;
mod range;
mod registry;
mod service_type;
mod settings;
pub mod validate;

pub use error::{AllocError, AllocResult, Invalid};
pub use event::Event;
pub use instance::{Checkout, Instance, Instances, Lease};
pub use range::{PortRange, join_ranges};
pub use registry::Registry;
pub use service_type::{InstanceBehavior, Origin, ServiceType, TypeFields, Types};
pub use settings::{Placement, Rule, Settings, Strategy, Zone};
