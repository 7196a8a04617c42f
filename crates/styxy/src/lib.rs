//! # styxy
//!
//! The library behind `cargo styxy`: stable, unique, known-in-advance ports for every
//! development service of every checkout on a machine, with no daemon. State lives in a
//! per-user registry directory guarded by an OS file lock on a sidecar file: `registry.toml`
//! (what people write, layered over the built-in types) and `state.json` (what the tool
//! decides).
//!
//! The public API is what a build script and an embedder need:
//!
//! - [`build`]: the constants a build script gets, through the `styxy-build` helper and
//!   `cargo-styxy styxy build-script`.
//! - [`registry::change()`]: the one change path: takes the lock, reads and tidies the
//!   registry, runs your change on it (with the [`allocate`] functions), commits it (the
//!   state, `registry.toml` when a person's config changed, the per-checkout port files, the
//!   audit trail), releases the lock and returns your value with the warnings met.
//! - [`model`]: the registry's plain values (service types, ranges, instances, leases,
//!   settings, rules, events) and their validation.
//! - [`allocate`]: the allocation engine, pure functions of the registry as read under the
//!   lock.
//! - [`registry`]: the [`registry::Store`] (where the registry is, how to read it without
//!   the lock), which reads and commits the [`model::Registry`].
//! - [`Error`]: what can go wrong, each with the fix in its message.
//!
//! The rest is what the `cargo-styxy` binary builds on: [`workspace`] (a checkout's
//! services), [`assign`], [`emit`] (what the ports are written as: env files, constants,
//! port files),
//! [`audit`], [`probe`] (what listens), [`os`] (every question asked of the OS) and [`fsx`]
//! (how the registry's files are written).
//!
//! The library has no CLI, web or async crates. Its one feature, `tool`, adds what the
//! command-line tool needs of the OS (the kernel's listing of listening sockets and their
//! owners, `run`'s signal handling); a build script leaves it off.
//!
//! MSRV: Rust 1.89 (`std::fs::File::lock`). The API is not stable before 1.0.

pub mod allocate;
pub mod assign;
pub mod audit;
pub mod build;
pub mod emit;
pub mod error;
pub mod fsx;
pub mod gc;
pub mod model;
pub mod os;
pub mod probe;
pub mod registry;
pub mod workspace;

pub use error::{Error, Result};

/// The facts about this machine that allocation needs, from the real OS.
pub fn this_machine() -> allocate::Machine<'static> {
    allocate::Machine {
        ephemeral: probe::ephemeral_range,
        probe: &probe::Live,
        checkouts_gone,
    }
}

/// Which of the checkout roots `roots` are gone from disk, one answer per root: a path
/// that is not absolute never is, and only "not found" counts (a directory that cannot be
/// read now is not a removed one).
///
/// This runs under the lock before every allocation in an existing type, over its
/// instances. Roots that share a parent directory, as the worktrees of one repository
/// usually do, are looked up in one listing of it instead of an `lstat` each (99 of those
/// took 0.3 ms here); a parent that cannot be listed falls back to the `lstat`s.
fn checkouts_gone(roots: &[&str]) -> Vec<bool> {
    use std::collections::{BTreeMap, HashSet};
    use std::path::Path;
    /// The most entries of a parent read to look its checkouts up; past that, an `lstat`
    /// each.
    const LISTING_CAP: usize = 4096;
    let not_found = |path: &Path| {
        std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    };
    let mut gone = vec![false; roots.len()];
    let mut by_parent: BTreeMap<&Path, Vec<usize>> = BTreeMap::new();
    for (i, root) in roots.iter().enumerate() {
        let path = Path::new(root);
        if !path.is_absolute() {
            continue;
        }
        match (path.parent(), path.file_name()) {
            (Some(parent), Some(_)) => by_parent.entry(parent).or_default().push(i),
            _ => gone[i] = not_found(path),
        }
    }
    for (parent, children) in by_parent {
        let listed = (children.len() > 1).then(|| {
            std::fs::read_dir(parent).and_then(|entries| {
                let names = entries
                    .take(LISTING_CAP + 1)
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<std::io::Result<HashSet<_>>>()?;
                // A directory of any size is no reason to hold the lock longer.
                if names.len() > LISTING_CAP {
                    return Err(std::io::Error::other("too many entries to list"));
                }
                Ok(names)
            })
        });
        for i in children {
            let path = Path::new(roots[i]);
            gone[i] = match &listed {
                Some(Ok(names)) => path.file_name().is_some_and(|n| !names.contains(n)),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => true,
                _ => not_found(path),
            };
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    #[test]
    fn checkouts_gone_only_for_roots_not_found() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().to_str().expect("UTF-8 temp dir");
        for d in ["a", "b"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        std::fs::write(dir.path().join("plain-file"), "").expect("file");
        let roots: Vec<String> = [
            "a",            // a directory that is there (with siblings: one listing)
            "b",            //   ″
            "gone",         // not there
            "plain-file",   // there, though not a directory: not gone
            "a/only-child", // not there, alone under its parent: an lstat
            "missing/x",    // its parent is not there either (two siblings)
            "missing/y",
            "a/..", // no file name: an lstat
        ]
        .iter()
        .map(|r| format!("{base}/{r}"))
        .chain(["relative/gone".to_owned()])
        .collect();
        let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
        assert_eq!(
            super::checkouts_gone(&roots),
            [false, false, true, false, true, true, true, false, false]
        );
    }
}
