//! The workspace's ports as Rust constants, for a build script: what `cargo-styxy styxy
//! build-script` runs when the build helper `styxy-build` asks it (with the build script's
//! environment), so that a user's build.rs pulls none of this library's dependencies.
//!
//! `emit` never runs cargo (a build script that does can deadlock on cargo's locks) and
//! never fails a build for want of a registry: offline (`STYXY_OFFLINE=1`) or without a
//! writable home it falls back to pinned ports or ports derived from the service names, with
//! a `cargo:warning`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::emit::portfile;
use crate::error::{AllocError, Error, Result};
use crate::registry::{Store, paths};
use crate::workspace::{self, Service, manifests};

pub use styxy_build::{OFFLINE_ENV, OUT_FILE};

/// What [`emit`] did.
#[derive(Debug, Clone)]
pub struct Report {
    /// Every service of the workspace with its port.
    pub ports: Vec<(Service, u16)>,
    /// The ports are fallbacks, not from the registry.
    pub offline: bool,
    /// The generated file.
    pub out_file: PathBuf,
}

fn env_path(key: &'static str) -> Result<PathBuf> {
    std::env::var_os(key).map(PathBuf::from).ok_or_else(|| {
        Error::from(AllocError::InvalidValue {
            what: "environment",
            value: key.to_owned(),
            reason: "is not set; `cargo-styxy styxy build-script` runs from a build script (styxy_build::emit())".into(),
        })
    })
}

/// Writes `$OUT_DIR/styxy_ports.rs` (only when its content changes) with a `pub const
/// NAME_PORT: u16` per service of the workspace and a `SERVICES` table, emits
/// `cargo:rustc-env` for this package's own services, and tells cargo to rerun only when
/// this workspace's port file, `registry.toml` or its manifests change (the helper, which
/// runs this, watches the variables read).
pub fn emit() -> Result<Report> {
    let manifest_dir = env_path("CARGO_MANIFEST_DIR")?;
    let out_dir = env_path("OUT_DIR")?;
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let (ws, manifests) = manifests::discover(&manifest_dir)?;
    for m in &manifests {
        println!("cargo:rerun-if-changed={}", m.display());
    }
    let services = workspace::services(&ws)?;
    let root = workspace::root_id(&ws.root)?;
    let offline = std::env::var(OFFLINE_ENV).is_ok_and(|v| v == "1" || v == "true");

    let registry = if offline {
        println!(
            "cargo:warning=styxy: {OFFLINE_ENV} is set; using fallback ports, which other checkouts may share"
        );
        None
    } else {
        match from_registry(&ws.root, &root, &services) {
            Ok(found) => Some(found),
            Err(e) => {
                println!(
                    "cargo:warning=styxy: no registry ({e}); using fallback ports, which other checkouts may share"
                );
                None
            }
        }
    };
    let fallback = registry.is_none();
    let (ports, watched) = match registry {
        Some(found) => found,
        None => (
            services.iter().map(workspace::fallback_port).collect(),
            Vec::new(),
        ),
    };
    for w in watched {
        println!("cargo:rerun-if-changed={}", w.display());
    }
    let ports: Vec<(Service, u16)> = services.into_iter().zip(ports).collect();
    for (s, port) in &ports {
        if s.package == package {
            println!("cargo:rustc-env={}={port}", s.env);
        }
    }
    let out_file = out_dir.join(OUT_FILE);
    crate::fsx::write_if_changed(&out_file, crate::emit::rust(&root, &ports).as_bytes())?;
    Ok(Report {
        ports,
        offline: fallback,
        out_file,
    })
}

/// The ports from the port file, assigning first when it lacks any; and the paths to watch:
/// the port file (or its nearest existing ancestor directory: cargo reruns a script on every
/// build when a watched path does not exist) and `registry.toml`.
fn from_registry(
    root_dir: &Path,
    root: &str,
    services: &[Service],
) -> Result<(Vec<u16>, Vec<PathBuf>)> {
    let before_build = std::fs::metadata(root_dir.join("Cargo.toml"))
        .and_then(|m| m.modified())
        .ok()
        .or(Some(SystemTime::UNIX_EPOCH));
    let store = Store::new(paths::registry_dir(None)?).backdate_watched(before_build);
    let pf_path = portfile::path(store.dir(), root);
    // A port file derived from an older registry (a hand edit, a kill) is not believed.
    let ports = match store
        .current_port_file(root)
        .and_then(|pf| crate::assign::from_port_file(&pf, services))
    {
        Some(ports) => ports,
        None => {
            let assigned = crate::assign::assign(&store, &crate::this_machine(), root, services)?;
            for w in assigned.warnings {
                println!("cargo:warning=styxy: {w}");
            }
            assigned.value.into_iter().map(|a| a.grant.port).collect()
        }
    };
    let mut watched: Vec<PathBuf> = pf_path
        .ancestors()
        .find(|p| p.exists())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    // A hand edit of registry.toml changes no port file until a styxy command runs: watched
    // too, so that the next build rereads the registry. Commands change it only when a
    // person's config changes (`type`, `rule`, `config set`); allocations change the state,
    // and only the port files of the checkouts they touch.
    let config = store.file();
    if config.exists() {
        watched.push(config);
    }
    Ok((ports, watched))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::workspace::{self, manifests};

    /// The build helper derives the constants from the manifests on its own (it has no
    /// TOML crate): for a workspace that uses every key, it must say what cargo-styxy says
    /// offline.
    #[test]
    fn the_helpers_offline_constants_are_cargo_styxys() {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = [
            (
                "Cargo.toml",
                r#"
[workspace]
members = ["crates/*", "tools"]
exclude = ["crates/ignored"]
[workspace.metadata.styxy]
prefix = "SHOP_"
"#,
            ),
            (
                "crates/api/Cargo.toml",
                r#"
[package]
name = "api"          # the package
version = "0.1.0"
description = """
multi-line, "quoted" """

[[bin]]
name = "worker"
path = "src/worker.rs"

[package.metadata.styxy.bins.api]
port = 18080
url = "http://127.0.0.1:{port}/v1"
[package.metadata.styxy.bins.worker]
env = "JOBS_PORT"
service = "api-jobs"
[package.metadata.styxy]
services = ["postgres", 'redis']
"#,
            ),
            ("crates/api/src/main.rs", "fn main() {}"),
            ("crates/api/src/worker.rs", "fn main() {}"),
            ("crates/api/src/bin/admin/main.rs", "fn main() {}"),
            (
                "crates/web/Cargo.toml",
                "[package]\nname = \"web\"\nversion = \"0.1.0\"\n\n[package.metadata.styxy.bins.web]\ntype = \"frontend\"\n[package.metadata.styxy.bins.probe]\nskip = true\n[package.metadata.styxy]\nservices = [\"postgres\"]\n",
            ),
            ("crates/web/src/main.rs", "fn main() {}"),
            ("crates/web/src/bin/probe.rs", "fn main() {}"),
            (
                "crates/ignored/Cargo.toml",
                "[package]\nname = \"ignored\"\nversion = \"0.1.0\"\n",
            ),
            ("crates/ignored/src/main.rs", "fn main() {}"),
            (
                "tools/Cargo.toml",
                "[package]\nname = \"tools\"\nversion = \"0.1.0\"\nautobins = false\n[[bin]]\nname = \"seed\"\npath = \"seed.rs\"\n",
            ),
            ("tools/seed.rs", "fn main() {}"),
            ("tools/src/main.rs", "fn main() {}"),
        ];
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let package_dir = dir.path().join("crates/api");
        let (ws, _) = manifests::discover(&package_dir).expect("discover");
        let services = workspace::services(&ws).expect("services");
        let root = workspace::root_id(&ws.root).expect("root");
        let ports: Vec<_> = services
            .into_iter()
            .map(|s| {
                let port = workspace::fallback_port(&s);
                (s, port)
            })
            .collect();
        let ours = crate::emit::rust(&root, &ports);
        let helpers =
            styxy_build::derived_constants(Path::new(&package_dir), "api").expect("helper");
        assert_eq!(helpers, ours);
        for constant in [
            "SHOP_API_PORT: u16 = 18080",
            "SHOP_API_URL",
            "JOBS_PORT",
            "SHOP_ADMIN_PORT",
            "SHOP_WEB_PORT",
            "SHOP_POSTGRES_PORT",
            "SHOP_REDIS_PORT",
            "SHOP_SEED_PORT",
            "(\"frontend\", ",
            "(\"api-jobs\", ",
        ] {
            assert!(ours.contains(constant), "{constant} in\n{ours}");
        }
        for absent in ["PROBE", "IGNORED", "TOOLS_PORT"] {
            assert!(!ours.contains(absent), "{absent} in\n{ours}");
        }
    }
}
