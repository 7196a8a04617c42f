//! One command's turn at the registry, above the store: the lock taken and what a kill or a
//! hand edit left set right; the change committed; then what follows a commit, which only
//! warns when it fails: the port files of the checkouts it touched, and the audit trail.
//! The store ([`crate::registry::Store`]) knows the two files; this knows what derives from
//! them.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use crate::allocate::{self, Event, Outcome};
use crate::error::{AllocError, Error, Result, StoreError};
use crate::registry::{Guard, Store};
use crate::{audit, portfile, probe};

/// The registry under the lock (a [`Guard`], which it derefs to): change
/// [`Guard::registry`], then [`Session::commit`].
#[derive(Debug)]
pub struct Session<'s> {
    guard: Guard<'s>,
    /// Workspaces whose port file the commit rewrites even if their instances did not change.
    touched: BTreeSet<String>,
    /// What the commit records of the holders it drops because their type is gone.
    orphans: Vec<Event>,
}

/// The registry under the lock, with what a hand edit or a dead process left behind set
/// right ([`allocate::tidy`]): the events and warnings of that go with the command's own.
pub fn lock(store: &Store) -> Result<(Session<'_>, Outcome<()>)> {
    let mut session = open(store)?;
    let tidied = allocate::tidy(
        &mut session.guard.registry,
        &crate::this_machine(),
        &probe::lease_is_live,
    );
    Ok((session, tidied))
}

/// `gc`: drops instances whose checkout is gone or no longer has their service (as its
/// manifests say, read without cargo), leases of dead processes and auto-allocated types
/// left empty, then sets right what a hand edit left, as any write does. With `dry_run`,
/// says what it would drop and writes nothing. The warnings are the tidying's.
pub fn gc(store: &Store, dry_run: bool) -> Result<Outcome<Vec<allocate::gc::Dropped>>> {
    type Held = BTreeSet<(String, String)>;
    let mut session = open(store)?;
    let known: RefCell<BTreeMap<String, Option<Held>>> = RefCell::default();
    let has_service = |root: &str, service_type: &str, instance: &str| {
        let mut known = known.borrow_mut();
        let held = known.entry(root.to_owned()).or_insert_with(|| {
            crate::workspace::services_at(Path::new(root)).map(|services| {
                services
                    .into_iter()
                    .map(|s| (s.service_type, s.instance))
                    .collect()
            })
        });
        held.as_ref()
            .map(|h| h.contains(&(service_type.to_owned(), instance.to_owned())))
    };
    let facts = allocate::gc::Facts {
        exists: &|ws| Path::new(ws).is_dir(),
        has_service: &has_service,
        lease_is_live: &probe::lease_is_live,
    };
    let mut out = allocate::gc::gc(&mut session.registry, &facts);
    if dry_run {
        return Ok(out);
    }
    // What gc drops comes first; then what a hand edit left is set right as by any write.
    let tidied = allocate::tidy(
        &mut session.registry,
        &crate::this_machine(),
        &probe::lease_is_live,
    );
    out.events.extend(tidied.events);
    out.warnings.extend(tidied.warnings);
    session.commit(&out.events)?;
    Ok(out)
}

/// The registry under the lock, as read: for a command that runs [`allocate::tidy`] itself,
/// after its own pass (`gc`).
pub fn open(store: &Store) -> Result<Session<'_>> {
    Ok(Session::new(store.lock()?))
}

impl<'s> Session<'s> {
    /// A session on `guard`: temp files of killed writers swept from the port files' directory,
    /// the last commit's audit records appended if a kill kept them from the trail.
    fn new(guard: Guard<'s>) -> Self {
        let store = guard.store();
        crate::fsx::sweep_temps(&store.dir().join(portfile::PORTS_DIR));
        if let Err(e) = audit::recover(store.dir(), &guard.registry.settings, guard.last_records())
        {
            store.warn(&format!("cannot complete the audit trail: {e}"));
        }
        // Holders of a type that a hand edit removed: dropped by the commit, and said so.
        let mut touched = BTreeSet::new();
        let orphans = guard
            .orphans()
            .iter()
            .map(|(service_type, instance, i)| {
                touched.extend(i.workspace(instance).map(str::to_owned));
                Event::Gc {
                    service_type: service_type.clone(),
                    instance: Some(instance.clone()),
                    port: Some(i.port),
                    reason: "its service type is gone from registry.toml".into(),
                }
            })
            .collect();
        Self {
            guard,
            touched,
            orphans,
        }
    }

    /// Makes the commit (re)write the port file of the workspace `root`, even if the registry
    /// does not change (a port file that was deleted or is stale comes back).
    pub fn touch_workspace(&mut self, root: &str) {
        self.touched.insert(root.to_owned());
    }

    /// Commits the changes made to [`Guard::registry`] with `events` as what they did: recorded in
    /// the audit trail and counted, even when nothing else changed (a refused allocation is
    /// recorded too). Then, still under the lock, the port files of the workspaces whose
    /// instances changed (or that were touched) are rewritten and the audit lines appended:
    /// these only warn when they fail, as the change is committed. Returns whether the
    /// registry or the state was written.
    pub fn commit(self, events: &[Event]) -> Result<bool> {
        let Self {
            guard,
            touched,
            orphans,
        } = self;
        let store = guard.store();
        let events: Vec<Event> = orphans.into_iter().chain(events.iter().cloned()).collect();
        let records = audit::records(&events, guard.lock_wait, guard.held());
        // The port files that change are written before the commit, unstamped, and stamped
        // after it (see `portfile::stage`).
        let committed = guard.commit(&events, records, |registry, roots| {
            roots
                .iter()
                .chain(&touched)
                .try_for_each(|root| portfile::stage(store, registry.types.iter(), root))
        })?;
        let roots: BTreeSet<&String> = committed.roots.iter().chain(&touched).collect();
        if !roots.is_empty() {
            match store.identity() {
                Ok(stamp) => {
                    for root in roots {
                        if let Err(e) =
                            portfile::write(store, committed.registry.types.iter(), root, &stamp)
                        {
                            store.warn(&format!("{e}; `cargo styxy env` rewrites it"));
                        }
                    }
                }
                Err(e) => store.warn(&e.to_string()),
            }
        }
        if let Err(e) = audit::append(
            store.dir(),
            &committed.registry.settings,
            &committed.records,
        ) {
            store.warn(&format!(
                "the change was made, but not recorded in the audit trail: {e}"
            ));
        }
        Ok(committed.written)
    }
}

impl<'s> Deref for Session<'s> {
    type Target = Guard<'s>;

    fn deref(&self) -> &Guard<'s> {
        &self.guard
    }
}

impl DerefMut for Session<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.guard
    }
}

/// Replaces `registry.toml` with `text` written by hand (`config edit`), under the lock and
/// only if the file still holds `expected` (else another process changed it meanwhile).
/// Returns whether anything changed.
pub fn replace_text(store: &Store, expected: &str, text: &str) -> Result<bool> {
    let mut session = Session::new(store.lock_for_replacement()?);
    if store.current_text()? != expected {
        return Err(Error::from(AllocError::InvalidValue {
            what: "edit",
            value: store.file().display().to_string(),
            reason: "another process changed the registry while you edited it; edit it again"
                .into(),
        }));
    }
    if text == expected {
        return Ok(false);
    }
    let file = store.file();
    session.replace_config(text, &file)?;
    let event = Event::ConfigChanged {
        key: "edit".into(),
        value: file.display().to_string(),
    };
    session.commit(&[event])?;
    Ok(true)
}

/// Replaces `registry.toml` with a backup (`None`: the newest one that parses and validates).
/// The current file was kept as a backup when it became live. Returns the backup restored.
/// The file replaced, even one that does not parse, is kept as a backup.
pub fn restore(store: &Store, backup: Option<&Path>) -> Result<PathBuf> {
    let mut session = Session::new(store.lock_for_replacement()?);
    let chosen = match backup {
        Some(b) => b.to_path_buf(),
        None => store.last_good_backup().ok_or_else(|| {
            Error::from(StoreError::NoBackup {
                dir: store.backup_dir(),
            })
        })?,
    };
    let text = std::fs::read_to_string(&chosen)
        .map_err(|e| Error::io("cannot read the backup", &chosen, e))?;
    session.replace_config(&text, &chosen)?;
    let event = Event::ConfigChanged {
        key: "restore".into(),
        value: chosen.display().to_string(),
    };
    session.commit(&[event])?;
    Ok(chosen)
}
