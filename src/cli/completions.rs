//! `completions SHELL`: shell completion scripts.

use std::io::Write;

use clap::Args;

use crate::cli::Cli;

/// Print a completion script for `cargo-styxy`
///
/// bash: `cargo styxy completions bash > ~/.local/share/bash-completion/completions/cargo-styxy`;
/// zsh: into a directory on `$fpath` as `_cargo-styxy`; fish: into
/// `~/.config/fish/completions/cargo-styxy.fish`; PowerShell: dot-source it from `$PROFILE`.
///
/// The scripts complete `cargo-styxy …`: subcommands, flags, and the values of enum
/// arguments. cargo's own bash completion hands `cargo styxy …` over to it with
/// bash-completion 2.12 or later; elsewhere, type `cargo-styxy` to complete.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    // The tool as `cargo-styxy`, built afresh: the `styxy` subcommand of `CargoCli` carries
    // bin names ("cargo styxy …") that would not match the words the shell completes.
    // cargo's own bash completion (with bash-completion ≥ 2.12) hands `cargo styxy …` over
    // to the completion of `cargo-styxy`, with these same words.
    let mut cmd = Cli::augment_args(clap::Command::new("cargo-styxy"));
    // Into a buffer first: clap_complete panics when its writer fails, and a closed pipe
    // (`completions bash | head -1`) is a normal end, which `main` turns into exit 0.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cargo-styxy", &mut script);
    if args.shell == clap_complete::Shell::Bash {
        script = bash_fixup(&script);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script)?;
    out.flush()?;
    Ok(())
}

/// clap_complete's bash script for a bin name with a hyphen names the state of a subcommand
/// `cargo__styxy__subcmd__allocate` where it walks the words, but
/// `cargo__subcmd__styxy__subcmd__allocate` in the arm that completes it, so nothing below
/// the top level completes (clap-rs/clap#6421, open in clap_complete 4.6.12). The arms are
/// renamed to what the walk reaches; `tests/completions.rs` drives the script in a real bash.
fn bash_fixup(script: &[u8]) -> Vec<u8> {
    String::from_utf8_lossy(script)
        .replace("cargo__subcmd__styxy__subcmd__", "cargo__styxy__subcmd__")
        .into_bytes()
}
