//! The figures as BENCHMARKS.md says them, with the machine and the method.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use super::{Ctx, Result};

pub(super) struct Report {
    pub(super) rows: Vec<(String, String, String, String)>,
    pub(super) notes: Vec<String>,
}

impl Report {
    pub(super) fn row(
        &mut self,
        figure: &str,
        measured: String,
        target: &str,
        verdict: Option<bool>,
    ) {
        let v = match verdict {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "—",
        };
        println!("{figure}: {measured} [{target}] {v}");
        self.rows
            .push((figure.into(), measured, target.into(), v.into()));
    }
}

pub(super) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "?".into(),
            |kb| format!("{:.0} GiB", kb / 1024.0 / 1024.0),
        );
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {mem} RAM, Linux; {rustc}; release profile")
}

pub(super) fn write_report(ctx: &Ctx, report: &Report, quick: bool) -> Result<()> {
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let mut md = String::from("# Benchmarks\n\n");
    let _ = writeln!(
        md,
        "Measured by `cargo xtask bench{}` on {date}.\n\n**Machine:** {}.\n",
        if quick { " --quick" } else { "" },
        machine()
    );
    md.push_str(
        "**Method:** release binaries; every figure is a whole process (spawn to exit, as a \
         shell or cargo sees it), the median of repeated runs after one warm-up run, with min \
         and max. A figure and its floor are measured in turns (one run of each per round; \
         a floor burst before each burst), so that both see the same moments of the machine. \
         Every binary run is a fresh copy (not the linker's own file, whose pages the page \
         cache holds in small pieces: the same bytes ran 15 % slower from it). \
         Lock wait and hold times come from the audit trail of the runs. Peak RSS is \
         `ru_maxrss` from `wait4`. Temp registries under the system temp dir; the example \
         workspace is `examples/shop`. The pure allocator's own figures are criterion's \
         (`cargo bench -p styxy --bench allocator`). Reproduce with `cargo xtask bench` (about twelve \
         minutes here; `--quick` for fewer runs); `cargo xtask bench --against REV` measures \
         this tree and another revision in turns.\n\n",
    );
    md.push_str("| figure | measured | target | |\n| --- | --- | --- | --- |\n");
    for (f, m, t, v) in &report.rows {
        let _ = writeln!(md, "| {f} | {m} | {t} | {v} |");
    }
    if !report.notes.is_empty() {
        md.push_str("\nNotes:\n\n");
        for n in &report.notes {
            let _ = writeln!(md, "- {n}");
        }
    }
    let path = ctx.root.join("BENCHMARKS.md");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    // Keep hand-written sections after the generated table.
    let tail = existing
        .find("\n## ")
        .map(|i| existing[i..].to_owned())
        .unwrap_or_default();
    md.push_str(&tail);
    std::fs::write(&path, md).map_err(|e| e.to_string())?;
    println!("wrote {}", path.display());
    let _ = Duration::ZERO;
    Ok(())
}
