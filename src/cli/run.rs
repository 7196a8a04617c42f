//! `run`: `cargo run` a bin of the workspace on its own port, holding a lease while it runs,
//! and behaving in a terminal as `cargo run` does.
//!
//! cargo is started in our own process group, so the terminal's Ctrl-C, Ctrl-Z and hangup
//! reach cargo and the bin (which cargo `exec`s into) directly, and the bin may read the
//! terminal. What a process sends to `run` alone is passed on; what the terminal sent is not,
//! since the bin got it too. On Linux the child is started through a small trampoline
//! (`cargo-styxy __styxy-run-child`) that asks the kernel to kill it when `run` dies, so a
//! server never outlives the lease that `run` holds for it, even after SIGKILL.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::cli::Ctx;
use crate::cli::checkout::{self, Selection};
use styxy::allocate::leases;
use styxy::error::AllocError;
use styxy::model::Lease;

/// `cargo run` a bin with the workspace's port variables and `PORT` set to its own port
///
/// Behaves in a terminal as `cargo run` does: the bin reads stdin, Ctrl-C, Ctrl-Z and `fg`
/// act on it, and closing the terminal ends it. Holds a lease (pid, start time, port) in the
/// registry while the bin runs, so `list` shows it; a second run of the service from the same
/// checkout, or of a single-instance service from any, is refused. SIGINT, SIGTERM and SIGHUP
/// sent to `run` are passed on to the bin, and if `run` is killed the bin is killed with it.
/// Exits with the bin's status (128+N when a signal ended it).
///
/// The Cargo Options below, and `-q`, `-v` and `--color`, are passed on to cargo; the
/// arguments after `--` go to the bin.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// If the service already runs (or its port listens), print its port and exit 0
    #[arg(long)]
    pub reuse: bool,
    #[command(flatten)]
    pub cargo: CargoFlags,
    /// Arguments for the bin (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// The flags of `cargo run` that `run` passes on to cargo (with `-q`, `-v` and `--color`).
#[derive(Debug, Args)]
#[command(next_help_heading = "Cargo Options")]
pub struct CargoFlags {
    /// Build the bin with the release profile (cargo's `--release`)
    #[arg(short, long, conflicts_with = "profile")]
    pub release: bool,
    /// Build the bin with the given profile (cargo's `--profile`)
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub features: clap_cargo::Features,
    /// Directory for all generated artifacts (cargo's `--target-dir`)
    #[arg(long, value_name = "DIRECTORY")]
    pub target_dir: Option<PathBuf>,
    /// Build for the target triple (cargo's `--target`)
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Assert that `Cargo.lock` will remain unchanged (cargo's `--locked`)
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network (cargo's `--offline`)
    #[arg(long)]
    pub offline: bool,
    /// Equivalent to specifying both --locked and --offline (cargo's `--frozen`)
    #[arg(long)]
    pub frozen: bool,
}

impl CargoFlags {
    /// The flags as cargo's arguments, with our `-q`/`-v` and `--color` passed on too.
    fn to_args(&self, ctx: &Ctx) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        let mut flag = |on: bool, name: &str| {
            if on {
                out.push(name.into());
            }
        };
        flag(self.release, "--release");
        flag(self.features.all_features, "--all-features");
        flag(self.features.no_default_features, "--no-default-features");
        flag(self.locked, "--locked");
        flag(self.offline, "--offline");
        flag(self.frozen, "--frozen");
        flag(ctx.quiet, "--quiet");
        for _ in 0..ctx.verbose {
            flag(true, "--verbose");
        }
        let mut valued = |name: &str, value: Option<OsString>| {
            if let Some(v) = value {
                out.push(name.into());
                out.push(v);
            }
        };
        valued("--profile", self.profile.clone().map(Into::into));
        valued("--target-dir", self.target_dir.clone().map(Into::into));
        valued("--target", self.target.clone().map(Into::into));
        if !self.features.features.is_empty() {
            valued("--features", Some(self.features.features.join(" ").into()));
        }
        let color = match anstream::ColorChoice::global() {
            anstream::ColorChoice::Always | anstream::ColorChoice::AlwaysAnsi => Some("always"),
            anstream::ColorChoice::Never => Some("never"),
            anstream::ColorChoice::Auto => None,
        };
        valued("--color", color.map(Into::into));
        out
    }
}

/// Runs the bin with its ports; returns its exit status, which `cargo styxy run` passes on
/// as its own.
pub fn run(ctx: &Ctx, args: RunArgs, manifest: Option<&Path>) -> anyhow::Result<u8> {
    let manifest = checkout::manifest(manifest)?;
    let ws = checkout::load(ctx, &manifest)?;
    let all = styxy::workspace::services(&ws)?;
    let picked: Vec<_> = checkout::select(&ws, &args.selection, &manifest)?
        .into_iter()
        .filter(|s| s.bin.is_some())
        .collect();
    let service = match picked.as_slice() {
        [one] => one.clone(),
        [] => anyhow::bail!("no bin to run in the selection; name one with -p and --bin"),
        many => anyhow::bail!(
            "the selection has {} bins ({}); pick one with -p PACKAGE and --bin NAME",
            many.len(),
            many.iter()
                .map(|s| s.label())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let bin = service.bin.clone().unwrap_or_default();
    let ports = checkout::ports(ctx, &ws, &all)?;
    let port = all
        .iter()
        .zip(&ports)
        .find(|(s, _)| **s == service)
        .map(|(_, p)| *p)
        .ok_or_else(|| anyhow::anyhow!("no port for {}", service.label()))?;
    if let Ok(outer) = std::env::var("PORT")
        && outer != port.to_string()
    {
        ctx.warn(&format!(
            "PORT={outer} from the environment is replaced by {port}, the port of {}",
            service.label()
        ));
    }

    // The lease: this process, for as long as it waits for the bin.
    let pid = std::process::id();
    let lease = Lease {
        port,
        pid,
        start_time: styxy::os::process_start_time(pid).unwrap_or(0),
        instance: service.instance.clone(),
        since: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
    };
    let reuse = |holder: String| -> anyhow::Result<u8> {
        ctx.note(&format!("{holder}; reusing its port"));
        ctx.print(&port, |out| writeln!(out, "{port}"))?;
        Ok(0)
    };
    let reused = ctx.change(|change| {
        match leases::take(
            change.registry,
            &service.service_type,
            lease,
            &styxy::probe::lease_is_live,
        ) {
            Ok(out) => {
                // A server started another way (or one that outlived a lease) holds the port:
                // the bin would only fail to bind it.
                if let Some(listener) = styxy::probe::serving(&[port].into(), true).get(&port) {
                    let who = listener.map_or_else(
                        || "a process the OS does not name".to_owned(),
                        |p| format!("pid {p} ({})", styxy::probe::command_line(p)),
                    );
                    if args.reuse {
                        change.write_nothing();
                        return Ok(Some(format!("{who} listens on port {port}")));
                    }
                    anyhow::bail!(
                        "port {port} of {} is already listening, by {who}, not under `cargo styxy run`; stop it, or pass --reuse to use it",
                        service.label()
                    );
                }
                change.apply(out);
                Ok(None)
            }
            Err(AllocError::SingleInUse { pid, .. } | AllocError::RunningHere { pid, .. })
                if args.reuse =>
            {
                change.write_nothing();
                Ok(Some(format!("already running as pid {pid}")))
            }
            Err(e) => Err(e.into()),
        }
    })?;
    if let Some(holder) = reused {
        return reuse(holder);
    }
    // No lock is held from here on: cargo may build for minutes.
    let mut cargo_args: Vec<OsString> = vec![
        "run".into(),
        "--manifest-path".into(),
        manifest.into(),
        "-p".into(),
        service.package.clone().into(),
        "--bin".into(),
        bin.into(),
    ];
    cargo_args.extend(args.cargo.to_args(ctx));
    if !args.args.is_empty() {
        cargo_args.push("--".into());
        cargo_args.extend(args.args.iter().map(Into::into));
    }
    let mut env: Vec<(String, String)> = vec![("PORT".into(), port.to_string())];
    env.extend(
        styxy::emit::vars(&all, &ports)
            .into_iter()
            .map(|(k, v)| match v {
                styxy::emit::Value::Port(p) => (k, p.to_string()),
                styxy::emit::Value::Text(t) => (k, t),
            }),
    );
    // Where the bin would outlive a killed `run`, the lease follows the child (which cargo
    // turns into the bin), so that the registry knows the server as long as it lives.
    let mut holder = pid;
    let status = spawn_and_wait(cargo_args, env, |child| {
        if styxy::os::CHILD_DIES_WITH_PARENT {
            return Ok(());
        }
        let start_time = styxy::os::process_start_time(child).unwrap_or(0);
        ctx.change(|change| {
            leases::hand_over(
                change.registry,
                &service.service_type,
                pid,
                child,
                start_time,
            );
            Ok(())
        })?;
        holder = child;
        Ok(())
    });
    ctx.change(|change| {
        let ended = leases::end(change.registry, &service.service_type, holder);
        change.record(ended);
        Ok(())
    })?;
    status
}

/// The first argument of the trampoline `run` starts cargo through (see [`child`]).
pub const CHILD: &str = "__styxy-run-child";

/// Runs `cargo run` in our process group and returns its exit code, passing on what a
/// process (not the terminal) signals to us, and continuing a stopped bin so that it gets
/// the signal. `started` is told the child's pid once it runs.
fn spawn_and_wait(
    cargo_args: Vec<OsString>,
    env: Vec<(String, String)>,
    mut started: impl FnMut(u32) -> anyhow::Result<()>,
) -> anyhow::Result<u8> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let (program, args) = styxy::os::tied_command(CHILD, cargo, cargo_args);
    // Caught before the child exists, so none is lost in between, and so that a Ctrl-C
    // ends the bin, not us before we have ended its lease.
    let signals = styxy::os::Forwarder::new()?;
    let mut expr = duct::cmd(program, args).unchecked();
    for (k, v) in env {
        expr = expr.env(k, v);
    }
    let handle = expr.start()?;
    let child = handle.pids().first().copied();
    let forwarding = child.map(|pid| signals.forward_to(pid));
    let told = child.map_or(Ok(()), &mut started);
    let output = handle.wait();
    told?;
    if let Some(f) = forwarding {
        f.stop();
    }
    Ok(styxy::os::exit_code(output?.status))
}

/// The trampoline (`cargo-styxy __styxy-run-child PARENT PROGRAM ARGS…`, Linux only): ties
/// this process to `run` (pid PARENT), so that whatever ends `run`, the bin does not outlive
/// its lease, then becomes PROGRAM (cargo).
pub fn child(args: &[OsString]) -> std::process::ExitCode {
    let (Some(parent), Some(program)) = (
        args.first().and_then(|p| p.to_str()?.parse::<u32>().ok()),
        args.get(1),
    ) else {
        eprintln!("error: {CHILD} is for `cargo styxy run` only");
        return std::process::ExitCode::from(styxy::error::exit::USAGE);
    };
    let warn = |e| {
        if let styxy::os::TieError::Untied(e) = e {
            eprintln!("warning: the bin may outlive `cargo styxy run`: {e}");
        }
    };
    match styxy::os::exec_tied_to(parent, program, &args[2..], warn) {
        styxy::os::TieError::Exec(e) => {
            eprintln!("error: cannot run {}: {e}", Path::new(program).display());
            // As a shell says a command it cannot run.
            std::process::ExitCode::from(127)
        }
        _ => std::process::ExitCode::from(styxy::error::exit::FAILURE),
    }
}
