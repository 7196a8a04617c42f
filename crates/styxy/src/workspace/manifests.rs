//! A workspace read from its manifests alone, for build scripts: a build script that runs
//! `cargo metadata` can deadlock on cargo's own locks. Follows cargo's rules for the
//! workspace root and `members`/`exclude` globs (each `*`, `**` included, within one path
//! component: [`styxy_build::rules::member_dirs`], bounded whatever the tree holds); the
//! bins are cargo's, as the `cargo_toml` crate infers them (`[[bin]]` paths,
//! `src/bin/NAME/main.rs`, `autobins`). Every manifest is read as a file another user may
//! have planted: see `read_toml`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, WorkspaceError};
use crate::workspace::{Package, Workspace};
use crate::{fsx, os};

/// A manifest, read as a file anyone may have planted: a regular file of at most
/// [`fsx::MANIFEST_CAP`] (a FIFO, a device or a huge file is an error, never a hang).
fn read_toml(path: &Path) -> Result<toml::Table> {
    let text =
        fsx::read_text_bounded(path, fsx::MANIFEST_CAP, os::Links::Follow).map_err(|source| {
            WorkspaceError::Read {
                path: path.to_path_buf(),
                source,
            }
        })?;
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
        // Too wide a pattern is a checkout that cannot be read, like a FIFO.
        let dirs = styxy_build::rules::member_dirs(&root_dir, &pattern).map_err(|reason| {
            Error::from(WorkspaceError::Read {
                path: root_manifest.clone(),
                source: std::io::Error::other(reason),
            })
        })?;
        for dir in dirs {
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
        if let Some(p) = package(&manifest, &table, &root_manifest, &root_table)? {
            packages.push(p);
        }
    }
    let root = crate::os::canonicalize(&root_dir).unwrap_or(root_dir);
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

/// The package of `manifest` (parsed as `table`), with its bins as cargo finds them;
/// `None` for a virtual manifest. Fields inherited from the workspace (`edition.workspace =
/// true`, which bin inference reads) come from the root's manifest.
fn package(
    manifest: &Path,
    table: &toml::Table,
    root_manifest: &Path,
    root_table: &toml::Table,
) -> Result<Option<Package>> {
    let Some(pkg) = table.get("package").and_then(|p| p.as_table()) else {
        return Ok(None); // A virtual manifest.
    };
    let invalid = |path: &Path, e: &dyn std::fmt::Display| {
        Error::from(WorkspaceError::Manifest {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    };
    let parse = |path: &Path, t: &toml::Table| -> Result<cargo_toml::Manifest> {
        toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e| invalid(path, &e))
    };
    let mut parsed = parse(manifest, table)?;
    let root = (manifest != root_manifest && root_table.contains_key("workspace"))
        .then(|| parse(root_manifest, root_table))
        .transpose()?;
    let root_dir = root_manifest.parent().unwrap_or(Path::new("/"));
    parsed
        .complete_from_path_and_workspace(manifest, root.as_ref().map(|r| (r, root_dir)))
        .map_err(|e| invalid(manifest, &e))?;
    let name = parsed
        .package
        .as_ref()
        .map(|p| p.name.clone())
        .ok_or_else(|| invalid(manifest, &"package.name is missing"))?;
    let mut bins: Vec<String> = parsed.bin.iter().filter_map(|b| b.name.clone()).collect();
    bins.sort();
    bins.dedup();
    Ok(Some(Package {
        name,
        manifest_path: manifest.to_path_buf(),
        bins,
        metadata: to_json(pkg.get("metadata")),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// Writes `files` under a new temp dir.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, text) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        }
        dir
    }

    /// (package, bins) of every member, as `cargo metadata` says (a test may run cargo; a
    /// build script may not).
    fn cargo_says(root: &Path) -> Vec<(String, Vec<String>)> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args([
                "metadata",
                "--no-deps",
                "--format-version",
                "1",
                "--offline",
            ])
            .current_dir(root)
            .output()
            .expect("cargo metadata");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let mut packages: Vec<(String, Vec<String>)> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| {
                let mut bins: Vec<String> = p["targets"]
                    .as_array()
                    .expect("targets")
                    .iter()
                    .filter(|t| {
                        t["kind"]
                            .as_array()
                            .is_some_and(|k| k.iter().any(|k| k == "bin"))
                    })
                    .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
                    .collect();
                bins.sort();
                (p["name"].as_str().unwrap_or_default().to_owned(), bins)
            })
            .collect();
        packages.sort();
        packages
    }

    fn we_say(root: &Path) -> Vec<(String, Vec<String>)> {
        let (ws, _) = discover(root).expect("discover");
        let mut packages: Vec<(String, Vec<String>)> =
            ws.packages.into_iter().map(|p| (p.name, p.bins)).collect();
        packages.sort();
        packages
    }

    const MAIN: &str = "fn main() {}\n";

    /// The bins the build script finds are the bins cargo finds, in the cases where a
    /// re-implementation of cargo's inference goes wrong.
    #[test]
    fn bins_are_what_cargo_metadata_says() {
        let ws = tree(&[
            (
                "Cargo.toml",
                "[workspace]\nmembers = [\"renamed\", \"dirs\", \"noauto\", \"featured\", \"inherits\"]\n\
                 resolver = \"3\"\n[workspace.package]\nedition = \"2024\"\n",
            ),
            // src/main.rs claimed by a [[bin]] of another name: no `renamed` bin.
            (
                "renamed/Cargo.toml",
                "[package]\nname = \"renamed\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                 [[bin]]\nname = \"renamed-cli\"\npath = \"src/main.rs\"\n",
            ),
            ("renamed/src/main.rs", MAIN),
            // src/bin/NAME/main.rs and src/bin/NAME.rs, and a [[bin]] named after one.
            (
                "dirs/Cargo.toml",
                "[package]\nname = \"dirs\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                 [[bin]]\nname = \"single\"\n",
            ),
            ("dirs/src/main.rs", MAIN),
            ("dirs/src/bin/tool/main.rs", MAIN),
            ("dirs/src/bin/single.rs", MAIN),
            ("dirs/src/bin/notes.txt", "not a target\n"),
            // autobins = false: only what is declared.
            (
                "noauto/Cargo.toml",
                "[package]\nname = \"noauto\"\nversion = \"0.1.0\"\nedition = \"2024\"\nautobins = false\n\n\
                 [[bin]]\nname = \"only\"\npath = \"src/only.rs\"\n",
            ),
            ("noauto/src/main.rs", MAIN),
            ("noauto/src/only.rs", MAIN),
            ("noauto/src/bin/ignored.rs", MAIN),
            // A bin behind required-features is a target all the same.
            (
                "featured/Cargo.toml",
                "[package]\nname = \"featured\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                 [features]\nextra = []\n\n[[bin]]\nname = \"gated\"\npath = \"src/gated.rs\"\n\
                 required-features = [\"extra\"]\n",
            ),
            ("featured/src/main.rs", MAIN),
            ("featured/src/gated.rs", MAIN),
            // edition from the workspace: bin inference reads it.
            (
                "inherits/Cargo.toml",
                "[package]\nname = \"inherits\"\nversion = \"0.1.0\"\nedition.workspace = true\n",
            ),
            ("inherits/src/main.rs", MAIN),
        ]);
        let cargo = cargo_says(ws.path());
        assert_eq!(
            cargo,
            [
                (
                    "dirs".to_owned(),
                    vec!["dirs".to_owned(), "single".into(), "tool".into()]
                ),
                ("featured".into(), vec!["featured".into(), "gated".into()]),
                ("inherits".into(), vec!["inherits".into()]),
                ("noauto".into(), vec!["only".into()]),
                ("renamed".into(), vec!["renamed-cli".into()]),
            ],
            "the fixture is what cargo says it is"
        );
        assert_eq!(we_say(ws.path()), cargo);
        // From a member, as a build script runs.
        assert_eq!(we_say(&ws.path().join("renamed")), cargo);
    }
}
