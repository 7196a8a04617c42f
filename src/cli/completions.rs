//! Shell completions, by clap_complete's completion engine: the shell asks the binary on
//! every TAB (`COMPLETE=bash cargo-styxy -- WORDS…`), so that the values that live in the
//! registry and the workspace (service types, zones, packages, bins, services) complete as
//! well as subcommands, flags and enum values. `completions SHELL` prints the registration.

use std::ffi::OsStr;
use std::io::Write;

use clap::{Args, Command};
use clap_complete::engine::{ArgValueCompleter, CompletionCandidate};

use crate::cli::Cli;

/// The variable that asks the binary to complete instead of run (clap_complete's default).
const VAR: &str = "COMPLETE";

/// Print the completion registration of `cargo-styxy` for a shell
///
/// bash: `cargo styxy completions bash > ~/.local/share/bash-completion/completions/cargo-styxy`;
/// zsh: into a directory on `$fpath` as `_cargo-styxy`; fish: into
/// `~/.config/fish/completions/cargo-styxy.fish`; PowerShell: dot-source it from `$PROFILE`.
/// (Or, in the shell's startup file: `source <(COMPLETE=bash cargo-styxy)`.)
///
/// On every TAB the shell asks `cargo-styxy` (found on `PATH`) what fits: subcommands,
/// flags, enum values, and the service types, zones, packages, bins and services of the
/// registry and the workspace in the current directory. cargo's own bash completion hands
/// `cargo styxy …` over to it with bash-completion 2.12 or later; elsewhere, type
/// `cargo-styxy` to complete.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

/// Prints the registration: what `COMPLETE=SHELL cargo-styxy` prints, asked of this binary
/// (the engine reads the shell from the environment, which this process does not change).
pub fn run(args: CompletionsArgs) -> anyhow::Result<()> {
    let shell = args.shell.to_string();
    let exe = std::env::current_exe()?;
    let out = std::process::Command::new(exe)
        .env(VAR, &shell)
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "cannot write the {shell} registration: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&out.stdout)?;
    stdout.flush()?;
    Ok(())
}

/// Completes the command line and exits, when the shell asks (`COMPLETE` is set); else
/// returns at once.
pub fn complete_if_asked() {
    clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        // Found on PATH at every TAB, so an upgrade or a `cargo install` elsewhere is used.
        .completer("cargo-styxy")
        .complete();
}

/// The tool as `cargo-styxy` (as cargo's completion hands `cargo styxy …` over), with a
/// completer on every argument whose values the registry or the workspace knows.
fn command() -> Command {
    let mut cmd = Cli::augment_args(Command::new("cargo-styxy"));
    // Every command's arguments, which clap defers until a command runs.
    cmd.build();
    with_completers(cmd, "")
}

fn with_completers(cmd: Command, parent: &str) -> Command {
    let path = format!("{parent} {}", cmd.get_name()).trim().to_owned();
    let here = path
        .strip_prefix("cargo-styxy")
        .unwrap_or(&path)
        .trim()
        .to_owned();
    let cmd = cmd.mut_args(|arg| {
        let completer: Option<fn(&OsStr) -> Vec<CompletionCandidate>> =
            match (here.as_str(), arg.get_id().as_str()) {
                (_, "package" | "exclude") => Some(packages),
                (_, "bin") => Some(bins),
                (_, "zone") => Some(zones),
                ("port" | "wait", "service" | "services") => Some(services),
                ("allocate" | "release" | "audit", "service") => Some(service_types),
                ("type set" | "type rm", "name") | ("list", "pattern") => Some(service_types),
                _ => None,
            };
        match completer {
            Some(f) => arg.add(ArgValueCompleter::new(f)),
            None => arg,
        }
    });
    cmd.mut_subcommands(|sub| with_completers(sub, &path))
}

/// The candidates among `names` that start with what is typed so far.
fn matching(current: &OsStr, names: impl IntoIterator<Item = String>) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy();
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(&*typed))
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The registry of `STYXY_HOME` (or the default), read without the lock; nothing on error:
/// a completion never fails loudly.
fn registry() -> Option<styxy::model::Registry> {
    let dir = styxy::registry::paths::registry_dir(None).ok()?;
    styxy::registry::Store::new(dir).read().ok()
}

/// The candidates from what the registry holds.
fn from_registry(
    current: &OsStr,
    names: impl FnOnce(styxy::model::Registry) -> Vec<String>,
) -> Vec<CompletionCandidate> {
    matching(current, registry().map(names).unwrap_or_default())
}

/// The candidates from the workspace around the current directory.
fn from_workspace(
    current: &OsStr,
    names: impl FnOnce(styxy::workspace::Workspace) -> Vec<String>,
) -> Vec<CompletionCandidate> {
    matching(current, workspace().map(names).unwrap_or_default())
}

fn service_types(current: &OsStr) -> Vec<CompletionCandidate> {
    from_registry(current, |r| {
        r.types.iter().map(|(n, _)| n.clone()).collect()
    })
}

fn zones(current: &OsStr) -> Vec<CompletionCandidate> {
    from_registry(current, |r| {
        r.strategies
            .values()
            .flat_map(|s| s.zones.keys().cloned())
            .collect()
    })
}

/// The workspace around the current directory, from its manifests (no cargo at a TAB).
fn workspace() -> Option<styxy::workspace::Workspace> {
    let manifest = styxy::workspace::find_manifest(&std::env::current_dir().ok()?)?;
    styxy::workspace::manifests::discover(manifest.parent()?)
        .ok()
        .map(|(ws, _)| ws)
}

fn packages(current: &OsStr) -> Vec<CompletionCandidate> {
    from_workspace(current, |ws| {
        ws.packages.into_iter().map(|p| p.name).collect()
    })
}

fn bins(current: &OsStr) -> Vec<CompletionCandidate> {
    from_workspace(current, |ws| {
        ws.packages.into_iter().flat_map(|p| p.bins).collect()
    })
}

/// What `port` and `wait` take: each service's `package/bin` label and env name.
fn services(current: &OsStr) -> Vec<CompletionCandidate> {
    from_workspace(current, |ws| {
        styxy::workspace::services(&ws)
            .map(|all| all.into_iter().flat_map(|s| [s.label(), s.env]).collect())
            .unwrap_or_default()
    })
}
