//! `run` with a real server bin that binds `$PORT` and serves on 127.0.0.1: the lease, the
//! single-instance rule across checkouts, SIGTERM and SIGKILL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Home;

const SERVER: &str = r#"use std::io::Write;
fn main() {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming() {
        let mut s = stream.unwrap();
        let _ = writeln!(s, "hello from {port}");
    }
}
"#;

/// A workspace with one single-instance server bin, in a new temp dir.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"echo\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [package.metadata.styxy.bins.echo]\ninstance = \"single\"\n\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("src/main.rs"), SERVER).unwrap();
    dir
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fixture-run")
}

/// A registry whose `echo` type is placed from `start` on: tests in this file run at once,
/// each with its own registry, and must not meet on one real port.
fn home_from(start: u16) -> Home {
    let home = Home::new();
    home.ok(&[
        "rule",
        "add",
        "echo",
        "--preferred-start",
        &start.to_string(),
    ]);
    home
}

/// A running `cargo styxy run`, whose bin is killed when this is dropped, even when a test
/// fails halfway: no server outlives its test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(group) = children_of(self.0.id()).first() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{group}")])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The port `cargo styxy port` gives the `echo` service of the workspace at `manifest`.
fn port_of(home: &Home, manifest: &Path) -> u16 {
    home.ok(&[
        "port",
        "echo",
        "--manifest-path",
        manifest.to_str().unwrap(),
    ])
    .trim()
    .parse()
    .unwrap()
}

fn start_run(home: &Home, ws: &Path) -> Running {
    Running(
        home.cmd(&["run"])
            .current_dir(ws)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("PORT", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// Waits (up to a deadline, for cargo to build) until the server answers on `port`.
fn greeting(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).unwrap();
            return line;
        }
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn leases(home: &Home) -> Vec<serde_json::Value> {
    home.json(&["list", "echo"])["service_types"][0]["leases"]
        .as_array()
        .unwrap()
        .clone()
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

/// The children of `pid` (run's `cargo`, which leads its own process group).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[test]
fn run_serves_on_its_port_with_a_lease_and_one_holder() {
    let home = home_from(24000);
    let (a, b) = (checkout(), checkout());
    let ma = a.path().join("Cargo.toml");
    let port = port_of(&home, &ma);

    let mut first = start_run(&home, a.path());
    assert_eq!(greeting(port), format!("hello from {port}\n"));
    let held = leases(&home);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0]["pid"].as_u64(), held[0]["port"].as_u64()),
        (Some(u64::from(first.0.id())), Some(u64::from(port)))
    );

    // A second run of the single-instance service, from another checkout, is refused.
    let out = home
        .cmd(&["run"])
        .current_dir(b.path())
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("pid {}", first.0.id())) && err.contains(&format!("port {port}")),
        "{err}"
    );
    // --reuse prints the holder's port instead.
    let out = home
        .cmd(&["run", "--reuse"])
        .current_dir(b.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        port.to_string()
    );

    // SIGTERM to run ends the bin and the lease; run passes the signal's status on.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(first.0.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = first.0.wait().unwrap();
    let err = stderr_of(&mut first.0);
    assert_eq!(status.code(), Some(128 + 15), "{err}");
    assert!(
        err.contains("PORT=1 from the environment is replaced by"),
        "{err}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the bin still listens"
    );
    assert!(leases(&home).is_empty());
    let audit = home.json(&["audit", "--service", "echo"]);
    let events: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    let count = |e: &str| events.iter().filter(|x| **x == e).count();
    assert_eq!(
        (count("LEASE_TAKEN"), count("LEASE_ENDED")),
        (1, 1),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&"LEASE_ENDED"), "{events:?}");
}

#[test]
fn a_killed_run_leaves_no_live_lease() {
    let home = home_from(25000);
    let a = checkout();
    let ma = a.path().join("Cargo.toml");
    let port = port_of(&home, &ma);
    let mut run = start_run(&home, a.path());
    greeting(port);
    assert_eq!(leases(&home).len(), 1);
    let group = children_of(run.0.id())[0];
    let kill = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .status()
        .unwrap();
    assert!(kill.success());
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    assert!(
        leases(&home).is_empty(),
        "a dead process's lease shows as live"
    );
    // The dead lease is still written in the file until the next write drops it.
    assert!(home.read().contains("leases"));
    home.ok(&["allocate", "--service", "unrelated", "--instance", "x"]);
    assert!(!home.read().contains("leases ="), "{}", home.read());
    // And the single-instance service can run again at once.
    let again = start_run(&home, a.path());
    assert_eq!(greeting(port), format!("hello from {port}\n"));
    drop(again);
}

#[test]
fn run_needs_one_bin() {
    let home = Home::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src/bin")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"two\"\nversion = \"0.1.0\"\nedition = \"2024\"\n[workspace]\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("src/bin/a.rs"), "fn main() {}\n").unwrap();
    std::fs::write(dir.path().join("src/bin/b.rs"), "fn main() {}\n").unwrap();
    let out = home.cmd(&["run"]).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("two/a, two/b") && err.contains("--bin"),
        "{err}"
    );
}
