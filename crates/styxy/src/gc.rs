//! `gc`: drops what nobody holds any more — instances whose checkout is gone or no longer
//! has their service (as its manifests say, read without cargo), leases of dead processes,
//! auto-allocated types left empty — through the change path.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::allocate;
use crate::error::{Error, Result};
use crate::registry::{self, Changed, Store};

/// Runs `gc`; with `dry_run`, says what it would drop and writes nothing. What gc drops
/// comes first; then what a hand edit left is set right as by any write.
pub fn gc(store: &Store, dry_run: bool) -> Result<Changed<Vec<allocate::gc::Dropped>>> {
    type Held = BTreeSet<(String, String)>;
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
        lease_is_live: &crate::probe::lease_is_live,
    };
    registry::change_tidying_last(store, |change| {
        let out = allocate::gc::gc(change.registry, &facts);
        if dry_run {
            change.write_nothing();
        }
        Ok::<_, Error>(change.apply(out))
    })
}
