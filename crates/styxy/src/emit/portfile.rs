//! The per-checkout port file: the registry's instances of one workspace, rewritten under
//! the lock whenever they change (and only then), read by build scripts and by `env`/`port`
//! with no lock. One file per checkout, so another checkout's allocation never touches it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::fsx::{self, fnv1a};
use crate::model::ServiceType;

/// The directory in the registry that holds the port files.
pub const PORTS_DIR: &str = "ports";

/// What a port file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortFile {
    pub workspace: String,
    pub ports: Vec<Entry>,
    /// The ports this checkout had for instances that were released since: when one of
    /// them comes back with another port, `assign` says it moved (and why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub service_type: String,
    pub instance: String,
    pub port: u16,
}

/// The port file of the workspace rooted at `root`: `ports/<dir name>-<hash>.json`.
pub fn path(registry_dir: &Path, root: &str) -> PathBuf {
    let base: String = Path::new(root)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    registry_dir
        .join(PORTS_DIR)
        .join(format!("{base}-{:016x}.json", fnv1a(root.as_bytes())))
}

/// The instances of `types` that belong to the workspace `root`, sorted.
pub fn project<'r>(
    types: impl Iterator<Item = (&'r String, &'r ServiceType)>,
    root: &str,
) -> PortFile {
    let mut ports: Vec<Entry> = types
        .flat_map(|(name, t)| {
            t.instances
                .iter()
                .filter(|(id, i)| i.workspace(id) == Some(root))
                .map(move |(id, i)| Entry {
                    service_type: name.clone(),
                    instance: id.clone(),
                    port: i.port,
                })
        })
        .collect();
    ports.sort_by(|a, b| (&a.service_type, &a.instance).cmp(&(&b.service_type, &b.instance)));
    PortFile {
        workspace: root.to_owned(),
        ports,
        released: Vec::new(),
    }
}

/// `new` (a projection) with the ports `old` said this checkout had and `new` has not,
/// as [`PortFile::released`] (a service that is back is no longer among them).
fn carry_released(mut new: PortFile, old: Option<PortFile>) -> PortFile {
    let Some(old) = old.filter(|o| o.workspace == new.workspace) else {
        return new;
    };
    let has = |e: &Entry, list: &[Entry]| {
        list.iter()
            .any(|x| x.service_type == e.service_type && x.instance == e.instance)
    };
    let mut released: Vec<Entry> = old
        .released
        .into_iter()
        .chain(old.ports)
        .filter(|e| !has(e, &new.ports))
        .collect();
    // The latest port of each: `old.ports` came after `old.released`.
    released.reverse();
    let mut seen = Vec::new();
    released.retain(|e| {
        let fresh = !has(e, &seen);
        if fresh {
            seen.push(e.clone());
        }
        fresh
    });
    released.sort_by(|a, b| (&a.service_type, &a.instance).cmp(&(&b.service_type, &b.instance)));
    new.released = released;
    new
}

impl PortFile {
    pub fn render(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Reads a port file; `None` if it is missing or unreadable (then the caller assigns).
    pub fn read(path: &Path) -> Option<Self> {
        let text = crate::fsx::read_text_bounded(
            path,
            crate::fsx::REGISTRY_FILE_CAP,
            crate::os::Links::Refuse,
        )
        .ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn port(&self, service_type: &str, instance: &str) -> Option<u16> {
        self.ports
            .iter()
            .find(|e| e.service_type == service_type && e.instance == instance)
            .map(|e| e.port)
    }

    /// The port the service had, held now or released since.
    pub fn had(&self, service_type: &str, instance: &str) -> Option<u16> {
        self.port(service_type, instance).or_else(|| {
            self.released
                .iter()
                .find(|e| e.service_type == service_type && e.instance == instance)
                .map(|e| e.port)
        })
    }
}

/// Where the stamp of the port file at `port_file` is: the identity of the registry it was
/// derived from. Apart from the port file, which build scripts watch, so that a change that
/// leaves this checkout's ports alone rewrites the stamp only and rebuilds nothing.
pub fn stamp_path(port_file: &Path) -> PathBuf {
    port_file.with_extension("stamp")
}

/// The port file of the workspace `root` in the registry directory `dir`, if it was derived
/// from the registry and state as they are now: its stamp equals `identity()` (asked only
/// when there is a stamp). Else `None`, and the caller takes the lock (assigns), which
/// rewrites it.
pub fn current(
    dir: &Path,
    root: &str,
    identity: impl FnOnce() -> Option<String>,
) -> Option<PortFile> {
    let file = path(dir, root);
    // Never through a `ports/` linked to another folder.
    fsx::check_own_subdir(file.parent()?).ok()?;
    let stamp =
        crate::fsx::read_text_bounded(&stamp_path(&file), 4096, crate::os::Links::Refuse).ok()?;
    if stamp != identity()? {
        return None;
    }
    PortFile::read(&file).filter(|pf| pf.workspace == root)
}

/// Writes the port file of the workspace `root`, projected from `types`, without a stamp:
/// before the commit that makes it true, so that a writer killed at any instant leaves a port
/// file that either says the registry's ports or changed (cargo reruns the build scripts that
/// watch it) and has no stamp (so it is not believed), never an old one that looks current.
/// A port file that already says `types` is left as it is, stamp and all. `mtime`: the
/// modification time to give it (a build script's backdating).
pub fn stage<'r>(
    dir: &Path,
    types: impl Iterator<Item = (&'r String, &'r ServiceType)>,
    root: &str,
    mtime: Option<std::time::SystemTime>,
) -> Result<()> {
    let file = path(dir, root);
    let text = carry_released(project(types, root), PortFile::read(&file)).render();
    if fsx::holds(&file, text.as_bytes())? {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        fsx::create_own_subdir(dir)?;
    }
    let stamp = stamp_path(&file);
    match std::fs::remove_file(&stamp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(crate::Error::io("cannot remove", stamp, e));
        }
        _ => {}
    }
    // The rename's directory sync makes the stamp's removal durable too.
    fsx::write_atomic(&file, text.as_bytes())?;
    if let Some(t) = mtime {
        let _ = std::fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(t));
    }
    Ok(())
}

/// Writes the port file of the workspace `root` as [`stage`] does, then its stamp: the
/// identity of the registry it was derived from (`stamp`), once that registry is committed.
pub fn write<'r>(
    dir: &Path,
    types: impl Iterator<Item = (&'r String, &'r ServiceType)>,
    root: &str,
    stamp: &str,
    mtime: Option<std::time::SystemTime>,
) -> Result<()> {
    stage(dir, types, root, mtime)?;
    let file = stamp_path(&path(dir, root));
    fsx::write_if_changed(&file, stamp.as_bytes()).map(drop)
}
