//! Checkouts' files read as if another local user planted them (spec §9): a FIFO, a device
//! or a symlink loop where a manifest or a member should be never hangs a command, never
//! holds the registry lock, and is named in a message with the reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Home, Reaped};

/// Runs `cmd` and waits for it for at most 60 s: a command that hangs fails the test
/// (killed by pid) instead of hanging it.
fn finishes(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{cmd:?} hangs");
        std::thread::sleep(Duration::from_millis(20));
    }
    let Reaped(inner) = &mut child;
    let mut out = Output {
        status: inner.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    inner
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut out.stdout)
        .unwrap();
    inner
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut out.stderr)
        .unwrap();
    out
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A workspace `r` whose member `p` names its root (`workspace = ".."`), assigned (so that
/// its instances carry their service, which `gc` checks against the manifests).
fn assigned_workspace(home: &Home) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    write(&r.join("Cargo.toml"), "[workspace]\nmembers = [\"p\"]\n");
    write(
        &r.join("p/Cargo.toml"),
        "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\nworkspace = \"..\"\n",
    );
    write(&r.join("p/src/main.rs"), "fn main() {}\n");
    home.ok(&[
        "assign",
        "--manifest-path",
        r.join("Cargo.toml").to_str().unwrap(),
    ]);
    dir
}

fn mkfifo(path: &Path) {
    std::fs::remove_file(path).ok();
    let status = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success());
}

#[test]
fn a_fifo_as_the_workspace_root_neither_hangs_gc_nor_holds_the_lock() {
    let home = Home::new();
    let ws = assigned_workspace(&home);
    let root = ws.path().join("r");
    let before = home.read();
    mkfifo(&root.join("Cargo.toml"));

    // gc reads the checkout before it takes the lock: an allocation at the same time does
    // not wait for it, whatever the checkout does.
    let gc = home.cmd(&["gc", "--dry-run"]);
    let gc = std::thread::spawn(move || finishes(gc));
    let other =
        home.run_with_a_1s_lock_deadline(&["allocate", "--service", "x", "--instance", "i"]);
    assert!(other.status.success(), "{other:?}");
    let out = gc.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&root.display().to_string()) && err.contains("a FIFO"),
        "{err}"
    );
    // Kept: a checkout that cannot be read is not a checkout that is gone.
    home.ok(&["release", "--service", "x", "--instance", "i"]);
    assert_eq!(home.read(), before);

    // cargo is not asked to read it either: env says what is wrong instead of hanging.
    let env = finishes({
        let mut c = home.cmd(&["env"]);
        c.current_dir(root.join("p"));
        c
    });
    let err = String::from_utf8_lossy(&env.stderr);
    assert_eq!(env.status.code(), Some(5), "{err}");
    assert!(err.contains("a FIFO, not a regular file"), "{err}");
}

#[test]
fn a_manifest_linked_to_dev_zero_is_refused_not_read() {
    let home = Home::new();
    let ws = assigned_workspace(&home);
    let root = ws.path().join("r");
    std::fs::remove_file(root.join("Cargo.toml")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", root.join("Cargo.toml")).unwrap();
    let out = finishes(home.cmd(&["gc", "--dry-run"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("a device, not a regular file"), "{err}");

    // A regular file too large for a manifest is refused too.
    std::fs::remove_file(root.join("Cargo.toml")).unwrap();
    let big = format!(
        "[workspace]\nmembers = [\"p\"]\n# {}\n",
        "x".repeat(2 << 20)
    );
    write(&root.join("Cargo.toml"), &big);
    let out = finishes(home.cmd(&["gc", "--dry-run"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("larger than 1 MiB"), "{err}");
}

#[test]
fn member_globs_over_symlink_loops_end() {
    let home = Home::new();
    let ws = assigned_workspace(&home);
    let root = ws.path().join("r");
    // `**` over a folder that links back up twice: a descent following links would never
    // end (and each level doubles).
    write(
        &root.join("Cargo.toml"),
        "[workspace]\nmembers = [\"**\"]\n",
    );
    std::os::unix::fs::symlink("..", root.join("p/up")).unwrap();
    std::os::unix::fs::symlink("..", root.join("p/again")).unwrap();
    let out = finishes(home.cmd(&["gc", "--dry-run", "--format", "json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The member is still found, so nothing is dropped.
    let dropped: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(dropped["dropped"], serde_json::json!([]), "{dropped}");
}

#[test]
fn fifos_and_device_links_in_the_registry_dir_are_refused_not_waited_on() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    let audit = home.path().join("audit.jsonl");
    std::fs::rename(&audit, home.path().join("audit.1.jsonl")).unwrap();

    // A FIFO as the trail: the allocation is made, and says the trail missed it.
    mkfifo(&audit);
    let out = finishes(home.cmd(&["allocate", "--service", "api", "--instance", "b"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("audit.jsonl is a FIFO"), "{err}");

    // /dev/zero behind it: not read (an allocation reads the trail's tail), not written.
    std::fs::remove_file(&audit).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &audit).unwrap();
    let out = finishes(home.cmd(&["allocate", "--service", "api", "--instance", "c"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("audit.jsonl is a symlink"), "{err}");
    std::fs::remove_file(&audit).unwrap();

    // A FIFO among the rotated files: `audit` reads the others and says which it skipped.
    mkfifo(&home.path().join("audit.3.jsonl"));
    let out = finishes(home.cmd(&["audit", "--format", "json"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("audit.3.jsonl: skipped: it is a FIFO"),
        "{err}"
    );
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 1, "{records}");
}

/// A folder of someone else's, with files a sweep of temp files would match by suffix.
fn victim() -> tempfile::TempDir {
    let v = tempfile::tempdir().unwrap();
    for name in [".registry.toml.abcdef.tmp", "precious.tmp", "notes.txt"] {
        std::fs::write(v.path().join(name), "theirs").unwrap();
    }
    v
}

fn untouched(v: &tempfile::TempDir) {
    let mut names: Vec<String> = std::fs::read_dir(v.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".registry.toml.abcdef.tmp", "notes.txt", "precious.tmp"]
    );
}

#[test]
fn linked_subdirs_of_the_registry_are_refused_and_nothing_outside_is_touched() {
    let home = Home::new();
    let ws = assigned_workspace(&home);
    let manifest = ws.path().join("r/Cargo.toml");
    let manifest = manifest.to_str().unwrap();

    // ports/ linked to another folder: the port file is not written through it.
    let v = victim();
    std::fs::remove_dir_all(home.path().join("ports")).unwrap();
    std::os::unix::fs::symlink(v.path(), home.path().join("ports")).unwrap();
    let err = home.fails(&["assign", "--manifest-path", manifest], 6);
    assert!(err.contains("ports is a symlink"), "{err}");
    untouched(&v);
    std::fs::remove_file(home.path().join("ports")).unwrap();

    // backups/ linked: a change of registry.toml does not keep its backup there, and no
    // backup is listed from there.
    let v = victim();
    std::fs::remove_dir_all(home.path().join("backups")).unwrap();
    std::os::unix::fs::symlink(v.path(), home.path().join("backups")).unwrap();
    let out = home.run(&["config", "set", "gap_size", "12"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("no backup kept") && err.contains("backups is a symlink"),
        "{err}"
    );
    let err = home.fails(&["config", "restore"], 1);
    assert!(err.contains("no backup"), "{err}");
    untouched(&v);
    std::fs::remove_file(home.path().join("backups")).unwrap();

    // cache/ linked: the cache is neither read nor written there; env still answers.
    let v = victim();
    let _ = std::fs::remove_dir_all(home.path().join("cache"));
    std::os::unix::fs::symlink(v.path(), home.path().join("cache")).unwrap();
    home.ok(&["assign", "--manifest-path", manifest]);
    home.ok(&["env", "--manifest-path", manifest]);
    untouched(&v);
}

#[test]
fn a_planted_backup_link_or_fifo_is_neither_listed_nor_restored() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    let backups = home.path().join("backups");
    let elsewhere = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(elsewhere.path(), "[settings]\ngap_size = 99\n").unwrap();
    // Named as the newest backups would be.
    std::os::unix::fs::symlink(
        elsewhere.path(),
        backups.join("registry.99999999999999999998.toml"),
    )
    .unwrap();
    mkfifo(&backups.join("registry.99999999999999999999.toml"));
    // An unparsable registry.toml makes commands look for the last good backup.
    std::fs::write(home.registry(), "[settings\n").unwrap();
    let out = finishes(home.cmd(&["list"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(!err.contains("99999999999999999"), "{err}");
    let out = finishes(home.cmd(&["config", "restore"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("99999999999999999"), "{err}");
    assert!(!home.config().contains("gap_size = 99"));
}

#[test]
fn readers_refuse_a_registry_dir_others_may_write_and_doctor_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = home.fails(&["list"], 6);
    assert!(err.contains("others may write in it (mode 777)"), "{err}");
    let out = home.run(&["doctor", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"][0]["check"], "registry-dir", "{report}");
    assert!(
        report["findings"][0]["fix"]
            .as_str()
            .unwrap()
            .starts_with("chmod go-w"),
        "{report}"
    );
    std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    home.ok(&["list"]);
}

#[test]
fn config_restore_repairs_a_registry_toml_that_is_not_utf8() {
    let home = Home::new();
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    let good = home.config();
    let mut bytes = good.clone().into_bytes();
    bytes.extend(b"\n# \xff\xfe\n");
    std::fs::write(home.registry(), bytes).unwrap();
    let err = home.fails(&["list"], 3);
    assert!(
        err.contains("not valid UTF-8") && err.contains("backups/registry."),
        "{err}"
    );
    home.ok(&["config", "restore"]);
    assert_eq!(home.config(), good);
}

#[test]
fn a_killed_cache_writers_temp_file_is_swept_once_it_is_old() {
    let home = Home::new();
    let ws = assigned_workspace(&home);
    let cache = home.path().join("cache");
    let old = cache.join(".workspace-0123456789abcdef.json.Ab3dE9.tmp");
    let fresh = cache.join(".workspace-0123456789abcdef.json.Zz9yX8.tmp");
    let theirs = cache.join("notes.tmp");
    for f in [&old, &fresh, &theirs] {
        std::fs::write(f, "torn").unwrap();
    }
    let two_minutes_ago = std::time::SystemTime::now() - Duration::from_secs(120);
    for f in [&old, &theirs] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(two_minutes_ago)
            .unwrap();
    }
    home.ok(&["allocate", "--service", "api", "--instance", "a"]);
    assert!(!old.exists());
    // A writer may still be at a fresh one; a name the tool does not make is not its.
    assert!(fresh.exists() && theirs.exists());
    drop(ws);
}
