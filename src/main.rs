//! `cargo-styxy`: run as `cargo styxy <command>` or `cargo-styxy <command>`. The commands
//! (`cli/`), the dashboard (`web/`) and what both read back (`observe/`) sit on the `styxy`
//! library.

#![forbid(unsafe_code)]

mod cli;
#[cfg(feature = "mcp")]
mod mcp;
mod observe;
#[cfg(feature = "web")]
mod web;

fn main() -> std::process::ExitCode {
    cli::main()
}
