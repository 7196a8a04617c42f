//! Timing whole processes: medians with min and max, peak RSS, runs in turns.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Ctx, Result};

/// Median, min and max of a sample.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stats {
    pub(super) median: f64,
    pub(super) min: f64,
    pub(super) max: f64,
    pub(super) p99: f64,
    pub(super) n: usize,
}

impl Stats {
    pub(super) fn of(mut v: Vec<f64>) -> Stats {
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Stats {
            median: at(0.5),
            min: v[0],
            max: v[v.len() - 1],
            p99: at(0.99),
            n: v.len(),
        }
    }

    pub(super) fn ms(&self) -> String {
        format!(
            "{:.2} ms (min {:.2}, max {:.2}, n={})",
            self.median, self.min, self.max, self.n
        )
    }
}

/// A finished child: wall time from spawn to exit, peak RSS, output.
pub(super) struct Run {
    pub(super) wall_ms: f64,
    pub(super) max_rss_kb: i64,
    pub(super) stdout: String,
    pub(super) ok: bool,
}

/// Spawns `cmd` and waits for it with `wait4`, which reports the child's peak RSS.
pub(super) fn run(cmd: &mut Command) -> Result<Run> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    finish(child, start)
}

pub(super) fn finish(mut child: std::process::Child, start: Instant) -> Result<Run> {
    use std::io::Read;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child, not yet waited for (std never waits on its own).
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    if rc != pid {
        return Err(format!("wait4 failed for {pid}"));
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok(Run {
        wall_ms,
        max_rss_kb: usage.ru_maxrss,
        stdout,
        ok,
    })
}

/// `n` styxy processes started at once against `home`, the `i`th with `args(i)`; waits
/// for all of them.
pub(super) fn at_once<const N: usize>(
    ctx: &Ctx,
    home: &Path,
    n: usize,
    args: impl Fn(usize) -> [String; N],
) -> Result<Vec<Run>> {
    let start = Instant::now();
    let children: Vec<_> = (0..n)
        .map(|i| {
            let args = args(i);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ctx.styxy(home, &args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_>>()?;
    children.into_iter().map(|c| finish(c, start)).collect()
}

/// `n` runs of `make()`, after one untimed warm-up run.
pub(super) fn repeat(n: usize, mut make: impl FnMut() -> Command) -> Result<(Stats, i64)> {
    let warm = run(&mut make())?;
    if !warm.ok {
        return Err(format!("{:?} failed", make()));
    }
    let mut times = Vec::new();
    let mut rss = warm.max_rss_kb;
    for _ in 0..n {
        let r = run(&mut make())?;
        if !r.ok {
            return Err(format!("{:?} failed", make()));
        }
        times.push(r.wall_ms);
        rss = rss.max(r.max_rss_kb);
    }
    Ok((Stats::of(times), rss))
}

/// [`repeat`] for several commands at once, taken in turns (one run of each per round), so
/// that a figure and its floor see the same moments of a noisy machine. Each round starts
/// with the next command (the first, then the second, …): none always runs first, right
/// after the other.
pub(super) fn side_by_side<const N: usize>(
    n: usize,
    mut makers: [&mut dyn FnMut() -> Command; N],
) -> Result<[(Stats, i64); N]> {
    let mut times: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(n));
    let mut rss = [0i64; N];
    for round in 0..=n {
        for i in (0..N).map(|k| (k + round) % N) {
            let make = &mut makers[i];
            let r = run(&mut make())?;
            if !r.ok {
                return Err(format!("{:?} failed", make()));
            }
            rss[i] = rss[i].max(r.max_rss_kb);
            // Round 0 warms up.
            if round > 0 {
                times[i].push(r.wall_ms);
            }
        }
    }
    let mut out = times.into_iter().zip(rss).map(|(t, r)| (Stats::of(t), r));
    Ok(std::array::from_fn(|_| out.next().expect("one per maker")))
}

/// [`side_by_side`] for two commands that differ by `side` (0 or 1): `command(side, k)`,
/// where `k` counts each side's runs from 1.
pub(super) fn in_turns(
    n: usize,
    command: impl Fn(usize, usize) -> Command,
) -> Result<[(Stats, i64); 2]> {
    let (mut k, mut j) = (0, 0);
    side_by_side(
        n,
        [
            &mut || {
                k += 1;
                command(0, k)
            },
            &mut || {
                j += 1;
                command(1, j)
            },
        ],
    )
}
