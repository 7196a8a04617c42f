//! The commit of a change: [`Guard::stage`] checks it and writes in full beside their
//! files what changes (`registry.toml` when a person's config changed, the state),
//! [`Staging::install`] puts them in place (the state's rename is the commit point), and
//! [`Committed`] holds the lock until what follows (port files, audit) is written.

use std::collections::BTreeSet;
use std::fs::{self, File};

use crate::audit::Record;
use crate::error::{Error, Invalid, Result, StoreError};
use crate::fsx;
use crate::model::validate;
use crate::model::{Event, Instances, Registry, ServiceType};
use crate::registry::config;
use crate::registry::state;
use crate::registry::store::{Guard, Store, parse_doc};

impl<'s> Guard<'s> {
    /// Stages the changes made to [`Guard::registry`]: checks them, and writes in full beside
    /// their files what [`Staging::install`] then puts in place: `registry.toml` (only the
    /// changed parts, comments kept) when a person's config changed, and the state whole.
    /// Whatever can fail is done here or before the state's rename in `install`, which is the
    /// commit point. `events` are what the change did, counted in the state even when nothing
    /// else changed (a refused allocation is counted too); `records` are their audit lines,
    /// kept in the state until the next commit (see [`Guard::last_records`]).
    pub(super) fn stage(self, events: &[Event], records: Vec<Record>) -> Result<Staging<'s>> {
        let store = self.store;
        let loaded = &self.loaded;
        // The changed types, found once: at 10,000 types each pass over all of them counts.
        let changes: Vec<_> = self.original.changed_types(&self.registry).collect();
        let changed: Vec<&String> = changes.iter().map(|(name, _, _)| *name).collect();
        let config_changed = self.replacement.is_some()
            || config::differs_between(&self.original, &self.registry, &changed);
        let state_changed = !events.is_empty()
            || !changes.is_empty()
            || !loaded.rest.orphans.instances.is_empty()
            || (loaded.state_len.is_none()
                && self
                    .registry
                    .types
                    .values()
                    .any(|t| !t.instances.is_empty()));
        let mut roots = changed_workspaces(&changes);
        roots.extend(
            loaded
                .rest
                .orphans
                .instances
                .iter()
                .filter_map(|(_, id, i)| i.workspace(id).map(str::to_owned)),
        );
        if !config_changed && !state_changed {
            return Ok(Staging {
                roots,
                config_text: None,
                config_staged: None,
                state_staged: None,
                records: Vec::new(),
                guard: self,
            });
        }
        // Overlaps a hand edit left are worked around; a new one is never written.
        let overlaps = validate::overlaps(&self.registry);
        let new_overlap = if overlaps.is_empty() {
            None
        } else {
            let before: BTreeSet<(&str, &str)> = validate::overlaps(&self.original)
                .iter()
                .map(validate::Overlap::names)
                .collect();
            overlaps.into_iter().find(|o| !before.contains(&o.names()))
        };
        validate::definitions(&self.registry)
            .and_then(|()| match new_overlap {
                Some(o) => Err(Invalid::Value(o.to_error())),
                None => Ok(()),
            })
            .and_then(|()| validate::holdings(&self.registry, changed.iter().map(|n| n.as_str())))
            .map_err(|invalid| {
                Error::from(StoreError::RefusedWrite {
                    file: store.file(),
                    invalid: Box::new(invalid),
                })
            })?;

        let config_text = if config_changed || (state_changed && loaded.config_text.is_none()) {
            Some(match &self.replacement {
                Some(text) => text.clone(),
                None => {
                    let old = loaded.config_text.as_deref().unwrap_or(config::TEMPLATE);
                    let mut doc = parse_doc(old, &store.file())?;
                    let (old, new) = (&self.original, &self.registry);
                    config::write(&mut doc, old, new, &changed);
                    doc.to_string()
                }
            })
        } else {
            None
        };
        let mut counters = loaded.rest.counters.clone();
        for e in events {
            *counters.events.entry(e.name().to_owned()).or_default() += 1;
        }
        if !events.is_empty() {
            counters.lock_wait.observe(self.lock_wait.as_secs_f64());
            counters.lock_hold.observe(self.held().as_secs_f64());
        }
        let state_text = state_changed.then(|| {
            let hint = loaded.state_len.unwrap_or(0);
            state::render(&self.registry, &counters, &records, hint)
        });
        let config_staged = config_text
            .as_deref()
            .map(|t| fsx::Staged::new(&store.file(), t.as_bytes()))
            .transpose()?;
        if let (Some(staged), Some(t)) = (&config_staged, store.watched_mtime()) {
            staged.set_modified(t)?;
        }
        let state_staged = state_text
            .as_deref()
            .map(|t| fsx::Staged::new(&store.state_file(), t.as_bytes()))
            .transpose()?;
        Ok(Staging {
            roots,
            config_text,
            config_staged,
            state_staged,
            records,
            guard: self,
        })
    }
}

/// A change staged by [`Guard::stage`], not yet in place; the lock is held. Dropped without
/// [`Staging::install`], nothing of it is written.
#[derive(Debug)]
pub(super) struct Staging<'s> {
    guard: Guard<'s>,
    /// Workspaces with an instance that the change adds, removes or moves.
    pub roots: BTreeSet<String>,
    config_text: Option<String>,
    config_staged: Option<fsx::Staged>,
    state_staged: Option<fsx::Staged>,
    records: Vec<Record>,
}

impl<'s> Staging<'s> {
    /// The registry to be committed.
    pub fn registry(&self) -> &Registry {
        &self.guard.registry
    }

    /// Puts the change in place: `registry.toml` first (a state left behind by a kill reads
    /// the same under either version of it), then the state, whose rename is the commit
    /// point. If the state cannot be put in place, the old `registry.toml` is put back. What
    /// follows the commit point (a backup) only warns.
    pub fn install(self) -> Result<Committed<'s>> {
        let Self {
            guard,
            roots,
            config_text,
            config_staged,
            state_staged,
            records,
        } = self;
        let store = guard.store;
        let loaded = &guard.loaded;
        let written = config_staged.is_some() || state_staged.is_some();
        if let Some(staged) = config_staged {
            staged.install()?;
        }
        if let Some(staged) = state_staged
            && let Err(e) = staged.install()
        {
            if config_text.is_some() {
                // Put the old registry.toml back, so that nothing of the change stays.
                let config_file = store.file();
                let _ = match loaded.config_text.as_deref() {
                    Some(old) => fsx::write_atomic(&config_file, old.as_bytes()),
                    None => fs::remove_file(&config_file)
                        .map_err(|e| Error::io("cannot remove", &config_file, e)),
                };
            }
            return Err(e);
        }

        // After the commit point nothing fails the change.
        // Backups of versions that were live: the one a whole replacement displaced (which
        // may not parse, and was never kept), and the new one.
        let mut warnings = Vec::new();
        let displaced = guard
            .replacement
            .is_some()
            .then_some(loaded.config_text.as_ref())
            .flatten();
        for text in displaced.into_iter().chain(&config_text) {
            if let Err(e) = store.keep_backup(text.as_bytes()) {
                warnings.push(format!("the change was made, but no backup kept: {e}"));
            }
        }
        Ok(Committed {
            store,
            lock: Some(guard.lock),
            registry: guard.registry,
            records: if written { records } else { Vec::new() },
            roots,
            written,
            config_written: config_text.is_some(),
            warnings,
        })
    }
}

/// A commit done, with the lock still held: what follows a commit (the port files of
/// [`Committed::roots`], the audit trail) is written by the change path before dropping it,
/// which releases the lock (and then prunes old backups).
#[derive(Debug)]
#[must_use = "dropping it releases the lock before the port files and the audit trail are written"]
pub(super) struct Committed<'s> {
    store: &'s Store,
    lock: Option<File>,
    /// The registry as committed.
    pub registry: Registry,
    /// The audit records of the commit (empty when nothing was written).
    pub records: Vec<Record>,
    /// Workspaces with an instance that the commit added, removed or moved.
    pub roots: BTreeSet<String>,
    /// Whether the registry or the state was written.
    pub written: bool,
    config_written: bool,
    /// What went wrong after the commit point.
    pub warnings: Vec<String>,
}

impl Drop for Committed<'_> {
    fn drop(&mut self) {
        drop(self.lock.take());
        if self.config_written {
            self.store.prune_backups();
        }
    }
}

/// A service type that differs between two registries: its name, and its value before
/// (`None`: added) and after (`None`: removed).
type Change<'r> = (&'r String, Option<&'r ServiceType>, Option<&'r ServiceType>);

/// Workspaces with an instance that was added, removed or moved by `changes`.
fn changed_workspaces(changes: &[Change<'_>]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let empty = Instances::default();
    for &(_, before, after) in changes {
        let a = before.map_or(&empty, |t| &t.instances);
        let b = after.map_or(&empty, |t| &t.instances);
        for (id, i) in a.iter().chain(b.iter()) {
            if a.get(id) != b.get(id) {
                out.extend(i.workspace(id).map(str::to_owned));
            }
        }
    }
    out
}
