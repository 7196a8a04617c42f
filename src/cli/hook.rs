//! `hook install|uninstall`: a git `post-checkout` hook that gives a new worktree (and a
//! fresh clone's checkout) its ports and its env file.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use crate::cli::Ctx;

/// A git hook: a new worktree gets its ports and its env file
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum HookCommand {
    /// Install the `post-checkout` hook of this repository
    ///
    /// The hook goes where git looks for it (`core.hooksPath` respected). After each checkout
    /// of a branch (`git worktree add`, `git clone`, `git switch`) it runs `cargo styxy env
    /// --write` in the checkout, which assigns its ports and writes its env file; with the
    /// ports assigned already, that costs what `env` costs. A hook already there is kept
    /// (as `post-checkout.styxy-previous`) and still runs first; the git command never fails
    /// for cargo-styxy (a warning at most). With `--format json`: {"hook", "previous",
    /// "changed"}.
    Install,
    /// Remove the hook, putting back the one that was there before
    ///
    /// A `post-checkout` hook that is not cargo-styxy's is left as it is, with an error.
    Uninstall,
}

/// The line that marks a hook as cargo-styxy's.
const MARK: &str = "# cargo-styxy post-checkout hook";

/// Where a hook that was there before ours is kept, beside it.
const PREVIOUS: &str = "post-checkout.styxy-previous";

/// With `--format json`: {"hook", "previous", "changed"}.
#[derive(Debug, Serialize)]
struct Done {
    hook: PathBuf,
    /// The hook that was there before: kept beside it (install), or put back (uninstall).
    previous: Option<PathBuf>,
    changed: bool,
    #[serde(skip)]
    message: String,
}

pub fn run(ctx: &Ctx, command: HookCommand) -> anyhow::Result<()> {
    let dir = hooks_dir()?;
    let hook = dir.join("post-checkout");
    let previous = dir.join(PREVIOUS);
    let ours = |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.contains(MARK));
    let done = match command {
        HookCommand::Install => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let mut kept = None;
            if hook.symlink_metadata().is_ok() && !ours(&hook) {
                if previous.symlink_metadata().is_ok() {
                    anyhow::bail!(
                        "{} and {} both exist; move one away, then install again",
                        hook.display(),
                        previous.display()
                    );
                }
                std::fs::rename(&hook, &previous)
                    .with_context(|| format!("cannot keep {}", hook.display()))?;
                kept = Some(previous.clone());
            } else if previous.symlink_metadata().is_ok() {
                kept = Some(previous.clone());
            }
            let script = script()?;
            let changed = std::fs::read_to_string(&hook).ok().as_deref() != Some(&script);
            if changed {
                write_executable(&hook, &script)?;
            }
            let message = match (&kept, changed) {
                (Some(p), _) => format!(
                    "installed {}; the earlier hook, kept as {}, runs first",
                    hook.display(),
                    p.display()
                ),
                (None, true) => format!("installed {}", hook.display()),
                (None, false) => format!("{} is installed already", hook.display()),
            };
            Done {
                hook,
                previous: kept,
                changed,
                message,
            }
        }
        HookCommand::Uninstall => {
            if hook.symlink_metadata().is_ok() && !ours(&hook) {
                anyhow::bail!(
                    "{} is not cargo-styxy's hook; it is left as it is",
                    hook.display()
                );
            }
            let changed = hook.symlink_metadata().is_ok();
            if changed {
                std::fs::remove_file(&hook)
                    .with_context(|| format!("cannot remove {}", hook.display()))?;
            }
            let mut restored = None;
            if previous.symlink_metadata().is_ok() {
                std::fs::rename(&previous, &hook)
                    .with_context(|| format!("cannot put back {}", previous.display()))?;
                restored = Some(hook.clone());
            }
            let message = match (&restored, changed) {
                (Some(_), _) => format!(
                    "removed cargo-styxy's hook; the earlier one is back in {}",
                    hook.display()
                ),
                (None, true) => format!("removed {}", hook.display()),
                (None, false) => format!("no cargo-styxy hook in {}", dir.display()),
            };
            Done {
                hook,
                previous: restored,
                changed,
                message,
            }
        }
    };
    ctx.print(&done, |out| writeln!(out, "{}", done.message))
}

/// The repository's hooks directory, as git resolves it (`core.hooksPath`, worktrees).
fn hooks_dir() -> anyhow::Result<PathBuf> {
    let out = duct::cmd!(
        "git",
        "rev-parse",
        "--path-format=absolute",
        "--git-path",
        "hooks"
    )
    .stderr_capture()
    .stdout_capture()
    .unchecked()
    .run()
    .context("cannot run git; is it installed?")?;
    if !out.status.success() {
        anyhow::bail!(
            "not in a git repository ({}); run `cargo styxy hook install` inside one",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// The hook: the earlier hook first (its exit status is the hook's, as if it ran alone),
/// then, after a branch checkout in a cargo workspace, `cargo styxy env --write`, whose
/// failure is only a warning.
fn script() -> anyhow::Result<String> {
    let me = std::env::current_exe().context("cannot tell where cargo-styxy is")?;
    let me = me.to_string_lossy().replace('\'', r"'\''");
    Ok(format!(
        r#"#!/bin/sh
{MARK}: `cargo styxy hook uninstall` removes it and puts back
# an earlier hook, which is kept as {PREVIOUS} and runs first.
status=0
# The hook's own folder, without a process for it (git names the hook by a path).
case "$0" in */*) here="${{0%/*}}" ;; *) here=. ;; esac
previous="$here/{PREVIOUS}"
if [ -x "$previous" ]; then
    "$previous" "$@" || status=$?
fi
# $3 is 1 for a checkout of a branch (a new worktree, a clone, a switch), 0 for files.
if [ "$3" = 1 ] && [ -f Cargo.toml ]; then
    # An installed cargo-styxy first, else the one that installed the hook.
    styxy='{me}'
    command -v cargo-styxy >/dev/null 2>&1 && styxy=cargo-styxy
    "$styxy" styxy env --write -q ||
        echo "warning: cargo-styxy could not write this checkout's env file (see above)" >&2
fi
exit $status
"#
    ))
}

/// Writes the hook, executable (0755) where the OS has modes.
fn write_executable(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    let file = std::fs::File::open(path)?;
    styxy::os::set_mode(&file, 0o755)
        .with_context(|| format!("cannot make {} executable", path.display()))
}
