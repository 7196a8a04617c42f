//! Helpers for tests that run the real `cargo-styxy` binary against a temp registry.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_cargo-styxy");

/// A temp registry directory, removed at drop. `STYXY_HOME` points every command at it.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn registry(&self) -> PathBuf {
        self.path().join("registry.toml")
    }

    pub fn state(&self) -> PathBuf {
        self.path().join("state.json")
    }

    /// `registry.toml`'s text.
    pub fn config(&self) -> String {
        std::fs::read_to_string(self.registry()).unwrap()
    }

    /// `registry.toml` and the state (but its metric counters and last audit records, which
    /// a refusal changes too) as they are now: what "nothing was changed" compares.
    pub fn read(&self) -> String {
        let mut state: serde_json::Value = std::fs::read_to_string(self.state())
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or_default();
        if let Some(s) = state.as_object_mut() {
            s.remove("counters");
            s.remove("audit");
        }
        let config = std::fs::read_to_string(self.registry()).unwrap_or_default();
        format!("{config}\n{state}")
    }

    /// Writes a `registry.toml` that removes every built-in type, then `extra`: a registry
    /// with only the test's own ranges.
    pub fn without_builtins(&self, extra: &str) {
        let mut text: String = styxy::registry::builtins()
            .keys()
            .map(|t| format!("[types.{t}]\nremoved = true\n"))
            .collect();
        text.push_str(extra);
        std::fs::write(self.registry(), text).unwrap();
    }

    /// `cargo-styxy styxy ARGS…` as cargo runs it, with this registry.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("styxy")
            .args(args)
            .env("STYXY_HOME", self.path())
            .env("NO_COLOR", "1")
            .env_remove("STYXY_LOCK_TIMEOUT")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// [`Home::ok`] in the directory `dir`.
    pub fn ok_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = self.cmd(args).current_dir(dir).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--format json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// Takes the registry lock as another cargo-styxy would; it is held until the file is
    /// dropped (or unlocked).
    pub fn hold_lock(&self) -> std::fs::File {
        let lock = std::fs::File::options()
            .write(true)
            .open(self.path().join("registry.lock"))
            .unwrap();
        lock.lock().unwrap();
        lock
    }

    /// Runs `args` with a lock deadline of one second; returns the output.
    pub fn run_with_a_1s_lock_deadline(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .env("STYXY_LOCK_TIMEOUT", "1")
            .output()
            .unwrap()
    }

    /// Runs and expects failure with exit status `code`; returns stderr.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        stderr
    }

    /// The instances of `service_type` as (instance, port, workspace), from `list --format
    /// json`, in instance order.
    pub fn holders(&self, service_type: &str) -> Vec<(String, u64, Option<String>)> {
        self.json(&["list", service_type])["service_types"][0]["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["instance"].as_str().unwrap().to_owned(),
                    i["port"].as_u64().unwrap(),
                    i["workspace"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    /// Every range in the registry as (type, start, end), from `list --format json`.
    pub fn ranges(&self) -> Vec<(String, u16, u16)> {
        let list = self.json(&["list"]);
        let mut out = Vec::new();
        for t in list["service_types"].as_array().unwrap() {
            for r in t["ranges"].as_array().unwrap() {
                out.push((
                    t["service_type"].as_str().unwrap().to_owned(),
                    r[0].as_u64().unwrap() as u16,
                    r[1].as_u64().unwrap() as u16,
                ));
            }
        }
        out.sort_by_key(|(_, s, _)| *s);
        out
    }
}

/// Runs `cmd` (with whatever directory or environment it was given) and expects success;
/// returns its output.
pub fn succeeded(mut cmd: impl std::borrow::BorrowMut<Command>) -> Output {
    let cmd = cmd.borrow_mut();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Asserts no two ranges overlap and every pair involving an auto-allocated type (`auto`
/// names) keeps `gap` free ports between them.
pub fn assert_disjoint_with_gaps(
    ranges: &[(String, u16, u16)],
    gap: u16,
    auto: impl Fn(&str) -> bool,
) {
    for (i, a) in ranges.iter().enumerate() {
        for b in &ranges[i + 1..] {
            let (lo, hi) = if a.1 <= b.1 { (a, b) } else { (b, a) };
            let free = i64::from(hi.1) - i64::from(lo.2) - 1;
            assert!(free >= 0, "{lo:?} overlaps {hi:?}");
            if auto(&a.0) || auto(&b.0) {
                assert!(
                    free >= i64::from(gap),
                    "{lo:?} and {hi:?}: only {free} ports apart"
                );
            }
        }
    }
}

/// A child process of the test, killed (by its pid) and reaped when dropped, also when the
/// test fails.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running `cargo styxy ui`, stopped when dropped.
pub struct Ui {
    pub child: std::process::Child,
    /// The line it printed when it started serving, as JSON.
    pub started: serde_json::Value,
    pub url: String,
    pub port: u16,
    pub token: String,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Home {
    /// Starts the dashboard wishing for `port` (tests that run at once, each with its own
    /// registry, must not all take the first `coordination` port), with `env` set.
    pub fn start_ui(&self, port: u16, extra: &[&str], env: &[(&str, &std::path::Path)]) -> Ui {
        use std::io::BufRead;
        let port_arg = port.to_string();
        let mut args = vec!["ui", "--format", "json", "--port", &port_arg];
        args.extend_from_slice(extra);
        let mut cmd = self.cmd(&args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("ui prints its URL as JSON");
        let url = v["url"].as_str().unwrap().to_owned();
        Ui {
            started: v.clone(),
            child,
            token: url.split("token=").nth(1).unwrap().to_owned(),
            port: v["port"].as_u64().unwrap() as u16,
            url,
        }
    }
}

/// The first port from 30100 up that starts `len` ports nothing listens on (127.0.0.1 and
/// [::1]) right now: a span a test can point `min_port` at on a machine with dev servers.
/// Away from the ports other tests name (20000-30001), as the check binds each port for a
/// moment, which a test running at the same time would see as a listener; and below the
/// usual ephemeral range (32768 up), where auto-allocation stops.
pub fn free_span(len: u16) -> u16 {
    free_span_from(30100, len)
}

/// [`free_span`] from `from` up (within 1,000 ports): for two tests of one binary, which run
/// at the same time, in spans of their own.
pub fn free_span_from(from: u16, len: u16) -> u16 {
    // [::1] may be missing (no IPv6): then only 127.0.0.1 counts.
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()
            && match std::net::TcpListener::bind(("::1", p)) {
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::AddrNotAvailable,
            }
    };
    let mut start = from;
    while start < from + 1000 {
        match (start..start + len).find(|p| !free(*p)) {
            None => return start,
            Some(busy) => start = busy + 1,
        }
    }
    panic!("no {len} free ports in {from}-{}", from + 1000);
}

/// A bin's `src/main.rs` that listens on `$PORT` on 127.0.0.1 until it is killed.
pub const LISTENING_BIN: &str = r#"fn main() {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    for stream in listener.incoming() {
        drop(stream);
    }
}
"#;

/// A new workspace of one package `name` with one bin whose `src/main.rs` is `main_rs`,
/// `extra` added to its manifest (metadata), in a temp dir of its own.
pub fn one_bin_workspace(name: &str, extra: &str, main_rs: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n{extra}\n[workspace]\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("src/main.rs"), main_rs).unwrap();
    dir
}
