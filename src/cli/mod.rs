//! The command-line tool: the clap definition (`args`), the command context (`context`),
//! one module per command, and the edge where errors become one `error: …` line and an exit
//! code.

mod allocate;
mod args;
mod assign;
mod audit;
mod build_script;
mod check;
mod checkout;
mod completions;
mod config;
mod context;
mod doctor;
mod env;
mod gc;
mod hook;
mod init;
pub(crate) mod list;
#[cfg(feature = "mcp")]
mod mcp;
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

use std::ffi::OsString;
use std::io;
use std::process::ExitCode;

use anstream::eprintln;
use clap::{Parser, ValueEnum};

use styxy::registry::{Store, paths};

use styxy::error::exit;

pub use args::{
    CargoCli, Cli, Color, Command, Format, GlobalArgs, Group, With, port_arg, range_arg,
};
pub use context::Ctx;

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
    let parsed = CargoCli::try_parse_from(args).and_then(|CargoCli::Styxy(cli)| {
        cli.global.check()?;
        Ok((cli.global, cli.command))
    });
    let (global, command) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let choice = match global.color {
        Color::Auto => anstream::ColorChoice::Auto,
        Color::Always => anstream::ColorChoice::Always,
        Color::Never => anstream::ColorChoice::Never,
    };
    choice.write_global();
    match execute(&global, command) {
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
/// if any, and the exit status: its area's code ([`styxy::error::exit`]), or the status of
/// the bin that `run` ran (reported by the bin itself).
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
            code: exit::USAGE,
        }
    }

    /// The bin `run` ran exited with `code`, which it has said why.
    fn child(code: u8) -> Self {
        Self { error: None, code }
    }
}

/// A failure: an error of the library exits with its area's code
/// ([`styxy::Error::exit_code`]), any other error of a command with 1.
impl<E: Into<anyhow::Error>> From<E> for CliError {
    fn from(error: E) -> Self {
        let error = error.into();
        Self {
            code: exit_code_of(&error),
            error: Some(error),
        }
    }
}

/// The exit code of the library's error in `error`'s chain, else 1. A command's own
/// context may wrap the library's error, so the chain is searched, outermost first.
fn exit_code_of(error: &anyhow::Error) -> u8 {
    use styxy::error::{StoreError, WorkspaceError};
    error
        .chain()
        .find_map(|c| {
            c.downcast_ref::<styxy::Error>()
                .map(styxy::Error::exit_code)
                .or_else(|| c.downcast_ref::<StoreError>().map(StoreError::exit_code))
                .or_else(|| {
                    c.downcast_ref::<WorkspaceError>()
                        .map(WorkspaceError::exit_code)
                })
        })
        .unwrap_or(exit::FAILURE)
}

fn execute(global: &GlobalArgs, command: Command) -> Result<(), CliError> {
    let format = global.format;
    let name = format
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default();
    let refused = match (&command, format) {
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
    let dir = paths::registry_dir(global.registry.as_deref())?;
    let ctx = Ctx {
        store: if global.quiet {
            Store::new(dir)
        } else {
            Store::new(dir).on_lock_wait(|lock| {
                eprintln!("waiting for the styxy registry lock {}", lock.display());
            })
        },
        format: global.format,
        quiet: global.quiet,
        verbose: global.verbose,
    };
    let manifest = global.manifest_path.as_deref();
    match command {
        Command::Assign(With { args, .. }) => assign::run(&ctx, args, manifest),
        Command::Env(With { args, .. }) => env::run(&ctx, args, manifest),
        Command::Port(With { args, .. }) => port::run(&ctx, args, manifest),
        Command::Run(With { args, .. }) => {
            return match run::run(&ctx, args, manifest)? {
                0 => Ok(()),
                code => Err(CliError::child(code)),
            };
        }
        Command::Wait(With { args, .. }) => wait::run(&ctx, args, manifest),
        Command::Check(With { args, .. }) => check::run(&ctx, args),
        Command::Scan(With { args, .. }) => scan::run(&ctx, args),
        Command::Gc(With { args, .. }) => gc::run(&ctx, args),
        Command::Doctor(With { args, .. }) => doctor::run(&ctx, args),
        Command::Init(With { args, .. }) => init::run(&ctx, args, manifest),
        Command::Audit(With { args, .. }) => return audit::run(&ctx, args),
        Command::Metrics(With { args, .. }) => metrics::run(&ctx, args),
        Command::BuildScript(With { args, .. }) => build_script::run(args),
        Command::Completions(With { args, .. }) => completions::run(args),
        #[cfg(feature = "web")]
        Command::Ui(With { args, .. }) => ui::run(&ctx, args),
        #[cfg(feature = "mcp")]
        Command::Mcp(With { args, .. }) => mcp::run(&ctx, args),
        Command::Allocate(With { args, .. }) => allocate::run(&ctx, args),
        Command::Release(With { args, .. }) => release::run(&ctx, args, manifest),
        Command::List(With { args, .. }) => list::run(&ctx, args),
        Command::Type(Group { command, .. }) => types::run(&ctx, command),
        Command::Rule(Group { command, .. }) => rule::run(&ctx, command),
        Command::Config(Group { command, .. }) => config::run(&ctx, command),
        Command::Hook(Group { command, .. }) => hook::run(&ctx, command),
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
