//! `completions SHELL`: shell completion scripts.

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
    clap_complete::generate(args.shell, &mut cmd, "cargo-styxy", &mut std::io::stdout());
    Ok(())
}
