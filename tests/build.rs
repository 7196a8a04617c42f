//! The build.rs integration under real `cargo build` of the bundled example workspace: the
//! constants are the registry's ports, a no-op build reruns nothing, another checkout's
//! allocation rebuilds nothing, a change of this checkout's ports does, and builds work with
//! no registry at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Home;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The tests share one target dir (the library is compiled once) and so one `shop-cli`
/// binary: they take turns.
static TARGET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Copies `examples/shop` to a temp dir, pointing its path dependency at this repository.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(REPO).join("examples/shop");
    copy_tree(&src, dir.path());
    for member in ["shop-api", "shop-cli"] {
        let manifest = dir.path().join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap().replace(
            "path = \"../../../crates/styxy-build\"",
            &format!("path = \"{REPO}/crates/styxy-build\""),
        );
        std::fs::write(manifest, text).unwrap();
    }
    // Our lock file pins the library's dependencies to versions already built here.
    std::fs::copy(
        Path::new(REPO).join("Cargo.lock"),
        dir.path().join("Cargo.lock"),
    )
    .unwrap();
    dir
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let name = e.file_name();
        if name == "target" || name == "Cargo.lock" || name == ".env" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if src.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The target dir shared by every fixture build, so the library is compiled once.
fn target_dir() -> PathBuf {
    Path::new(REPO).join("target/fixture-builds")
}

/// `cargo build -v` of the fixture workspace `ws`, whose build scripts ask this cargo-styxy
/// (`STYXY_BIN`) unless `env` says otherwise.
fn cargo_build(ws: &Path, env: &[(&str, &str)], remove: &[&str]) -> Output {
    cargo_build_in(&target_dir(), ws, env, remove)
}

fn cargo_build_in(target: &Path, ws: &Path, env: &[(&str, &str)], remove: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO"));
    c.args(["build", "-v", "--offline"])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", target)
        .env("STYXY_BIN", env!("CARGO_BIN_EXE_cargo-styxy"))
        .env_remove("STYXY_OFFLINE");
    for (k, v) in env {
        c.env(k, v);
    }
    for k in remove {
        c.env_remove(k);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn build(home: &Home, ws: &Path) -> String {
    let home_dir = home.path().to_str().unwrap().to_owned();
    let out = cargo_build(ws, &[("STYXY_HOME", &home_dir)], &[]);
    String::from_utf8(out.stderr).unwrap()
}

/// `shop-cli --ports`: the SERVICES table compiled into the client.
fn compiled_ports() -> BTreeMap<String, u16> {
    compiled_ports_in(&target_dir())
}

fn compiled_ports_in(target: &Path) -> BTreeMap<String, u16> {
    let out = Command::new(target.join("debug/shop-cli"))
        .arg("--ports")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, port) = l.split_once(' ').unwrap();
            (name.to_owned(), port.parse().unwrap())
        })
        .collect()
}

fn fresh(log: &str, package: &str) -> bool {
    log.lines()
        .any(|l| l.trim_start().starts_with("Fresh") && l.contains(&format!(" {package} v")))
}

#[test]
fn build_constants_follow_this_checkouts_ports_and_nothing_else() {
    let _turn = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    let home = Home::new();
    let ws = example_copy();
    let m = ws.path().join("Cargo.toml");
    let m = m.to_str().unwrap();

    // A fresh checkout: plain cargo build assigns from the manifests, no `assign` first.
    build(&home, ws.path());
    let compiled = compiled_ports();
    assert_eq!(compiled.len(), 4, "{compiled:?}");
    for (service, port) in &compiled {
        let cli = home.ok(&["port", service, "--manifest-path", m]);
        assert_eq!(cli.trim(), port.to_string(), "{service}");
    }

    // A no-op build reruns no build script, even right after one that assigned.
    let log = build(&home, ws.path());
    assert!(fresh(&log, "shop-api") && fresh(&log, "shop-cli"), "{log}");

    // Another checkout's allocation does not rebuild this one.
    home.ok(&[
        "allocate",
        "--service",
        "shop-api",
        "--instance",
        "/elsewhere",
    ]);
    home.ok(&[
        "allocate",
        "--service",
        "someone-else",
        "--instance",
        "/elsewhere",
    ]);
    let log = build(&home, ws.path());
    assert!(fresh(&log, "shop-api") && fresh(&log, "shop-cli"), "{log}");

    // A change of this checkout's own ports does, and the constants follow.
    home.ok(&["release", "--service", "postgres"]);
    let postgres = common::free_span_from(30500, 10);
    let range = format!("{postgres}-{}", postgres + 9);
    home.ok(&["type", "add", "postgres", "--range", &range]);
    home.ok(&["assign", "--manifest-path", m]);
    let log = build(&home, ws.path());
    assert!(!fresh(&log, "shop-cli"), "{log}");
    assert_eq!(compiled_ports()["postgres"], postgres);
    assert_eq!(
        compiled_ports()["shop-api"],
        compiled["shop-api"],
        "unchanged ports stay"
    );

    // The example's own test, which reads the constant, passes under `cargo test`.
    let out = Command::new(env!("CARGO"))
        .args(["test", "--offline", "-p", "shop-cli"])
        .current_dir(ws.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .env("STYXY_HOME", home.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("client_targets_this_checkouts_server ... ok"),
        "{log}"
    );
}

/// A hand edit of `registry.toml` that moves this checkout's port reaches the constants at the
/// next `cargo build`, with no styxy command run in between.
#[test]
fn a_hand_edit_reaches_the_constants_at_the_next_build() {
    let _turn = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    let home = Home::new();
    let ws = example_copy();
    build(&home, ws.path());
    let before = compiled_ports()["shop-api"];
    let m = ws.path().join("Cargo.toml");
    let m = m.to_str().unwrap();
    let assigned = home.json(&["assign", "--manifest-path", m]);
    let api_type = assigned["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["port"].as_u64() == Some(before.into()))
        .and_then(|s| s["service_type"].as_str())
        .expect("shop-api's service")
        .to_owned();
    let start = common::free_span_from(31500, 10);
    let mut text = home.config();
    text.push_str(&format!(
        "\n[types.\"{api_type}\"]\nranges = [[{start}, {}]]\n",
        start + 9
    ));
    std::fs::write(home.registry(), text).unwrap();

    let log = build(&home, ws.path());
    let after = compiled_ports()["shop-api"];
    assert!(
        (start..start + 10).contains(&after),
        "compiled {after}, was {before}\n{log}"
    );
    let cli = home.ok(&["port", "shop-api", "--manifest-path", m]);
    assert_eq!(cli.trim(), after.to_string());
}

#[test]
fn builds_without_a_registry() {
    let _turn = TARGET.lock().unwrap_or_else(|e| e.into_inner());
    let ws = example_copy();
    // STYXY_OFFLINE=1 and no home at all.
    let out = cargo_build(
        ws.path(),
        &[("STYXY_OFFLINE", "1"), ("HOME", "/nonexistent")],
        &["STYXY_HOME", "XDG_CONFIG_HOME"],
    );
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(
        log.contains("warning: shop-api@0.1.0: styxy: STYXY_OFFLINE is set"),
        "{log}"
    );
    let offline = compiled_ports();
    assert_eq!(offline.len(), 4);
    // An unwritable registry falls back to the same deterministic ports, with a warning.
    let out = cargo_build(
        ws.path(),
        &[("STYXY_HOME", "/proc/styxy-cannot-be-here")],
        &[],
    );
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("styxy: no registry"), "{log}");
    assert_eq!(compiled_ports(), offline);
}

/// Without cargo-styxy (CI, docs.rs) the build goes on: the first build derives the ports
/// from the manifests as cargo-styxy does offline, later ones keep the constants of the
/// last build, and once cargo-styxy is there the checkout gets its own ports.
#[test]
fn builds_without_cargo_styxy_installed() {
    // A target dir of its own: cargo gives a workspace member the same OUT_DIR in every
    // copy of the workspace, and this test starts with none.
    let target = tempfile::tempdir().unwrap();
    let target = target.path();
    let home = Home::new();
    let home_dir = home.path().to_str().unwrap().to_owned();
    let ws = example_copy();
    let missing = ws.path().join("no/cargo-styxy");
    let missing = missing.to_str().unwrap();
    let without = [("STYXY_BIN", missing), ("STYXY_HOME", home_dir.as_str())];

    let out = cargo_build_in(target, ws.path(), &without, &[]);
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(
        log.contains("styxy: cargo-styxy is not installed")
            && log.contains("ports derived from the service names")
            && log.contains("cargo install cargo-styxy"),
        "{log}"
    );
    let derived = compiled_ports_in(target);
    assert_eq!(derived.len(), 4, "{derived:?}");
    assert!(!home.state().exists(), "no registry was written");

    // The same ports cargo-styxy gives offline.
    cargo_build_in(target, ws.path(), &[("STYXY_OFFLINE", "1")], &[]);
    assert_eq!(compiled_ports_in(target), derived);

    // Later builds without it (a changed STYXY_BIN reruns the scripts) keep what the last
    // build wrote: cargo-styxy's, here.
    let out = cargo_build_in(target, ws.path(), &without, &[]);
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("keeping the ports of the last build"), "{log}");
    assert_eq!(compiled_ports_in(target), derived);

    // With cargo-styxy: this checkout's own ports, as `port` says.
    cargo_build_in(target, ws.path(), &[("STYXY_HOME", home_dir.as_str())], &[]);
    let m = ws.path().join("Cargo.toml");
    for (service, port) in compiled_ports_in(target) {
        let cli = home.ok(&["port", &service, "--manifest-path", m.to_str().unwrap()]);
        assert_eq!(cli.trim(), port.to_string(), "{service}");
    }
}
