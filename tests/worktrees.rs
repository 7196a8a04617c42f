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
    // Worktrees side by side in one folder (looked up in one listing of it): two of the
    // three are removed.
    let side_by_side = tempfile::tempdir().unwrap();
    let mut siblings = Vec::new();
    for name in ["kept", "gone-1", "gone-2"] {
        let dir = side_by_side.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        siblings.push(allocate_in(&dir)["instance"].as_str().unwrap().to_owned());
    }
    let a_id = first["instance"].as_str().unwrap().to_owned();
    drop(a); // The worktree is removed.
    std::fs::remove_dir(side_by_side.path().join("gone-1")).unwrap();
    std::fs::remove_dir(side_by_side.path().join("gone-2")).unwrap();

    let b = tempfile::tempdir().unwrap();
    let second = allocate_in(b.path());
    assert_eq!(second["port"], first["port"], "{second}");
    let left: Vec<String> = home
        .holders("svc")
        .into_iter()
        .map(|(instance, _, _)| instance)
        .collect();
    for gone in [&a_id, &siblings[1], &siblings[2]] {
        assert!(!left.contains(gone), "{gone} is still held: {left:?}");
    }
    assert!(left.contains(&siblings[0]), "{left:?}");
    assert!(left.contains(&"/no/such/dir".to_owned()), "{left:?}");
    let gc = home.json(&["audit", "--event", "GC"]);
    let mut reasons: Vec<&str> = gc
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    reasons.sort_unstable();
    let mut expected: Vec<String> = [&a_id, &siblings[1], &siblings[2]]
        .iter()
        .map(|id| format!("its checkout {id} no longer exists"))
        .collect();
    expected.sort_unstable();
    assert_eq!(reasons, expected);
}

/// Runs git in `dir` with the test's registry and this binary on `PATH` (as an installed
/// cargo-styxy is); panics on failure.
fn git(home: &Home, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let bin_dir = std::path::Path::new(common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env("STYXY_HOME", home.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        // The developer's own git configuration (a global core.hooksPath) stays out.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    out
}

/// A git repository holding a one-bin cargo workspace, committed, with an earlier
/// `post-checkout` hook that notes each run in the checkout.
fn repo(home: &Home) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(repo.join("src")).unwrap();
    std::fs::write(
        repo.join("Cargo.toml"),
        "[package]\nname = \"hooked\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(repo.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        repo.join(".gitignore"),
        "/target\n.env\n.earlier-hook-ran\n",
    )
    .unwrap();
    git(home, &repo, &["init", "-q", "-b", "main"]);
    git(home, &repo, &["add", "."]);
    git(home, &repo, &["commit", "-q", "-m", "init"]);
    dir
}

const EARLIER_HOOK: &str = "#!/bin/sh\n# the team's own hook\necho \"$3\" >> .earlier-hook-ran\n";

#[test]
fn a_new_worktree_gets_its_ports_and_env_file_and_the_earlier_hook_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    let dir = repo(&home);
    let repo = dir.path().join("repo");
    let earlier = repo.join(".git/hooks/post-checkout");
    std::fs::write(&earlier, EARLIER_HOOK).unwrap();
    std::fs::set_permissions(&earlier, std::fs::Permissions::from_mode(0o755)).unwrap();

    let installed = home
        .cmd(&["hook", "install", "--format", "json"])
        .current_dir(&repo)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
    let installed: serde_json::Value = serde_json::from_slice(&installed.stdout).unwrap();
    assert!(
        installed["previous"]
            .as_str()
            .unwrap()
            .ends_with("post-checkout.styxy-previous"),
        "{installed}"
    );

    git(
        &home,
        &repo,
        &["worktree", "add", "-q", "../wt", "-b", "feature"],
    );
    let wt = std::fs::canonicalize(dir.path().join("wt")).unwrap();
    // The new worktree's service is in the registry, and its env file says its port.
    let env = assigned_by_the_hook(&home, &wt);
    // The earlier hook ran too, for the branch checkout.
    assert_eq!(
        std::fs::read_to_string(wt.join(".earlier-hook-ran")).unwrap(),
        "1\n"
    );

    // A user's lines in the env file survive rewrites byte for byte.
    let block_start = env.find("# >>> cargo-styxy").unwrap();
    let mine = format!("# mine\nSECRET=x\n{}AFTER=1", &env[block_start..]);
    std::fs::write(wt.join(".env"), &mine).unwrap();
    for _ in 0..2 {
        let out = home
            .cmd(&["env", "--write"])
            .current_dir(&wt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(std::fs::read_to_string(wt.join(".env")).unwrap(), mine);

    // Uninstalled, the earlier hook is back as it was.
    home.ok_in(&repo, &["hook", "uninstall"]);
    assert_eq!(std::fs::read_to_string(&earlier).unwrap(), EARLIER_HOOK);
    assert!(
        !repo
            .join(".git/hooks/post-checkout.styxy-previous")
            .exists()
    );
    git(&home, &repo, &["worktree", "remove", "--force", "../wt"]);
}

#[test]
fn the_hook_goes_where_core_hooks_path_says_and_never_fails_git() {
    let home = Home::new();
    let dir = repo(&home);
    let repo = dir.path().join("repo");
    git(&home, &repo, &["config", "core.hooksPath", ".githooks"]);
    home.ok_in(&repo, &["hook", "install"]);
    let hook = repo.join(".githooks/post-checkout");
    assert!(
        std::fs::read_to_string(&hook)
            .unwrap()
            .contains("cargo-styxy")
    );

    // A registry it cannot use: the checkout still succeeds, with a warning.
    let broken = tempfile::NamedTempFile::new().unwrap();
    let bin_dir = std::path::Path::new(common::BIN).parent().unwrap();
    let out = std::process::Command::new("git")
        .args(["worktree", "add", "-q", "../wt", "-b", "feature"])
        .current_dir(&repo)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("STYXY_HOME", broken.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: cargo-styxy could not write"),
        "{err}"
    );
}

#[test]
fn a_fresh_clone_gets_its_ports_and_env_file_from_the_hook() {
    let home = Home::new();
    let dir = repo(&home);
    let repo = dir.path().join("repo");
    // Hooks are not cloned: the clone finds this one where its core.hooksPath says (as a
    // global core.hooksPath or a template dir would give it).
    let hooks = dir.path().join("hooks");
    git(
        &home,
        &repo,
        &["config", "core.hooksPath", hooks.to_str().unwrap()],
    );
    home.ok_in(&repo, &["hook", "install"]);
    assert!(hooks.join("post-checkout").is_file());

    let hooks_path = format!("core.hooksPath={}", hooks.display());
    git(
        &home,
        dir.path(),
        &["clone", "-q", "-c", &hooks_path, "repo", "clone"],
    );
    let clone = std::fs::canonicalize(dir.path().join("clone")).unwrap();
    assigned_by_the_hook(&home, &clone);
}

/// Checks that the checkout at `root` (canonical) holds a port of the fixture's service
/// and that its env file says it, as the hook makes them; returns the env file's text.
fn assigned_by_the_hook(home: &Home, root: &std::path::Path) -> String {
    let holders = home.holders("hooked");
    let (_, port, _) = holders
        .iter()
        .find(|(id, _, _)| id == root.to_str().unwrap())
        .unwrap_or_else(|| panic!("{} holds no port: {holders:?}", root.display()));
    let env = std::fs::read_to_string(root.join(".env")).unwrap();
    assert!(env.contains(&format!("\nHOOKED_PORT={port}\n")), "{env}");
    env
}

#[test]
fn a_port_that_moves_says_from_what_to_what_and_why() {
    let home = Home::new();
    let dir = repo(&home);
    let repo = dir.path().join("repo");
    let first: serde_json::Value =
        serde_json::from_str(&home.ok_in(&repo, &["assign", "--format", "json"])).unwrap();
    let old = first["services"][0]["port"].as_u64().unwrap();
    // The checkout's instance is released, and someone else takes its port.
    home.ok_in(&repo, &["release", "--workspace"]);
    let other = home.json(&["allocate", "--service", "hooked", "--instance", "elsewhere"]);
    assert_eq!(other["port"].as_u64(), Some(old));

    let out = home.cmd(&["env"]).current_dir(&repo).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let new = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("HOOKED_PORT=")?.parse::<u64>().ok())
        .unwrap();
    assert_ne!(new, old);
    assert!(
        err.contains(&format!(
            "HOOKED_PORT moved from port {old} to {new}: its instance had been released, and port {old} is held by elsewhere of \"hooked\""
        )),
        "{err}"
    );
    // Said once: the next env has nothing to say.
    let again = home.cmd(&["env"]).current_dir(&repo).output().unwrap();
    assert!(!String::from_utf8_lossy(&again.stderr).contains("moved"));
}
