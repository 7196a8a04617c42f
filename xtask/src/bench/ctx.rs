//! What every figure needs: the binaries, the temp dirs, and the registries it builds.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::Result;

pub(super) struct Ctx {
    pub(super) root: PathBuf,
    pub(super) bin: PathBuf,
    pub(super) pick_port: PathBuf,
    /// The floors: an empty binary, and `floor lock-write DIR`.
    pub(super) floor: PathBuf,
    pub(super) quick: bool,
    pub(super) tmp: PathBuf,
}

impl Ctx {
    pub(super) fn n(&self, full: usize) -> usize {
        if self.quick { (full / 5).max(5) } else { full }
    }

    pub(super) fn home(&self, name: &str) -> PathBuf {
        let dir = self.tmp.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    pub(super) fn styxy(&self, home: &Path, args: &[&str]) -> Command {
        styxy(&self.bin, home, args)
    }
}

/// `bin styxy ARGS` against the registry in `home`.
pub(super) fn styxy(bin: &Path, home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(bin);
    c.arg("styxy").args(args).env("STYXY_HOME", home);
    c
}

/// A registry in `home` that `bin` wrote once (from `files`, the registry.toml and state
/// texts a figure starts from), saved so that every run starts from it again.
pub(super) struct Fixture {
    pub(super) home: PathBuf,
    saved: Saved,
}

impl Fixture {
    pub(super) fn new(ctx: &Ctx, bin: &Path, name: &str, files: (String, String)) -> Result<Self> {
        let home = ctx.home(name);
        std::fs::write(home.join("registry.toml"), files.0).map_err(|e| e.to_string())?;
        std::fs::write(home.join("state.json"), files.1).map_err(|e| e.to_string())?;
        let warm = super::run(&mut styxy(
            bin,
            &home,
            &["allocate", "--service", "warm-up", "--instance", "w"],
        ))?;
        if !warm.ok {
            return Err(format!(
                "the warm-up allocation in {} failed",
                home.display()
            ));
        }
        let saved = Saved::of(&home)?;
        Ok(Fixture { home, saved })
    }

    /// `bin styxy ARGS` on the saved registry, with `extra` appended to `registry.toml`.
    pub(super) fn again(&self, bin: &Path, extra: &[u8], args: &[&str]) -> Command {
        self.saved.put_back(extra);
        styxy(bin, &self.home, args)
    }
}

/// A registry as styxy last wrote it (`registry.toml` and the state), put back before each
/// run so that every run starts from the same one.
pub(super) struct Saved {
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Saved {
    pub(super) fn of(home: &Path) -> Result<Saved> {
        let files = ["registry.toml", "state.json"]
            .into_iter()
            .map(|f| {
                let path = home.join(f);
                std::fs::read(&path)
                    .map(|bytes| (path, bytes))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_>>()?;
        Ok(Saved { files })
    }

    /// The saved files, with `registry.toml` ending in `extra` (a hand edit, when not
    /// empty).
    pub(super) fn put_back(&self, extra: &[u8]) {
        for (path, bytes) in &self.files {
            let mut bytes = bytes.clone();
            if path.ends_with("registry.toml") {
                bytes.extend_from_slice(extra);
            }
            std::fs::write(path, bytes).expect("write the saved registry back");
        }
    }
}

pub(super) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

pub(super) fn build_release(root: &Path) -> Result<()> {
    let status = Command::new(cargo())
        .args([
            "build",
            "--release",
            "-p",
            "cargo-styxy",
            "-p",
            "xtask",
            "--bins",
        ])
        .current_dir(root)
        .status()
        .map_err(|e| e.to_string())?;
    status
        .success()
        .then_some(())
        .ok_or_else(|| "release build failed".into())
}

/// The built-in service types.
pub(super) const BUILTINS: [&str; 17] = [
    "dev",
    "api",
    "database",
    "auth",
    "functions",
    "ui",
    "hub",
    "storybook",
    "test",
    "proxy",
    "docs",
    "monitoring",
    "build",
    "infrastructure",
    "ai",
    "messaging",
    "coordination",
];

/// A registry of `n` auto-allocated types of `per_type` instances each, as styxy writes it:
/// `registry.toml` (the settings, and the built-in types removed: their ranges would sit
/// among these) and the state (the types and their instances). Packed from 1100 up, each
/// range just big enough, one port apart; 10,000 types of four instances reach past the
/// ephemeral range, so new ones go above it (max_port 65535).
pub(super) fn big_registry(n: u32, per_type: u32) -> (String, String) {
    let size = per_type.max(2);
    let mut config = String::from(
        "[settings]\nmin_port = 1024\nmax_port = 65535\nchunk_size = 2\ngap_size = 1\n\n",
    );
    for t in BUILTINS {
        let _ = write!(config, "[types.{t}]\nremoved = true\n\n");
    }
    let mut state = String::from("{\"format\":2,\"types\":{");
    for i in 0..n {
        let start = 1100 + i * (size + 1);
        if i > 0 {
            state.push(',');
        }
        let _ = write!(
            state,
            "\"bench-{i}\":{{\"ranges\":[[{start},{}]],\"instance_behavior\":\"multi\",\"origin\":\"auto\",\"instances\":{{",
            start + size - 1
        );
        for k in 0..per_type {
            if k > 0 {
                state.push(',');
            }
            let _ = write!(
                state,
                "\"/ws/{i}/{k}\":{{\"port\":{},\"workspace\":\"/ws/{i}/{k}\"}}",
                start + k
            );
        }
        state.push_str("}}");
    }
    state.push_str("}}\n");
    (config, state)
}

/// The instances of the two types that [`with_checkouts`] adds to a registry.
pub(super) const CHECKOUTS: u16 = 99;

/// [`big_registry`] of `n` types, one instance each, and two more types of [`CHECKOUTS`]
/// instances (one short of the default `max_instances`): `checkouts`, whose instances are
/// checkouts whose roots are directories under `roots` (made here), and `names`, whose
/// instance ids are not paths. One more instance of the first runs the removed-checkout
/// check over every instance (an `lstat` each, none gone); of the second, over none.
pub(super) fn with_checkouts(n: u32, roots: &Path) -> Result<(String, String)> {
    let (config, mut state) = big_registry(n, 1);
    state.truncate(state.len() - "}}\n".len());
    for (name, start) in [("checkouts", 20_000u16), ("names", 20_200)] {
        let _ = write!(
            state,
            ",\"{name}\":{{\"ranges\":[[{start},{}]],\"instance_behavior\":\"multi\",\"origin\":\"auto\",\"instances\":{{",
            start + 99
        );
        for k in 0..CHECKOUTS {
            if k > 0 {
                state.push(',');
            }
            let port = start + k;
            if name == "checkouts" {
                let root = roots.join(format!("checkout-{k}"));
                std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
                let root = root.to_str().ok_or("a temp path that is not UTF-8")?;
                let _ = write!(
                    state,
                    "\"{root}\":{{\"port\":{port},\"workspace\":\"{root}\"}}"
                );
            } else {
                let _ = write!(state, "\"name-{k}\":{{\"port\":{port}}}");
            }
        }
        state.push('}');
        state.push('}');
    }
    state.push_str("}}\n");
    Ok((config, state))
}

pub(super) fn audit_lock_ms(home: &Path, field: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(home.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[field].as_f64())
        .collect()
}
