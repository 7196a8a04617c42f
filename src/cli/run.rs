//! `run`: `cargo run` a bin of the workspace on its own port, holding a lease while it runs.

use clap::Args;

use crate::allocate::leases;
use crate::cli::Ctx;
use crate::cli::workspace::{self, Selection};
use crate::error::AllocError;
use crate::registry::Lease;

/// `cargo run` a bin with the workspace's port variables and `PORT` set to its own port
///
/// Holds a lease (pid, start time, port) in the registry while the bin runs, so `list`
/// shows it and a second run of a single-instance service is refused. SIGINT, SIGTERM and
/// SIGHUP are passed on to cargo and the bin; `run` exits with the bin's status.
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub selection: Selection,
    /// If the service is single-instance and already running, print its port and exit 0
    #[arg(long)]
    pub reuse: bool,
    /// Arguments for the bin (after `--`)
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

/// Runs the bin with its ports; returns its exit status, which `cargo styxy run` passes on
/// as its own.
pub fn run(ctx: &Ctx, args: RunArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let manifest = workspace::manifest(manifest)?;
    let ws = workspace::load(ctx, &manifest)?;
    let all = crate::workspace::services(&ws)?;
    let picked: Vec<_> = workspace::select(&ws, &args.selection)?
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
    let ports = workspace::ports(ctx, &ws, &all)?;
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
        start_time: crate::probe::process_start_time(pid).unwrap_or(0),
        instance: service.instance.clone(),
        since: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
    };
    {
        let (mut guard, mut events) = ctx.lock()?;
        match leases::take(
            &mut guard.registry,
            &service.service_type,
            lease,
            &crate::probe::lease_is_live,
        ) {
            Ok(out) => {
                events.extend(out.events);
                guard.commit(&events)?;
            }
            Err(AllocError::SingleInUse { port, pid, .. }) if args.reuse => {
                drop(guard);
                ctx.note(&format!("already running as pid {pid}; reusing its port"));
                ctx.print(&port, |out| writeln!(out, "{port}"))?;
                return Ok(0);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // No lock is held from here on: cargo may build for minutes.
    let status = spawn_and_wait(
        &manifest,
        &service.package,
        &bin,
        &args.args,
        &all,
        &ports,
        port,
    );
    let (mut guard, mut events) = ctx.lock()?;
    events.extend(leases::end(&mut guard.registry, &service.service_type, pid));
    guard.commit(&events)?;
    status
}

/// Runs `cargo run` in its own process group, passing our termination signals on to the
/// whole group (cargo does not pass them to the bin), and returns the exit code.
fn spawn_and_wait(
    manifest: &std::path::Path,
    package: &str,
    bin: &str,
    args: &[String],
    services: &[crate::workspace::Service],
    ports: &[u16],
    port: u16,
) -> anyhow::Result<u8> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cargo_args: Vec<String> = vec![
        "run".into(),
        "--manifest-path".into(),
        manifest.display().to_string(),
        "-p".into(),
        package.into(),
        "--bin".into(),
        bin.into(),
    ];
    if !args.is_empty() {
        cargo_args.push("--".into());
        cargo_args.extend(args.iter().cloned());
    }
    // Catch the signals before the child exists, so none is lost in between.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let mut expr = duct::cmd(cargo, cargo_args)
        .unchecked()
        .env("PORT", port.to_string());
    for (s, p) in services.iter().zip(ports) {
        expr = expr.env(&s.env, p.to_string());
    }
    let expr = expr.before_spawn(|command| {
        std::os::unix::process::CommandExt::process_group(command, 0);
        Ok(())
    });
    let handle = expr.start()?;
    let group = handle
        .pids()
        .first()
        .and_then(|p| i32::try_from(*p).ok())
        .and_then(rustix::process::Pid::from_raw);
    let closer = signals.handle();
    let forwarder = std::thread::spawn(move || {
        for sig in signals.forever() {
            if let (Some(group), Some(sig)) = (group, rustix::process::Signal::from_named_raw(sig))
            {
                let _ = rustix::process::kill_process_group(group, sig);
            }
        }
    });
    let output = handle.wait();
    closer.close();
    let _ = forwarder.join();
    let status = output?.status;
    Ok(match status.code() {
        Some(code) => u8::try_from(code).unwrap_or(1),
        None => {
            let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
            u8::try_from(128 + signal).unwrap_or(255)
        }
    })
}
