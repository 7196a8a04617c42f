//! The README's console examples, run as written by trycmd (`cargo` is this binary, which is
//! how cargo runs `cargo styxy`), with a throw-away registry: they cannot drift from what the
//! tool prints.

#[test]
fn readme_examples() {
    let home = tempfile::tempdir().unwrap();
    trycmd::TestCases::new()
        .register_bin(
            "cargo",
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_cargo-styxy")),
        )
        .env("NO_COLOR", "1")
        .env("STYXY_HOME", home.path().display().to_string())
        .case("README.md");
}
