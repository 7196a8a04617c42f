//! A cache of the workspace `cargo metadata` describes, keyed by everything that could change
//! it (the manifests' and lock file's contents, the directories' modification times), so
//! `env` and `port` on an assigned workspace never spawn cargo (which alone costs tens of
//! milliseconds). A cache entry that is damaged or stale is rebuilt, never believed.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::fsx::fnv1a;
use crate::workspace::Workspace;

/// The directory in the registry that holds the cache.
pub const CACHE_DIR: &str = "cache";

/// The most a cache entry may hold (a workspace of a thousand members is a few hundred KiB).
const CACHE_CAP: u64 = 16 << 20;

/// The entries' format: an entry of another is rebuilt (one written before
/// `default_members` would select every member).
const FORMAT: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    format: u32,
    manifest: PathBuf,
    stamps: Vec<(PathBuf, u128)>,
    workspace: Workspace,
}

fn file(registry_dir: &Path, manifest: &Path) -> PathBuf {
    registry_dir.join(CACHE_DIR).join(format!(
        "workspace-{:016x}.json",
        fnv1a(manifest.to_string_lossy().as_bytes())
    ))
}

/// What `path` is now: a file by its content (an edit whose mtime is restored is still seen),
/// a directory by its modification time, in nanoseconds (an entry added or removed); 0 for a
/// path that does not exist.
fn stamp(path: &Path) -> u128 {
    let Ok(m) = std::fs::metadata(path) else {
        return 0;
    };
    if m.is_file() {
        // A file too large for a manifest stamps as unreadable: the workspace is read
        // again, and that read says what is wrong.
        return crate::fsx::read_bounded(path, crate::fsx::MANIFEST_CAP, crate::os::Links::Follow)
            .map_or(1, |content| (1 << 64) | u128::from(fnv1a(&content)));
    }
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// What could change the workspace's services: its manifests and lock file, every member's
/// `src` and `src/bin` (bins found by cargo's auto-discovery), and every member's parent
/// directory (a new member matching a `members` glob).
fn watched(manifest: &Path, ws: &Workspace) -> Vec<PathBuf> {
    let mut paths = vec![
        manifest.to_path_buf(),
        ws.root.join("Cargo.toml"),
        ws.root.join("Cargo.lock"),
    ];
    for p in &ws.packages {
        paths.push(p.manifest_path.clone());
        if let Some(dir) = p.manifest_path.parent() {
            paths.push(dir.join("src"));
            paths.push(dir.join("src/bin"));
            if let Some(parent) = dir.parent() {
                paths.push(parent.to_path_buf());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The cached workspace for `manifest`, if nothing it depends on changed since.
pub fn load(registry_dir: &Path, manifest: &Path) -> Option<Workspace> {
    let path = file(registry_dir, manifest);
    // Never through a symlink (of the file or of `cache/`), never a FIFO (which would hang
    // the read), never without end.
    crate::fsx::check_own_subdir(path.parent()?).ok()?;
    let text = crate::fsx::read_text_bounded(&path, CACHE_CAP, crate::os::Links::Refuse).ok()?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    let fresh = entry.format == FORMAT
        && entry.manifest == manifest
        && entry.stamps.iter().all(|(path, was)| stamp(path) == *was);
    fresh.then_some(entry.workspace)
}

/// Caches `ws` for `manifest`. Best effort: a cache that cannot be written only costs time.
pub fn store(registry_dir: &Path, manifest: &Path, ws: &Workspace) {
    let stamps = watched(manifest, ws)
        .into_iter()
        .map(|p| {
            let t = stamp(&p);
            (p, t)
        })
        .collect();
    let entry = Entry {
        format: FORMAT,
        manifest: manifest.to_path_buf(),
        stamps,
        workspace: ws.clone(),
    };
    let path = file(registry_dir, manifest);
    if let (Some(dir), Ok(text)) = (path.parent(), serde_json::to_string(&entry)) {
        let _ = crate::fsx::create_own_subdir(dir)
            .and_then(|()| crate::fsx::replace_cache(&path, text.as_bytes()));
    }
}
