//! Worktrees that come and go: a checkout removed from disk gives its ports back to the
//! next allocation of its type, with no `gc`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Home;

#[test]
fn a_removed_checkout_gives_its_ports_back_at_the_next_allocation_of_its_type() {
    let home = Home::new();
    let start = common::free_span_from(31200, 10);
    home.without_builtins(&format!(
        "[types.svc]\nranges = [[{start}, {}]]\n",
        start + 9
    ));
    let allocate_in = |dir: &std::path::Path| -> serde_json::Value {
        let out = home
            .cmd(&["allocate", "--service", "svc", "--format", "json"])
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let a = tempfile::tempdir().unwrap();
    let first = allocate_in(a.path());
    // An id that is a path but names no checkout is never released this way.
    home.ok(&["allocate", "--service", "svc", "--instance", "/no/such/dir"]);
    let a_id = first["instance"].as_str().unwrap().to_owned();
    drop(a); // The worktree is removed.

    let b = tempfile::tempdir().unwrap();
    let second = allocate_in(b.path());
    assert_eq!(second["port"], first["port"], "{second}");
    let left: Vec<String> = home
        .holders("svc")
        .into_iter()
        .map(|(instance, _, _)| instance)
        .collect();
    assert!(!left.contains(&a_id), "{left:?}");
    assert!(left.contains(&"/no/such/dir".to_owned()), "{left:?}");
    let gc = home.json(&["audit", "--event", "GC"]);
    let reasons: Vec<&str> = gc
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        [format!("its checkout {a_id} no longer exists").as_str()]
    );
}
