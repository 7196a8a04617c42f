//! The one change path: take the lock, read, set right what a hand edit or a dead process
//! left ([`allocate::tidy`]), run the caller's change on the registry, commit (the state;
//! `registry.toml` only when a person's config changed; the port files of the checkouts it
//! touched; the audit trail), release the lock, and return the change's value with every
//! warning met on the way. Every command and web handler that writes goes through
//! [`change`] (or [`replace`], for `registry.toml` given whole); none commits itself, and
//! nothing here prints.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::allocate::{self, Event, Outcome};
use crate::emit::portfile;
use crate::error::{AllocError, Error, Result, StoreError};
use crate::model::Registry;
use crate::registry::store::{Guard, Store};
use crate::{audit, fsx, probe};

/// A change under the lock: the registry to change and what the change says it did.
#[derive(Debug)]
pub struct Change<'g> {
    /// The registry as read under the lock (and tidied); change it.
    pub registry: &'g mut Registry,
    events: Vec<Event>,
    failures: Vec<Event>,
    warnings: Vec<String>,
    touched: BTreeSet<String>,
    write: bool,
}

impl Change<'_> {
    /// Takes an allocation's outcome: its events are recorded, its warnings returned with
    /// the change's value; returns its value.
    pub fn apply<T>(&mut self, outcome: Outcome<T>) -> T {
        self.events.extend(outcome.events);
        self.warnings.extend(outcome.warnings);
        outcome.value
    }

    /// Records `events` as what the change did.
    pub fn record(&mut self, events: impl IntoIterator<Item = Event>) {
        self.events.extend(events);
    }

    /// Records what a refused request was, in the audit trail and the counters, even though
    /// the change then fails: when it does, its changes to the registry are dropped and only
    /// the tidying and these events are committed.
    pub fn record_failure(&mut self, event: impl IntoIterator<Item = Event>) {
        self.failures.extend(event);
    }

    /// A warning to return with the change's value.
    pub fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// Makes the commit (re)write the port file of the workspace `root`, even if its
    /// instances do not change (a port file that was deleted or is stale comes back).
    pub fn touch_workspace(&mut self, root: &str) {
        self.touched.insert(root.to_owned());
    }

    /// Writes nothing: the change only looked (`gc --dry-run`), or found it has nothing to
    /// do (`run --reuse`). The lock is released.
    pub fn write_nothing(&mut self) {
        self.write = false;
    }
}

/// What a change returned: its value and the warnings to show (the tidying's, the
/// change's own, and what failed after the commit point: a port file, the audit trail, a
/// backup).
#[derive(Debug)]
#[must_use = "the warnings are for the user"]
pub struct Changed<T> {
    pub value: T,
    pub warnings: Vec<String>,
    /// Whether the registry or the state was written.
    pub written: bool,
}

/// When the tidying of what a hand edit or a dead process left runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tidy {
    /// Before the change: every command.
    First,
    /// After it: `gc`, whose own pass comes first (what it drops is not moved first).
    Last,
    /// Not at all: `registry.toml` replaced whole.
    Never,
}

/// Runs `f` as a change of the registry in `store`: the one change path (see the module's
/// doc). When `f` fails, nothing of its change is written, but the tidying and the events
/// it recorded with [`Change::record_failure`] are committed before the error returns.
pub fn change<T, E: From<Error>>(
    store: &Store,
    f: impl FnOnce(&mut Change<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<Changed<T>, E> {
    run(store.lock()?, Tidy::First, f)
}

/// [`change`] for `gc`: the tidying runs after `f`.
pub fn change_tidying_last<T, E: From<Error>>(
    store: &Store,
    f: impl FnOnce(&mut Change<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<Changed<T>, E> {
    run(store.lock()?, Tidy::Last, f)
}

/// A `registry.toml` given whole, to put in place of the current one.
#[derive(Debug)]
pub struct Replacement<T> {
    pub text: String,
    /// Where the text comes from, for its errors.
    pub source: PathBuf,
    /// What the replacement is, for the audit trail.
    pub event: Event,
    pub value: T,
}

/// Replaces `registry.toml` whole (`config edit`, `config restore`) through the change
/// path: under the lock, `prepare` is given the file's text as it is now (which may not
/// parse: that is what a restore repairs) and says what replaces it, if anything; the
/// replacement must parse and validate with the state as it is.
pub fn replace<T>(
    store: &Store,
    prepare: impl FnOnce(&str) -> Result<Option<Replacement<T>>>,
) -> Result<Changed<Option<T>>> {
    let mut guard = store.lock_for_replacement()?;
    let Some(r) = prepare(guard.config_text())? else {
        return Ok(Changed {
            value: None,
            warnings: Vec::new(),
            written: false,
        });
    };
    guard.replace_config(&r.text, &r.source)?;
    run(guard, Tidy::Never, |change: &mut Change<'_>| {
        change.record([r.event]);
        Ok::<_, Error>(Some(r.value))
    })
}

fn run<T, E: From<Error>>(
    mut guard: Guard<'_>,
    tidy: Tidy,
    f: impl FnOnce(&mut Change<'_>) -> std::result::Result<T, E>,
) -> std::result::Result<Changed<T>, E> {
    let store = guard.store();
    let mut warnings = Vec::new();
    // Temp files of killed writers among the port files and the cache; the last commit's
    // audit records, if a kill kept them from the trail.
    fsx::sweep_temps(&store.dir().join(portfile::PORTS_DIR));
    // The cache is written without the lock: only what a killed writer left a while ago.
    #[cfg(feature = "tool")]
    fsx::sweep_temps_older_than(
        &store.dir().join(crate::workspace::cache::CACHE_DIR),
        std::time::Duration::from_secs(60),
    );
    if let Err(e) = audit::recover(store.dir(), &guard.registry.settings, guard.last_records()) {
        warnings.push(format!("cannot complete the audit trail: {e}"));
    }
    // Holders of a type that a hand edit removed: dropped by the commit, and said so.
    let mut events: Vec<Event> = Vec::new();
    let mut touched = BTreeSet::new();
    for (service_type, instance, i) in guard.orphans() {
        touched.extend(i.workspace(instance).map(str::to_owned));
        events.push(Event::Gc {
            service_type: service_type.clone(),
            instance: Some(instance.clone()),
            port: Some(i.port),
            reason: "its service type is gone from registry.toml".into(),
        });
    }
    let before_tidy = (events.len(), warnings.len());
    let machine = crate::this_machine();
    let tidy_now = |registry: &mut Registry, events: &mut Vec<Event>, warnings: &mut Vec<_>| {
        let tidied = allocate::tidy(registry, &machine, &probe::lease_is_live);
        events.extend(tidied.events);
        warnings.extend(tidied.warnings);
    };
    if tidy == Tidy::First {
        tidy_now(&mut guard.registry, &mut events, &mut warnings);
    }
    let mut change = Change {
        registry: &mut guard.registry,
        events,
        failures: Vec::new(),
        warnings,
        touched,
        write: true,
    };
    let result = f(&mut change);
    let Change {
        mut events,
        failures,
        mut warnings,
        touched,
        write,
        ..
    } = change;
    let value = match result {
        Ok(value) => value,
        Err(e) if failures.is_empty() => return Err(e),
        Err(e) => {
            // The change is dropped; what was set right and what was refused are committed.
            guard.discard_changes();
            events.truncate(before_tidy.0);
            warnings.truncate(before_tidy.1);
            if tidy != Tidy::Never {
                tidy_now(&mut guard.registry, &mut events, &mut warnings);
            }
            events.extend(failures);
            commit(guard, &events, &touched, &mut warnings)?;
            return Err(e);
        }
    };
    if !write {
        return Ok(Changed {
            value,
            warnings,
            written: false,
        });
    }
    if tidy == Tidy::Last {
        tidy_now(&mut guard.registry, &mut events, &mut warnings);
    }
    let written = commit(guard, &events, &touched, &mut warnings)?;
    Ok(Changed {
        value,
        warnings,
        written,
    })
}

/// Commits `guard`'s registry with `events` as what it did: recorded in the audit trail and
/// counted, even when nothing else changed (a refused allocation is recorded too). The port
/// files of the workspaces whose instances change (or that were touched) are written before
/// the commit point, unstamped, and stamped after it (see `portfile::stage`); then the audit
/// lines are appended, still under the lock. What fails after the commit point is a warning.
/// Returns whether the registry or the state was written.
fn commit(
    guard: Guard<'_>,
    events: &[Event],
    touched: &BTreeSet<String>,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    let store = guard.store();
    let records = audit::records(events, guard.lock_wait, guard.held());
    let staging = guard.stage(events, records)?;
    if !staging.roots.is_empty() || !touched.is_empty() {
        for root in staging.roots.iter().chain(touched) {
            portfile::stage(
                store.dir(),
                staging.registry().types.iter(),
                root,
                store.watched_mtime(),
            )?;
        }
    }
    let committed = staging.install()?;
    warnings.extend(committed.warnings.iter().cloned());
    let roots: BTreeSet<&String> = committed.roots.iter().chain(touched).collect();
    if !roots.is_empty() {
        match store.identity() {
            Ok(stamp) => {
                for root in roots {
                    let types = committed.registry.types.iter();
                    let mtime = store.watched_mtime();
                    if let Err(e) = portfile::write(store.dir(), types, root, &stamp, mtime) {
                        warnings.push(format!("{e}; `cargo styxy env` rewrites it"));
                    }
                }
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    if let Err(e) = audit::append(
        store.dir(),
        &committed.registry.settings,
        &committed.records,
    ) {
        warnings.push(format!(
            "the change was made, but not recorded in the audit trail: {e}"
        ));
    }
    Ok(committed.written)
}

/// `config edit`: replaces `registry.toml` with `text` written by hand, only if the file
/// still holds `expected` (else another process changed it meanwhile). Returns whether
/// anything changed.
pub fn edit(store: &Store, expected: &str, text: &str) -> Result<Changed<bool>> {
    let file = store.file();
    let changed = replace(store, |current| {
        if current != expected {
            return Err(Error::from(AllocError::InvalidValue {
                what: "edit",
                value: file.display().to_string(),
                reason: "another process changed the registry while you edited it; edit it again"
                    .into(),
            }));
        }
        Ok((text != expected).then(|| Replacement {
            text: text.to_owned(),
            source: file.clone(),
            event: Event::ConfigChanged {
                key: "edit".into(),
                value: file.display().to_string(),
            },
            value: (),
        }))
    })?;
    Ok(Changed {
        value: changed.value.is_some(),
        warnings: changed.warnings,
        written: changed.written,
    })
}

/// `config restore`: replaces `registry.toml` with a backup (`None`: the newest one that
/// parses and validates). The current file was kept as a backup when it became live; the
/// file replaced, even one that does not parse, is kept as a backup. Returns the backup
/// restored.
pub fn restore(store: &Store, backup: Option<&Path>) -> Result<Changed<PathBuf>> {
    let changed = replace(store, |_| {
        let chosen = match backup {
            Some(b) => b.to_path_buf(),
            None => store.last_good_backup().ok_or_else(|| {
                Error::from(StoreError::NoBackup {
                    dir: store.backup_dir(),
                })
            })?,
        };
        let text = super::store::read_backup(&chosen)?;
        Ok(Some(Replacement {
            text,
            source: chosen.clone(),
            event: Event::ConfigChanged {
                key: "restore".into(),
                value: chosen.display().to_string(),
            },
            value: chosen,
        }))
    })?;
    Ok(Changed {
        value: changed.value.unwrap_or_default(),
        warnings: changed.warnings,
        written: changed.written,
    })
}

// The audit trail's reader comes with `tool`.
#[cfg(all(test, feature = "tool"))]
mod tests {
    use super::*;
    use crate::allocate::Request;

    /// A store in a fresh private temp dir.
    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::new(dir.path().to_path_buf());
        (dir, store)
    }

    fn allocate(change: &mut Change<'_>, service_type: &str) -> Result<u16> {
        let request = Request {
            service_type,
            instance: "i",
            ..Request::default()
        };
        let out = allocate::allocate(change.registry, &crate::this_machine(), &request)
            .inspect_err(|e| change.record_failure(allocate::failure_event(&request, e)))?;
        Ok(change.apply(out).port)
    }

    #[test]
    fn a_change_is_committed_with_its_audit_line_and_returns_its_value() {
        let (dir, store) = store();
        let port = change(&store, |c| allocate(c, "web")).expect("change");
        assert!(port.written);
        let reg = store.read().expect("read");
        assert_eq!(reg.types["web"].instances["i"].port, port.value);
        let (records, _) = audit::read(dir.path());
        let names: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(names, ["TYPE_ALLOCATED", "INSTANCE_ASSIGNED"]);
    }

    #[test]
    fn a_refused_change_writes_only_what_it_recorded_as_refused() {
        let (dir, store) = store();
        let err = change(&store, |c| {
            allocate(c, "first")?;
            // An unknown type with auto-allocation off is refused.
            c.registry.settings.auto_allocate = false;
            allocate(c, "second")
        })
        .expect_err("refused");
        assert!(err.to_string().contains("second"), "{err}");
        let reg = store.read().expect("read");
        assert!(!reg.types.contains_key("first"), "the change was dropped");
        assert!(reg.settings.auto_allocate, "the change was dropped");
        let (records, _) = audit::read(dir.path());
        let names: Vec<&str> = records.iter().map(|r| r.event.as_str()).collect();
        assert_eq!(names, ["ALLOCATION_FAILED"]);
    }

    #[test]
    fn a_failed_change_with_nothing_recorded_and_a_look_write_nothing() {
        let (dir, store) = store();
        let failed = change(&store, |c| {
            allocate(c, "web")?;
            Err::<(), _>(Error::from(StoreError::NoHome))
        });
        assert!(failed.is_err());
        let looked = change(&store, |c| {
            let port = allocate(c, "web")?;
            c.write_nothing();
            Ok::<_, Error>(port)
        })
        .expect("look");
        assert!(!looked.written);
        assert!(!store.state_file().exists(), "nothing was written");
        assert!(audit::read(dir.path()).0.is_empty());
    }
}
