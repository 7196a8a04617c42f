//! The registry on disk: the sidecar lock, the guard that is the only way to change the
//! registry, and the commit that writes `registry.toml` (when a person's config changed) and
//! the state, then the port files, the audit trail and a backup.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use toml_edit::DocumentMut;

use crate::audit::Record;
use crate::emit::portfile::{self, PortFile};
use crate::error::{AllocError, Error, Result, StoreError};
use crate::fsx;
use crate::model::Registry;
use crate::model::validate;
use crate::registry::config::{self, Config};
use crate::registry::counters::Counters;
use crate::registry::lock;
use crate::registry::state::{self, STATE_FILE, StateError};

/// The file people write, in the registry directory.
pub const REGISTRY_FILE: &str = "registry.toml";
/// The sidecar lock file: locked, never replaced (a lock on the data file itself would be
/// lost when a rename swaps its inode).
pub const LOCK_FILE: &str = "registry.lock";
/// Where earlier versions of `registry.toml` are kept.
pub const BACKUP_DIR: &str = "backups";
/// How many earlier versions are kept.
pub const BACKUPS_KEPT: usize = 10;
/// The environment variable that sets the lock deadline in seconds.
pub const LOCK_TIMEOUT_ENV: &str = "STYXY_LOCK_TIMEOUT";
/// How long to wait for the lock unless told otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// A registry directory. Opening one touches nothing; the directory and the files are
/// created by the first change.
#[derive(Debug, Clone)]
pub struct Store {
    /// Where the state, the lock and the backups live: beside `registry.toml`, or beside its
    /// target when it is a symlink (so one registry has one lock whatever path reaches it).
    dir: PathBuf,
    /// `registry.toml`, or the file its symlink points to.
    file: PathBuf,
    lock_timeout: std::result::Result<Duration, String>,
    /// Told the lock file's path once a wait for the lock passes half a second.
    on_lock_wait: Option<fn(&Path)>,
    backdate_watched: Option<SystemTime>,
}

/// The registry and its state as read together.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) config_text: Option<String>,
    /// Moved out into [`Guard`]'s `original` by [`Store::lock`].
    pub(super) registry: Registry,
    /// The state file's length, if there is one.
    pub(super) state_len: Option<usize>,
    /// The counters, orphans and last commit's audit records of the state.
    pub(super) rest: state::Rest,
}

/// Exclusive access to the registry, holding the content as read *after* the lock was
/// taken: what the change path ([`super::change()`]) hands a change, then stages and
/// installs. Dropping the guard without that changes nothing. The lock is released when the guard
/// is dropped (and by the kernel if the process dies).
#[derive(Debug)]
pub struct Guard<'s> {
    pub(super) store: &'s Store,
    pub(super) lock: File,
    pub(super) loaded: Loaded,
    pub(super) original: Registry,
    /// The registry; change it, then commit.
    pub registry: Registry,
    /// A `registry.toml` given whole (`config edit`, `config restore`) instead of edits.
    pub(super) replacement: Option<String>,
    /// How long taking the lock took.
    pub lock_wait: Duration,
    pub(super) locked_at: Instant,
}

/// The identity of the registry as it is now, recorded beside each port file: the content
/// of `registry.toml` and the state file's inode, size and time. Every commit that writes the
/// state replaces its inode.
fn identity(config: Option<&[u8]>, state: Option<&fs::Metadata>) -> String {
    let config = config.map_or(0, fsx::fnv1a);
    let state = state.map_or_else(
        || "none".to_owned(),
        |m| {
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let ino = crate::os::file_id(m);
            format!("{ino}-{}-{mtime}", m.len())
        },
    );
    format!("{config:016x} {state}\n")
}

impl Store {
    /// The registry in `dir`. The lock deadline comes from `STYXY_LOCK_TIMEOUT` (seconds),
    /// else 30 s; a value that is not a number of seconds is an error when the lock is taken.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let lock_timeout = match std::env::var(LOCK_TIMEOUT_ENV) {
            Err(_) => Ok(DEFAULT_LOCK_TIMEOUT),
            Ok(s) => s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
                .filter(|d| d.as_secs() <= 24 * 3600)
                .ok_or(s),
        };
        // A linked registry.toml (dotfiles) is written through, and everything else lives
        // beside its target.
        let file = dir.join(REGISTRY_FILE);
        let (dir, file) = match fs::symlink_metadata(&file) {
            Ok(m) if m.file_type().is_symlink() => match fs::canonicalize(&file) {
                Ok(target) => (target.parent().map_or(dir, Path::to_path_buf), target),
                Err(_) => (dir, file),
            },
            _ => (dir, file),
        };
        Self {
            dir,
            file,
            lock_timeout,
            on_lock_wait: None,
            backdate_watched: None,
        }
    }

    /// Give the files a build script watches that this store writes (port files and
    /// `registry.toml`) the modification time `t`. A build script sets it to a time before
    /// the build started: cargo reruns a build script whose watched file is newer than the
    /// script's start, and what it writes itself is not news.
    pub fn backdate_watched(mut self, t: Option<SystemTime>) -> Self {
        self.backdate_watched = t;
        self
    }

    /// The modification time watched files get, if [`Store::backdate_watched`] set one.
    pub fn watched_mtime(&self) -> Option<SystemTime> {
        self.backdate_watched
    }

    /// Calls `tell` with the lock file's path once a wait for the lock has lasted half a
    /// second (the CLI says "waiting for the styxy registry lock"). The library prints
    /// nothing itself.
    pub fn on_lock_wait(mut self, tell: fn(&Path)) -> Self {
        self.on_lock_wait = Some(tell);
        self
    }

    /// The directory that holds the state, the lock, the backups and the port files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `registry.toml` (through its symlink, if it is one).
    pub fn file(&self) -> PathBuf {
        self.file.clone()
    }

    pub fn state_file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.dir.join(BACKUP_DIR)
    }

    /// Reads the registry without the lock (writes are atomic, so a reader sees whole
    /// files). Without a `registry.toml` the registry is the built-in types.
    pub fn read(&self) -> Result<Registry> {
        Ok(self.load()?.registry)
    }

    /// [`Store::read`], with the metric counters as the last commit left them: one read of
    /// each file.
    pub fn read_with_counters(&self) -> Result<(Registry, Counters)> {
        let loaded = self.load()?;
        Ok((loaded.registry, loaded.rest.counters))
    }

    /// What a port file derived from the registry as it is now records as its stamp: the
    /// content of `registry.toml` and the state file's inode, size and time.
    pub fn identity(&self) -> Result<String> {
        let config = self.read_file(&self.file())?;
        let state = match fs::metadata(self.state_file()) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot read", self.state_file(), e)),
        };
        Ok(identity(
            config.as_deref().map(str::as_bytes),
            state.as_ref(),
        ))
    }

    /// A file's text; `None` if it does not exist. A symlink, FIFO, device or directory in
    /// its place is an error, not a hang (`registry.toml`'s own link was resolved already).
    fn read_file(&self, path: &Path) -> Result<Option<String>> {
        self.read_file_bytes(path)?
            .map(|bytes| {
                String::from_utf8(bytes).map_err(|_| {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "it is not valid UTF-8",
                    );
                    Error::io("cannot read", path, e)
                })
            })
            .transpose()
    }

    /// [`Store::read_file`]'s bytes, UTF-8 or not.
    fn read_file_bytes(&self, path: &Path) -> Result<Option<Vec<u8>>> {
        match fs::symlink_metadata(path) {
            Ok(m) if !m.is_file() => return Err(fsx::not_a_file(path, &m)),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", path, e)),
        }
        // Checked again on what is opened: a file swapped for a FIFO or a link in between is
        // refused, and none is read past the cap.
        match fsx::read_bounded(path, fsx::REGISTRY_FILE_CAP, crate::os::Links::Refuse) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", path, e)),
        }
    }

    fn parse_state(&self, text: &str) -> Result<state::State> {
        state::parse(text).map_err(|e| match e {
            StateError::Newer(format) => Error::from(StoreError::NewerState {
                file: self.state_file(),
                format,
                reads: state::FORMAT,
            }),
            StateError::Parse(message) => Error::from(StoreError::InvalidState {
                file: self.state_file(),
                message,
            }),
        })
    }

    fn parse_config(&self, text: &str, file: &Path) -> Result<Config> {
        let config = config::parse(text).map_err(|e| {
            let (line, column) = line_column(text, e.offset);
            Error::from(StoreError::Parse {
                file: file.to_path_buf(),
                line,
                column,
                message: e.message,
                backup: self.last_good_backup(),
            })
        })?;
        validate::definitions(&config.registry).map_err(|invalid| {
            Error::from(StoreError::InvalidRegistry {
                file: file.to_path_buf(),
                invalid: Box::new(invalid),
                backup: self.last_good_backup(),
            })
        })?;
        Ok(config)
    }

    /// `registry.toml` layered over the built-ins, with the state merged in. A registry of
    /// the single-file format (no state yet) is read as it is.
    fn load(&self) -> Result<Loaded> {
        self.load_with(false)
    }

    /// [`Store::load`]; with `any_config`, a `registry.toml` that does not parse or validate
    /// reads as an empty one (for replacing it whole).
    fn load_with(&self, any_config: bool) -> Result<Loaded> {
        // Readers trust the directory no more than writers do: a file another user may
        // swap is no basis for an answer either.
        if fs::symlink_metadata(&self.dir).is_ok() {
            fsx::check_private_dir(&self.dir)?;
        }
        let config_text = match self.read_file_bytes(&self.file())? {
            None => None,
            Some(bytes) => match String::from_utf8(bytes) {
                Ok(text) => Some(text),
                // Replaced whole anyway (a restore repairs exactly this).
                Err(e) if any_config => Some(String::from_utf8_lossy(e.as_bytes()).into_owned()),
                Err(e) => {
                    let valid = e.utf8_error().valid_up_to();
                    let before = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
                    let (line, column) = line_column(&before, valid);
                    return Err(Error::from(StoreError::Parse {
                        file: self.file(),
                        line,
                        column,
                        message: "this byte is not valid UTF-8".into(),
                        backup: self.last_good_backup(),
                    }));
                }
            },
        };
        let state_text = self.read_file(&self.state_file())?;
        let parsed = match self.parse_config(config_text.as_deref().unwrap_or(""), &self.file()) {
            Err(
                Error::Store(StoreError::Parse { .. })
                | Error::Store(StoreError::InvalidRegistry { .. }),
            ) if any_config => self.parse_config("", &self.file()),
            parsed => parsed,
        };
        let Config { mut registry } = parsed?;
        let rest = match &state_text {
            Some(text) => state::merge(&mut registry, self.parse_state(text)?),
            None => state::Rest::default(),
        };
        Ok(Loaded {
            config_text,
            registry,
            state_len: state_text.as_ref().map(String::len),
            rest,
        })
    }

    /// Takes the lock: a sidecar file locked with the OS's advisory lock, retried until the
    /// deadline (printing "waiting for the styxy registry lock" once).
    fn take_lock(&self) -> Result<(File, Duration)> {
        let timeout = self.lock_timeout.clone().map_err(|value| {
            Error::from(AllocError::InvalidValue {
                what: LOCK_TIMEOUT_ENV,
                value,
                reason: "use a number of seconds up to 86400, e.g. 30 or 0.5".into(),
            })
        })?;
        fsx::create_private_dir(&self.dir)?;
        fsx::check_private_dir(&self.dir)?;
        let path = self.lock_file();
        fsx::check_regular(&path)?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let file = crate::os::open_checked(
            &path,
            crate::os::private_file(&mut options),
            crate::os::Links::Refuse,
        )
        .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
        let start = Instant::now();
        match file.try_lock() {
            Ok(()) => return Ok((file, start.elapsed())),
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => return Err(Error::io("cannot lock", &path, e)),
        }
        let waiter = lock::Waiter::start(&file).map_err(|e| Error::io("cannot lock", &path, e))?;
        let tell_at = Duration::from_millis(500);
        let mut told = self.on_lock_wait.is_none();
        loop {
            let waited = start.elapsed();
            if waited >= timeout {
                // Dropping the waiter lets go of a lock it gets too late.
                return Err(Error::from(StoreError::LockTimeout {
                    who_holds: crate::os::who_holds(&path),
                    lock_file: path,
                    secs: timeout.as_secs(),
                }));
            }
            let step = if told {
                timeout - waited
            } else {
                tell_at.saturating_sub(waited).min(timeout - waited)
            };
            if waiter
                .wait(step)
                .map_err(|e| Error::io("cannot lock", &path, e))?
            {
                // Checked once more: a lock taken just as the waiter was abandoned is ours too.
                return Ok((file, start.elapsed()));
            }
            if !told && start.elapsed() >= tell_at {
                if let Some(tell) = self.on_lock_wait {
                    tell(&path);
                }
                told = true;
            }
        }
    }

    /// Takes the lock, sweeps temp files of killed writers, and reads the registry and the
    /// state (creating nothing yet). A file that does not parse is an error, and is never
    /// overwritten.
    pub(super) fn lock(&self) -> Result<Guard<'_>> {
        self.lock_with(false)
    }

    fn lock_with(&self, any_config: bool) -> Result<Guard<'_>> {
        let (lock, lock_wait) = self.take_lock()?;
        let locked_at = Instant::now();
        for dir in [self.dir.clone(), self.backup_dir()] {
            fsx::sweep_temps(&dir);
        }
        let mut loaded = self.load_with(any_config)?;
        let original = std::mem::take(&mut loaded.registry);
        let registry = original.clone();
        Ok(Guard {
            store: self,
            lock,
            loaded,
            original,
            registry,
            replacement: None,
            lock_wait,
            locked_at,
        })
    }

    /// The port file of the workspace `root`, if it was derived from the registry as it is
    /// now (read without the lock: the fast path of `env`, `port` and build scripts).
    pub fn current_port_file(&self, root: &str) -> Option<PortFile> {
        portfile::current(&self.dir, root, || self.identity().ok())
    }

    /// The backups, newest first.
    ///
    /// Only what the tool writes counts: regular files named `registry.NANOS.toml` in a
    /// `backups/` that is a directory of its own, not a symlink to another folder.
    pub fn backups(&self) -> Vec<PathBuf> {
        let dir = self.backup_dir();
        if fsx::check_own_subdir(&dir).is_err() {
            return Vec::new();
        }
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("registry.")?.strip_suffix(".toml"))
                    .is_some_and(|nanos| {
                        !nanos.is_empty() && nanos.bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .map(|e| e.path())
            .collect();
        found.sort_unstable();
        found.reverse();
        found
    }

    /// The newest backup that parses and validates.
    pub fn last_good_backup(&self) -> Option<PathBuf> {
        self.backups().into_iter().find(|b| {
            read_backup(b)
                .ok()
                .and_then(|t| config::parse(&t).ok())
                .is_some_and(|c| validate::definitions(&c.registry).is_ok())
        })
    }

    /// Keeps `contents`, a version of `registry.toml` that is live now, as the newest backup
    /// (its own file, not a link: an editor that writes the registry in place must not change
    /// a backup).
    pub(super) fn keep_backup(&self, contents: &[u8]) -> Result<()> {
        let dir = self.backup_dir();
        fsx::create_own_subdir(&dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        fsx::write_atomic(&dir.join(format!("registry.{nanos:020}.toml")), contents)
    }

    /// Drops all backups but the newest [`BACKUPS_KEPT`]. Two processes pruning at once
    /// remove the same files.
    pub(super) fn prune_backups(&self) {
        for old in self.backups().into_iter().skip(BACKUPS_KEPT) {
            let _ = fs::remove_file(old);
        }
    }

    /// `registry.toml`'s text as it is now: the template when there is no file yet.
    pub fn current_text(&self) -> Result<String> {
        Ok(self
            .read_file(&self.file())?
            .unwrap_or_else(|| config::TEMPLATE.to_owned()))
    }

    /// Takes the lock as [`Store::lock`] does, but a `registry.toml` that does not parse or
    /// validate reads as an empty one: for replacing it whole ([`Guard::replace_config`]).
    pub(super) fn lock_for_replacement(&self) -> Result<Guard<'_>> {
        self.lock_with(true)
    }
}

impl<'s> Guard<'s> {
    pub fn store(&self) -> &'s Store {
        self.store
    }

    /// How long the lock has been held so far.
    pub fn held(&self) -> Duration {
        self.locked_at.elapsed()
    }

    /// Forgets every change made to [`Guard::registry`] so far.
    pub fn discard_changes(&mut self) {
        self.registry = self.original.clone();
        self.replacement = None;
    }

    /// `registry.toml`'s text as read under the lock: the template when there is no file.
    pub fn config_text(&self) -> &str {
        self.loaded
            .config_text
            .as_deref()
            .unwrap_or(config::TEMPLATE)
    }

    /// Instances the state holds of types defined nowhere any more (removed from
    /// `registry.toml` by hand): the next commit drops them.
    pub fn orphans(&self) -> &[(String, String, crate::model::Instance)] {
        &self.loaded.rest.orphans.instances
    }

    /// The audit records of the commit that wrote the state as it was read, so that one a
    /// kill kept from the trail can be appended now.
    pub fn last_records(&self) -> &[Record] {
        &self.loaded.rest.audit
    }

    /// Makes `text` (read from `source`) the next `registry.toml`, if it parses and validates
    /// with the state as it is.
    pub(super) fn replace_config(&mut self, text: &str, source: &Path) -> Result<()> {
        let store = self.store;
        let doc = parse_doc(text, source)?;
        let Config { mut registry } = store.parse_config(text, source)?;
        let current = state::of(&self.registry, &self.loaded.rest.counters, &[]);
        let _ = state::merge(&mut registry, current);
        self.registry = registry;
        self.replacement = Some(doc.to_string());
        Ok(())
    }
}

pub(super) fn parse_doc(text: &str, file: &Path) -> Result<DocumentMut> {
    text.parse::<DocumentMut>().map_err(|e| {
        let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
        Error::from(StoreError::Parse {
            file: file.to_path_buf(),
            line,
            column,
            message: e.message().trim().replace('\n', " "),
            backup: None,
        })
    })
}

/// A backup's text, read as any file of the registry dir is: a regular file (not a link, a
/// FIFO or a device) within the cap.
pub fn read_backup(path: &Path) -> Result<String> {
    fsx::read_text_bounded(path, fsx::REGISTRY_FILE_CAP, crate::os::Links::Refuse)
        .map_err(|e| Error::io("cannot read the backup", path, e))
}

/// The registry a new machine has: the built-in types and the default settings.
#[cfg(test)]
pub(crate) fn template() -> Registry {
    config::parse(config::TEMPLATE)
        .expect("the bundled template parses (checked by a test)")
        .registry
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parses_and_validates() {
        let reg = template();
        assert_eq!(reg.types.len(), 17);
        assert!(validate::definitions(&reg).is_ok());
        assert_eq!(
            reg.types["ai"].instance_behavior,
            crate::model::InstanceBehavior::Single
        );
        assert_eq!(
            config::parse("").unwrap().registry,
            reg,
            "an empty file is the template"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a\nbc\nd", 4), (2, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
