//! The checkout a command is about: its workspace found like cargo finds it, described by `cargo
//! metadata` (cached), narrowed by `-p`/`--bin`/`--exclude`, and its ports — from the port
//! file when it has them all, else assigned under the lock.

use std::path::{Path, PathBuf};

use anyhow::Context;

use clap::Args;
use styxy::error::WorkspaceError;

use crate::cli::Ctx;
use styxy::assign;
use styxy::workspace::{self, Package, Service, Workspace, cache};

/// Which packages and bins of the workspace a command covers (all by default).
#[derive(Debug, Args, Default)]
pub struct Selection {
    #[command(flatten)]
    pub workspace: clap_cargo::Workspace,
    /// Only this bin (repeatable)
    #[arg(long, value_name = "NAME")]
    pub bin: Vec<String>,
}

/// The manifest the command is about: `--manifest-path`, else the nearest `Cargo.toml` at
/// or above the current directory. Canonical.
pub fn manifest(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let found = match explicit {
        Some(p) => {
            if !p.is_file() {
                return Err(WorkspaceError::NoManifest {
                    path: p.to_path_buf(),
                }
                .into());
            }
            p.to_path_buf()
        }
        None => {
            let cwd = std::env::current_dir().context("cannot read the current directory")?;
            workspace::find_manifest(&cwd).ok_or(WorkspaceError::NotInWorkspace { dir: cwd })?
        }
    };
    Ok(styxy::os::canonicalize(&found).unwrap_or(found))
}

/// The workspace of `manifest`, from the cache when nothing changed, else `cargo metadata
/// --no-deps` (run through `$CARGO`, never while holding the registry lock).
pub fn load(ctx: &Ctx, manifest: &Path) -> anyhow::Result<Workspace> {
    if let Some(ws) = cache::load(ctx.store.dir(), manifest) {
        return Ok(ws);
    }
    // cargo would hang on a FIFO among the manifests, or read a huge file whole.
    if let Some(dir) = manifest.parent() {
        styxy::workspace::check_readable(dir)?;
    }
    ctx.note(&format!(
        "running cargo metadata for {}",
        manifest.display()
    ));
    let meta = cargo_metadata::MetadataCommand::new()
        .manifest_path(manifest)
        .no_deps()
        .exec()
        .map_err(|e| WorkspaceError::CargoMetadata {
            manifest: manifest.to_path_buf(),
            message: match e {
                cargo_metadata::Error::CargoMetadata { stderr } => {
                    stderr.trim().trim_start_matches("error: ").to_owned()
                }
                other => other.to_string(),
            },
        })?;
    let root = styxy::os::canonicalize(meta.workspace_root.as_std_path())
        .unwrap_or_else(|_| meta.workspace_root.clone().into_std_path_buf());
    let packages = meta
        .workspace_packages()
        .into_iter()
        .map(|p| Package {
            name: p.name.to_string(),
            manifest_path: p.manifest_path.clone().into_std_path_buf(),
            bins: p
                .targets
                .iter()
                .filter(|t| t.is_bin())
                .map(|t| t.name.clone())
                .collect(),
            metadata: p.metadata.clone(),
        })
        .collect();
    // Cargo older than 1.71 does not say: then every member, as before.
    let default_members = if meta.workspace_default_members.is_available() {
        meta.workspace_default_packages()
            .into_iter()
            .map(|p| p.name.to_string())
            .collect()
    } else {
        Vec::new()
    };
    let ws = Workspace {
        root,
        packages,
        metadata: meta.workspace_metadata.clone(),
        default_members,
    };
    cache::store(ctx.store.dir(), manifest, &ws);
    Ok(ws)
}

/// The workspace's services, narrowed by the selection as cargo narrows its packages:
/// `--workspace` (minus `--exclude`), else `-p`, else the package of `manifest` when it is a
/// member's (`--manifest-path member/Cargo.toml`, or run in a member's directory), else the
/// workspace's default members. Asking for a package or bin that is not there is an error
/// naming what is.
pub fn select(ws: &Workspace, sel: &Selection, manifest: &Path) -> anyhow::Result<Vec<Service>> {
    // cargo takes the hidden `--all` as `--workspace`.
    let whole = sel.workspace.workspace || sel.workspace.all;
    if !sel.workspace.exclude.is_empty() && !whole {
        anyhow::bail!("--exclude can only be used together with --workspace (as with cargo)");
    }
    let all = workspace::services(ws)?;
    let names: Vec<&str> = ws.packages.iter().map(|p| p.name.as_str()).collect();
    // As cargo's: a name, or a glob of names (`-p 'shop-*'`).
    let patterns = |specs: &[String]| -> anyhow::Result<Vec<glob::Pattern>> {
        specs
            .iter()
            .map(|p| {
                let pattern = glob::Pattern::new(p)
                    .map_err(|e| anyhow::anyhow!("invalid package pattern `{p}`: {e}"))?;
                if !names.iter().any(|n| pattern.matches(n)) {
                    anyhow::bail!(
                        "package `{p}` matches no member of the workspace at {}; its members are {}",
                        ws.root.display(),
                        names.join(", ")
                    );
                }
                Ok(pattern)
            })
            .collect()
    };
    let (packages, excluded) = (
        patterns(&sel.workspace.package)?,
        patterns(&sel.workspace.exclude)?,
    );
    // `manifest` is canonical; cargo's paths are absolute but may go through a symlink.
    let current = (manifest != ws.root.join("Cargo.toml"))
        .then(|| {
            ws.packages.iter().find(|p| {
                p.manifest_path == manifest
                    || styxy::os::canonicalize(&p.manifest_path).is_ok_and(|c| c == manifest)
            })
        })
        .flatten();
    let in_selection = |package: &str| -> bool {
        if whole {
            !excluded.iter().any(|p| p.matches(package))
        } else if !packages.is_empty() {
            packages.iter().any(|p| p.matches(package))
        } else if let Some(current) = current {
            current.name == package
        } else {
            ws.default_members.is_empty() || ws.default_members.iter().any(|m| m == package)
        }
    };
    let picked: Vec<Service> = all
        .into_iter()
        .filter(|s| in_selection(&s.package))
        .filter(|s| sel.bin.is_empty() || s.bin.as_ref().is_some_and(|b| sel.bin.contains(b)))
        .collect();
    if picked.is_empty() {
        anyhow::bail!(
            "no service matches the selection (bins: {}); check -p/--bin",
            ws.packages
                .iter()
                .flat_map(|p| p.bins.iter().map(|b| format!("{}/{b}", p.name)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(picked)
}

/// The one service of the workspace that `query` names: its type, bin, `package/bin`, or
/// env name. None or several is an error naming the services there are.
pub fn named(ws: &Workspace, query: &str) -> anyhow::Result<Service> {
    let all = workspace::services(ws)?;
    let mut matching: Vec<Service> = all
        .iter()
        .filter(|s| s.answers_to(query))
        .cloned()
        .collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => anyhow::bail!(
            "no service {query:?} in the workspace at {}; its services are {}",
            ws.root.display(),
            all.iter().map(|s| s.label()).collect::<Vec<_>>().join(", ")
        ),
        _ => anyhow::bail!(
            "{query:?} names several services ({}); use `package/bin` or the env name",
            matching
                .iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The services' ports: read from the port file with no lock when it has them all and was
/// derived from the registry as it is now (the fast path of `env` and `port`), else assigned.
pub fn ports(ctx: &Ctx, ws: &Workspace, services: &[Service]) -> anyhow::Result<Vec<u16>> {
    let root = styxy::workspace::root_id(&ws.root)?;
    let known = ctx
        .store
        .current_port_file(&root)
        .and_then(|pf| assign::from_port_file(&pf, services));
    match known {
        Some(ports) => Ok(ports),
        None => {
            let assigned = assign::assign(&ctx.store, &styxy::this_machine(), &root, services)?;
            Ok(ctx
                .warned(assigned)
                .into_iter()
                .map(|a| a.grant.port)
                .collect())
        }
    }
}
