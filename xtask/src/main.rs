//! Project tasks, run as `cargo xtask <task>` (matklad's xtask pattern).

mod bench;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  bench [--quick]   measure the release binary against spec §10's targets; writes BENCHMARKS.md
  ci                run .ci/run (fmt, clippy, tests)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("bench") => bench::main(&args[1..]),
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
