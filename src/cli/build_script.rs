//! `build-script --format-version 1` (hidden): what the styxy-build helper of a user's build
//! script asks for, as the pkg-config crate asks pkg-config. Run with the build script's
//! environment (`OUT_DIR`, `CARGO_MANIFEST_DIR`, `CARGO_PKG_NAME`), it writes
//! `$OUT_DIR/styxy_ports.rs` and prints cargo's directives on stdout. It never runs cargo.
//!
//! Format 1: stdout is `cargo:` directive lines only (rerun-if-changed,
//! rerun-if-env-changed, rustc-env, warning); the exit code says the rest (2: a format or
//! command this cargo-styxy does not know; 5: the workspace's manifests are wrong).

use clap::Args;

#[derive(Debug, Args)]
pub struct BuildScriptArgs {
    /// The output format the helper reads (1)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1))]
    pub format_version: u32,
}

pub fn run(args: BuildScriptArgs) -> anyhow::Result<()> {
    // clap takes format 1 only; a later format is a branch here.
    debug_assert_eq!(args.format_version, 1);
    styxy::build::emit()?;
    Ok(())
}
