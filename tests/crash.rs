//! A writer killed at every file system call of a new allocation, `assign` and
//! `release --workspace` (strace's fault injection): the registry stays whole, `env` agrees
//! with `list`, the audit trail records every committed change, and no temp file is left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use common::Home;

const STRACE: &str = "/usr/bin/strace";

/// The system calls a writer changes files with (and takes its lock with).
const SYSCALLS: [&str; 10] = [
    "openat",
    "write",
    "fdatasync",
    "fsync",
    "rename",
    "renameat2",
    "unlink",
    "mkdir",
    "flock",
    "linkat",
];

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"api\", \"web\"]\nresolver = \"3\"\n",
        ),
        (
            "api/Cargo.toml",
            "[package]\nname = \"crash-api\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        ),
        ("api/src/main.rs", "fn main() {}\n"),
        (
            "web/Cargo.toml",
            "[package]\nname = \"crash-web\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [package.metadata.styxy]\nservices = [\"crash-db\"]\n",
        ),
        ("web/src/main.rs", "fn main() {}\n"),
    ];
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    dir
}

/// Copies the registry directory `from` into a new home.
fn copy_home(from: &Path) -> Home {
    let home = Home::new();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(home.path())
        .status()
        .unwrap();
    assert!(status.success());
    home
}

/// (type, instance) → port, from `list`.
fn listed(home: &Home) -> BTreeMap<(String, String), u64> {
    let list = home.json(&["list"]);
    let mut out = BTreeMap::new();
    for t in list["service_types"].as_array().unwrap() {
        for i in t["instances"].as_array().unwrap() {
            out.insert(
                (
                    t["service_type"].as_str().unwrap().to_owned(),
                    i["instance"].as_str().unwrap().to_owned(),
                ),
                i["port"].as_u64().unwrap(),
            );
        }
    }
    out
}

/// The instances the audit trail says exist, replaying it.
fn audited(home: &Home) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for r in home.json(&["audit"]).as_array().unwrap() {
        let key = || {
            (
                r["service_type"].as_str().unwrap_or_default().to_owned(),
                r["instance"].as_str().unwrap_or_default().to_owned(),
            )
        };
        match r["event"].as_str().unwrap() {
            "INSTANCE_ASSIGNED" | "INSTANCE_MOVED" => {
                out.insert(key(), r["port"].as_u64().unwrap());
            }
            "INSTANCE_RELEASED" => {
                out.remove(&key());
            }
            "GC" if r["instance"].is_string() => {
                out.remove(&key());
            }
            _ => {}
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let name = entry.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            out.push(entry.display().to_string());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Runs `args` in a copy of `prepared` once for every `n`-th call of every syscall in
/// [`SYSCALLS`], killed there, until it runs to its end; after each kill, checks what a user
/// would see. Returns how many kill points were tried.
/// (type, instance) → port, from a port file.
fn projected(text: &str) -> BTreeMap<(String, String), u64> {
    let pf: serde_json::Value = serde_json::from_str(text).unwrap();
    pf["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let key = (
                p["service_type"].as_str().unwrap(),
                p["instance"].as_str().unwrap(),
            );
            (
                (key.0.to_owned(), key.1.to_owned()),
                p["port"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// What `registry` (from `list`) holds for the checkout of the port file `text`.
fn held_by_checkout(
    registry: &BTreeMap<(String, String), u64>,
    text: &str,
) -> BTreeMap<(String, String), u64> {
    let pf: serde_json::Value = serde_json::from_str(text).unwrap();
    let root = pf["workspace"].as_str().unwrap();
    registry
        .iter()
        .filter(|((_, i), _)| i == root || i.starts_with(&format!("{root}#")))
        .map(|(k, p)| (k.clone(), *p))
        .collect()
}

/// The port files in `home`: name, text and modification time.
fn port_files(home: &Path) -> BTreeMap<String, (String, std::time::SystemTime)> {
    let Ok(entries) = std::fs::read_dir(home.join("ports")) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let mtime = e.metadata().unwrap().modified().unwrap();
            (e.file_name().to_string_lossy().into_owned(), (text, mtime))
        })
        .collect()
}

fn kill_everywhere(prepared: &Home, manifest: &str, args: &[&str]) -> usize {
    let mut points = 0;
    for syscall in SYSCALLS {
        for n in 1.. {
            let home = copy_home(prepared.path());
            let before = port_files(home.path());
            let mut cmd = Command::new(STRACE);
            cmd.args(["-o", "/dev/null", "-e"])
                .arg(format!("inject={syscall}:signal=SIGKILL:when={n}"))
                .arg(common::BIN)
                .arg("styxy")
                .args(args)
                .env("STYXY_HOME", home.path())
                .env("NO_COLOR", "1")
                .env("CARGO", "/nonexistent/cargo");
            let out = cmd.output().unwrap();
            let killed = out.status.signal() == Some(9) || out.status.code() == Some(137);
            if !killed {
                assert!(
                    out.status.success(),
                    "{args:?} with {syscall} #{n}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                break;
            }
            points += 1;
            let at = format!("{args:?} killed at {syscall} #{n}");
            // A build script is rerun by cargo only if its port file changed (or went): one
            // that disagrees with the registry must have been rewritten by the killed writer.
            let registry = listed(&home);
            for (file, (text, mtime)) in port_files(home.path()) {
                let Some((was, was_mtime)) = before.get(&file) else {
                    continue;
                };
                if text == *was && mtime == *was_mtime {
                    assert_eq!(
                        projected(&text),
                        held_by_checkout(&registry, &text),
                        "{at}: {file} is unchanged but disagrees with the registry"
                    );
                }
            }
            // env (which assigns if it must) agrees with list for this checkout.
            let env = home.json(&["env", "--manifest-path", manifest]);
            let ports = listed(&home);
            for (name, port) in env.as_object().unwrap() {
                let service = name
                    .trim_end_matches("_PORT")
                    .to_lowercase()
                    .replace('_', "-");
                let held: Vec<u64> = ports
                    .iter()
                    .filter(|((t, _), _)| *t == service)
                    .map(|(_, p)| *p)
                    .collect();
                assert!(
                    held.contains(&port.as_u64().unwrap()),
                    "{at}: env {name}={port}, list {ports:?}"
                );
            }
            // The next writer completes the trail and sweeps the temp files.
            home.ok(&["allocate", "--service", "crash-next", "--instance", "z"]);
            assert_eq!(
                audited(&home),
                listed(&home),
                "{at}: the audit trail disagrees with list"
            );
            assert_eq!(temp_files(home.path()), Vec::<String>::new(), "{at}");
        }
    }
    points
}

#[test]
fn a_writer_killed_at_any_file_syscall_leaves_a_registry_that_tells_the_truth() {
    assert!(
        Path::new(STRACE).exists(),
        "{STRACE} is missing: install Debian's strace (bash .ci/run does)"
    );
    let ws = workspace();
    let manifest = ws.path().join("Cargo.toml");
    let manifest = manifest.to_str().unwrap();
    // A registry with one other type and this checkout's metadata cached (so no cargo runs).
    let prepared = Home::new();
    prepared.ok(&["allocate", "--service", "crash-other", "--instance", "o"]);
    prepared.ok(&["assign", "--manifest-path", manifest]);
    let assigned = copy_home(prepared.path());
    prepared.ok(&["release", "--workspace", "--manifest-path", manifest]);

    let new_type = kill_everywhere(
        &prepared,
        manifest,
        &["allocate", "--service", "crash-new", "--instance", "i"],
    );
    let assign = kill_everywhere(
        &prepared,
        manifest,
        &["assign", "--manifest-path", manifest],
    );
    let release = kill_everywhere(
        &assigned,
        manifest,
        &["release", "--workspace", "--manifest-path", manifest],
    );
    eprintln!("kill points: new allocation {new_type}, assign {assign}, release {release}");
    assert!(new_type > 10 && assign > 10 && release > 10);
}
