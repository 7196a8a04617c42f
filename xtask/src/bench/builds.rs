//! What the build integration costs: a no-op `cargo build`, and the build-dependency's
//! share of a clean build.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::{Ctx, Result, Stats, cargo, repeat};

/// Medians of no-op builds with the integration and without it (the same workspace with
/// the build scripts and the client removed), and the build-script reruns seen.
pub(super) fn noop_builds(ctx: &Ctx) -> Result<(Stats, Stats, usize)> {
    let home = ctx.home("build-home");
    let with = ctx.tmp.join("build-with");
    crate::example(&ctx.root, &with);
    let without = ctx.tmp.join("build-without");
    crate::example(&ctx.root, &without);
    for member in ["shop-api", "shop-cli"] {
        let dir = without.join(member);
        let _ = std::fs::remove_file(dir.join("build.rs"));
        let m = dir.join("Cargo.toml");
        let text = std::fs::read_to_string(&m).map_err(|e| e.to_string())?;
        let cut = text.find("[build-dependencies]").unwrap_or(text.len());
        std::fs::write(&m, &text[..cut]).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").map_err(|e| e.to_string())?;
    }
    let target = ctx.tmp.join("build-target");
    let build = |dir: &Path| {
        let mut c = Command::new(cargo());
        c.args(["build", "--offline", "-v"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target)
            .env("STYXY_HOME", &home)
            .env("STYXY_BIN", &ctx.bin);
        c
    };
    for dir in [&with, &without] {
        let status = build(dir)
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("cargo build failed in {}", dir.display()));
        }
    }
    let mut reruns = 0;
    for _ in 0..3 {
        let out = build(&with).output().map_err(|e| e.to_string())?;
        reruns += String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.contains("build-script-build") && l.contains("Running"))
            .count();
    }
    let n = ctx.n(20);
    let (w, _) = repeat(n, || build(&with))?;
    let (wo, _) = repeat(n, || build(&without))?;
    Ok((w, wo, reruns))
}

/// What `styxy-build` as a build-dependency adds to the clean debug build of a small axum
/// service: the same service with and without it (and its build.rs), each built from an
/// empty target dir, in turns, so that drift hits both alike. Eight rounds: the same clean
/// build varies by seconds from one run to the next on a 2-core machine. The lock file is ours, so
/// the service's crates are the versions already in the local registry.
pub(super) fn build_cost(ctx: &Ctx) -> Result<(Stats, Stats)> {
    const MAIN: &str = r#"#[cfg(styxy)]
mod ports {
    include!(concat!(env!("OUT_DIR"), "/styxy_ports.rs"));
}

#[derive(serde::Deserialize, serde::Serialize)]
struct Config {
    greeting: String,
}

async fn hello(
    axum::extract::State(config): axum::extract::State<std::sync::Arc<Config>>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "greeting": config.greeting }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config: Config = toml::from_str("greeting = \"hello\"").expect("config");
    #[cfg(styxy)]
    let port = ports::SVC_PORT;
    #[cfg(not(styxy))]
    let port = 0;
    let app = axum::Router::new()
        .route("/", axum::routing::get(hello))
        .with_state(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
"#;
    let manifest = |with: bool| {
        let mut m = String::from(
            r#"[package]
name = "svc"
version = "0.1.0"
edition = "2024"

[dependencies]
axum = { version = "0.8", default-features = false, features = ["http1", "json", "tokio"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tokio = { version = "1", features = ["rt", "net", "macros"] }
toml = "1"

[lints.rust]
unexpected_cfgs = { level = "allow", check-cfg = ["cfg(styxy)"] }
"#,
        );
        if with {
            m.push_str(&format!(
                "
[build-dependencies]
styxy-build = {{ path = {:?} }}
",
                ctx.root.join("crates/styxy-build")
            ));
        }
        m
    };
    let home = ctx.home("build-cost-home");
    let mut dirs = Vec::new();
    for with in [true, false] {
        let dir = ctx.tmp.join(if with { "svc-with" } else { "svc-without" });
        std::fs::create_dir_all(dir.join("src")).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("Cargo.toml"), manifest(with)).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("src/main.rs"), MAIN).map_err(|e| e.to_string())?;
        if with {
            std::fs::write(
                dir.join("build.rs"),
                "fn main() {\n    styxy_build::emit().expect(\"styxy ports\");\n    println!(\"cargo:rustc-cfg=styxy\");\n}\n",
            )
            .map_err(|e| e.to_string())?;
        }
        std::fs::copy(ctx.root.join("Cargo.lock"), dir.join("Cargo.lock"))
            .map_err(|e| e.to_string())?;
        dirs.push(dir);
    }
    let target = ctx.tmp.join("build-cost-target");
    let clean_build = |dir: &Path| -> Result<f64> {
        let _ = std::fs::remove_dir_all(&target);
        let start = Instant::now();
        let out = Command::new(cargo())
            .args(["build", "--offline"])
            .current_dir(dir)
            .env("CARGO_TARGET_DIR", &target)
            .env("STYXY_HOME", &home)
            .env("STYXY_BIN", &ctx.bin)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.trim_start().starts_with("Compiling"))
                .collect();
            return Err(format!(
                "cargo build failed in {}: {}",
                dir.display(),
                said.join(" / ")
            ));
        }
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    // A warm-up of each (the first build fills the OS's file cache).
    clean_build(&dirs[0])?;
    clean_build(&dirs[1])?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..if ctx.quick { 1 } else { 8 } {
        with.push(clean_build(&dirs[0])?);
        without.push(clean_build(&dirs[1])?);
    }
    let _ = std::fs::remove_dir_all(&target);
    Ok((Stats::of(with), Stats::of(without)))
}
