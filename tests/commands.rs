//! The registry commands run as a user runs them: the real binary on a temp registry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Stdio;

use common::Home;

#[test]
fn allocate_is_stable_and_shows_in_list() {
    let home = Home::new();
    let a = home.json(&["allocate", "--service", "shop-api", "--instance", "wt1"]);
    assert_eq!(a["service_type"], "shop-api");
    assert_eq!(a["instance"], "wt1");
    // Wherever the new range went (something may listen in the default spot), the first
    // instance gets its first port.
    let start = a["ranges"][0][0].as_u64().unwrap();
    assert_eq!(a["port"], start);
    assert_eq!(a["ranges"], serde_json::json!([[start, start + 9]]));
    assert_eq!(a["auto_allocated"], true);
    assert_eq!(a["existing"], false);
    assert_eq!(a["instance_behavior"], "multi");

    let b = home.json(&["allocate", "--service", "shop-api", "--instance", "wt2"]);
    assert_eq!(
        (b["port"].as_u64(), b["auto_allocated"].as_bool()),
        (Some(start + 1), Some(false))
    );

    let again = home.json(&["allocate", "--service", "shop-api", "--instance", "wt1"]);
    assert_eq!(
        (again["port"].as_u64(), again["existing"].as_bool()),
        (Some(start), Some(true))
    );

    let list = home.json(&["list", "shop-*"]);
    let types = list["service_types"].as_array().unwrap();
    assert_eq!(types.len(), 1);
    let t = &types[0];
    assert_eq!(t["service_type"], "shop-api");
    assert_eq!(t["origin"], "auto");
    assert!(
        t.get("auto_allocated").is_none(),
        "only allocate and assign say it: {t}"
    );
    assert_eq!(t["leases"], serde_json::json!([]));
    let instances: Vec<(&str, u64)> = t["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["instance"].as_str().unwrap(), i["port"].as_u64().unwrap()))
        .collect();
    assert_eq!(instances, [("wt1", start), ("wt2", start + 1)]);
    for key in [
        "min_port",
        "max_port",
        "chunk_size",
        "gap_size",
        "placement",
    ] {
        assert!(
            list["settings"].get(key).is_some(),
            "settings.{key} missing"
        );
    }
}

#[test]
fn default_instance_is_the_current_directory() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    let out = home
        .cmd(&["allocate", "--service", "x", "--format", "json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let canonical = dir.path().canonicalize().unwrap();
    assert_eq!(g["instance"], canonical.to_str().unwrap());
    let list = home.json(&["list", "x"]);
    assert_eq!(
        list["service_types"][0]["instances"][0]["workspace"],
        canonical.to_str().unwrap()
    );
}

#[test]
fn release_frees_and_removes_empty_auto_types() {
    let home = Home::new();
    home.ok(&["config", "set", "gap_size", "0"]);
    // New ranges from a span nothing listens on now (a dev server may sit at the default).
    let start = common::free_span(20);
    home.ok(&["config", "set", "min_port", &start.to_string()]);
    let a = home.json(&["allocate", "--service", "a", "--instance", "i"]);
    let b = home.json(&["allocate", "--service", "b", "--instance", "i"]);
    home.ok(&["allocate", "--service", "api", "--instance", "i"]);
    assert_eq!(a["ranges"], serde_json::json!([[start, start + 9]]));
    assert_eq!(
        b["ranges"],
        serde_json::json!([[start + 10, start + 19]]),
        "b right after a (gap 0)"
    );
    let released = home.json(&["release", "--instance", "i"]);
    let released = released.as_array().unwrap();
    assert_eq!(released.len(), 3);
    let list = home.json(&["list", "--used"]);
    assert_eq!(list["service_types"], serde_json::json!([]));
    // The built-in type stays; the auto ones are gone and their space is free again.
    assert!(home.ok(&["list", "api"]).contains("api"));
    home.ok(&["rule", "add", "big", "--chunk-size", "20"]);
    let big = home.json(&["allocate", "--service", "big", "--instance", "i"]);
    // The two freed ranges form one block that the 20-port chunk takes.
    assert_eq!(big["ranges"], serde_json::json!([[start, start + 19]]));
    let err = home.fails(&["release", "--service", "big", "--instance", "nobody"], 1);
    assert!(err.contains("holds no port"), "{err}");
}

#[test]
fn type_add_set_rm() {
    let home = Home::new();
    // A span nothing listens on now (a developer's machine may run servers anywhere).
    let s = common::free_span_from(31700, 21);
    let r = |a: u16, b: u16| format!("{}-{}", s + a, s + b);
    home.ok(&[
        "type",
        "add",
        "mine",
        "--range",
        &r(0, 9),
        "--preferred",
        &(s + 5).to_string(),
    ]);
    let g = home.json(&["allocate", "--service", "mine", "--instance", "a"]);
    assert_eq!(g["port"], s + 5);
    let err = home.fails(&["type", "add", "clash", "--range", &r(9, 20)], 1);
    assert!(
        err.contains(&format!("overlaps {} of \"mine\"", r(0, 9))),
        "{err}"
    );
    let err = home.fails(&["type", "set", "mine", "--range", &r(6, 9)], 1);
    assert!(err.contains(&format!("holds port {}", s + 5)), "{err}");
    home.ok(&["type", "set", "mine", "--range", &r(0, 19), "--single"]);
    let b = home.json(&["allocate", "--service", "mine", "--instance", "b"]);
    assert_eq!(b["port"], s + 5, "single types share the port");
    let err = home.fails(&["type", "rm", "mine"], 1);
    assert!(err.contains("--force"), "{err}");
    home.ok(&["type", "rm", "mine", "--force"]);
    assert!(
        home.json(&["list", "mine"])["service_types"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Built-in types can be changed by hand too.
    home.ok(&["type", "set", "api", "--range", "8000-8049"]);
    let err = home.fails(&["type", "set", "api", "--range", "8000-8150"], 1);
    assert!(err.contains("proxy"), "{err}");
}

#[test]
fn rules_and_settings_steer_auto_allocation() {
    let home = Home::new();
    // Spans nothing listens on now: the rule's preferred start, and one for `smart`.
    let preferred = common::free_span_from(31800, 20);
    home.ok(&[
        "rule",
        "add",
        "metrics-*",
        "--chunk-size",
        "20",
        "--preferred-start",
        &preferred.to_string(),
    ]);
    let rules = home.json(&["rule", "list"]);
    assert_eq!(rules["metrics-*"]["chunk_size"], 20);
    let g = home.json(&["allocate", "--service", "metrics-db", "--instance", "i"]);
    assert_eq!(
        g["ranges"],
        serde_json::json!([[preferred, preferred + 19]])
    );
    home.ok(&["rule", "rm", "metrics-*"]);
    assert_eq!(home.json(&["rule", "list"]), serde_json::json!({}));

    home.ok(&["config", "set", "placement", "smart"]);
    home.ok(&["config", "set", "chunk_size", "5"]);
    let show = home.json(&["config", "show"]);
    assert_eq!(show["settings"]["placement"], "smart");
    assert_eq!(show["settings"]["chunk_size"], 5);
    // smart fills the first gap that fits: below a type higher up in the span, where
    // `after` would go past it.
    let low = common::free_span_from(31850, 30);
    home.ok(&["config", "set", "min_port", &low.to_string()]);
    let above = format!("{}-{}", low + 20, low + 29);
    home.ok(&["type", "add", "higher-up", "--range", &above]);
    let g = home.json(&["allocate", "--service", "z", "--instance", "i"]);
    assert_eq!(g["ranges"], serde_json::json!([[low, low + 4]]));
    home.ok(&["config", "set", "auto_allocate", "false"]);
    let err = home.fails(&["allocate", "--service", "unknown", "--instance", "i"], 1);
    assert!(err.contains("type add unknown"), "{err}");
}

#[test]
fn config_path_and_validate() {
    let home = Home::new();
    let path = home.ok(&["config", "path"]);
    assert_eq!(path.trim(), home.registry().to_str().unwrap());
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let v = home.json(&["config", "validate"]);
    assert_eq!(
        (v["valid"].as_bool(), v["service_type_count"].as_u64()),
        (Some(true), Some(18))
    );
}

#[test]
fn a_hand_written_comment_survives_every_write() {
    let home = Home::new();
    // Ranges in a span nothing listens on now, so that no allocation below moves.
    let s = common::free_span_from(30400, 60);
    let original = format!(
        r#"# my ports, hand-kept
[settings] # tuned for this laptop
min_port = {s} # above my VMs
chunk_size = 10
gap_size = 5 # tight

[types]
inline = {{ ranges = [[{inline}, {inline_end}]] }} # inline

# the shop
[types.shop]
ranges = [[{s}, {shop_end}]] # do not move
description = "the shop" # who it is for

[types.legacy] # inline table
ranges = [[{legacy}, {legacy_end}]]

[rules."ops-*"] # ops team
chunk_size = 20
"#,
        shop_end = s + 9,
        legacy = s + 20,
        legacy_end = s + 29,
        inline = s + 40,
        inline_end = s + 49,
    );
    std::fs::write(home.registry(), &original).unwrap();
    home.ok(&["allocate", "--service", "shop", "--instance", "new"]);
    home.ok(&["allocate", "--service", "legacy", "--instance", "a"]);
    home.ok(&["allocate", "--service", "legacy", "--instance", "b"]);
    home.ok(&[
        "type",
        "set",
        "inline",
        "--range",
        &format!("{}-{}", s + 40, s + 59),
    ]);
    home.ok(&["type", "set", "shop", "--description", "our shop"]);
    home.ok(&["allocate", "--service", "fresh", "--instance", "x"]);
    home.ok(&["config", "set", "gap_size", "6"]);
    home.ok(&["rule", "add", "ops-*", "--chunk-size", "30"]);
    let now = home.config();
    for comment in original
        .lines()
        .filter_map(|l| l.find('#').map(|i| &l[i..]))
    {
        assert!(now.contains(comment), "lost {comment:?} in:\n{now}");
    }
    assert!(now.contains("gap_size = 6 # tight"), "{now}");
    assert!(
        now.contains("chunk_size = 30 # ops team") || now.contains("chunk_size = 30"),
        "{now}"
    );
    let list = home.json(&["list", "legacy"]);
    assert_eq!(
        list["service_types"][0]["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn files_are_private_and_backups_are_kept() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("fresh/styxy");
    let dir_s = dir.to_str().unwrap();
    let home = Home::new();
    for i in 0..14 {
        let n = (i + 1).to_string();
        home.ok(&["--registry", dir_s, "config", "set", "chunk_size", &n]);
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("registry.toml")), 0o600);
    assert_eq!(mode(&dir.join("registry.lock")), 0o600);
    assert_eq!(mode(&dir.join("state.json")), 0o600);
    let backups = std::fs::read_dir(dir.join("backups")).unwrap().count();
    assert_eq!(backups, 10);
}

/// A backup that cannot be kept (here `backups` is a file) does not turn a committed change
/// into a failure: the command exits 0, says so, and the change is there.
#[test]
fn a_change_whose_backup_cannot_be_kept_is_made_and_exits_0() {
    let home = Home::new();
    home.ok(&["config", "set", "chunk_size", "7"]);
    let backups = home.path().join("backups");
    std::fs::remove_dir_all(&backups).unwrap();
    std::fs::write(&backups, "not a directory").unwrap();
    let out = home.run(&["config", "set", "chunk_size", "8"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("the change was made, but no backup kept"),
        "{err}"
    );
    assert!(
        home.config().contains("chunk_size = 8"),
        "{}",
        home.config()
    );
    let changes = home.json(&["audit"]);
    let last = changes.as_array().unwrap().last().unwrap();
    assert_eq!(last["value"], "8", "{last}");
}

#[test]
fn a_symlinked_registry_is_written_through_its_link() {
    let home = Home::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("real.toml");
    std::fs::write(&target, "[settings]\n").unwrap();
    std::os::unix::fs::symlink(&target, home.registry()).unwrap();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    home.ok(&["type", "add", "y", "--range", "20000-20009"]);
    assert!(
        std::fs::symlink_metadata(home.registry())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&target)
            .unwrap()
            .contains("[types.y]")
    );
    // The state, the lock and the backups live beside the link's target: one registry, one
    // lock, whichever directory reaches it.
    let state = std::fs::read_to_string(elsewhere.path().join("state.json")).unwrap();
    assert!(state.contains("\"x\""), "{state}");
    for beside in ["registry.lock", "backups"] {
        assert!(elsewhere.path().join(beside).exists(), "{beside}");
        assert!(!home.path().join(beside).exists(), "{beside}");
    }
    assert!(!home.state().exists());
}

#[test]
fn a_corrupt_registry_is_never_overwritten_and_can_be_restored() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "keep", "--instance", "i"]);
    home.ok(&["allocate", "--service", "keep2", "--instance", "i"]);
    home.ok(&["type", "add", "mine", "--range", "20000-20009"]);
    let mut text = home.config();
    text.push_str("\n[types.broken\nranges = 1\n");
    std::fs::write(home.registry(), &text).unwrap();
    let lines = text.lines().count();

    for args in [
        &["allocate", "--service", "y", "--instance", "i"][..],
        &["list"],
        &["config", "set", "chunk_size", "5"],
    ] {
        let err = home.fails(args, 3);
        assert!(
            err.contains(&format!("registry.toml:{}:", lines - 1)),
            "{err}"
        );
        assert!(err.contains("config restore"), "{err}");
        assert_eq!(home.config(), text, "the corrupt file must stay as it is");
    }
    let restored = home.ok(&["config", "restore"]);
    assert!(restored.contains("restored"), "{restored}");
    let list = home.json(&["list", "keep*"]);
    assert_eq!(list["service_types"].as_array().unwrap().len(), 2);
    assert_eq!(
        home.json(&["list", "mine"])["service_types"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // The corrupt version is itself kept as a backup.
    let backups = home.ok(&["config", "restore", "--list"]);
    let kept = backups
        .lines()
        .any(|b| std::fs::read_to_string(b).unwrap() == text);
    assert!(kept, "corrupt version not kept among {backups}");
}

#[test]
fn a_held_lock_times_out_naming_the_lock_file() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let before = home.read();
    let lock = home.hold_lock();
    let out = home.run_with_a_1s_lock_deadline(&["allocate", "--service", "y", "--instance", "i"]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("registry.lock") && err.contains("STYXY_LOCK_TIMEOUT"),
        "{err}"
    );
    assert_eq!(home.read(), before);
    lock.unlock().unwrap();
    home.ok(&["allocate", "--service", "y", "--instance", "i"]);
}

#[test]
fn a_closed_stdout_pipe_is_not_an_error() {
    let home = Home::new();
    // Enough types that `list` fills the pipe and must see EPIPE.
    let mut text = String::from("[settings]\n");
    for i in 0..3000u32 {
        let p = 20000 + i * 3;
        text.push_str(&format!("[types.t{i}]\nranges = [[{p}, {}]]\n", p + 1));
    }
    std::fs::write(home.registry(), text).unwrap();
    let mut child = home
        .cmd(&["list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(err.is_empty(), "{err}");
}

#[test]
fn runs_bare_and_as_a_cargo_subcommand() {
    let home = Home::new();
    let bare = std::process::Command::new(common::BIN)
        .args(["list", "--format", "json"])
        .env("STYXY_HOME", home.path())
        .output()
        .unwrap();
    assert!(bare.status.success());
    assert_eq!(
        String::from_utf8(bare.stdout).unwrap(),
        home.ok(&["list", "--format", "json"])
    );
    let err = home.fails(&["frobnicate"], 2);
    assert!(err.contains("unrecognized subcommand"), "{err}");
}

#[test]
fn a_hand_edit_is_seen_at_once_and_moves_the_instances_it_leaves_outside() {
    let home = Home::new();
    let s = u64::from(common::free_span_from(31900, 12));
    home.without_builtins(&format!("[types.edited]\nranges = [[{s}, {}]]\n", s + 9));
    for i in ["a", "b", "c"] {
        home.ok(&["allocate", "--service", "edited", "--instance", i]);
    }
    // By hand: the range starts two ports up, so "a" (s) and "b" (s + 1) fall outside.
    let text = home.config().replace(
        &format!("[[{s}, {}]]", s + 9),
        &format!("[[{}, {}]]", s + 2, s + 11),
    );
    std::fs::write(home.registry(), &text).unwrap();
    let list = home.json(&["list", "edited"]);
    assert_eq!(list["service_types"][0]["ranges"][0][0], s + 2);
    let v = home.json(&["config", "validate"]);
    assert_eq!(v["to_move"].as_array().map(Vec::len), Some(2), "{v}");
    let doctor = home.run(&["doctor", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let moves = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == "instances")
        .count();
    assert_eq!(moves, 2, "{report}");
    // The next write moves them into the new range, keeps "c", and never hands out s + 2.
    let out = home
        .cmd(&[
            "allocate",
            "--service",
            "edited",
            "--instance",
            "d",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    let g: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(g["port"], s + 5);
    assert!(
        err.contains(&format!("from port {s} to {}", s + 3)),
        "{err}"
    );
    let ports: std::collections::BTreeMap<String, u64> = home
        .holders("edited")
        .into_iter()
        .map(|(id, port, _)| (id, port))
        .collect();
    let want = [("a", s + 3), ("b", s + 4), ("c", s + 2), ("d", s + 5)];
    assert_eq!(ports, want.map(|(i, p)| (i.to_owned(), p)).into());
    let moved = home.json(&["audit", "--event", "INSTANCE_MOVED"]);
    assert_eq!(moved.as_array().map(Vec::len), Some(2), "{moved}");
}

#[test]
fn ranges_a_hand_edit_makes_overlap_are_reported_and_never_give_one_port_twice() {
    let home = Home::new();
    let p = common::free_span_from(31100, 30);
    home.without_builtins(&format!(
        "[types.first]\nranges = [[{p}, {}]]\n\n[types.second]\nranges = [[{}, {}]]\n",
        p + 9,
        p + 20,
        p + 29
    ));
    let port = |service: &str, instance: &str| {
        home.json(&["allocate", "--service", service, "--instance", instance])["port"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port("first", "x"), u64::from(p));
    assert_eq!(port("second", "y"), u64::from(p + 20));
    // By hand: "second" now lies over "first", and its "y" outside its new range.
    let edited = home.config().replace(
        &format!("[[{}, {}]]", p + 20, p + 29),
        &format!("[[{p}, {}]]", p + 9),
    );
    std::fs::write(home.registry(), &edited).unwrap();

    // Reported, not fatal.
    let v = home.json(&["config", "validate"]);
    assert_eq!(v["overlaps"].as_array().map(Vec::len), Some(1), "{v}");
    let doctor = home.run(&["doctor", "--format", "json"]);
    assert_eq!(doctor.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert!(
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "overlaps"),
        "{report}"
    );
    // The next write warns, and moves "y" into the new range but not onto first's port.
    let out = home
        .cmd(&["allocate", "--service", "second", "--instance", "z"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{err}");
    assert!(err.contains("overlap"), "{err}");
    assert!(
        err.contains(&format!("from port {} to {}", p + 20, p + 1)),
        "{err}"
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains(&(p + 2).to_string())
    );
    // Instances of "first" skip what "second" holds; no port has two holders.
    assert_eq!(port("first", "w"), u64::from(p + 3));
    let mut held: Vec<u64> = home.json(&["list"])["service_types"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["instances"].as_array().unwrap().clone())
        .map(|i| i["port"].as_u64().unwrap())
        .collect();
    held.sort_unstable();
    let n = held.len();
    held.dedup();
    assert_eq!((n, held.len()), (4, 4), "{held:?}");

    // A command never writes a new overlap.
    let err = home.fails(
        &[
            "type",
            "add",
            "third",
            "--range",
            &format!("{}-{}", p + 5, p + 6),
        ],
        1,
    );
    assert!(err.contains("overlaps"), "{err}");
}

/// An executable script in `dir` standing in for the user's editor.
fn editor(dir: &std::path::Path, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn config_edit_validates_before_it_writes() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "keep", "--instance", "i"]);
    let scripts = tempfile::tempdir().unwrap();

    // A good edit is saved, with the rest of the file as it was.
    let good = editor(
        scripts.path(),
        "good",
        "sed -i 's/^chunk_size = 10 /chunk_size = 12 /' \"$1\"",
    );
    common::succeeded(
        home.cmd(&["config", "edit"])
            .env("EDITOR", &good)
            .env_remove("VISUAL"),
    );
    assert_eq!(home.json(&["config", "show"])["settings"]["chunk_size"], 12);
    assert!(
        home.read()
            .contains("# ports in a new auto-allocated range")
    );
    assert_eq!(
        home.json(&["audit", "--event", "CONFIG_CHANGED"])[0]["key"],
        "edit"
    );

    // A broken edit is refused, the registry untouched, the edit kept for the user.
    let before = home.read();
    let bad = editor(scripts.path(), "bad", "printf '[settings\\n' >> \"$1\"");
    let out = home
        .cmd(&["config", "edit"])
        .env("VISUAL", &bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("registry.toml:") && err.contains("your edit is kept in"),
        "{err}"
    );
    assert_eq!(home.read(), before);
    let kept = std::fs::read_dir(home.path()).unwrap().flatten().any(|e| {
        e.file_name()
            .to_string_lossy()
            .starts_with("registry.edit.")
    });
    assert!(kept);

    // An overlap written by hand is refused the same way.
    let overlap = editor(
        scripts.path(),
        "overlap",
        "printf '\\n[types.clash]\\nranges = [[8050, 8060]]\\n' >> \"$1\"",
    );
    let out = home
        .cmd(&["config", "edit"])
        .env("VISUAL", &overlap)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("overlaps"));
    assert_eq!(home.read(), before);

    // Another process's change while the editor is open wins; the edit is not written over it.
    let racing = editor(
        scripts.path(),
        "racing",
        &format!(
            "STYXY_HOME={} {} styxy config set gap_size 3 >/dev/null\nsed -i 's/^chunk_size = 12 /chunk_size = 14 /' \"$1\"",
            home.path().display(),
            common::BIN
        ),
    );
    let out = home
        .cmd(&["config", "edit"])
        .env("VISUAL", &racing)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("changed the registry while you edited"));
    let show = home.json(&["config", "show"]);
    assert_eq!(
        (
            show["settings"]["gap_size"].as_u64(),
            show["settings"]["chunk_size"].as_u64()
        ),
        (Some(3), Some(12))
    );
}

#[test]
fn a_state_of_format_1_is_read_as_it_was_and_rewritten_compact() {
    let home = Home::new();
    let p = common::free_span_from(31300, 20);
    home.without_builtins(&format!("[types.t]\nranges = [[{p}, {}]]\n", p + 19));
    // Checkouts that exist (a removed one would give its port back at the allocation).
    let ws = tempfile::tempdir().unwrap();
    let (own, r) = (ws.path().join("own"), ws.path().join("r"));
    std::fs::create_dir_all(&own).unwrap();
    std::fs::create_dir_all(&r).unwrap();
    let (own, r) = (own.to_str().unwrap(), r.to_str().unwrap());
    // As the previous release wrote it: every instance an object, the root named twice.
    let old = format!(
        r#"{{"format":1,"held":{{"t":{{"instances":{{"by-hand":{{"port":{}}},"{own}":{{"port":{},"workspace":"{own}","service":"api"}},"{r}#p/b":{{"port":{},"workspace":"{r}"}}}}}}}}}}"#,
        p,
        p + 1,
        p + 2
    );
    std::fs::write(home.state(), &old).unwrap();
    let p64 = u64::from(p);
    let want = vec![
        (own.to_owned(), p64 + 1, Some(own.to_owned())),
        (format!("{r}#p/b"), p64 + 2, Some(r.to_owned())),
        ("by-hand".to_owned(), p64, None),
    ];
    assert_eq!(home.holders("t"), want);
    home.ok(&["allocate", "--service", "t", "--instance", "another"]);
    let state = std::fs::read_to_string(home.state()).unwrap();
    assert!(state.contains("\"format\":2"), "{state}");
    assert!(
        state.contains(&format!(r#""{own}":[{},"api"]"#, p + 1)),
        "a checkout's own instance is written compact: {state}"
    );
    let mut now = home.holders("t");
    now.retain(|(id, _, _)| id != "another");
    assert_eq!(
        now, want,
        "the rewrite kept every instance and its checkout"
    );
}

#[test]
fn an_empty_comment_only_or_zone_only_registry_keeps_the_built_in_types() {
    for text in [
        "",
        "# just a comment\n",
        "[strategies.team.zones]\nfront = { min_port = 20000, max_port = 20099 }\n",
    ] {
        let home = Home::new();
        std::fs::write(home.registry(), text).unwrap();
        let list = home.json(&["list"]);
        assert_eq!(
            list["service_types"].as_array().unwrap().len(),
            17,
            "{text:?}"
        );
        let g = home.json(&["allocate", "--service", "api", "--instance", "i"]);
        assert_eq!(g["auto_allocated"], false, "{text:?}: {g}");
        assert!((8000..=8099).contains(&g["port"].as_u64().unwrap()), "{g}");
        assert!(
            home.config().starts_with(text),
            "the file was rewritten: {}",
            home.config()
        );
    }
}

#[test]
fn a_registry_dir_others_may_write_in_is_refused_with_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = home.read();
    let err = home.fails(&["allocate", "--service", "y", "--instance", "i"], 6);
    assert!(err.contains("chmod go-w"), "{err}");
    assert_eq!(home.read(), before);
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    home.ok(&["allocate", "--service", "y", "--instance", "i"]);
}

#[test]
fn nothing_the_tool_keeps_is_written_through_a_symlink() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let victim = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(victim.path(), "precious").unwrap();
    // The state is refused before anything is committed; the audit trail, written after the
    // commit point, is a warning on a committed change.
    for (name, code) in [("state.json", 6), ("audit.jsonl", 0)] {
        let path = home.path().join(name);
        let _ = std::fs::remove_file(&path);
        std::os::unix::fs::symlink(victim.path(), &path).unwrap();
        let err = home.fails(&["allocate", "--service", "y", "--instance", name], code);
        assert!(err.contains("symlink"), "{name}: {err}");
        assert_eq!(std::fs::read_to_string(victim.path()).unwrap(), "precious");
        std::fs::remove_file(&path).unwrap();
    }
}

#[test]
fn a_bad_lock_timeout_is_an_error_not_a_panic() {
    let home = Home::new();
    for bad in ["1e20", "soon", "-1", "NaN"] {
        let out = home
            .cmd(&["allocate", "--service", "x", "--instance", "i"])
            .env("STYXY_LOCK_TIMEOUT", bad)
            .output()
            .unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}: {err}");
        assert!(
            err.contains("STYXY_LOCK_TIMEOUT") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn a_registry_dir_of_another_user_is_refused() {
    use std::os::unix::fs::MetadataExt;
    let me = std::fs::metadata("/proc/self").unwrap().uid();
    // As root, a temp dir given to nobody; as anyone else, a dir root owns.
    let theirs = tempfile::tempdir().unwrap();
    let dir = if me == 0 {
        std::os::unix::fs::chown(theirs.path(), Some(65534), Some(65534)).unwrap();
        theirs.path().to_path_buf()
    } else {
        std::path::PathBuf::from("/")
    };
    let home = Home::new();
    let err = home.fails(
        &[
            "--registry",
            dir.to_str().unwrap(),
            "allocate",
            "--service",
            "x",
            "--instance",
            "i",
        ],
        6,
    );
    assert!(err.contains("not to you") && err.contains("chown"), "{err}");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count() > 0,
        dir == std::path::Path::new("/")
    );
}

#[test]
fn a_fifo_or_directory_where_a_file_belongs_is_an_error_not_a_hang() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let state = home.state();
    std::fs::remove_file(&state).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&state)
        .status()
        .unwrap();
    assert!(made.success());
    for args in [
        &["list"][..],
        &["allocate", "--service", "y", "--instance", "i"],
    ] {
        let err = home.fails(args, 6);
        assert!(err.contains("a FIFO"), "{err}");
    }
    std::fs::remove_file(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    let err = home.fails(&["list"], 6);
    assert!(err.contains("a directory"), "{err}");
}

#[test]
fn temp_files_of_killed_writers_are_swept_everywhere_the_tool_writes() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    home.ok(&["type", "add", "y", "--range", "20000-20009"]);
    let left = [
        home.path().join(".state.json.dead01.tmp"),
        home.path().join(".registry.toml.dead02.tmp"),
        home.path().join("backups/.registry.1.toml.dead03.tmp"),
        home.path().join("ports/.x-0.json.dead04.tmp"),
    ];
    std::fs::create_dir_all(home.path().join("ports")).unwrap();
    for f in &left {
        std::fs::write(f, "torn").unwrap();
    }
    home.ok(&["allocate", "--service", "x", "--instance", "j"]);
    for f in &left {
        assert!(!f.exists(), "{} left", f.display());
    }
}

/// A new range is placed where nothing listens, on either loopback: the range skips a
/// server on 127.0.0.1 and one on [::1] in its way.
#[test]
fn new_ranges_skip_ports_that_listen() {
    let home = Home::new();
    let low = common::free_span_from(32200, 40);
    for (k, v) in [
        ("min_port", low.to_string()),
        ("gap_size", "0".to_owned()),
        ("chunk_size", "10".to_owned()),
    ] {
        home.ok(&["config", "set", k, &v]);
    }
    let _v4 = std::net::TcpListener::bind(("127.0.0.1", low + 3)).expect("a free port");
    // Without IPv6 on this machine, a second IPv4 server stands in.
    let _v6 = std::net::TcpListener::bind(("::1", low + 15))
        .or_else(|_| std::net::TcpListener::bind(("127.0.0.1", low + 15)))
        .expect("a free port");
    let first = home.json(&["allocate", "--service", "first", "--instance", "i"]);
    assert_eq!(
        first["ranges"],
        serde_json::json!([[low + 4, low + 13]]),
        "{first}"
    );
    let second = home.json(&["allocate", "--service", "second", "--instance", "i"]);
    assert_eq!(
        second["ranges"],
        serde_json::json!([[low + 16, low + 25]]),
        "{second}"
    );
}

/// Each exit code the README documents is what a real failing command returns.
#[test]
fn each_documented_exit_code_is_what_a_failing_command_returns() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme.split("## Exit codes").nth(1).unwrap();
    let documented: Vec<i32> = section
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .filter(|code| *code != 0)
        .collect();

    let home = Home::new();
    home.ok(&["allocate", "--service", "x", "--instance", "i"]);
    let mut seen = vec![];
    let mut check = |code: i32, err: String, phrase: &str| {
        assert!(
            err.contains(phrase),
            "exit {code}: expected {phrase:?} in {err}"
        );
        seen.push(code);
    };
    check(
        1,
        home.fails(&["release", "--service", "x", "--instance", "nobody"], 1),
        "nobody",
    );
    check(
        2,
        home.fails(&["allocate", "--instance", "i"], 2),
        "--service",
    );

    let lock = home.hold_lock();
    let out = home.run_with_a_1s_lock_deadline(&["allocate", "--service", "y", "--instance", "i"]);
    assert_eq!(out.status.code(), Some(4));
    check(4, String::from_utf8(out.stderr).unwrap(), "gave up waiting");
    lock.unlock().unwrap();

    check(
        5,
        home.fails(
            &["port", "x", "--manifest-path", "/nonexistent/Cargo.toml"],
            5,
        ),
        "does not exist",
    );
    let not_a_dir = tempfile::NamedTempFile::new().unwrap();
    let registry = not_a_dir.path().to_str().unwrap();
    check(
        6,
        home.fails(&["--registry", registry, "list"], 6),
        registry,
    );
    check(
        7,
        home.fails(&["metrics", "-o", "/nonexistent/dir/styxy.prom"], 7),
        "/nonexistent/dir",
    );

    let mut text = home.config();
    text.push_str("\n[types.broken\n");
    std::fs::write(home.registry(), &text).unwrap();
    check(3, home.fails(&["list"], 3), "registry.toml");

    seen.sort_unstable();
    assert_eq!(
        seen, documented,
        "the README's exit codes and the ones checked here"
    );
}

/// The build helper's protocol: a format this cargo-styxy does not speak is a usage error
/// (exit 2, which tells the helper to go on without it), and outside a build script the
/// command says what it is for.
#[test]
fn build_script_refuses_an_unknown_format_and_a_call_outside_a_build() {
    let home = Home::new();
    let err = home.fails(&["build-script", "--format-version", "2"], 2);
    assert!(err.contains("--format-version"), "{err}");
    let out = home
        .cmd(&["build-script", "--format-version", "1"])
        .env_remove("OUT_DIR")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\"CARGO_MANIFEST_DIR\": is not set") && err.contains("styxy_build::emit()"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

/// `run`'s trampoline with a parent that is not a pid says so (it exited 1 with no word).
#[test]
fn the_run_trampoline_refuses_a_parent_that_is_not_a_pid() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-styxy"))
        .args(["__styxy-run-child", "-1", "/bin/true"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is for `cargo styxy run` only"), "{err}");
}
