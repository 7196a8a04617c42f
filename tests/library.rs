//! The library a build script depends on stays small: no CLI, web or async crates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

#[test]
fn build_time_library_pulls_no_cli_web_or_async_crates() {
    let out = common::succeeded(
        Command::new(env!("CARGO"))
            .args([
                "tree",
                "--offline",
                "--no-default-features",
                "--edges",
                "normal",
                "--prefix",
                "none",
                "--format",
                "{p}",
                "--package",
                "cargo-styxy",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR")),
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.contains("toml_edit"),
        "not the tree we expect:\n{tree}"
    );
    for banned in [
        "tokio",
        "axum",
        "hyper",
        "clap",
        "prometheus-client",
        "cargo_metadata",
    ] {
        let found = tree
            .lines()
            .any(|l| l.split_whitespace().next() == Some(banned));
        assert!(
            !found,
            "{banned} is in the build-time library's tree:\n{tree}"
        );
    }
}
