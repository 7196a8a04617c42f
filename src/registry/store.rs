//! The registry on disk: the sidecar lock, the guard that is the only way to change the
//! registry, atomic writes, backups, and the sweep of a killed writer's temp files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use toml_edit::DocumentMut;

use crate::allocate::Event;
use crate::audit;
use crate::error::{Error, Result};
use crate::fsx;
use crate::portfile;
use crate::registry::edit;
use crate::registry::fast::{self, Layout};
use crate::registry::model::{Origin, Registry, ServiceType, TypeChange};
use crate::registry::snapshot::{self, Identity, Parked};
use crate::registry::validate;

/// The registry file in the registry directory.
pub const REGISTRY_FILE: &str = "registry.toml";
/// The sidecar lock file: locked, never replaced (a lock on the data file itself would be
/// lost when a rename swaps its inode).
pub const LOCK_FILE: &str = "registry.lock";
/// Where earlier versions of the registry are kept.
pub const BACKUP_DIR: &str = "backups";
/// How many earlier versions are kept.
pub const BACKUPS_KEPT: usize = 10;
/// The environment variable that sets the lock deadline in seconds.
pub const LOCK_TIMEOUT_ENV: &str = "STYXY_LOCK_TIMEOUT";
/// How long to wait for the lock unless told otherwise.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The registry's first content: settings and Styxy's 17 standard service types.
pub const TEMPLATE: &str = include_str!("../../templates/registry.toml");

/// A registry directory. Opening one touches nothing; the directory and the file are
/// created by the first change.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    lock_timeout: Duration,
    quiet: bool,
    backdate_port_files: Option<SystemTime>,
    short_lived: bool,
}

/// Exclusive access to the registry, holding the parsed content as read *after* the lock was
/// taken. Change [`Guard::registry`] and [`Guard::commit`]; dropping the guard without a
/// commit changes nothing. The lock is released when the guard is dropped (and by the kernel
/// if the process dies).
#[derive(Debug)]
pub struct Guard<'s> {
    store: &'s Store,
    lock: File,
    /// The file's text as read under the lock.
    text: String,
    /// Spans of each type's tables in `text`, when known (from the snapshot).
    layout: Option<Layout>,
    /// Whether the snapshot matched the file; else one is written at commit.
    snapshot_fresh: bool,
    /// The types not parsed in full, and the snapshot's JSON of every type.
    parked: Parked,
    original: Registry,
    /// The registry; change it, then commit.
    pub registry: Registry,
    /// How long taking the lock took.
    pub lock_wait: Duration,
    locked_at: Instant,
    touched: BTreeSet<String>,
}

impl Store {
    /// The registry in `dir`. The lock deadline comes from `STYXY_LOCK_TIMEOUT` (seconds),
    /// else 30 s.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let lock_timeout = std::env::var(LOCK_TIMEOUT_ENV)
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(DEFAULT_LOCK_TIMEOUT, Duration::from_secs_f64);
        Self {
            dir: dir.into(),
            lock_timeout,
            quiet: false,
            backdate_port_files: None,
            short_lived: false,
        }
    }

    /// For a process that exits right after its command: a commit leaves the registry it
    /// parsed to the exit instead of freeing it (at 10,000 types, freeing takes longer than
    /// the exit). Not for a long-running process.
    pub fn short_lived(mut self, short_lived: bool) -> Self {
        self.short_lived = short_lived;
        self
    }

    /// Give port files this store writes the modification time `t`. A build script sets it
    /// to a time before the build started: cargo reruns a build script whose watched file is
    /// newer than the script's start, and the port file it writes itself is not news.
    pub fn backdate_port_files(mut self, t: Option<SystemTime>) -> Self {
        self.backdate_port_files = t;
        self
    }

    /// Don't print "waiting for the styxy registry lock".
    pub fn quiet(mut self, quiet: bool) -> Self {
        self.quiet = quiet;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file(&self) -> PathBuf {
        self.dir.join(REGISTRY_FILE)
    }

    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    pub fn backup_dir(&self) -> PathBuf {
        self.dir.join(BACKUP_DIR)
    }

    /// Reads the registry without the lock (writes are atomic, so a reader sees a whole
    /// version). A registry that does not exist yet reads as the template.
    pub fn read(&self) -> Result<Registry> {
        let Some(text) = self.read_text()? else {
            return Ok(template());
        };
        if let Some(loaded) = snapshot::load(&self.dir, text.as_bytes(), None) {
            return Ok(loaded.registry);
        }
        let (registry, layout) = self.parse_typed(&text)?;
        self.store_snapshot(text.as_bytes(), &registry, layout.as_ref());
        Ok(registry)
    }

    fn read_text(&self) -> Result<Option<String>> {
        let file = self.file();
        match fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read the registry", file, e)),
        }
    }

    /// Parses and validates the registry file's `text`, with its layout: one toml_edit parse
    /// gives both (at 10,000 types a parse takes ~100 ms).
    fn parse_typed(&self, text: &str) -> Result<(Registry, Option<Layout>)> {
        let doc = toml_edit::Document::parse(text)
            .map_err(|e| self.parse_error(text, e.span().map_or(0, |s| s.start), e.message()))?;
        let layout = fast::layout_of(&doc, text);
        let reg = Registry::deserialize(toml_edit::de::Deserializer::from(doc))
            .map_err(|e| self.parse_error(text, e.span().map_or(0, |s| s.start), e.message()))?;
        validate::registry(&reg).map_err(|problem| Error::InvalidRegistry {
            file: self.file(),
            problem,
            backup: self.last_good_backup(),
        })?;
        Ok((reg, layout))
    }

    fn parse_doc(&self, text: &str) -> Result<DocumentMut> {
        text.parse::<DocumentMut>()
            .map_err(|e| self.parse_error(text, e.span().map_or(0, |s| s.start), e.message()))
    }

    fn parse_error(&self, text: &str, offset: usize, message: &str) -> Error {
        let (line, column) = line_column(text, offset);
        Error::Parse {
            file: self.file(),
            line,
            column,
            message: message.trim().replace('\n', " "),
            backup: self.last_good_backup(),
        }
    }

    /// Takes the lock: a sidecar file locked with the OS's advisory lock, retried until the
    /// deadline (printing "waiting for the styxy registry lock" once).
    fn take_lock(&self) -> Result<(File, Duration)> {
        fsx::create_private_dir(&self.dir)?;
        let path = self.lock_file();
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options
            .open(&path)
            .map_err(|e| Error::io("cannot open the lock file", &path, e))?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        let mut told = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok((file, start.elapsed())),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io("cannot lock", &path, e));
                }
            }
            let waited = start.elapsed();
            if waited >= self.lock_timeout {
                return Err(Error::LockTimeout {
                    lock_file: path,
                    secs: self.lock_timeout.as_secs(),
                });
            }
            if !told && !self.quiet && waited >= Duration::from_millis(500) {
                eprintln!("waiting for the styxy registry lock {}", path.display());
                told = true;
            }
            std::thread::sleep(pause.min(self.lock_timeout - waited));
            pause = (pause * 2).min(Duration::from_millis(8));
        }
    }

    /// Takes the lock, sweeps temp files of killed writers, and reads the registry (creating
    /// nothing yet: a missing file reads as the template and is written by the first commit).
    /// A file that does not parse is an error, and is never overwritten.
    pub fn lock(&self) -> Result<Guard<'_>> {
        self.lock_scoped(None)
    }

    /// [`Store::lock`] for a command that changes only the service types `types` (and
    /// reads the others' ranges): the others' instances and leases may be left unparsed
    /// (see [`Guard::is_parked`]), which is what keeps a large registry fast. Committing a
    /// change to a parked type is refused.
    pub fn lock_types(&self, types: &[&str]) -> Result<Guard<'_>> {
        self.lock_scoped(Some(types))
    }

    fn lock_scoped(&self, wanted: Option<&[&str]>) -> Result<Guard<'_>> {
        let (lock, lock_wait) = self.take_lock()?;
        let locked_at = Instant::now();
        fsx::sweep_temps(&self.dir, REGISTRY_FILE);
        let full = |text: String, registry: Registry, layout| {
            let original = registry.clone();
            (text, registry, original, layout, Parked::default(), false)
        };
        let (text, registry, original, layout, parked, snapshot_fresh) = match self.read_text()? {
            Some(text) => match snapshot::load(&self.dir, text.as_bytes(), wanted) {
                Some(l) => (text, l.registry, l.loaded, l.layout, l.parked, true),
                None => {
                    let (registry, layout) = self.parse_typed(&text)?;
                    full(text, registry, layout)
                }
            },
            None => full(TEMPLATE.to_owned(), template(), None),
        };
        Ok(Guard {
            store: self,
            lock,
            text,
            layout,
            snapshot_fresh,
            parked,
            original,
            registry,
            lock_wait,
            locked_at,
            touched: BTreeSet::new(),
        })
    }

    /// The backups, newest first.
    pub fn backups(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.backup_dir()) else {
            return Vec::new();
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("registry.") && n.ends_with(".toml"))
            })
            .collect();
        found.sort_unstable();
        found.reverse();
        found
    }

    /// The newest backup that parses and validates.
    pub fn last_good_backup(&self) -> Option<PathBuf> {
        self.backups().into_iter().find(|b| {
            fs::read_to_string(b)
                .ok()
                .and_then(|t| toml::from_str::<Registry>(&t).ok())
                .is_some_and(|r| validate::registry(&r).is_ok())
        })
    }

    /// Keeps `contents` as the newest backup (its own file, not a link: an editor that
    /// writes the registry in place must not change a backup). A backup torn by a crash does
    /// not parse and is skipped on restore. Call [`Store::prune_backups`] afterwards (it
    /// need not hold the lock).
    fn keep_backup(&self, contents: &[u8]) -> Result<PathBuf> {
        let dir = self.backup_dir();
        fsx::create_private_dir(&dir)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let backup = dir.join(format!("registry.{nanos:020}.toml"));
        fsx::write_private(&backup, contents)?;
        Ok(backup)
    }

    /// Drops all backups but the newest [`BACKUPS_KEPT`]. Two processes pruning at once
    /// remove the same files.
    fn prune_backups(&self) {
        for old in self.backups().into_iter().skip(BACKUPS_KEPT) {
            let _ = fs::remove_file(old);
        }
    }

    /// The registry file's text as it is now: the template when there is no file yet.
    pub fn current_text(&self) -> Result<String> {
        Ok(self.read_text()?.unwrap_or_else(|| TEMPLATE.to_owned()))
    }

    /// Replaces the registry with `text` written by hand (`config edit`), under the lock and
    /// only if the file still holds `expected` (else another process changed it meanwhile).
    /// Returns whether anything changed.
    pub fn replace_text(&self, expected: &str, text: &str) -> Result<bool> {
        let (_lock, lock_wait) = self.take_lock()?;
        let locked_at = Instant::now();
        if self.current_text()? != expected {
            return Err(Error::InvalidValue {
                what: "edit",
                value: self.file().display().to_string(),
                reason: "another process changed the registry while you edited it; edit it again"
                    .into(),
            });
        }
        if text == expected {
            return Ok(false);
        }
        let file = self.file();
        self.install(
            text,
            &file,
            "edit",
            file.display().to_string(),
            lock_wait,
            locked_at,
        )?;
        Ok(true)
    }

    /// Replaces the registry with a backup (`None`: the newest one that parses and
    /// validates). The current file, even one that does not parse, is kept as a backup first.
    /// Returns the backup restored.
    pub fn restore(&self, backup: Option<&Path>) -> Result<PathBuf> {
        let (_lock, lock_wait) = self.take_lock()?;
        let locked_at = Instant::now();
        let chosen = match backup {
            Some(b) => b.to_path_buf(),
            None => self.last_good_backup().ok_or_else(|| Error::NoBackup {
                dir: self.backup_dir(),
            })?,
        };
        let text = fs::read_to_string(&chosen)
            .map_err(|e| Error::io("cannot read the backup", &chosen, e))?;
        let value = chosen.display().to_string();
        self.install(&text, &chosen, "restore", value, lock_wait, locked_at)?;
        Ok(chosen)
    }

    /// Makes `text` (from `source`) the registry if it parses and validates: the current file
    /// kept as a backup, the new one written atomically and kept too, and a `CONFIG_CHANGED`
    /// line (`key`, `value`) in the audit trail. Call with the lock held.
    fn install(
        &self,
        text: &str,
        source: &Path,
        key: &str,
        value: String,
        lock_wait: Duration,
        locked_at: Instant,
    ) -> Result<()> {
        let reg: Registry = toml::from_str(text).map_err(|e| {
            let (line, column) = line_column(text, e.span().map_or(0, |s| s.start));
            Error::Parse {
                file: source.to_path_buf(),
                line,
                column,
                message: e.message().trim().replace('\n', " "),
                backup: None,
            }
        })?;
        validate::registry(&reg).map_err(|problem| Error::InvalidRegistry {
            file: source.to_path_buf(),
            problem,
            backup: None,
        })?;
        if let Ok(current) = fs::read(fsx::write_target(&self.file())) {
            self.keep_backup(&current)?;
        }
        fsx::write_atomic(&self.file(), text.as_bytes())?;
        self.keep_backup(text.as_bytes())?;
        self.prune_backups();
        let event = Event::ConfigChanged {
            key: key.to_owned(),
            value,
        };
        let records = audit::records(&[event], lock_wait, locked_at.elapsed());
        audit::append(&self.dir, &reg.settings, &records)
    }
}

impl Guard<'_> {
    pub fn store(&self) -> &Store {
        self.store
    }

    /// How long the lock has been held so far.
    pub fn held(&self) -> Duration {
        self.locked_at.elapsed()
    }

    /// Forgets every change made to [`Guard::registry`] so far.
    pub fn discard_changes(&mut self) {
        let mut registry = self.original.clone();
        let stubs = self.parked.stubs().map(|(name, ranges)| {
            (
                name.to_owned(),
                ServiceType::new(ranges.to_vec(), Origin::default()),
            )
        });
        registry.types.extend(stubs);
        self.registry = registry;
    }

    /// The service types that differ from what was read, in name order. A change to a
    /// parked type is refused.
    fn changes(&self) -> Result<Vec<TypeChange<'_>>> {
        self.parked.unchanged_in(&self.registry).map_err(|name| Error::InvalidRegistry {
            file: self.store.file(),
            problem: format!(
                "refusing to write a change to {name:?}, whose instances were not read (a bug in styxy; please report it)"
            ),
            backup: None,
        })?;
        // `original` holds the loaded types only.
        let mut changes: Vec<TypeChange<'_>> =
            self.original.changed_types(&self.registry).collect();
        self.parked.without_stubs(&mut changes);
        Ok(changes)
    }

    /// Whether the settings, rules or strategies changed.
    fn head_changed(&self) -> bool {
        let (a, b) = (&self.original, &self.registry);
        a.settings != b.settings || a.rules != b.rules || a.strategies != b.strategies
    }

    /// Makes the next commit (re)write the port file of the workspace `root`, even if the
    /// registry does not change (a port file that was deleted comes back).
    pub fn touch_workspace(&mut self, root: &str) {
        self.touched.insert(root.to_owned());
    }

    /// Whether the type `name` is parked: in [`Guard::registry`] without its instances and
    /// leases, which were not parsed (see [`Store::lock_types`]).
    pub fn is_parked(&self, name: &str) -> bool {
        self.parked.is_parked(name)
    }

    /// Parses the parked type `name` in full, so it may be read and changed like any other.
    pub fn unpark(&mut self, name: &str) {
        if let Some(t) = self.parked.unpark(name) {
            self.original.types.insert(name.to_owned(), t.clone());
            self.registry.types.insert(name.to_owned(), t);
        }
    }

    /// Writes the registry if it changed: validated as a whole, only the changed parts of the
    /// document rewritten (comments survive), put in place atomically, and kept as the newest
    /// backup. Then rewrites the port file of every workspace whose instances changed (and of
    /// every touched one), each only if its content differs. `events` are what the change did
    /// (appended to the audit trail, even when the registry did not change: a refused
    /// allocation is recorded too). Returns whether the registry was written. The lock is
    /// released afterwards. A change to a parked type is refused, and nothing is written.
    pub fn commit(mut self, events: &[Event]) -> Result<bool> {
        let store = self.store;
        let changed = self.head_changed() || !self.changes()?.is_empty();
        let mut roots = std::mem::take(&mut self.touched);
        let mut dropped = Vec::new();
        let mut written = None;
        if changed {
            let edit = self.edit()?;
            roots.extend(edit.workspaces);
            dropped = edit.dropped;
            // Projected before anything is written: a failure writes nothing.
            let port_files = store.port_files(&self.registry, &self.parked, &roots)?;
            written = Some(self.write(&edit.text, edit.layout.as_ref(), &edit.types)?);
            for (path, text) in port_files {
                store.write_port_file(&path, &text)?;
            }
        } else {
            if !self.snapshot_fresh && store.file().exists() {
                store.store_snapshot(self.text.as_bytes(), &self.registry, self.layout.as_ref());
            }
            for (path, text) in store.port_files(&self.registry, &self.parked, &roots)? {
                store.write_port_file(&path, &text)?;
            }
        }
        let all_events: Vec<Event> = events.iter().cloned().chain(dropped).collect();
        let records = audit::records(&all_events, self.lock_wait, self.held());
        audit::append(&store.dir, &self.registry.settings, &records)?;
        drop(self.lock);
        // Every process sees the new registry since the rename. Making the rename durable
        // needs no lock, so the next writer need not wait for this disk flush, nor for the
        // old files' blocks to be freed, nor for old backups to go.
        if let Some(Written { dir, keep_open }) = written {
            drop(keep_open);
            fsx::sync_dir(&dir)?;
            store.prune_backups();
        }
        if store.short_lived {
            std::mem::forget((self.registry, self.original, self.parked, self.text));
        }
        Ok(changed)
    }

    /// The new registry file for the changes made: checked, and spliced into the old text
    /// (or, if it cannot be, synced through a whole toml_edit document).
    fn edit(&mut self) -> Result<Edit> {
        let store = self.store;
        // Leases of dead processes are ignored everywhere and dropped by the next write.
        for name in self.parked.leased() {
            self.unpark(&name);
        }
        let dropped =
            crate::allocate::leases::drop_dead(&mut self.registry, &crate::probe::lease_is_live);
        let layout = self.layout.take();
        // The changed types, found once: at 10,000 types each pass over all of them counts.
        let changes = self.changes()?;
        validate::change(&self.original, &self.registry, &changes).map_err(|problem| {
            Error::InvalidRegistry {
                file: store.file(),
                problem: format!("refusing to write an invalid registry: {problem}"),
                backup: None,
            }
        })?;
        let types: BTreeSet<String> = changes.iter().map(|(name, _, _)| (*name).clone()).collect();
        let workspaces = changed_workspaces(&changes);
        let layout = layout.or_else(|| fast::layout(&self.text));
        let spliced = layout
            .and_then(|l| fast::splice(&self.text, l, &self.original, &self.registry, &changes));
        let (text, layout) = match spliced {
            Some((text, layout)) => (text, Some(layout)),
            None => {
                // The whole document is synced: every type must be there in full.
                for name in self.parked.names() {
                    self.unpark(&name);
                }
                let mut doc = store.parse_doc(&self.text)?;
                edit::sync(&mut doc, &self.original, &self.registry);
                let text = doc.to_string();
                let layout = fast::layout(&text);
                (text, layout)
            }
        };
        debug_assert!(
            reads_back_as(&text, &self.registry, &self.parked),
            "the edited document must read back as the registry"
        );
        Ok(Edit {
            text,
            layout,
            types,
            workspaces,
            dropped,
        })
    }

    /// Replaces the registry file with `text`, keeps it as a backup, and writes its snapshot
    /// (`types` changed). The backup and the snapshot are written while a second thread
    /// writes and syncs the registry (most of a commit's time at 10,000 types). Neither
    /// misleads if that write fails: the backup is removed again, and the snapshot is of a
    /// file that never was.
    fn write(
        &self,
        text: &str,
        layout: Option<&Layout>,
        types: &BTreeSet<String>,
    ) -> Result<Written> {
        let store = self.store;
        let file = store.file();
        // Replacing a file frees its blocks, unless it is still open: holding the old
        // registry and snapshot open moves that work past the lock's release.
        let keep_open = [file.clone(), snapshot::path(&store.dir)]
            .iter()
            .filter_map(|p| File::open(p).ok())
            .collect();
        let (written, backup) = std::thread::scope(|s| {
            let writer = s.spawn(|| fsx::replace(&file, text.as_bytes()));
            let backup = store.keep_backup(text.as_bytes());
            snapshot::store(
                &store.dir,
                Identity::of(text.as_bytes()),
                &self.registry,
                layout,
                &self.parked,
                types,
            );
            let written = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (written, backup)
        });
        match (written, backup) {
            (Ok(dir), Ok(_)) => Ok(Written { dir, keep_open }),
            (Ok(_), Err(e)) => Err(e),
            (Err(e), backup) => {
                if let Ok(path) = backup {
                    let _ = fs::remove_file(path);
                }
                Err(e)
            }
        }
    }
}

impl Store {
    /// Writes the snapshot of `registry`, read in full from the file whose bytes are `file`.
    fn store_snapshot(&self, file: &[u8], registry: &Registry, layout: Option<&Layout>) {
        snapshot::store(
            &self.dir,
            Identity::of(file),
            registry,
            layout,
            &Parked::default(),
            &BTreeSet::new(),
        );
    }

    /// The port file of each workspace in `roots`: its path and content. The instances of
    /// parked types are found in `parked`.
    fn port_files(
        &self,
        reg: &Registry,
        parked: &Parked,
        roots: &BTreeSet<String>,
    ) -> Result<Vec<(PathBuf, String)>> {
        roots
            .iter()
            .map(|root| {
                let held = parked.holding(root).map_err(|name| {
                    let file = snapshot::path(&self.dir);
                    let _ = fs::remove_file(&file);
                    Error::DamagedCache { file, name }
                })?;
                let types = reg.types.iter().chain(held.iter().map(|(n, t)| (n, t)));
                let text = portfile::project(types, root).render();
                Ok((portfile::path(&self.dir, root), text))
            })
            .collect()
    }

    /// Writes a port file if its content differs.
    fn write_port_file(&self, path: &Path, text: &str) -> Result<()> {
        if let Some(dir) = path.parent() {
            fsx::create_private_dir(dir)?;
        }
        if fsx::write_if_changed(path, text.as_bytes())?
            && let Some(t) = self.backdate_port_files
        {
            let _ = File::options()
                .write(true)
                .open(path)
                .and_then(|f| f.set_modified(t));
        }
        Ok(())
    }
}

/// A commit's new registry file, before it is written.
struct Edit {
    text: String,
    layout: Option<Layout>,
    /// The service types that changed.
    types: BTreeSet<String>,
    /// The workspaces whose instances changed.
    workspaces: BTreeSet<String>,
    /// Leases of dead processes, dropped.
    dropped: Vec<Event>,
}

/// A registry file in place, not yet durable.
struct Written {
    /// To sync (the rename).
    dir: PathBuf,
    /// The replaced files, held open until the lock is released.
    keep_open: Vec<File>,
}

/// Whether the registry file's `text` holds `reg`: every type as it is, a parked one as far
/// as it is known (its ranges). A check for debug builds: it parses the whole file.
fn reads_back_as(text: &str, reg: &Registry, parked: &Parked) -> bool {
    let Ok(read) = toml::from_str::<Registry>(text) else {
        return false;
    };
    let same_types = read.types.len() == reg.types.len()
        && read.types.iter().zip(&reg.types).all(|((n, a), (m, b))| {
            n == m && (a == b || (parked.is_parked(n) && a.ranges == b.ranges))
        });
    same_types
        && read.settings == reg.settings
        && read.rules == reg.rules
        && read.strategies == reg.strategies
}

/// Workspaces with an instance that was added, removed or moved by `changes`.
fn changed_workspaces(changes: &[TypeChange<'_>]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let empty = BTreeMap::new();
    for &(_, before, after) in changes {
        let a = before.map_or(&empty, |t| &t.instances);
        let b = after.map_or(&empty, |t| &t.instances);
        for (id, i) in a.iter().chain(b.iter()) {
            if a.get(id) != b.get(id) {
                out.extend(i.workspace.clone());
            }
        }
    }
    out
}

/// The registry as the template makes it.
pub fn template() -> Registry {
    toml::from_str(TEMPLATE).expect("the bundled template parses (checked by a test)")
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
        assert!(validate::registry(&reg).is_ok());
        assert_eq!(
            reg.types["ai"].instance_behavior,
            crate::registry::model::InstanceBehavior::Single
        );
    }

    /// A store with the types "a" (20000-20009) and "b" (21000-21009), each with one
    /// instance ("a1", "b1") of the workspace "/w".
    fn two_types(dir: &Path) -> Store {
        use crate::registry::model::{Instance, Origin, PortRange, ServiceType};
        let store = Store::new(dir);
        let mut g = store.lock().unwrap();
        for (name, start) in [("a", 20000), ("b", 21000)] {
            let mut t = ServiceType::new(vec![PortRange::new(start, start + 9)], Origin::User);
            let i = Instance {
                port: start,
                workspace: Some("/w".into()),
                service: None,
            };
            t.instances.insert(format!("{name}1"), i);
            g.registry.types.insert(name.into(), t);
        }
        g.commit(&[]).unwrap();
        store
    }

    #[test]
    fn a_change_to_a_parked_type_is_refused_and_parked_types_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_types(dir.path());
        let before = store.read().unwrap();
        let from_file = || -> Registry { toml::from_str(&store.current_text().unwrap()).unwrap() };

        // A guard for "a" parks "b": a change to "b" is refused and writes nothing.
        let mut g = store.lock_types(&["a"]).unwrap();
        assert!(g.is_parked("b") && !g.is_parked("a"));
        assert!(g.registry.types["b"].instances.is_empty(), "not read");
        g.registry.types.get_mut("b").unwrap().ranges[0].end += 1;
        let err = g.commit(&[]).unwrap_err().to_string();
        assert!(err.contains("\"b\""), "{err}");
        assert_eq!(store.read().unwrap(), before);
        assert_eq!(from_file(), before);

        // Nor can it be removed; and discarding changes brings it back as it was.
        let mut g = store.lock_types(&["a"]).unwrap();
        g.registry.types.remove("b");
        g.registry.types.get_mut("a").unwrap().instances.clear();
        assert!(g.commit(&[]).is_err(), "a parked type removed");
        let mut g = store.lock_types(&["a"]).unwrap();
        let as_read = g.registry.clone();
        g.registry.types.remove("b");
        g.registry.types.get_mut("a").unwrap().instances.clear();
        g.discard_changes();
        assert_eq!(g.registry, as_read);
        assert!(!g.commit(&[]).unwrap(), "nothing to write");
        assert_eq!(from_file(), before);

        // A change to "a" leaves "b" whole, in the file and in the snapshot.
        let mut g = store.lock_types(&["a"]).unwrap();
        g.registry.types.get_mut("a").unwrap().instances.clear();
        g.commit(&[]).unwrap();
        let after = store.read().unwrap();
        assert_eq!(after.types["b"], before.types["b"]);
        assert!(after.types["a"].instances.is_empty());
        assert_eq!(from_file(), after);

        // Unparked, "b" can change.
        let mut g = store.lock_types(&["a"]).unwrap();
        g.unpark("b");
        assert_eq!(g.registry.types["b"], before.types["b"]);
        g.registry.types.get_mut("b").unwrap().instances.clear();
        g.commit(&[]).unwrap();
        assert!(store.read().unwrap().types["b"].instances.is_empty());
    }

    #[test]
    fn after_a_hand_edit_one_read_is_enough_for_the_next_writer_to_park() {
        let dir = tempfile::tempdir().unwrap();
        let store = two_types(dir.path());
        let text = store.current_text().unwrap().replace("21009", "21019");
        std::fs::write(store.file(), &text).unwrap();
        let g = store.lock_types(&["a"]).unwrap();
        assert!(!g.is_parked("b"), "stale snapshot: everything parsed");
        drop(g);
        assert_eq!(store.read().unwrap().types["b"].ranges[0].end, 21019);
        let g = store.lock_types(&["a"]).unwrap();
        assert!(g.is_parked("b"), "the reader's snapshot has the layout");
        assert_eq!(g.registry.types["b"].ranges[0].end, 21019);
    }

    #[test]
    fn a_damaged_cached_type_stops_a_commit_before_anything_is_written() {
        use crate::registry::model::Instance;
        let dir = tempfile::tempdir().unwrap();
        let store = two_types(dir.path());
        let (registry, port_file) = (
            store.current_text().unwrap(),
            portfile::path(dir.path(), "/w"),
        );
        let port_file_text = std::fs::read_to_string(&port_file).unwrap();
        // Same length, so every other span of the snapshot stays right.
        let snap = snapshot::path(dir.path());
        let text = std::fs::read_to_string(&snap).unwrap();
        assert!(text.contains("\"port\":21000,"));
        std::fs::write(&snap, text.replace("\"port\":21000,", "\"port\":2100x,")).unwrap();

        let mut g = store.lock_types(&["a"]).unwrap();
        let t = g.registry.types.get_mut("a").unwrap();
        let i = Instance {
            port: 20001,
            workspace: Some("/w".into()),
            service: None,
        };
        t.instances.insert("a2".into(), i);
        let err = g.commit(&[]).unwrap_err();
        assert!(
            matches!(err, Error::DamagedCache { ref name, .. } if name == "b"),
            "{err}"
        );
        assert_eq!(store.current_text().unwrap(), registry, "registry written");
        assert_eq!(std::fs::read_to_string(&port_file).unwrap(), port_file_text);
        // Run again, it works: the damaged cache was removed.
        let mut g = store.lock_types(&["a"]).unwrap();
        g.registry.types.get_mut("a").unwrap().instances.clear();
        g.commit(&[]).unwrap();
        let ports = std::fs::read_to_string(&port_file).unwrap();
        assert!(
            ports.contains("\"b1\"") && !ports.contains("\"a1\""),
            "{ports}"
        );
    }

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("a\nbc\nd", 4), (2, 3));
        assert_eq!(line_column("", 0), (1, 1));
    }
}
