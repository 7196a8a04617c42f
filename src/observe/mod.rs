//! What is read back from the registry, shared by the commands and the dashboard: `doctor`'s
//! findings (`health`), the Prometheus metrics (`metrics`) and the list view (`view`).

pub mod health;
pub mod metrics;
pub mod view;
