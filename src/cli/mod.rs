//! The command-line tool: clap definitions, one module per command, and the edge where
//! errors become one `error: …` line and an exit code.

mod allocate;
mod assign;
mod audit;
mod check;
mod completions;
mod config;
mod doctor;
mod env;
mod gc;
mod init;
pub(crate) mod list;
mod metrics;
mod port;
mod release;
mod rule;
mod run;
mod scan;
mod types;
#[cfg(feature = "web")]
mod ui;
mod wait;
mod workspace;

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anstream::eprintln;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::registry::{Store, paths};

/// Exit status of a command that failed.
pub const EXIT_FAILURE: u8 = 1;
/// The exit status of a usage error (clap's).
pub const USAGE_FAILURE: u8 = 2;

/// cargo runs us as `cargo-styxy styxy …`: the root is `cargo` with one subcommand.
#[derive(Debug, Parser)]
#[command(name = "cargo", bin_name = "cargo", styles = clap_cargo::style::CLAP_STYLING)]
pub enum CargoCli {
    Styxy(Cli),
}

/// Stable, unique ports for every dev service of every checkout, known before it starts.
///
/// A per-user registry (a TOML file guarded by an OS file lock, no daemon) gives every
/// service type its port ranges and every instance its own port, the same one on every run.
#[derive(Debug, Args)]
#[command(version, about, long_about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global Options")]
pub struct GlobalArgs {
    /// Registry directory [default: $STYXY_HOME, else $XDG_CONFIG_HOME/styxy]
    #[arg(long, global = true, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    /// Path to Cargo.toml (for the workspace commands)
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Output format (`env` also takes dotenv, shell, fish, powershell, compose; `metrics` openmetrics)
    #[arg(long, global = true, value_enum, default_value_t = Format::Human, value_name = "FORMAT")]
    pub format: Format,
    /// Print no warnings or progress messages
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more about what happens
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to color messages (as cargo: `--color`, else `CARGO_TERM_COLOR`)
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = Color::Auto,
        value_name = "WHEN",
        env = "CARGO_TERM_COLOR",
        hide_env_values = true
    )]
    pub color: Color,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
    Dotenv,
    Shell,
    Fish,
    Powershell,
    Compose,
    Openmetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// The commands. Each one's arguments are built only when it runs (clap's `defer`), so that
/// `port` does not pay for building every other command's. The list of commands shows the
/// summary on each variant: the first line of the `…Args` struct's doc, which gives the
/// command's own help once it is built (a unit test keeps the two the same).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Give every service of the workspace its port (idempotent)
    Assign(assign::AssignArgs),
    /// Print or write the workspace's port variables (assigning first if needed)
    Env(env::EnvArgs),
    /// Print the port of one service of the workspace, nothing else
    Port(port::PortArgs),
    /// `cargo run` a bin with the workspace's port variables and `PORT` set to its own port
    Run(run::RunArgs),
    /// Wait until services of the workspace listen on their ports
    Wait(wait::WaitArgs),
    /// Give an instance a port in a service type (creating the type if it is new)
    Allocate(allocate::AllocateArgs),
    /// Free instance ports
    Release(release::ReleaseArgs),
    /// List service types, instances and ports (listening now or not), and the settings
    List(list::ListArgs),
    /// Who holds a port in the registry, and whether something listens on it now
    Check(check::CheckArgs),
    /// List the ports listening now, each with its registry owner, or marked foreign
    Scan(scan::ScanArgs),
    /// Drop instances whose checkout is gone or no longer has their service, leases of dead
    /// processes, and auto-allocated types left with no instances
    Gc(gc::GcArgs),
    /// Check the registry's health; each finding comes with its fix
    Doctor(doctor::DoctorArgs),
    #[command(subcommand)]
    Type(types::TypeCommand),
    #[command(subcommand)]
    Rule(rule::RuleCommand),
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Show the audit trail: every change to the registry, oldest first
    Audit(audit::AuditArgs),
    /// Print the registry's metrics in the Prometheus text format
    Metrics(metrics::MetricsArgs),
    /// Add the build.rs integration to a package: a build dependency and a build.rs
    Init(init::InitArgs),
    /// Print the completion registration of `cargo-styxy` for a shell
    Completions(completions::CompletionsArgs),
    // Not a doc comment: rustdoc would read `[::1]` as a link.
    #[command(about = "Serve the web dashboard on 127.0.0.1 (and [::1]) and print its URL")]
    #[cfg(feature = "web")]
    Ui(ui::UiArgs),
}

/// What a command needs from the global options.
#[derive(Debug)]
pub struct Ctx {
    pub store: Store,
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
}

impl Ctx {
    /// Prints a warning on stderr unless `-q`.
    pub fn warn(&self, message: &str) {
        if !self.quiet {
            let style = clap_cargo::style::WARN;
            eprintln!("{style}warning{style:#}: {message}");
        }
    }

    /// The registry under the lock, with what a hand edit or a dead process left behind set
    /// right: warns what that did, and returns its events, which go first in the commit.
    pub fn lock(
        &self,
    ) -> anyhow::Result<(crate::session::Session<'_>, Vec<crate::allocate::Event>)> {
        let (guard, tidied) = crate::session::lock(&self.store)?;
        for w in &tidied.warnings {
            self.warn(w);
        }
        Ok((guard, tidied.events))
    }

    /// Prints a progress note on stderr with `-v`.
    pub fn note(&self, message: &str) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{message}");
        }
    }

    /// Writes `value` as JSON, or the human form, to stdout. JSON is indented for a terminal
    /// and one line for a pipe or a file (as `cargo metadata` writes it), where nobody reads
    /// the indentation and a listing of 10,000 types would be 40 % larger.
    pub fn print<T: Serialize>(
        &self,
        value: &T,
        human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> anyhow::Result<()> {
        use std::io::IsTerminal;
        // Buffered: stdout is line-buffered, and a listing of 10,000 types is 150,000 lines.
        let stdout = io::stdout().lock();
        let terminal = stdout.is_terminal();
        let mut out = io::BufWriter::with_capacity(64 * 1024, stdout);
        match self.format {
            Format::Json if terminal => {
                serde_json::to_writer_pretty(&mut out, value)?;
                writeln!(out)?;
            }
            Format::Json => {
                serde_json::to_writer(&mut out, value)?;
                writeln!(out)?;
            }
            _ => human(&mut out)?,
        }
        out.flush()?;
        Ok(())
    }
}

/// Runs the tool with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the tool with `args` (`argv[0]` first). Accepts `cargo-styxy styxy <cmd>` (as cargo
/// runs it) and a bare `cargo-styxy <cmd>`.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    completions::complete_if_asked();
    let mut args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == run::CHILD) {
        return run::child(&args[2..]);
    }
    if args.get(1).is_none_or(|a| a != "styxy") {
        args.insert(1.min(args.len()), "styxy".into());
    }
    let CargoCli::Styxy(cli) = match CargoCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let choice = match cli.global.color {
        Color::Auto => anstream::ColorChoice::Auto,
        Color::Always => anstream::ColorChoice::Always,
        Color::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError { error: None, code }) => ExitCode::from(code),
        Err(CliError { error: Some(e), .. }) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(CliError {
            error: Some(e),
            code,
        }) => {
            report(&e);
            ExitCode::from(code)
        }
    }
}

/// How a command that did not succeed ends (cargo-release's `CliError`): the error to report,
/// if any, and the exit status: 1 for a failure, 2 for a usage error, or the status of the
/// bin that `run` ran (reported by the bin itself).
#[derive(Debug)]
pub struct CliError {
    error: Option<anyhow::Error>,
    code: u8,
}

impl CliError {
    /// A usage error: the arguments cannot mean anything (exit status 2, as clap's).
    pub(crate) fn usage(error: anyhow::Error) -> Self {
        Self {
            error: Some(error),
            code: USAGE_FAILURE,
        }
    }

    /// The bin `run` ran exited with `code`, which it has said why.
    fn child(code: u8) -> Self {
        Self { error: None, code }
    }
}

/// A failure: every error of the library and of a command exits 1 (spec), as
/// [`crate::Error::exit_code`] says.
impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(error: E) -> Self {
        Self {
            error: Some(error.into()),
            code: EXIT_FAILURE,
        }
    }
}

fn execute(cli: Cli) -> Result<(), CliError> {
    let format = cli.global.format;
    let name = format
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let refused = match (&cli.command, format) {
        (_, Format::Human) => None,
        (Command::Metrics(_), Format::Openmetrics) => None,
        // Commands whose output is a format of its own (Prometheus text, a shell script).
        (Command::Metrics(_) | Command::Completions(_), Format::Json) => {
            Some("this command has no JSON form; leave out --format json".to_owned())
        }
        (_, Format::Openmetrics) => Some("--format openmetrics is only for `metrics`".to_owned()),
        (_, Format::Json) | (Command::Env(_), _) => None,
        _ => Some(format!(
            "--format {name} is only for `env`; use human or json"
        )),
    };
    if let Some(message) = refused {
        return Err(CliError::usage(anyhow::anyhow!(message)));
    }
    let dir = paths::registry_dir(cli.global.registry.as_deref())?;
    let ctx = Ctx {
        store: Store::new(dir).quiet(cli.global.quiet),
        format: cli.global.format,
        quiet: cli.global.quiet,
        verbose: cli.global.verbose,
    };
    let manifest = cli.global.manifest_path.as_deref();
    match cli.command {
        Command::Assign(args) => assign::run(&ctx, args, manifest),
        Command::Env(args) => env::run(&ctx, args, manifest),
        Command::Port(args) => port::run(&ctx, args, manifest),
        Command::Run(args) => {
            return match run::run(&ctx, args, manifest)? {
                0 => Ok(()),
                code => Err(CliError::child(code)),
            };
        }
        Command::Wait(args) => wait::run(&ctx, args, manifest),
        Command::Check(args) => check::run(&ctx, args),
        Command::Scan(args) => scan::run(&ctx, args),
        Command::Gc(args) => gc::run(&ctx, args),
        Command::Doctor(args) => doctor::run(&ctx, args),
        Command::Init(args) => init::run(&ctx, args, manifest),
        Command::Audit(args) => return audit::run(&ctx, args),
        Command::Metrics(args) => metrics::run(&ctx, args),
        Command::Completions(args) => completions::run(args),
        #[cfg(feature = "web")]
        Command::Ui(args) => ui::run(&ctx, args),
        Command::Allocate(args) => allocate::run(&ctx, args),
        Command::Release(args) => release::run(&ctx, args, manifest),
        Command::List(args) => list::run(&ctx, args),
        Command::Type(cmd) => types::run(&ctx, cmd),
        Command::Rule(cmd) => rule::run(&ctx, cmd),
        Command::Config(cmd) => config::run(&ctx, cmd),
    }
    .map_err(CliError::from)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == io::ErrorKind::BrokenPipe)
    })
}

/// One `error: …` line, with the causes the message does not already say.
fn report(e: &anyhow::Error) {
    // cargo's own colours, as clap_cargo has them.
    let style = clap_cargo::style::ERROR;
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    eprintln!("{style}error{style:#}: {line}");
}

/// clap value parser for a port: 1-65535, with our message.
pub(crate) fn port_arg(s: &str) -> Result<u16, String> {
    crate::registry::validate::parse_port(s).map_err(|e| e.to_string())
}

/// clap value parser for a range `A-B`.
pub(crate) fn range_arg(s: &str) -> Result<crate::registry::PortRange, String> {
    crate::registry::validate::parse_range(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        CargoCli::command().debug_assert();
    }

    /// The list of commands says of each what the command's own help says, although the
    /// list is built before any command's arguments (`defer`).
    #[test]
    fn every_command_is_listed_with_its_own_summary() {
        let root = CargoCli::command();
        let styxy = root.find_subcommand("styxy").expect("styxy");
        let mut checked = 0;
        for sub in styxy.get_subcommands() {
            let listed = sub.get_about().map(ToString::to_string);
            let mut built = sub.clone();
            built.build();
            let own = built.get_about().map(ToString::to_string);
            assert!(
                listed.is_some(),
                "`{}` is listed without a summary",
                sub.get_name()
            );
            assert_eq!(
                listed,
                own,
                "`{}`: the list and its help differ",
                sub.get_name()
            );
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} commands");
    }
}
