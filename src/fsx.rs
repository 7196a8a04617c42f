//! File-system helpers that keep the registry whole: atomic replacement, private files,
//! and the sweep of temp files that a killed writer left behind.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Suffix of the temp files [`write_atomic`] makes (and [`sweep_temps`] removes).
const TEMP_SUFFIX: &str = ".tmp";

/// Creates `dir` (and its parents) with mode 0700 where it does not exist yet.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| Error::io("cannot create the directory", dir, e))
}

/// The file a write to `path` lands in: a symlink's target, so the link survives.
pub fn write_target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// Replaces `path` with `contents` so that a reader or a crash sees the old or the new file,
/// never a torn one: a 0600 temp file in the same directory, fsync, rename, fsync of the
/// directory. A symlink at `path` is written through to its target.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = replace(path, contents)?;
    sync_dir(&dir)
}

/// The first half of [`write_atomic`]: temp file, data synced, renamed into place. Readers
/// see the new content from here on; the rename is durable once the returned directory is
/// synced with [`sync_dir`] — which a lock holder can do after releasing its lock.
pub fn replace(path: &Path, contents: &[u8]) -> Result<PathBuf> {
    replace_with(path, &[contents], true)
}

/// Atomic replacement for caches: readers never see a torn file, but nothing waits for the
/// disk (after a power loss a cache may be old or missing, and is rebuilt).
pub fn replace_cache(path: &Path, contents: &[u8]) -> Result<()> {
    replace_with(path, &[contents], false).map(drop)
}

/// [`replace_cache`] with the contents in parts, written one after the other.
pub fn replace_cache_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    replace_with(path, parts, false).map(drop)
}

fn replace_with(path: &Path, parts: &[&[u8]], durable: bool) -> Result<PathBuf> {
    let target = write_target(path);
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(&dir)
        .map_err(|e| Error::io("cannot create a temp file in", &dir, e))?;
    // Content and size are what a reader needs after a crash; the file's other metadata
    // (times) is not worth a journal commit.
    parts
        .iter()
        .try_for_each(|part| tmp.write_all(part))
        .and_then(|()| {
            if durable {
                tmp.as_file().sync_data()
            } else {
                Ok(())
            }
        })
        .map_err(|e| Error::io("cannot write", tmp.path().to_path_buf(), e))?;
    tmp.persist(&target)
        .map_err(|e| Error::io("cannot replace", &target, e.error))?;
    Ok(dir)
}

/// Writes `contents` atomically unless the file already holds exactly that. Returns whether
/// it wrote, so that watchers (cargo's `rerun-if-changed`) see no change when there is none.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(false);
    }
    write_atomic(path, contents).map(|()| true)
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync the directory", dir, e))?;
    Ok(())
}

/// Removes temp files of [`write_atomic`] for `file_name` in `dir`. Call only while holding
/// the lock that every writer of that file takes, so none of them is still being written.
pub fn sweep_temps(dir: &Path, file_name: &str) -> usize {
    let prefix = format!(".{file_name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(TEMP_SUFFIX)
        })
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// Writes a new file readable by its owner only (0600). Fails if it exists.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(contents))
        .map_err(|e| Error::io("cannot write", path, e))
}
