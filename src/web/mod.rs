//! The local web dashboard (`cargo styxy ui`, spec §8): a live port map, service type
//! management, the audit trail, metrics and settings, served on 127.0.0.1 and `[::1]` only.
//! Every change goes through the same change path as the CLI's (`styxy::registry::change`).

mod assets;
mod routes;
pub mod security;
mod server;
mod state;

pub use server::serve;
pub use state::AppState;
