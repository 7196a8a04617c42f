//! What a command gets from the global options: the registry, the output format and
//! verbosity, and the ways to print, warn and change the registry.

use std::io::{self, Write};

use anstream::eprintln;
use serde::Serialize;

use styxy::registry::Store;

use super::Format;

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

    /// Runs `f` as one change of the registry, through the library's one change path
    /// ([`styxy::registry::change`]), and prints the warnings it returns.
    pub fn change<T>(
        &self,
        f: impl FnOnce(&mut styxy::registry::Change<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let changed = styxy::registry::change(&self.store, f)?;
        Ok(self.warned(changed))
    }

    /// The value of a change, its warnings printed.
    pub fn warned<T>(&self, changed: styxy::registry::Changed<T>) -> T {
        for w in &changed.warnings {
            self.warn(w);
        }
        changed.value
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
