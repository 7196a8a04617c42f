//! The shared per-user registry: two files with two owners. `registry.toml` holds what
//! people write (`config`), layered over the built-in types; the state holds what the tool
//! decides (`state`). The [`Store`] says where they are and reads them without the lock;
//! [`change`] is the one path that changes them. How the files are written is private.

mod change;
mod commit;
pub mod config;
pub mod counters;
mod lock;
pub mod paths;
pub mod state;
pub mod store;

pub use change::{
    Change, Changed, Replacement, change, change_tidying_last, edit, replace, restore,
};
pub use config::builtins;
pub use store::Store;
