//! Every `--help` is snapshot-tested: a change to the CLI shows up in review.
//! Regenerate with `TRYCMD=overwrite cargo test --test help` and commit.

#[test]
fn help_snapshots() {
    trycmd::TestCases::new()
        .register_bin(
            "cargo-styxy",
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_cargo-styxy")),
        )
        .env("NO_COLOR", "1")
        .case("tests/cmd/help/*.toml");
}
