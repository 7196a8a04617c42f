//! `cargo xtask screenshot`: regenerates `docs/dashboard.png`, the README's picture, from
//! a populated registry in a temp dir, so the picture is what users get. It builds the
//! binary, fills a registry (three worktrees of `examples/shop`, a few dozen hand-allocated
//! services, user types, one live server and one foreign listener), starts `ui` on it and
//! takes the picture with Debian's headless `chromium --screenshot`.

use std::io::BufRead;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, String>;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A child process in a process group of its own, the whole group killed when dropped
/// (chromedriver and the chromium it starts), so that a failure leaves nothing running.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) on a process group this task started; no memory is involved.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
        }
        let _ = self.0.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Services a team typically runs beside its own bins, allocated by hand (`allocate`).
const SERVICES: [&str; 22] = [
    "postgres-orders",
    "postgres-users",
    "redis-cache",
    "redis-queue",
    "kafka",
    "zookeeper",
    "elasticsearch",
    "kibana",
    "prometheus-local",
    "grafana-local",
    "jaeger",
    "otel-collector",
    "minio",
    "mailhog",
    "keycloak",
    "vault-dev",
    "localstack",
    "rabbitmq",
    "nats",
    "clickhouse",
    "temporal",
    "storybook",
];

pub fn main(args: &[String]) -> Result<()> {
    let root = crate::workspace_root();
    let out = match args {
        [] => root.join("docs/dashboard.png"),
        [flag, path] if flag == "-o" || flag == "--output" => PathBuf::from(path),
        _ => return Err("usage: cargo xtask screenshot [-o FILE]".into()),
    };
    for tool in [CHROMIUM, CHROMEDRIVER] {
        if !Path::new(tool).exists() {
            return Err(format!(
                "{tool} is missing: apt-get install chromium chromium-driver"
            ));
        }
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "cargo-styxy", "--bin", "cargo-styxy"])
        .current_dir(&root)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build failed".into());
    }
    let bin = root.join("target/debug/cargo-styxy");
    let tmp =
        TempDir(std::env::temp_dir().join(format!("styxy-screenshot-{}", std::process::id())));
    let home = tmp.0.join("home");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let styxy = |args: &[&str]| -> Result<String> {
        let o = Command::new(&bin)
            .arg("styxy")
            .args(args)
            .args(["--format", "json"])
            .env("STYXY_HOME", &home)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(format!(
                "cargo styxy {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    };
    let port_of = |text: &str| -> Result<u16> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        v["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| format!("no port in {text}"))
    };

    // Types people declared, one in a zone of its own.
    styxy(&["type", "add", "payments-sandbox", "--range", "9400-9409"])?;
    styxy(&["type", "add", "feature-flags", "--range", "9450-9454"])?;
    // Three worktrees of the example workspace.
    for name in ["shop", "shop-feature-search", "shop-fix-checkout"] {
        let dir = tmp.0.join(name);
        crate::example(&root, &dir);
        let manifest = dir.join("Cargo.toml");
        styxy(&["assign", "--manifest-path", &manifest.to_string_lossy()])?;
    }
    let mut kept = Vec::new();
    for (i, service) in SERVICES.iter().enumerate() {
        let port = port_of(&styxy(&[
            "allocate",
            "--service",
            service,
            "--instance",
            "dev",
        ])?)?;
        // A second instance of a few, as a second worktree would take.
        if i % 5 == 0 {
            styxy(&["allocate", "--service", service, "--instance", "review"])?;
        }
        kept.push(port);
    }
    // One server is up on its port, and a process the registry does not know sits in a
    // user type's range.
    let _up: Vec<TcpListener> = kept
        .iter()
        .step_by(4)
        .filter_map(|p| TcpListener::bind(("127.0.0.1", *p)).ok())
        .collect();
    let _foreign = TcpListener::bind(("127.0.0.1", 9403)).ok();

    let mut ui = Killed(
        Command::new(&bin)
            .args(["styxy", "ui", "--format", "json"])
            .process_group(0)
            .env("STYXY_HOME", &home)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let mut line = String::new();
    let stdout = ui.0.stdout.take().ok_or("no stdout")?;
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let started: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| format!("ui printed {line:?}: {e}"))?;
    let url = started["url"].as_str().ok_or("ui printed no url")?;

    let shots = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?
        .block_on(take(url, &tmp.0.join("chromium")))?;
    std::fs::write(&out, shots).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The page at `url` in headless Chromium, once the map is drawn: a PNG.
async fn take(url: &str, profile: &Path) -> Result<Vec<u8>> {
    let driver_port = free_port()?;
    let _driver = Killed(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={driver_port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", driver_port)).is_err() {
        if Instant::now() > deadline {
            return Err("chromedriver never listened".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run",
                     format!("--user-data-dir={}", profile.display())],
        }),
    );
    let client =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .map_err(|e| format!("a WebDriver session in headless chromium: {e}"))?;
    // Tall enough for every row of the map, its legend and the start of the table.
    client
        .set_window_size(1280, 1500)
        .await
        .map_err(|e| e.to_string())?;
    client.goto(url).await.map_err(|e| e.to_string())?;
    // Drawn: every type has its band, and the live status has come in.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let drawn = client
            .execute(
                "return document.querySelectorAll('#map rect.band').length > 0 && document.querySelector('#live').className === 'on';",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        if drawn == serde_json::Value::Bool(true) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the map was never drawn".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let png = client.screenshot().await.map_err(|e| e.to_string())?;
    let _ = client.close().await;
    Ok(png)
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
