//! File-system helpers that keep the registry whole: atomic replacement, private files,
//! checks on what a path is (no symlink, FIFO or device where a file belongs), a stable hash,
//! and the sweep of temp files that a killed writer left behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, StoreError};
use crate::os::{self, DirTrust};

/// Suffix of the temp files [`write_atomic`] makes (and [`sweep_temps`] removes).
const TEMP_SUFFIX: &str = ".tmp";

/// Creates `dir` (and its parents) with mode 0700 where it does not exist yet.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    os::create_private_dir(dir).map_err(|e| Error::io("cannot create the directory", dir, e))
}

/// The file a write to `path` lands in: a symlink's target, so the link survives. Only for
/// files a user names (`-o FILE`); what the tool keeps in the registry never follows a link.
#[cfg(feature = "tool")]
pub fn write_target(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// [`write_if_changed`] for a file a user names (`env -o`, `metrics -o`): a symlink is written
/// through to its target, and the file keeps its mode, or is 0644 when new: it holds ports,
/// not secrets, and a collector running as another user (node_exporter's) must read it. The
/// files the tool keeps in the registry stay 0600.
#[cfg(feature = "tool")]
pub fn write_output_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    write_output(path, contents).map_err(|e| Error::Output(Box::new(e)))
}

#[cfg(feature = "tool")]
fn write_output(path: &Path, contents: &[u8]) -> Result<bool> {
    let target = write_target(path);
    if holds(&target, contents)? {
        return Ok(false);
    }
    let mode = fs::metadata(&target).map_or(0o644, |m| os::mode(&m));
    let staged = Staged::new(&target, contents)?;
    staged.set_mode(mode)?;
    staged.install()?;
    Ok(true)
}

/// Creates the tool's own subdirectory `dir` of the registry (`backups/`, `ports/`,
/// `cache/`), private, or checks the one there: a symlink in its place (which writes would
/// go through, into another folder) is refused, naming it.
pub fn create_own_subdir(dir: &Path) -> Result<()> {
    check_own_subdir(dir)?;
    create_private_dir(dir)?;
    check_own_subdir(dir)
}

/// Checks that `dir`, a subdirectory the tool keeps in the registry, is a directory and not
/// a symlink, or is missing.
pub fn check_own_subdir(dir: &Path) -> Result<()> {
    check_kind(dir, fs::Metadata::is_dir)
}

/// Checks that `path` is missing or, not followed if a link, of the kind `wanted` says.
fn check_kind(path: &Path, wanted: fn(&fs::Metadata) -> bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if wanted(&m) => Ok(()),
        Ok(m) => Err(not_a_file(path, &m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

/// Reads the regular file at `path` whole, if it is at most `cap` bytes: no FIFO, device
/// or (with [`os::Links::Refuse`]) symlink is read ([`os::open_regular`]), and a file
/// that grows past the cap is refused, not read on. Files others may plant (a checkout's
/// manifests) and the registry dir's own are read this way.
pub fn read_bounded(path: &Path, cap: u64, links: os::Links) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let too_large = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {}", human_size(cap)),
        )
    };
    let (file, metadata) = os::open_regular(path, links)?;
    // Sized from what was opened, so that the read is a few large ones (a `Take` gives
    // `read_to_end` no size hint); a file past the cap is refused before any read, and one
    // that grows past it while read is refused too.
    let len = metadata.len();
    if len > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, cap: u64, links: os::Links) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path, cap, links)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not valid UTF-8"))
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// The most a manifest of a checkout may hold (a large workspace's root manifest is a few
/// tens of KiB).
pub const MANIFEST_CAP: u64 = 1 << 20;

/// The most a file of the registry (`registry.toml`, the state, a backup, a port file) may
/// hold: ten thousand types are a few MiB.
pub const REGISTRY_FILE_CAP: u64 = 64 << 20;

/// An error for `path`, which is not a regular file (`m` is what it is).
pub fn not_a_file(path: &Path, m: &fs::Metadata) -> Error {
    let t = m.file_type();
    let special = os::special_kind(t);
    let kind = if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symlink"
    } else {
        special.unwrap_or("not a regular file")
    };
    Error::from(StoreError::NotAFile {
        path: path.to_path_buf(),
        kind,
    })
}

/// Checks that `path`, where the tool keeps a file, is a regular file or nothing: not a
/// symlink (which a write would follow), FIFO (which a read would hang on), device or
/// directory.
pub fn check_regular(path: &Path) -> Result<()> {
    check_kind(path, fs::Metadata::is_file)
}

/// Checks that the registry directory `dir` belongs to this process's user and that nobody
/// else may write in it, as ssh's StrictModes does: else anyone could plant a symlink or
/// swap a file in it.
pub fn check_private_dir(dir: &Path) -> Result<()> {
    let d = fs::metadata(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    let unsafe_dir = |reason: String, fix: String| {
        Err(Error::from(StoreError::UnsafeDir {
            dir: dir.to_path_buf(),
            reason,
            fix,
        }))
    };
    match os::dir_trust(dir, &d).map_err(|e| Error::io("cannot write in", dir, e))? {
        DirTrust::Private => Ok(()),
        DirTrust::ForeignOwner { owner, me } => unsafe_dir(
            format!("it belongs to uid {owner}, not to you (uid {me})"),
            format!("chown {me} {}", dir.display()),
        ),
        DirTrust::OthersWrite { mode } => unsafe_dir(
            format!("others may write in it (mode {mode:o})"),
            format!("chmod go-w {}", dir.display()),
        ),
    }
}

/// A file written in full beside its destination and synced, not yet in place: the first
/// step of an atomic replace, which can fail without changing anything. Dropped without
/// [`Staged::install`], it is removed.
#[derive(Debug)]
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl Staged {
    /// Writes `contents` to a 0600 temp file beside `path` (which must be a regular file or
    /// nothing) and syncs it.
    pub fn new(path: &Path, contents: &[u8]) -> Result<Self> {
        check_regular(path)?;
        let tmp = temp_beside(path)?;
        let mut staged = Self {
            tmp,
            target: path.to_path_buf(),
        };
        staged
            .tmp
            .write_all(contents)
            .and_then(|()| staged.tmp.as_file().sync_data())
            .map_err(|e| Error::io("cannot write", staged.tmp.path().to_path_buf(), e))?;
        Ok(staged)
    }

    /// Gives the file the permission bits `mode` (it is made 0600) before it is put in place.
    #[cfg(feature = "tool")]
    pub fn set_mode(&self, mode: u32) -> Result<()> {
        os::set_mode(self.tmp.as_file(), mode)
            .map_err(|e| Error::io("cannot set the mode of", self.tmp.path().to_path_buf(), e))
    }

    /// Gives the file the modification time `t` before it is put in place.
    pub fn set_modified(&self, t: std::time::SystemTime) -> Result<()> {
        self.tmp
            .as_file()
            .set_modified(t)
            .map_err(|e| Error::io("cannot set the time of", self.tmp.path().to_path_buf(), e))
    }

    /// Renames the file into place and makes the rename durable.
    pub fn install(self) -> Result<()> {
        let target = self.target;
        os::persist(self.tmp, &target)
            .map_err(|e| Error::io("cannot replace", &target, e.error))?;
        sync_dir(parent_of(&target))
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = parent_of(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(|e| Error::io("cannot create a temp file in", dir, e))
}

/// Replaces `path` with `contents` so that a reader or a crash sees the old or the new file,
/// never a torn one: a 0600 temp file in the same directory, fsync, rename, fsync of the
/// directory. A symlink, FIFO, device or directory at `path` is an error.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = replace_with(path, &[contents], true)?;
    sync_dir(&dir)
}

/// Atomic replacement for caches: readers never see a torn file, but nothing waits for the
/// disk (after a power loss a cache may be old or missing, and is rebuilt).
#[cfg(feature = "tool")]
pub fn replace_cache(path: &Path, contents: &[u8]) -> Result<()> {
    replace_with(path, &[contents], false).map(drop)
}

fn replace_with(path: &Path, parts: &[&[u8]], durable: bool) -> Result<PathBuf> {
    check_regular(path)?;
    let mut tmp = temp_beside(path)?;
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
    os::persist(tmp, path).map_err(|e| Error::io("cannot replace", path, e.error))?;
    Ok(parent_of(path).to_path_buf())
}

/// Whether the file at `path` (a regular file or nothing) holds exactly `contents`.
pub fn holds(path: &Path, contents: &[u8]) -> Result<bool> {
    check_regular(path)?;
    Ok(fs::read(path).is_ok_and(|old| old == contents))
}

/// Writes `contents` atomically unless the file already holds exactly that. Returns whether
/// it wrote, so that watchers (cargo's `rerun-if-changed`) see no change when there is none.
pub fn write_if_changed(path: &Path, contents: &[u8]) -> Result<bool> {
    if holds(path, contents)? {
        return Ok(false);
    }
    write_atomic(path, contents).map(|()| true)
}

/// Makes a rename in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    os::sync_dir(dir).map_err(|e| Error::io("cannot sync the directory", dir, e))
}

/// Whether `name` is one that [`write_atomic`] and [`Staged`] give their temp files:
/// `.NAME.XXXXXX.tmp`, six random letters or digits before the suffix.
pub fn is_temp_name(name: &str) -> bool {
    let Some(stem) = name
        .strip_prefix('.')
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    match stem.rsplit_once('.') {
        Some((file, random)) => {
            !file.is_empty()
                && random.len() == 6
                && random.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Removes the temp files of [`write_atomic`] and [`Staged`] in `dir` that killed writers
/// left: regular files under the names they make, in a directory that is the tool's own
/// (not a symlink to another folder). Call only while holding the lock that every writer in
/// `dir` takes, so none of them is still being written.
pub fn sweep_temps(dir: &Path) -> usize {
    sweep_temps_older_than(dir, std::time::Duration::ZERO)
}

/// [`sweep_temps`] for a directory whose writers take no lock (`cache/`): only temp files
/// untouched for `age`, which no live writer (a write takes milliseconds) still has.
pub fn sweep_temps_older_than(dir: &Path, age: std::time::Duration) -> usize {
    let now = std::time::SystemTime::now();
    let old_enough = |e: &fs::DirEntry| {
        age.is_zero()
            || e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d >= age))
    };
    if !fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
        return 0;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| is_temp_name(&e.file_name().to_string_lossy()))
        .filter(old_enough)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| fs::remove_file(e.path()).is_ok())
        .count()
}

/// A stable 64-bit FNV-1a hash: the same in every process and every version, for file
/// names and fallback ports (the build helper's, which derives ports offline).
pub use styxy_build::rules::fnv1a;
