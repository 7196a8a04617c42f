//! `wait SERVICE…`: block until services of the checkout listen on their ports, for scripts
//! and agents that start a server and must not talk to it before it is up.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use crate::cli::Ctx;
use crate::cli::checkout;

/// Wait until services of the workspace listen on their ports
///
/// Exits 0 as soon as `localhost:PORT` takes connections for every SERVICE of this
/// checkout, whoever started it (`cargo styxy run`, a Procfile, by hand); else 1 after the
/// timeout, naming what never came up. Nothing connects to the service: the OS's listing of
/// listening sockets is read every 20 ms.
///
/// With `--format json`: {"services": [{"service", "service_type", "port", "listening",
/// "waited_ms"}]}, also on a timeout (`waited_ms` is null for a service that never listened).
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The services: service types, bins, `package/bin`s or env names (`API_PORT`)
    #[arg(required = true, value_name = "SERVICE")]
    pub services: Vec<String>,
    /// How long to wait: seconds (`30`, `0.5`) or a duration (`30s`, `2m`, `1m30s`), at
    /// most a day
    #[arg(long, default_value = "30s", value_parser = duration_arg, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
struct Waited {
    services: Vec<Service>,
}

#[derive(Debug, Serialize)]
struct Service {
    service: String,
    service_type: String,
    port: u16,
    listening: bool,
    /// Milliseconds from the start of `wait` until the port listened.
    waited_ms: Option<u64>,
}

/// How often the listening sockets are listed: well under a human's notice, and a listing
/// costs the kernel a walk of the listening sockets only (tens of microseconds).
const POLL: Duration = Duration::from_millis(20);

pub fn run(ctx: &Ctx, args: WaitArgs, manifest: Option<&std::path::Path>) -> anyhow::Result<()> {
    let start = Instant::now();
    let manifest = checkout::manifest(manifest)?;
    let ws = checkout::load(ctx, &manifest)?;
    let services = args
        .services
        .iter()
        .map(|name| checkout::named(&ws, name))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ports = checkout::ports(ctx, &ws, &services)?;
    let mut waited: Vec<Option<Duration>> = vec![None; ports.len()];
    let deadline = start + args.timeout;
    loop {
        let pending: BTreeSet<u16> = ports
            .iter()
            .zip(&waited)
            .filter(|(_, w)| w.is_none())
            .map(|(p, _)| *p)
            .collect();
        let up = styxy::probe::serving(&pending, false);
        for (port, w) in ports.iter().zip(&mut waited) {
            if w.is_none() && up.contains_key(port) {
                *w = Some(start.elapsed());
            }
        }
        let now = Instant::now();
        if waited.iter().all(Option::is_some) || now >= deadline {
            break;
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
    let view = Waited {
        services: args
            .services
            .iter()
            .zip(&services)
            .zip(ports.iter().zip(&waited))
            .map(|((name, s), (port, w))| Service {
                service: name.clone(),
                service_type: s.service_type.clone(),
                port: *port,
                listening: w.is_some(),
                waited_ms: w.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            })
            .collect(),
    };
    ctx.print(&view, |out| {
        for s in view.services.iter().filter(|s| s.listening) {
            let after = Duration::from_millis(s.waited_ms.unwrap_or(0));
            writeln!(
                out,
                "{} listens on port {} (after {:.1} s)",
                s.service,
                s.port,
                after.as_secs_f64()
            )?;
        }
        Ok(())
    })?;
    let never: Vec<String> = view
        .services
        .iter()
        .filter(|s| !s.listening)
        .map(|s| format!("{} (port {})", s.service, s.port))
        .collect();
    if !never.is_empty() {
        anyhow::bail!(
            "{} never listened on localhost within {}; is it started? (`cargo styxy list` shows what runs)",
            never.join(", "),
            humantime::format_duration(args.timeout)
        );
    }
    Ok(())
}

/// The longest `--timeout`: a deadline past it is no wait a user means, and one far
/// enough out does not fit in the clock.
const LONGEST_WAIT: Duration = Duration::from_secs(86_400);

/// clap value parser for a timeout: seconds, or a duration humantime reads, up to
/// [`LONGEST_WAIT`].
fn duration_arg(s: &str) -> Result<Duration, String> {
    let wrong = || format!("{s:?} is not a duration; use seconds (`30`) or `30s`, `2m`, `1m30s`");
    let d = match s.parse::<f64>() {
        // Seconds past the limit (1e400 reads as infinite) are too long, not malformed;
        // `inf` and `NaN` are words, not numbers.
        Ok(secs) if secs > LONGEST_WAIT.as_secs_f64() && s.bytes().any(|b| b.is_ascii_digit()) => {
            Duration::MAX
        }
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|_| wrong())?,
        Err(_) => match humantime::parse_duration(s) {
            Ok(d) => d,
            Err(humantime::DurationError::NumberOverflow) => Duration::MAX,
            Err(_) => return Err(wrong()),
        },
    };
    if d > LONGEST_WAIT {
        return Err(format!(
            "{s:?} is longer than the longest wait, {}",
            humantime::format_duration(LONGEST_WAIT)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_read_as_seconds_or_durations() {
        let ok = |s: &str| duration_arg(s).unwrap();
        assert_eq!(ok("30"), Duration::from_secs(30));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("2m"), Duration::from_secs(120));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        for bad in ["", "-1", "soon", "NaN", "inf"] {
            assert!(
                duration_arg(bad).unwrap_err().contains("not a duration"),
                "{bad}"
            );
        }
        // Too long, however written: a usage error naming the limit, never a panic.
        for long in [
            "1e19",
            "1e400",
            "86401",
            "25h",
            "9999999999999999999s",
            "99999999999999999999999999h",
        ] {
            let err = duration_arg(long).unwrap_err();
            assert!(
                err.contains("longer than the longest wait, 1day"),
                "{long}: {err}"
            );
        }
    }
}
