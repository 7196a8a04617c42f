//! `config show|path|validate|set|restore`: the registry's settings and health.

use std::path::PathBuf;

use clap::Subcommand;
use serde::Serialize;

use crate::cli::Ctx;
use crate::observe::view::settings_view;
use styxy::allocate::manage;

/// Registry settings, location, validation and backups
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ConfigCommand {
    /// Show the settings in force. With `--format json`: {"file", "settings": {…}}
    Show,
    /// Print the registry file's path
    Path,
    /// Check that the registry parses and is consistent
    Validate,
    /// Set one setting, validated before it is written
    #[command(after_help = setting_help())]
    Set {
        /// The setting (see the list below)
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(manage::SETTING_KEYS.map(|(k, _)| k)))]
        key: String,
        /// Its new value (see the list below for what each takes)
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Edit the registry in $VISUAL or $EDITOR; written only if it parses and validates
    Edit,
    /// Restore the registry from a backup (the newest good one unless BACKUP is given)
    Restore {
        /// A backup file (see `--list`)
        backup: Option<PathBuf>,
        /// List the backups, newest first, instead
        #[arg(long)]
        list: bool,
    },
}

fn setting_help() -> String {
    let mut s = String::from("Settings:\n");
    for (k, what) in manage::SETTING_KEYS {
        s.push_str(&format!("  {k:<14} {what}\n"));
    }
    s
}

#[derive(Debug, Serialize)]
struct Show {
    file: PathBuf,
    settings: crate::observe::view::SettingsView,
}

#[derive(Debug, Serialize)]
struct Validated {
    file: PathBuf,
    valid: bool,
    service_type_count: usize,
    instance_count: usize,
    /// Instances a hand edit left on ports their type cannot give them.
    to_move: Vec<String>,
    /// Ranges a hand edit left overlapping.
    overlaps: Vec<String>,
}

pub fn run(ctx: &Ctx, cmd: ConfigCommand) -> anyhow::Result<()> {
    let file = ctx.store.file();
    match cmd {
        ConfigCommand::Show => {
            let reg = ctx.store.read()?;
            let view = Show {
                file: file.clone(),
                settings: settings_view(&reg),
            };
            ctx.print(&view, |out| {
                let s = &view.settings;
                writeln!(out, "# {}", file.display())?;
                writeln!(out, "min_port = {}", s.min_port)?;
                let how = if reg.settings.max_port.is_some() {
                    ""
                } else {
                    "  # auto: below the ephemeral range"
                };
                writeln!(out, "max_port = {}{how}", s.max_port)?;
                writeln!(out, "chunk_size = {}", s.chunk_size)?;
                writeln!(out, "gap_size = {}", s.gap_size)?;
                writeln!(out, "placement = {:?}", s.placement)?;
                writeln!(out, "max_instances = {}", s.max_instances)?;
                writeln!(out, "auto_allocate = {}", s.auto_allocate)?;
                writeln!(out, "audit_max_bytes = {}", s.audit_max_bytes)?;
                writeln!(out, "audit_files = {}", s.audit_files)
            })
        }
        ConfigCommand::Path => ctx.print(&file, |out| writeln!(out, "{}", file.display())),
        ConfigCommand::Validate => {
            let reg = ctx.store.read()?;
            // A hand edit may leave instances their type cannot give: reported, and moved
            // by the next write.
            let found = styxy::model::validate::overlaps(&reg);
            let misplaced: Vec<String> = styxy::model::validate::misplaced(&reg, &found)
                .into_iter()
                .map(|(t, id, port)| format!("instance {id:?} of {t:?} holds port {port}, which its ranges {} cannot give it (another instance's, or outside them)", reg.types[t].ranges_text()))
                .collect();
            let overlaps: Vec<String> = found
                .iter()
                .map(styxy::model::validate::Overlap::describe)
                .collect();
            let view = Validated {
                file: file.clone(),
                valid: true,
                service_type_count: reg.types.len(),
                instance_count: reg.types.values().map(|t| t.instances.len()).sum(),
                to_move: misplaced.clone(),
                overlaps: overlaps.clone(),
            };
            for m in &misplaced {
                ctx.warn(&format!("{m}; the next write moves it"));
            }
            for o in &overlaps {
                ctx.warn(&format!("{o}; change one with `cargo styxy type set`"));
            }
            ctx.print(&view, |out| {
                writeln!(
                    out,
                    "{} is valid: {} service types, {} instances",
                    file.display(),
                    view.service_type_count,
                    view.instance_count
                )
            })
        }
        ConfigCommand::Set { key, value } => {
            let view = ctx.change(|change| {
                let out = manage::set_setting(change.registry, &key, &value)?;
                change.apply(out);
                Ok(settings_view(change.registry))
            })?;
            ctx.print(&view, |out| writeln!(out, "{key} = {value}"))
        }
        ConfigCommand::Edit => edit(ctx),
        ConfigCommand::Restore { list: true, .. } => {
            let backups = ctx.store.backups();
            ctx.print(&backups, |out| {
                for b in &backups {
                    writeln!(out, "{}", b.display())?;
                }
                Ok(())
            })
        }
        ConfigCommand::Restore { backup, .. } => {
            let restored = ctx.warned(styxy::registry::restore(&ctx.store, backup.as_deref())?);
            ctx.print(&restored, |out| {
                writeln!(
                    out,
                    "restored {} from {}",
                    file.display(),
                    restored.display()
                )
            })
        }
    }
}

/// Opens a copy of the registry in the user's editor, then writes it back under the lock if
/// it parses, validates, and nobody changed the registry meanwhile. A refused edit is kept.
fn edit(ctx: &Ctx) -> anyhow::Result<()> {
    use anyhow::Context;
    let before = ctx.store.current_text()?;
    styxy::fsx::create_private_dir(ctx.store.dir())?;
    let copy = tempfile::Builder::new()
        .prefix("registry.edit.")
        .suffix(".toml")
        .tempfile_in(ctx.store.dir())?;
    std::fs::write(copy.path(), &before)?;
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
    let status = std::process::Command::new(program)
        .args(words)
        .arg(copy.path())
        .status()
        .with_context(|| format!("cannot start the editor {editor:?}; set VISUAL or EDITOR"))?;
    if !status.success() {
        anyhow::bail!("the editor {editor:?} failed ({status}); nothing was changed");
    }
    let after = std::fs::read_to_string(copy.path())?;
    match styxy::registry::edit(&ctx.store, &before, &after) {
        Ok(changed) => {
            let changed = ctx.warned(changed);
            ctx.print(&serde_json::json!({ "changed": changed }), |out| {
                let what = if changed { "saved" } else { "no change to" };
                writeln!(out, "{what} {}", ctx.store.file().display())
            })
        }
        Err(e) => {
            let (_, kept) = copy.keep()?;
            anyhow::bail!(
                "{e}; your edit is kept in {}: copy it over once fixed, or run `cargo styxy config edit` again",
                kept.display()
            )
        }
    }
}
