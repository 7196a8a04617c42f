//! # styxy-build
//!
//! What a build script depends on to have this checkout's service ports as Rust constants,
//! from [cargo-styxy](https://crates.io/crates/cargo-styxy), with nothing but std: cargo
//! compiles a build script's dependencies a second time, so every crate a helper pulls would
//! cost each user's clean build twice. `cargo styxy init` adds it and this call:
//!
//! ```no_run
//! // build.rs, in `fn main()`:
//! styxy_build::emit().expect("styxy ports");
//! ```
//!
//! ```text
//! // src/main.rs
//! mod ports {
//!     include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs"));
//! }
//! let addr = std::net::SocketAddr::from(([127, 0, 0, 1], ports::API_PORT));
//! ```
//!
//! [`emit`] asks the installed cargo-styxy (`$STYXY_BIN`, else `cargo-styxy` on `PATH`) for
//! the constants through a versioned output, as the `pkg-config` crate asks pkg-config:
//! `cargo-styxy styxy build-script --format-version 1` assigns this checkout's ports if it
//! has none, writes `$OUT_DIR/styxy_ports.rs` and prints cargo's directives, which the
//! helper passes on. cargo-styxy never runs cargo for it, and the build reruns only when
//! this checkout's ports change.
//!
//! Without cargo-styxy (CI, docs.rs, a fresh machine) the build goes on, with a
//! `cargo:warning` that says how to get this checkout's own ports: the constants the last
//! build wrote stay, or, on a first build, each service gets its pinned port or one
//! derived from its type's name, which other checkouts may share.
//!
//! MSRV: Rust 1.89. The API is not stable before 1.0.

#![forbid(unsafe_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod offline;
pub mod rules;
mod toml;

/// The version of cargo-styxy's build-script output this helper reads.
pub const FORMAT_VERSION: u32 = 1;
/// The file written in `$OUT_DIR`.
pub const OUT_FILE: &str = "styxy_ports.rs";
/// The cargo-styxy to ask, instead of the one on `PATH`.
pub const BIN_ENV: &str = "STYXY_BIN";
/// Set to `1` (or `true`) for fallback ports without asking a registry.
pub const OFFLINE_ENV: &str = "STYXY_OFFLINE";

/// Where the constants came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// cargo-styxy: this checkout's ports (or its own fallback, offline).
    CargoStyxy,
    /// No cargo-styxy: the constants the last build wrote.
    LastBuild,
    /// No cargo-styxy and no earlier build: pinned ports, else ports derived from names.
    Derived,
}

/// Why no constants could be written: a manifest that cannot be read, or cargo-styxy's
/// own error (an invalid `[package.metadata.styxy]`, say). Its message says what to fix.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Writes `$OUT_DIR/styxy_ports.rs` (only when its content changes) with a `pub const
/// NAME_PORT: u16` per service of the workspace and a `SERVICES` table, sets
/// `cargo:rustc-env` for this package's own services, and tells cargo when to run it again.
/// See the crate's documentation for where the ports come from.
pub fn emit() -> Result<Source, Error> {
    for var in [
        BIN_ENV,
        OFFLINE_ENV,
        "STYXY_HOME",
        "STYXY_LOCK_TIMEOUT",
        "XDG_CONFIG_HOME",
        "HOME",
        "APPDATA",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let out_dir = env_path("OUT_DIR")?;
    let package_dir = env_path("CARGO_MANIFEST_DIR")?;
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let bin = std::env::var_os(BIN_ENV).unwrap_or_else(|| "cargo-styxy".into());
    let why = match ask(Path::new(&bin)) {
        Ok(directives) => {
            for d in directives {
                println!("{d}");
            }
            return Ok(Source::CargoStyxy);
        }
        Err(Asked::Failed(message)) => return Err(Error(message)),
        Err(Asked::Unusable(why)) => why,
    };
    // Touching build.rs reruns it, once cargo-styxy is there.
    println!("cargo:rerun-if-changed=build.rs");
    let how = "install it with `cargo install cargo-styxy` (or set STYXY_BIN), then `touch build.rs`, for this checkout's own ports";
    let out_file = out_dir.join(OUT_FILE);
    if let Ok(last) = std::fs::read_to_string(&out_file) {
        println!("cargo:warning=styxy: {why}; keeping the ports of the last build; {how}");
        for (env, port) in rules::own_ports(&last, &package) {
            println!("cargo:rustc-env={env}={port}");
        }
        return Ok(Source::LastBuild);
    }
    let found = offline::constants(&package_dir, &package).map_err(Error)?;
    for m in &found.manifests {
        println!("cargo:rerun-if-changed={}", m.display());
    }
    for (env, port) in &found.own {
        println!("cargo:rustc-env={env}={port}");
    }
    std::fs::write(&out_file, &found.text)
        .map_err(|e| Error(format!("cannot write {}: {e}", out_file.display())))?;
    println!(
        "cargo:warning=styxy: {why}; using pinned ports or ports derived from the service names, which other checkouts may share; {how}"
    );
    Ok(Source::Derived)
}

/// The file [`emit`] writes without cargo-styxy and without an earlier build, for the
/// package `package` in `package_dir`: for cargo-styxy's tests, which check that it says
/// what cargo-styxy says offline. Not part of the API.
#[doc(hidden)]
pub fn derived_constants(package_dir: &Path, package: &str) -> Result<String, Error> {
    offline::constants(package_dir, package)
        .map(|found| found.text)
        .map_err(Error)
}

fn env_path(key: &str) -> Result<PathBuf, Error> {
    std::env::var_os(key).map(PathBuf::from).ok_or_else(|| {
        Error(format!(
            "{key} is not set: call styxy_build::emit() from build.rs"
        ))
    })
}

/// Why cargo-styxy gave no constants.
enum Asked {
    /// It is not there, or too old or too new for this helper: the build goes on without it.
    Unusable(String),
    /// It said the workspace is wrong: the build stops with its message.
    Failed(String),
}

/// Runs `bin styxy build-script --format-version 1` (its environment is the build script's,
/// which says `OUT_DIR`, `CARGO_MANIFEST_DIR` and `CARGO_PKG_NAME`) and returns the cargo
/// directives it printed.
fn ask(bin: &Path) -> Result<Vec<String>, Asked> {
    let out = Command::new(bin)
        .args(["styxy", "build-script", "--format-version"])
        .arg(FORMAT_VERSION.to_string())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Asked::Unusable(match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("cargo-styxy is not installed ({} not found)", bin.display())
                }
                _ => format!("cannot run {}: {e}", bin.display()),
            })
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = stderr
        .lines()
        .find(|l| l.starts_with("error"))
        .unwrap_or_else(|| stderr.trim())
        .to_owned();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("cargo:"))
            .map(str::to_owned)
            .collect()),
        // A usage error: a cargo-styxy without this command, or of another format.
        Some(2) => Err(Asked::Unusable(format!(
            "{} does not answer build-script format {FORMAT_VERSION} ({said}); update it",
            bin.display()
        ))),
        _ => Err(Asked::Failed(format!("{}: {said}", bin.display()))),
    }
}
