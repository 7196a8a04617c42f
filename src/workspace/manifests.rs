//! A workspace read from its manifests alone, for build scripts: a build script that runs
//! `cargo metadata` can deadlock on cargo's own locks. Follows cargo's rules for the
//! workspace root, `members`/`exclude` globs and bin auto-discovery.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, WorkspaceError};
use crate::workspace::{Package, Workspace};

fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
    text.parse::<toml::Table>().map_err(|e| {
        Error::from(WorkspaceError::Manifest {
            path: path.to_path_buf(),
            reason: e.message().trim().to_owned(),
        })
    })
}

fn to_json(v: Option<&toml::Value>) -> serde_json::Value {
    v.and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// The workspace that the package in `package_dir` belongs to, and every manifest read
/// (which a build script watches).
pub fn discover(package_dir: &Path) -> Result<(Workspace, Vec<PathBuf>)> {
    let own = package_dir.join("Cargo.toml");
    let own_table = read_toml(&own)?;
    let mut read = vec![own.clone()];
    let explicit_root = own_table
        .get("package")
        .and_then(|p| p.get("workspace"))
        .and_then(|w| w.as_str())
        .map(|w| package_dir.join(w));
    let root_dir = match explicit_root {
        Some(r) => r,
        None => {
            let mut found = None;
            for dir in package_dir.ancestors() {
                let m = dir.join("Cargo.toml");
                if m == own {
                    if own_table.contains_key("workspace") {
                        found = Some(dir.to_path_buf());
                        break;
                    }
                    continue;
                }
                if m.is_file() && read_toml(&m).is_ok_and(|t| t.contains_key("workspace")) {
                    found = Some(dir.to_path_buf());
                    break;
                }
            }
            found.unwrap_or_else(|| package_dir.to_path_buf())
        }
    };
    let root_manifest = root_dir.join("Cargo.toml");
    let root_table = if root_manifest == own {
        own_table.clone()
    } else {
        read.push(root_manifest.clone());
        read_toml(&root_manifest)?
    };
    let ws_table = root_table.get("workspace").and_then(|w| w.as_table());
    let globs = |key: &str| -> Vec<String> {
        ws_table
            .and_then(|w| w.get(key))
            .and_then(|m| m.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let excluded: Vec<PathBuf> = globs("exclude").iter().map(|e| root_dir.join(e)).collect();
    let mut member_dirs: Vec<PathBuf> = Vec::new();
    if root_table.contains_key("package") {
        member_dirs.push(root_dir.clone());
    }
    for pattern in globs("members") {
        let full = root_dir.join(&pattern);
        let matches = glob::glob(&full.to_string_lossy()).map_err(|e| {
            Error::from(WorkspaceError::Manifest {
                path: root_manifest.clone(),
                reason: format!("workspace.members {pattern:?}: {e}"),
            })
        })?;
        for dir in matches.flatten() {
            if dir.join("Cargo.toml").is_file() && !excluded.iter().any(|x| dir.starts_with(x)) {
                member_dirs.push(dir);
            }
        }
    }
    if ws_table.is_none() {
        member_dirs = vec![root_dir.clone()];
    }
    member_dirs.sort();
    member_dirs.dedup();
    let mut packages = Vec::new();
    for dir in member_dirs {
        let manifest = dir.join("Cargo.toml");
        let table = if manifest == own {
            own_table.clone()
        } else if manifest == root_manifest {
            root_table.clone()
        } else {
            read.push(manifest.clone());
            read_toml(&manifest)?
        };
        if let Some(p) = package(&dir, &manifest, &table)? {
            packages.push(p);
        }
    }
    let root = fs::canonicalize(&root_dir).unwrap_or(root_dir);
    let metadata = to_json(ws_table.and_then(|w| w.get("metadata")));
    read.sort();
    read.dedup();
    Ok((
        Workspace {
            root,
            packages,
            metadata,
            default_members: Vec::new(),
        },
        read,
    ))
}

/// The package in `dir`, with its bins found as cargo finds them.
fn package(dir: &Path, manifest: &Path, table: &toml::Table) -> Result<Option<Package>> {
    let Some(pkg) = table.get("package").and_then(|p| p.as_table()) else {
        return Ok(None); // A virtual manifest.
    };
    let name = pkg
        .get("name")
        .and_then(|n| n.as_str())
        .ok_or_else(|| {
            Error::from(WorkspaceError::Manifest {
                path: manifest.to_path_buf(),
                reason: "package.name is missing".into(),
            })
        })?
        .to_owned();
    let mut bins: Vec<String> = table
        .get("bin")
        .and_then(|b| b.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|b| b.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let autobins = pkg
        .get("autobins")
        .and_then(|a| a.as_bool())
        .unwrap_or(true);
    if autobins {
        if dir.join("src/main.rs").is_file() {
            bins.push(name.clone());
        }
        if let Ok(entries) = fs::read_dir(dir.join("src/bin")) {
            for e in entries.flatten() {
                let path = e.path();
                let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                match stem {
                    Some(s) if path.extension().is_some_and(|x| x == "rs") => bins.push(s),
                    Some(s) if path.join("main.rs").is_file() => bins.push(s),
                    _ => {}
                }
            }
        }
    }
    bins.sort();
    bins.dedup();
    Ok(Some(Package {
        name,
        manifest_path: manifest.to_path_buf(),
        bins,
        metadata: to_json(pkg.get("metadata")),
    }))
}
