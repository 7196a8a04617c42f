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
