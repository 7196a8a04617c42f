//! `cargo-styxy`: run as `cargo styxy <command>` or `cargo-styxy <command>`.

fn main() -> std::process::ExitCode {
    styxy::cli::main()
}
