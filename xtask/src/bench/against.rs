//! `cargo xtask bench --against REV`: this tree's release binary and the one of another
//! revision, in turns (one run of each per round), on the figures a change to the fast path
//! or to an allocation would move. Two full runs of the bench minutes apart differ by more
//! than such a change costs on a noisy machine; two binaries taken in turns see the same
//! moments of it.

use std::path::PathBuf;
use std::process::Command;

use super::Result;
use super::ctx::{CHECKOUTS, Ctx, Fixture, big_registry, cargo, styxy, with_checkouts};
use super::measure::{Stats, in_turns, run};

/// Builds `rev`'s binary, measures both, and prints the table (also written to
/// `target/bench-against.md`).
pub(super) fn main(ctx: &Ctx, rev: &str) -> Result<()> {
    let theirs = build_rev(ctx, rev)?;
    let bins = [ctx.bin.clone(), theirs];
    let mut rows: Vec<(String, Stats, Stats)> = Vec::new();

    // env and port on the assigned example workspace, each binary with a registry of its
    // own.
    let ws = ctx.tmp.join("shop");
    crate::example(&ctx.root, &ws);
    let manifest = ws.join("Cargo.toml");
    let m = manifest.to_str().ok_or("path")?.to_owned();
    let homes = [ctx.home("env-ours"), ctx.home("env-theirs")];
    for (bin, home) in bins.iter().zip(&homes) {
        if !run(&mut styxy(bin, home, &["assign", "--manifest-path", &m]))?.ok {
            return Err(format!("{} assign failed", bin.display()));
        }
    }
    for args in [
        ["env", "--manifest-path", &m].as_slice(),
        ["port", "shop-api", "--manifest-path", &m].as_slice(),
    ] {
        let [(a, _), (b, _)] =
            in_turns(ctx.n(200), |side, _| styxy(&bins[side], &homes[side], args))?;
        rows.push((format!("`{}`, assigned workspace", args[0]), a, b));
    }

    // One new allocation, each in a registry of its own that grows by one type a run.
    let homes = [ctx.home("one-ours"), ctx.home("one-theirs")];
    let [(a, _), (b, _)] = in_turns(ctx.n(100), |side, k| {
        let service = format!("solo-{k}");
        styxy(
            &bins[side],
            &homes[side],
            &["allocate", "--service", &service, "--instance", "w"],
        )
    })?;
    rows.push(("one new allocation".into(), a, b));

    // One more new type in registries of 100 and 1,000 types, and one more instance of a
    // type of 99 checkouts on disk (issue 26's removed-checkout check runs in this tree; it
    // may not in `rev`): each run from the same registry.
    let roots = ctx.home("checkout-roots");
    let figures = [
        ("size-100", big_registry(100, 1), None),
        ("size-1000", big_registry(1_000, 1), None),
        ("existing", with_checkouts(100, &roots)?, Some("checkouts")),
    ];
    for (name, files, existing) in figures {
        let fixtures = [
            Fixture::new(ctx, &bins[0], &format!("{name}-ours"), files.clone())?,
            Fixture::new(ctx, &bins[1], &format!("{name}-theirs"), files)?,
        ];
        let [(a, _), (b, _)] = in_turns(
            ctx.n(if existing.is_some() { 100 } else { 60 }),
            |side, k| {
                let (service, instance) = match existing {
                    Some(service) => (service.to_owned(), format!("new-{k}")),
                    None => (format!("extra-{k}"), "w".to_owned()),
                };
                fixtures[side].again(
                    &bins[side],
                    b"",
                    &["allocate", "--service", &service, "--instance", &instance],
                )
            },
        )?;
        let figure = match existing {
            Some(_) => {
                format!("one more instance of an existing type of {CHECKOUTS} checkouts, 100 types")
            }
            None => format!("one more allocation, {} types", &name["size-".len()..]),
        };
        rows.push((figure, a, b));
    }

    let mut md =
        format!("| figure | this tree | {rev} | this / {rev} |\n| --- | --- | --- | --- |\n");
    for (figure, a, b) in &rows {
        md.push_str(&format!(
            "| {figure} | {} | {} | {:.3}× |\n",
            a.ms(),
            b.ms(),
            a.median / b.median
        ));
    }
    print!("\n{md}");
    let out = ctx.root.join("target/bench-against.md");
    std::fs::write(&out, &md).map_err(|e| e.to_string())?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The release binary of `rev`, built from `git archive` of it in `target/bench-against/`
/// (its own target dir, kept between runs), as a fresh copy (see [`super::fresh_copy`]).
fn build_rev(ctx: &Ctx, rev: &str) -> Result<PathBuf> {
    let root = &ctx.root;
    let base = root.join("target/bench-against");
    let src = base.join("src");
    let commit = Command::new("git")
        .args(["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
        .current_dir(root)
        .output()
        .map_err(|e| e.to_string())?;
    if !commit.status.success() {
        return Err(format!("{rev} is not a commit of this repository"));
    }
    let commit = String::from_utf8_lossy(&commit.stdout).trim().to_owned();
    // Exported again only for another commit: new files would make cargo build it again.
    let stamp = base.join("src.commit");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(commit.as_str()) {
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&src).map_err(|e| e.to_string())?;
        let archive = Command::new("sh")
            .arg("-c")
            .arg(r#"git -C "$1" archive --format=tar "$2" | tar -x -C "$3""#)
            .args([
                "sh",
                &root.to_string_lossy(),
                &commit,
                &src.to_string_lossy(),
            ])
            .status()
            .map_err(|e| e.to_string())?;
        if !archive.success() {
            return Err(format!("cannot export {rev} (git archive)"));
        }
        std::fs::write(&stamp, &commit).map_err(|e| e.to_string())?;
    }
    let built = Command::new(cargo())
        .args([
            "build",
            "--release",
            "-p",
            "cargo-styxy",
            "--bin",
            "cargo-styxy",
        ])
        .env("CARGO_TARGET_DIR", base.join("target"))
        .current_dir(&src)
        .status()
        .map_err(|e| e.to_string())?;
    if !built.success() {
        return Err(format!("cannot build {rev}"));
    }
    let dir = ctx.tmp.join(format!("rev-{commit}"));
    super::fresh_copy(&base.join("target/release/cargo-styxy"), &dir)
}
