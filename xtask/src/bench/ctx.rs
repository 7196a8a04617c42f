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
        let mut c = Command::new(&self.bin);
        c.arg("styxy").args(args).env("STYXY_HOME", home);
        c
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

pub(super) fn audit_lock_ms(home: &Path, field: &str) -> Vec<f64> {
    let text = std::fs::read_to_string(home.join("audit.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v[field].as_f64())
        .collect()
}
