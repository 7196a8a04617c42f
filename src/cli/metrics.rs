//! `metrics`: Prometheus text for a node_exporter textfile collector.

use std::path::PathBuf;

use clap::Args;

use crate::cli::Ctx;
use crate::observe::metrics;

/// Print the registry's metrics in the Prometheus text format
///
/// The classic text format (0.0.4), which node_exporter's textfile collector and promtool
/// read; OpenMetrics with `--format openmetrics`. Gauges come from the registry as it is now; counters and histograms from the counters
/// each change updates in the registry's state, so they only grow, whichever process made
/// the changes.
#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Write to FILE atomically (for node_exporter's textfile collector) instead of stdout
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(ctx: &Ctx, args: MetricsArgs) -> anyhow::Result<()> {
    let exposition = match ctx.format {
        crate::cli::Format::Openmetrics => metrics::Exposition::OpenMetrics,
        _ => metrics::Exposition::Classic,
    };
    let text = metrics::of_store(&ctx.store, exposition)?;
    match args.output {
        Some(path) => {
            styxy::fsx::write_output_if_changed(&path, text.as_bytes())?;
        }
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(())
}
