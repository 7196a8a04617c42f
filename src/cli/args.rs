//! The clap definition: cargo's `cargo styxy …` argv, the global options (before or after
//! a command's name), the commands and their shared argument parsers.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[cfg(feature = "mcp")]
use super::mcp;
#[cfg(feature = "web")]
use super::ui;
use super::{
    allocate, assign, audit, build_script, check, completions, config, doctor, env, gc, hook, init,
    list, metrics, port, release, rule, run, scan, types, wait,
};

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

/// The options every command takes, before its name or after it (`--format json port` and
/// `port --format json`), as cargo's do.
///
/// Declared on the root, not global, and on each command ([`With`], [`Group`]) as clap's
/// global arguments ([`GlobalsAfterName`]). A global argument on the root would be cloned
/// into all 20 commands at every start (120 clones and 100 KB of heap for a `port` that uses
/// none of the other 19); on a command it is handed down only to that command's own
/// subcommands, when it runs. clap hands the values given after the name back up to the
/// root, by id, a value given on the command line winning over `CARGO_TERM_COLOR` and the
/// defaults: so the values read here, on the root, are the ones in force.
#[derive(Debug, Clone)]
pub struct GlobalArgs {
    pub registry: Option<PathBuf>,
    pub manifest_path: Option<PathBuf>,
    pub format: Format,
    pub quiet: bool,
    pub verbose: u8,
    pub color: Color,
}

impl GlobalArgs {
    /// Adds the options to `cmd` under their own heading, which stays the heading of what is
    /// added after them (so they go last, as the derive's `next_help_heading` would); with
    /// `global`, clap hands them down to `cmd`'s subcommands and their values back up.
    fn augment(cmd: clap::Command, global: bool) -> clap::Command {
        use clap::builder::EnumValueParser;
        use clap::{Arg, ArgAction};
        let arg = |id: &'static str, long: &'static str| Arg::new(id).long(long).global(global);
        cmd.next_help_heading("Global Options")
            .arg(
                arg("registry", "registry")
                    .value_name("DIR")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Registry directory [default: $STYXY_HOME, else $XDG_CONFIG_HOME/styxy; %APPDATA%\\styxy on Windows]"),
            )
            .arg(
                arg("manifest_path", "manifest-path")
                    .value_name("PATH")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("Path to Cargo.toml (for the workspace commands)"),
            )
            .arg(
                arg("format", "format")
                    .value_name("FORMAT")
                    .value_parser(EnumValueParser::<Format>::new())
                    .default_value("human")
                    .help(
                        "Output format (`env` also takes dotenv, shell, fish, powershell, \
                         compose; `metrics` openmetrics)",
                    ),
            )
            .arg(
                arg("quiet", "quiet")
                    .short('q')
                    .action(ArgAction::SetTrue)
                    .conflicts_with("verbose")
                    .help("Print no warnings or progress messages"),
            )
            .arg(
                arg("verbose", "verbose")
                    .short('v')
                    .action(ArgAction::Count)
                    .help("Say more about what happens"),
            )
            .arg(
                arg("color", "color")
                    .value_name("WHEN")
                    .value_parser(EnumValueParser::<Color>::new())
                    .default_value("auto")
                    .env("CARGO_TERM_COLOR")
                    .hide_env_values(true)
                    .help("When to color messages (as cargo: `--color`, else `CARGO_TERM_COLOR`)"),
            )
    }

    /// Refuses `-q` with `-v` given on either side of the command's name (clap checks the
    /// two only when both are on one side).
    pub(super) fn check(&self) -> Result<(), clap::Error> {
        if self.quiet && self.verbose > 0 {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::ArgumentConflict,
                "the argument '--quiet' cannot be used with '--verbose'\n",
            ));
        }
        Ok(())
    }
}

impl clap::FromArgMatches for GlobalArgs {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(GlobalArgs {
            registry: m.get_one::<PathBuf>("registry").cloned(),
            manifest_path: m.get_one::<PathBuf>("manifest_path").cloned(),
            format: m.get_one::<Format>("format").copied().unwrap_or_default(),
            quiet: m.get_flag("quiet"),
            verbose: m.get_count("verbose"),
            color: m.get_one::<Color>("color").copied().unwrap_or_default(),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Args for GlobalArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::augment(cmd, false)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment(cmd, false)
    }
}

/// The global options as a command declares them, so that they can follow its name: global
/// there, so that clap hands them down to the command's subcommands and their values up to
/// the root, where [`GlobalArgs`] reads them. Nothing is read here.
#[derive(Debug, Clone, Copy)]
pub struct GlobalsAfterName;

impl clap::FromArgMatches for GlobalsAfterName {
    fn from_arg_matches(_: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(GlobalsAfterName)
    }

    fn update_from_arg_matches(&mut self, _: &clap::ArgMatches) -> Result<(), clap::Error> {
        Ok(())
    }
}

impl Args for GlobalsAfterName {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        GlobalArgs::augment(cmd, true)
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        GlobalArgs::augment(cmd, true)
    }
}

// A command's own arguments, and the global options, so that they can follow its name. Not a
// doc comment: the derive would make it the command's about, over the one of `T`.
#[derive(Debug, Args)]
pub struct With<T: Args> {
    #[command(flatten)]
    pub args: T,
    #[command(flatten)]
    global: GlobalsAfterName,
}

// A group of commands (`type`, `rule`, `config`): the one that runs, and the global options,
// which clap hands down to the group's commands. Not a doc comment, as for `With`.
#[derive(Debug, Args)]
pub struct Group<S: Subcommand> {
    #[command(subcommand)]
    pub command: S,
    #[command(flatten)]
    global: GlobalsAfterName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Human,
    Json,
    Dotenv,
    Shell,
    Fish,
    Powershell,
    Compose,
    Openmetrics,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Color {
    #[default]
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
    Assign(With<assign::AssignArgs>),
    /// Print or write the workspace's port variables (assigning first if needed)
    Env(With<env::EnvArgs>),
    /// Print the port of one service of the workspace, nothing else
    Port(With<port::PortArgs>),
    /// `cargo run` a bin with the workspace's port variables and `PORT` set to its own port
    Run(With<run::RunArgs>),
    /// Wait until services of the workspace listen on their ports
    Wait(With<wait::WaitArgs>),
    /// Give an instance a port in a service type (creating the type if it is new)
    Allocate(With<allocate::AllocateArgs>),
    /// Free instance ports
    Release(With<release::ReleaseArgs>),
    /// List service types, instances and ports (listening now or not), and the settings
    List(With<list::ListArgs>),
    /// Who holds a port in the registry, and whether something listens on it now
    Check(With<check::CheckArgs>),
    /// List the ports listening now, each with its registry owner, or marked foreign
    Scan(With<scan::ScanArgs>),
    /// Drop instances whose checkout is gone or no longer has their service, leases of dead
    /// processes, and auto-allocated types left with no instances
    Gc(With<gc::GcArgs>),
    /// Check the registry's health; each finding comes with its fix
    Doctor(With<doctor::DoctorArgs>),
    /// Manage service types by hand
    Type(Group<types::TypeCommand>),
    /// Auto-allocation rules: what a new type whose name matches a glob gets
    Rule(Group<rule::RuleCommand>),
    /// Registry settings, location, validation and backups
    Config(Group<config::ConfigCommand>),
    /// Show the audit trail: every change to the registry, oldest first
    Audit(With<audit::AuditArgs>),
    /// Print the registry's metrics in the Prometheus text format
    Metrics(With<metrics::MetricsArgs>),
    /// Add the build.rs integration to a package: a build dependency and a build.rs
    Init(With<init::InitArgs>),
    /// A git hook: a new worktree gets its ports and its env file
    Hook(Group<hook::HookCommand>),
    /// Print the completion registration of `cargo-styxy` for a shell
    Completions(With<completions::CompletionsArgs>),
    /// For the styxy-build helper of a build script: this checkout's constants in OUT_DIR
    /// and cargo's directives on stdout
    #[command(hide = true)]
    BuildScript(With<build_script::BuildScriptArgs>),
    // Not a doc comment: rustdoc would read `[::1]` as a link.
    #[command(about = "Serve the web dashboard on 127.0.0.1 (and [::1]) and print its URL")]
    #[cfg(feature = "web")]
    Ui(With<ui::UiArgs>),
    /// Serve the Model Context Protocol on stdio, for coding agents
    #[cfg(feature = "mcp")]
    Mcp(With<mcp::McpArgs>),
}

/// clap value parser for a port: 1-65535, with our message.
pub fn port_arg(s: &str) -> Result<u16, String> {
    styxy::model::validate::parse_port(s).map_err(|e| e.to_string())
}

/// clap value parser for a range `A-B`.
pub fn range_arg(s: &str) -> Result<styxy::model::PortRange, String> {
    styxy::model::validate::parse_range(s).map_err(|e| e.to_string())
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
