//! The library `styxy` stands alone: with or without its `tool` feature it holds none of
//! the binary's crates (CLI, web, async, metrics rendering, subprocesses); and the build
//! helper a user's build.rs depends on holds nothing but itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

/// The crates of `cargo tree -p PACKAGE -e normal` with `features`.
fn tree(package: &str, features: &[&str]) -> String {
    let out = common::succeeded(
        Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "--format",
                "{p}",
                "--package",
                package,
            ])
            .args(features)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_library_pulls_none_of_the_binarys_crates() {
    for features in [&[][..], &["--features", "tool"]] {
        let tree = tree("styxy", features);
        assert!(
            tree.contains("toml_edit"),
            "not the tree we expect:\n{tree}"
        );
        assert_eq!(
            tree.lines().any(|l| l.starts_with("signal-hook ")),
            !features.is_empty() && cfg!(unix),
            "signal-hook comes with `tool` only:\n{tree}"
        );
        for banned in [
            "tokio",
            "axum",
            "hyper",
            "clap",
            "clap_complete",
            "clap-cargo",
            "anstream",
            "anyhow",
            "duct",
            "prometheus-client",
            "cargo_metadata",
        ] {
            let found = tree
                .lines()
                .any(|l| l.split_whitespace().next() == Some(banned));
            assert!(
                !found,
                "{banned} is in the library's tree ({features:?}):\n{tree}"
            );
        }
    }
}

/// cargo compiles a build script's dependencies a second time: the helper adds only itself.
#[test]
fn the_build_helper_depends_on_nothing() {
    let tree = tree("styxy-build", &[]);
    let crates: Vec<&str> = tree.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(crates.len(), 1, "{tree}");
    assert!(crates[0].starts_with("styxy-build v"), "{tree}");
}
