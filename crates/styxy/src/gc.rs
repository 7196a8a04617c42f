//! `gc`: drops what nobody holds any more — instances whose checkout is gone or no longer
//! has their service (as its manifests say, read without cargo), leases of dead processes,
//! auto-allocated types left empty — through the change path.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::allocate;
use crate::error::{Error, Result};
use crate::registry::{self, Changed, Store};

/// Runs `gc`; with `dry_run`, says what it would drop and writes nothing. What gc drops
/// comes first; then what a hand edit left is set right as by any write.
///
/// The checkouts' manifests are read before the lock is taken, from a lock-free read of the
/// registry: a slow, huge or hostile checkout then stalls only this `gc`, never another
/// process's allocation. Under the lock only cheap facts are looked at again (whether a
/// checkout's directory exists); an instance whose checkout appeared since, or whose
/// manifests cannot be read, is kept, and the latter is said in a warning with the reason.
pub fn gc(store: &Store, dry_run: bool) -> Result<Changed<Vec<allocate::gc::Dropped>>> {
    type Held = BTreeSet<(String, String)>;
    let roots: BTreeSet<String> = store
        .read()?
        .types
        .values()
        .flat_map(|t| t.instances.iter())
        .filter_map(|(id, i)| i.workspace(id).map(str::to_owned))
        .collect();
    let mut unreadable = Vec::new();
    let known: BTreeMap<String, Held> = roots
        .into_iter()
        .filter_map(
            |root| match crate::workspace::services_at(Path::new(&root)) {
                Ok(services) => {
                    let held = services
                        .into_iter()
                        .map(|s| (s.service_type, s.instance))
                        .collect();
                    Some((root, held))
                }
                Err(e) => {
                    unreadable.push(format!("kept the instances of {root}: {e}"));
                    None
                }
            },
        )
        .collect();
    let has_service = |root: &str, service_type: &str, instance: &str| {
        known
            .get(root)
            .map(|h| h.contains(&(service_type.to_owned(), instance.to_owned())))
    };
    let facts = allocate::gc::Facts {
        exists: &|ws| Path::new(ws).is_dir(),
        has_service: &has_service,
        lease_is_live: &crate::probe::lease_is_live,
    };
    registry::change_tidying_last(store, |change| {
        let out = allocate::gc::gc(change.registry, &facts);
        if dry_run {
            change.write_nothing();
        }
        for warning in unreadable {
            change.warn(warning);
        }
        Ok::<_, Error>(change.apply(out))
    })
}
