//! `run` and `wait` with a real server bin that binds `$PORT` on 127.0.0.1 and echoes its
//! stdin: the lease, the one-holder rules, signals, SIGKILL of `run`, cargo's flags, live
//! status in `list`, and a real terminal (tmux) for Ctrl-C, Ctrl-Z, `fg` and hangup.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Home;

/// Serves a greeting that says how it was built and run, and echoes stdin until it ends.
const SERVER: &str = r#"use std::io::{BufRead, Write};
fn main() {
    let port: u16 = std::env::var("PORT").unwrap().parse().unwrap();
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let hello = if cfg!(feature = "shout") { "HELLO" } else { "hello" };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let line = format!("{hello} from {port} ({profile}) {args:?}");
    let server = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let _ = writeln!(stream.unwrap(), "{line}");
        }
    });
    println!("ready on {port}");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        println!("echo: {line}");
    }
    server.join().unwrap();
}
"#;

/// A workspace with one server bin, `echo`, in a new temp dir; `single` makes its type
/// single-instance.
fn checkout(single: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let metadata = if single {
        "[package.metadata.styxy.bins.echo]\ninstance = \"single\"\n"
    } else {
        ""
    };
    std::fs::write(
        dir.path().join("Cargo.toml"),
        format!(
            "[package]\nname = \"echo\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [features]\nshout = []\n\n{metadata}\n[workspace]\n"
        ),
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

/// A running `cargo styxy run`, killed with its bin when this is dropped, even when a test
/// fails halfway: no server outlives its test.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        // Its bin dies with it (the parent-death signal); killed by pid too, in case not.
        let children = children_of(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
        for pid in children {
            kill(pid, "KILL");
        }
    }
}

/// Processes a test started indirectly (a bin under `run`), killed by pid when dropped if
/// still there: what a failed test would leave behind.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if !gone(*pid) {
                kill(*pid, "KILL");
            }
        }
    }
}

fn kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
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

fn start_run(home: &Home, ws: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    Running(
        home.cmd(&args)
            .current_dir(ws)
            .env("CARGO_TARGET_DIR", target_dir())
            .env("PORT", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

/// `cargo styxy wait echo` for the checkout at `ws`, long enough for cargo to build.
fn wait_for_echo(home: &Home, ws: &Path) -> serde_json::Value {
    let out = home
        .cmd(&["wait", "echo", "--timeout", "180s", "--format", "json"])
        .current_dir(ws)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The server's greeting, read at once: call it only once the port listens.
fn greeting(port: u16) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("the server listens");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line
}

fn leases(home: &Home) -> Vec<serde_json::Value> {
    home.json(&["list", "echo"])["service_types"][0]["leases"]
        .as_array()
        .unwrap()
        .clone()
}

/// `list`'s view of the instance of the checkout at `ws`.
fn listed(home: &Home, ws: &Path) -> serde_json::Value {
    let root = std::fs::canonicalize(ws).unwrap();
    home.json(&["list", "echo"])["service_types"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["workspace"] == root.to_str().unwrap())
        .cloned()
        .unwrap_or_else(|| panic!("no instance for {}", root.display()))
}

fn stderr_of(child: &mut Child) -> String {
    let mut s = String::new();
    child.stderr.take().unwrap().read_to_string(&mut s).unwrap();
    s
}

/// The children of `pid` (run's cargo, which becomes the bin).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A process's state letter (`R`, `S`, `T` for stopped, `Z`), `None` once it is gone.
fn state_of(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// Polls `done` until it holds, failing with `what` after a minute.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn gone(pid: u32) -> bool {
    matches!(state_of(pid), None | Some('Z'))
}

fn audit_events(home: &Home) -> Vec<String> {
    home.json(&["audit", "--service", "echo"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_owned())
        .collect()
}

/// `run` in `ws` is refused for `why`, naming the holder's pid and port, and `run --reuse`
/// prints that port and exits 0.
fn second_run_is_refused(home: &Home, ws: &Path, why: &str, holder: u32, port: u16) {
    let out = home
        .cmd(&["run"])
        .current_dir(ws)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(why)
            && err.contains(&format!("pid {holder}"))
            && err.contains(&format!("port {port}")),
        "{err}"
    );
    let out = home
        .cmd(&["run", "--reuse"])
        .current_dir(ws)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        port.to_string()
    );
}

#[test]
fn run_serves_on_its_port_with_a_lease_and_one_holder() {
    let home = home_from(24000);
    let (a, b) = (checkout(true), checkout(true));
    let ma = a.path().join("Cargo.toml");
    let port = port_of(&home, &ma);

    let mut first = start_run(&home, a.path(), &[]);
    let waited = wait_for_echo(&home, a.path());
    assert_eq!(
        (
            &waited["services"][0]["port"],
            &waited["services"][0]["listening"]
        ),
        (&port.into(), &true.into()),
        "{waited}"
    );
    assert_eq!(greeting(port), format!("hello from {port} (debug) []\n"));
    let held = leases(&home);
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (held[0]["pid"].as_u64(), held[0]["port"].as_u64()),
        (Some(u64::from(first.0.id())), Some(u64::from(port)))
    );
    // `list` sees the bin listen: the child of run, which cargo became.
    let bin = children_of(first.0.id());
    let i = listed(&home, a.path());
    assert_eq!(i["listening"], true, "{i}");
    assert_eq!(i["listener_pid"], bin[0], "{i}");

    // A second run of the single-instance service, from another checkout, is refused;
    // --reuse prints the holder's port instead.
    second_run_is_refused(&home, b.path(), "single-instance", first.0.id(), port);

    // SIGTERM to run (alone) reaches the bin and ends the lease; run passes the signal's
    // status on.
    kill(first.0.id(), "TERM");
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
    assert_eq!(listed(&home, a.path())["listening"], false);
    let events = audit_events(&home);
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(
        (count("LEASE_TAKEN"), count("LEASE_ENDED")),
        (1, 1),
        "{events:?}"
    );
    assert_eq!(events.last().map(String::as_str), Some("LEASE_ENDED"));
}

#[test]
fn killing_run_kills_its_bin_and_frees_the_service() {
    let home = home_from(25000);
    let a = checkout(true);
    let port = port_of(&home, &a.path().join("Cargo.toml"));
    let mut run = start_run(&home, a.path(), &[]);
    wait_for_echo(&home, a.path());
    let bin = children_of(run.0.id())[0];
    let _cleanup = KillOnDrop(vec![bin]);
    assert_eq!(leases(&home).len(), 1);

    // SIGKILL of run alone: nothing can pass it on, yet the bin goes too.
    run.0.kill().unwrap();
    run.0.wait().unwrap();
    eventually("the bin to die with run", || gone(bin));
    // Its main thread may be a zombie before its server thread let the socket go.
    eventually("the bin's port to close", || {
        TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(
        leases(&home).is_empty(),
        "a dead process's lease shows as live"
    );
    assert_eq!(listed(&home, a.path())["listening"], false);
    // The dead lease is still written in the file until the next write drops it.
    assert!(home.read().contains("leases"));
    home.ok(&["allocate", "--service", "unrelated", "--instance", "x"]);
    assert!(!home.read().contains("leases ="), "{}", home.read());
    // And the single-instance service can run again at once.
    let _again = start_run(&home, a.path(), &[]);
    wait_for_echo(&home, a.path());
    assert_eq!(greeting(port), format!("hello from {port} (debug) []\n"));
}

#[test]
fn one_server_per_checkout_whoever_started_it() {
    let home = home_from(26000);
    let a = checkout(false);
    let port = port_of(&home, &a.path().join("Cargo.toml"));
    let mut first = start_run(&home, a.path(), &[]);
    wait_for_echo(&home, a.path());

    // A multi-instance type still gives one checkout one server.
    second_run_is_refused(
        &home,
        a.path(),
        "already runs from this checkout",
        first.0.id(),
        port,
    );
    kill(first.0.id(), "INT");
    assert_eq!(first.0.wait().unwrap().code(), Some(128 + 2));

    // An idle instance: not listening, and `wait` times out naming it.
    assert_eq!(listed(&home, a.path())["listening"], false);
    let out = home
        .cmd(&["wait", "echo", "--timeout", "0.2"])
        .current_dir(a.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("echo (port {port}) never listened")),
        "{err}"
    );

    // A server started another way (here, this test) listens on the port: `list` and
    // `wait` see it, and `run` refuses to start a bin that could only fail to bind.
    let _other = TcpListener::bind(("127.0.0.1", port)).expect("the port run just freed");
    let me = std::process::id();
    let i = listed(&home, a.path());
    assert_eq!(
        (&i["listening"], &i["listener_pid"]),
        (&true.into(), &me.into())
    );
    let waited = wait_for_echo(&home, a.path());
    assert!(waited["services"][0]["waited_ms"].as_u64().unwrap() < 30_000);
    let out = home.cmd(&["run"]).current_dir(a.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "port {port} of echo is already listening, by pid {me}"
        )),
        "{err}"
    );
    assert!(leases(&home).is_empty(), "a refused run left a lease");
}

#[test]
fn run_passes_cargo_flags_to_cargo_and_the_rest_to_the_bin() {
    let home = home_from(27000);
    let a = checkout(false);
    let port = port_of(&home, &a.path().join("Cargo.toml"));
    let mut run = start_run(
        &home,
        a.path(),
        &["--release", "-F", "shout", "--", "--release", "two"],
    );
    wait_for_echo(&home, a.path());
    assert_eq!(
        greeting(port),
        format!("HELLO from {port} (release) [\"--release\", \"two\"]\n")
    );
    kill(run.0.id(), "TERM");
    assert_eq!(run.0.wait().unwrap().code(), Some(128 + 15));
}

/// A tmux server of its own (its own socket), running an interactive bash in a checkout,
/// killed when dropped.
struct Terminal {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Terminal {
    fn open(home: &Home, cwd: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("tmux.sock");
        let bin = Path::new(env!("CARGO_BIN_EXE_cargo-styxy"));
        // The shell finds `cargo-styxy` first on its PATH.
        let path = format!(
            "{}:{}",
            bin.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&socket)
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-x",
                "160",
                "-y",
                "40",
            ])
            .arg("-c")
            .arg(cwd)
            .args(["bash", "--norc", "--noprofile", "-i"])
            .env_remove("TMUX")
            .env("PATH", path)
            .env("PS1", "styxy-test$ ")
            .env("STYXY_HOME", home.path())
            .env("CARGO_TARGET_DIR", target_dir())
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux is installed (.ci/run installs it)");
        assert!(status.success());
        Self { socket, _dir: dir }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text`, then Enter.
    fn line(&self, text: &str) {
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }

    fn key(&self, key: &str) {
        self.tmux(&["send-keys", key]);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-S", "-200"])
    }

    /// Waits until the screen shows `text` `times` times (a prompt comes back many times).
    fn shows(&self, text: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let screen = self.screen();
            if screen.matches(text).count() >= times {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?} {times}×:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn close(&self) {
        self.tmux(&["kill-server"]);
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.close();
    }
}

/// The pids of run (the lease's) and of its bin (the listener), once it serves.
fn run_and_bin(home: &Home, ws: &Path) -> (u32, u32) {
    wait_for_echo(home, ws);
    let run = leases(home)[0]["pid"].as_u64().unwrap() as u32;
    let bin = listed(home, ws)["listener_pid"].as_u64().unwrap() as u32;
    (run, bin)
}

#[test]
fn in_a_terminal_run_is_like_cargo_run() {
    let home = home_from(28000);
    let a = checkout(true);
    let port = port_of(&home, &a.path().join("Cargo.toml"));
    let term = Terminal::open(&home, a.path());
    term.shows("styxy-test$", 1);
    term.line("cargo styxy run");
    let (run, bin) = run_and_bin(&home, a.path());
    let _cleanup = KillOnDrop(vec![run, bin]);
    term.shows(&format!("ready on {port}"), 1);

    // The bin reads the terminal.
    term.line("hello there");
    term.shows("echo: hello there", 1);

    // Ctrl-Z stops the job, run and bin alike; `fg` continues both.
    term.key("C-z");
    term.shows("Stopped", 1);
    eventually("both to stop", || {
        state_of(run) == Some('T') && state_of(bin) == Some('T')
    });
    term.line("fg");
    term.line("again");
    term.shows("echo: again", 1);

    // Ctrl-C ends the bin, and run with it once the lease is ended; the shell is back.
    term.key("C-c");
    // The prompt is back (the third) before the next line is typed: the terminal drops what
    // is typed while it delivers the Ctrl-C.
    term.shows("styxy-test$", 3);
    term.line("echo status=$?");
    term.shows("status=130", 1);
    assert!(gone(run) && gone(bin));
    assert!(leases(&home).is_empty());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    assert_eq!(
        audit_events(&home).last().map(String::as_str),
        Some("LEASE_ENDED")
    );
}

#[test]
fn closing_the_terminal_ends_a_stopped_run() {
    let home = home_from(29000);
    let a = checkout(true);
    let term = Terminal::open(&home, a.path());
    term.shows("styxy-test$", 1);
    term.line("cargo styxy run");
    let (run, bin) = run_and_bin(&home, a.path());
    let _cleanup = KillOnDrop(vec![run, bin]);
    term.key("C-z");
    eventually("both to stop", || {
        state_of(run) == Some('T') && state_of(bin) == Some('T')
    });
    term.close();
    eventually("run and its bin to end with the terminal", || {
        gone(run) && gone(bin)
    });
    assert!(leases(&home).is_empty());
    assert_eq!(
        audit_events(&home).last().map(String::as_str),
        Some("LEASE_ENDED")
    );
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
