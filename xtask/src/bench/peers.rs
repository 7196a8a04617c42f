//! The alternatives a user would pick instead.

use std::process::{Command, Stdio};

use super::{Ctx, Result, Stats, repeat};

/// `get-port` from npm, installed in a temp dir: one call per node process.
pub(super) fn get_port(ctx: &Ctx) -> Result<Stats> {
    let dir = ctx.tmp.join("get-port");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ok = Command::new("npm")
        .args([
            "install",
            "--silent",
            "--no-audit",
            "--no-fund",
            "get-port@7",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("npm: {e}"))?
        .success();
    if !ok {
        return Err("npm install get-port failed".into());
    }
    std::fs::write(
        dir.join("pick.mjs"),
        "import getPort from 'get-port';\nconsole.log(await getPort());\n",
    )
    .map_err(|e| e.to_string())?;
    let (stats, _) = repeat(ctx.n(30), || {
        let mut c = Command::new("node");
        c.arg("pick.mjs").current_dir(&dir);
        c
    })?;
    Ok(stats)
}
