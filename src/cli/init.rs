//! `init`: add the build.rs integration to a package.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

use crate::cli::Ctx;
use crate::cli::checkout;

/// The build script `init` writes.
const BUILD_RS: &str = include_str!("../../templates/build.rs");

/// Add the build.rs integration to a package: a build dependency and a build.rs
///
/// Afterwards `mod ports { include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs")); }` gives
/// the package a `pub const …_PORT: u16` per service of its workspace.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The package [default: the one whose Cargo.toml is nearest]
    #[arg(short, long, value_name = "SPEC")]
    pub package: Option<String>,
    /// Replace an existing build.rs
    #[arg(long)]
    pub force: bool,
    /// Depend on the build helper at DIR (a checkout's `crates/styxy-build`) instead of
    /// the crates.io release
    #[arg(long, value_name = "DIR")]
    pub path: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: InitArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    let manifest = checkout::manifest(manifest)?;
    let target = match &args.package {
        Some(name) => {
            let ws = checkout::load(ctx, &manifest)?;
            ws.packages
                .iter()
                .find(|p| p.name == *name)
                .map(|p| p.manifest_path.clone())
                .with_context(|| {
                    format!(
                        "package `{name}` is not a member of the workspace at {}",
                        ws.root.display()
                    )
                })?
        }
        None => manifest,
    };
    let text = std::fs::read_to_string(&target)
        .with_context(|| format!("cannot read {}", target.display()))?;
    let mut doc: DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", target.display()))?;
    let Some(package) = doc.get("package").and_then(Item::as_table_like) else {
        anyhow::bail!(
            "{} has no [package] (a virtual manifest); pass -p PACKAGE",
            target.display()
        );
    };
    let dir = target.parent().map(PathBuf::from).unwrap_or_default();
    let build_path = match package.get("build").and_then(Item::as_str) {
        Some(custom) => dir.join(custom),
        None => dir.join("build.rs"),
    };
    if build_path.exists() && !args.force {
        anyhow::bail!(
            "{} already exists; add `styxy_build::emit().expect(\"styxy ports\");` to its main, or pass --force to replace it",
            build_path.display()
        );
    }
    let deps = doc
        .entry("build-dependencies")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_like_mut()
        .context("[build-dependencies] is not a table")?;
    let added = !deps.contains_key("styxy-build");
    if added {
        let mut dep = InlineTable::new();
        match &args.path {
            Some(p) => {
                let abs = styxy::os::canonicalize(p)
                    .with_context(|| format!("--path {} does not exist", p.display()))?;
                dep.insert("path", Value::from(abs.to_string_lossy().as_ref()));
            }
            None => {
                dep.insert("version", Value::from(env!("CARGO_PKG_VERSION")));
            }
        }
        deps.insert("styxy-build", Item::Value(Value::InlineTable(dep)));
        styxy::fsx::write_atomic(&target, doc.to_string().as_bytes())?;
    }
    styxy::fsx::write_atomic(&build_path, BUILD_RS.as_bytes())?;
    ctx.print(&serde_json::json!({"manifest": target, "build_script": build_path, "dependency_added": added}), |out| {
        writeln!(out, "wrote {}", build_path.display())?;
        if added {
            writeln!(out, "added styxy-build to [build-dependencies] of {}", target.display())?;
        }
        writeln!(
            out,
            "next: in src/main.rs, `mod ports {{ include!(concat!(env!(\"OUT_DIR\"), \"/styxy_ports.rs\")); }}`"
        )
    })
}
