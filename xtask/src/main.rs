//! Project tasks, run as `cargo xtask <task>` (matklad's xtask pattern).

use std::process::ExitCode;

fn main() -> ExitCode {
    let task = std::env::args().nth(1);
    match task.as_deref() {
        Some("ci") => {
            let status = std::process::Command::new("bash").arg(".ci/run").status();
            match status {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                _ => ExitCode::FAILURE,
            }
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\ntasks:\n  ci    run .ci/run (fmt, clippy, tests)"
            );
            ExitCode::from(2)
        }
    }
}
