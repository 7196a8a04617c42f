//! `completions SHELL`: shell completion scripts.

use std::io::Write;

use clap::{Args, CommandFactory};

use crate::cli::CargoCli;

/// Print a completion script for `cargo-styxy`
///
/// bash: `cargo styxy completions bash > ~/.local/share/bash-completion/completions/cargo-styxy`;
/// zsh: into a directory on `$fpath` as `_cargo-styxy`; fish: into
/// `~/.config/fish/completions/cargo-styxy.fish`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let mut cmd = CargoCli::command()
        .find_subcommand("styxy")
        .cloned()
        .unwrap_or_else(clap::Command::default)
        .name("cargo-styxy");
    // Into a buffer first: clap_complete panics when its writer fails, and a closed pipe
    // (`completions bash | head -1`) is a normal end, which `main` turns into exit 0.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cargo-styxy", &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}
