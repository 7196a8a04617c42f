//! Project tasks, run as `cargo xtask <task>` (matklad's xtask pattern).

mod bench;
mod screenshot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bench [--quick]   measure the release binary against spec §10's targets; writes BENCHMARKS.md
  bench --against REV [--quick]
                    this tree's binary and REV's in turns (fast path, allocations);
                    writes target/bench-against.md
  ci                run .ci/run (fmt, clippy, tests)
  screenshot [-o FILE]
                    regenerate docs/dashboard.png from a populated temp registry (needs chromium)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::main(&args[1..]),
        Some("screenshot") => screenshot::main(&args[1..]),
        Some("ci") => match std::process::Command::new("bash").arg(".ci/run").status() {
            Ok(s) if s.success() => Ok(()),
            _ => Err(".ci/run failed".into()),
        },
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The repository's root (the workspace holding xtask).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let name = e.file_name();
        if name == "target" || name == "Cargo.lock" || name == ".env" {
            continue;
        }
        if e.path().is_dir() {
            copy_tree(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

/// The example workspace copied to `dir`, its path dependency pointing at this repository.
fn example(root: &Path, dir: &Path) {
    copy_tree(&root.join("examples/shop"), dir);
    for member in ["shop-api", "shop-cli"] {
        let m = dir.join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&m).expect("manifest").replace(
            "path = \"../../../crates/styxy-build\"",
            &format!("path = \"{}/crates/styxy-build\"", root.display()),
        );
        std::fs::write(m, text).expect("write");
    }
    let _ = std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"));
}
